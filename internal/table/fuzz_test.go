package table

import (
	"testing"
	"time"
)

// fuzzKey gives the fuzz target 32 keys that share 7 values of Lo, so that
// they share home slots and exercise probing past other keys, wrapping
// around the slots, and backward-shift deletion.
func fuzzKey(i int) Key {
	return Key{Hi: uint64(i%3)<<32 | uint64(i), Lo: uint64(i % 7)}
}

// FuzzTableOps decodes data as a table configuration and a sequence of
// operations, applies them to a small one-shard table and to a model, and
// fails on the first difference or broken invariant.
//
// data[0] configures the table: MaxEntries is 1 + its low 5 bits, bit 6
// sets a 20s AbsoluteTimeout, bit 7 keeps raw keys; IdleTimeout is 8s.
// Each following 3 bytes are one op (see decodeOp).
func FuzzTableOps(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		cfg := Config{
			MaxEntries:  1 + int(data[0]&0x1f),
			IdleTimeout: 8 * time.Second,
			KeepRawKeys: data[0]&0x80 != 0,
		}
		if data[0]&0x40 != 0 {
			cfg.AbsoluteTimeout = 20 * time.Second
		}
		h := newHarness(cfg, fuzzKey)
		for i := 1; i+3 <= len(data); i += 3 {
			o := decodeOp(data[i], data[i+1], data[i+2])
			if err := h.apply(o); err != nil {
				t.Fatalf("op %d (%+v): %v", (i-1)/3, o, err)
			}
		}
	})
}

// decodeOp reads one op from 3 bytes a, b, c:
//
//	a%8: 0-1 store, 2 lookup, 3 delete, 4 deletePod, 5 advance, 6 expire, 7 restore
//	a>>3&3: restore hits
//	b%32: key; b>>5: restore age (creation to last use) in 3s steps
//	c&3: pod; c>>2&15: restore idle time in seconds
//	advance: c>>2 seconds (0-63), plus 500ms when a&8 is set
func decodeOp(a, b, c byte) op {
	o := op{
		key:     int(b % 32),
		pod:     int(c & 3),
		idleFor: int(c >> 2 & 15),
		age:     3 * int(b>>5),
		hits:    uint64(a >> 3 & 3),
	}
	switch a % 8 {
	case 0, 1:
		o.kind = opStore
	case 2:
		o.kind = opLookup
	case 3:
		o.kind = opDelete
	case 4:
		o.kind = opDeletePod
	case 5:
		o.kind = opAdvance
		o.advance = time.Duration(c>>2) * time.Second
		if a&8 != 0 {
			o.advance += 500 * time.Millisecond
		}
	case 6:
		o.kind = opExpire
	case 7:
		o.kind = opRestore
	}
	return o
}
