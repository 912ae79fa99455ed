package table

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// opKind is one operation the model-based tests apply to a table.
type opKind uint8

const (
	opStore opKind = iota
	opLookup
	opDelete
	opDeletePod
	opAdvance
	opExpire
	opRestore
	opPeek
)

// op is one operation with its operands; which fields count depends on
// kind.
type op struct {
	kind    opKind
	key     int           // store, lookup, delete, restore, peek
	pod     int           // store, deletePod, restore
	advance time.Duration // advance
	idleFor int           // restore: seconds since last use
	age     int           // restore: seconds from creation to last use
	hits    uint64        // restore
}

// modelEntry is what the model expects the table to hold for a key.
type modelEntry struct {
	pod               string
	created, lastUsed uint32
	hits              uint64
	raw               string
}

// harness applies ops to a Table and to a map-based model of it, and
// compares them after every op. The model mirrors the table's contents
// exactly: it cannot predict which entry an eviction picks, so after each
// op it drops the keys the table evicted, after checking that the table
// evicted only when full and counted each removal under the right reason.
type harness struct {
	tb       *Table
	clock    *fakeClock
	max      int
	idle     uint32
	absolute uint32
	keepRaw  bool
	key      func(int) Key
	model    map[Key]modelEntry
	keys     map[Key]int // key back to its number, for messages

	ops          int
	compareEvery int // ops between full comparisons; 1 compares after every op
}

func newHarness(cfg Config, key func(int) Key) *harness {
	clock := newFakeClock()
	cfg.Now = clock.Now
	tb := New(cfg)
	return &harness{
		tb:       tb,
		clock:    clock,
		max:      tb.max,
		idle:     tb.shards[0].idle,
		absolute: tb.shards[0].absolute,
		keepRaw:  cfg.KeepRawKeys,
		key:      key,
		model:    map[Key]modelEntry{},
		keys:     map[Key]int{},

		compareEvery: 1,
	}
}

func podName(i int) string { return fmt.Sprint("pod-", i) }

func rawValue(i int) string { return fmt.Sprint("value-", i) }

func (h *harness) expiry(e modelEntry, now uint32) reason {
	if h.absolute > 0 && now-e.created > h.absolute {
		return absoluteExpiry
	}
	if now-e.lastUsed > h.idle {
		return idleExpiry
	}
	return live
}

// removals counts entries that left the table, by reason.
type removals struct{ evicted, idle, absolute uint64 }

func (r *removals) add(why reason) {
	switch why {
	case idleExpiry:
		r.idle++
	case absoluteExpiry:
		r.absolute++
	default:
		r.evicted++
	}
}

// apply runs o on the table and the model and returns the first
// difference between them.
func (h *harness) apply(o op) error {
	before := h.tb.Stats()
	now := stamp(h.clock.Now())
	k := h.key(o.key)
	h.keys[k] = o.key
	var want removals
	var wantHits, wantMisses, wantInserts, wantRebinds uint64
	mayEvict := false // the op may evict exactly one entry
	// The model holds what the table holds (checked after every op), so the
	// shard's length is the model's count of keys in that shard.
	s := h.tb.shard(k)
	s.mu.Lock()
	shardLen, shardCap := s.n, s.capacity
	s.mu.Unlock()

	switch o.kind {
	case opStore:
		pod, raw := podName(o.pod), rawValue(o.key)
		me, had := h.model[k]
		if had {
			if why := h.expiry(me, now); why != live {
				want.add(why)
				delete(h.model, k)
				had = false
				shardLen--
			}
		}
		var wantPrev string
		switch {
		case !had:
			mayEvict = shardLen >= shardCap
			me = modelEntry{pod: pod, created: now, lastUsed: now}
			wantInserts++
		case me.pod != pod:
			wantPrev = me.pod
			me = modelEntry{pod: pod, created: now, lastUsed: now}
			wantRebinds++
		default:
			me.lastUsed = now
		}
		if h.keepRaw {
			me.raw = raw
		}
		h.model[k] = me
		prev, rebound := h.tb.Store(k, pod, []byte(raw))
		if prev != wantPrev || rebound != (wantPrev != "") {
			return fmt.Errorf("Store(%d, %s) = %q, %v, want %q", o.key, pod, prev, rebound, wantPrev)
		}

	case opLookup:
		me, had := h.model[k]
		wantPod := ""
		if had {
			if why := h.expiry(me, now); why != live {
				want.add(why)
				delete(h.model, k)
			} else {
				wantPod = me.pod
				me.hits++
				me.lastUsed = now
				h.model[k] = me
			}
		}
		if wantPod != "" {
			wantHits++
		} else {
			wantMisses++
		}
		pod, ok := h.tb.Lookup(k)
		if pod != wantPod || ok != (wantPod != "") {
			return fmt.Errorf("Lookup(%d) = %q, %v, want %q", o.key, pod, ok, wantPod)
		}

	case opPeek:
		me, had := h.model[k]
		had = had && h.expiry(me, now) == live
		e, ok := h.tb.Peek(k)
		if ok != had || (ok && (e.Pod != me.pod || e.Hits != me.hits || e.Raw != me.raw ||
			stamp(e.Created) != me.created || stamp(e.LastUsed) != me.lastUsed)) {
			return fmt.Errorf("Peek(%d) = %+v, %v, want %+v, %v", o.key, e, ok, me, had)
		}

	case opDelete:
		_, had := h.model[k]
		delete(h.model, k)
		if got := h.tb.Delete(k); got != had {
			return fmt.Errorf("Delete(%d) = %v, want %v", o.key, got, had)
		}

	case opDeletePod:
		pod := podName(o.pod)
		n := 0
		for mk, me := range h.model {
			if me.pod == pod {
				delete(h.model, mk)
				n++
			}
		}
		if got := h.tb.DeletePod(pod); got != n {
			return fmt.Errorf("DeletePod(%s) = %d, want %d", pod, got, n)
		}

	case opAdvance:
		h.clock.Advance(o.advance)

	case opExpire:
		n := 0
		for mk, me := range h.model {
			if why := h.expiry(me, now); why != live {
				want.add(why)
				delete(h.model, mk)
				n++
			}
		}
		if got := h.tb.Expire(); got != n {
			return fmt.Errorf("Expire() = %d, want %d", got, n)
		}

	case opRestore:
		lastUsed := now - uint32(o.idleFor)
		e := Entry{
			Key:      k,
			Pod:      podName(o.pod),
			Created:  unstamp(lastUsed - uint32(o.age)),
			LastUsed: unstamp(lastUsed),
			Hits:     o.hits,
			Raw:      rawValue(o.key),
		}
		me := modelEntry{pod: e.Pod, created: lastUsed - uint32(o.age), lastUsed: lastUsed, hits: o.hits}
		if h.keepRaw {
			me.raw = e.Raw
		}
		wantOK := h.expiry(me, now) == live
		if wantOK {
			_, had := h.model[k]
			mayEvict = !had && shardLen >= shardCap
			h.model[k] = me
		}
		if got := h.tb.Restore(e); got != wantOK {
			return fmt.Errorf("Restore(%d) = %v, want %v", o.key, got, wantOK)
		}
	}

	// Keys the model holds but the table lost were evicted (or found
	// expired while looking for a victim). Only an op that may evict can
	// lose one; for the others Len is enough to tell, and compare catches
	// a key swapped for another.
	var vanished []Key
	if mayEvict || h.tb.Len() != len(h.model) {
		for mk := range h.model {
			if !h.tb.holds(mk) {
				vanished = append(vanished, mk)
			}
		}
	}
	switch {
	case len(vanished) > 1, len(vanished) == 1 && !mayEvict:
		return fmt.Errorf("op %+v: lost %d keys, want %d", o, len(vanished), map[bool]int{true: 1}[mayEvict])
	case len(vanished) == 0 && mayEvict:
		return fmt.Errorf("op %+v: table over capacity, want an eviction", o)
	}
	for _, mk := range vanished {
		if mk == k {
			return fmt.Errorf("op %+v: evicted the key it stored", o)
		}
		want.add(h.expiry(h.model[mk], now))
		delete(h.model, mk)
	}

	after := h.tb.Stats()
	got := removals{
		evicted:  after.Evictions - before.Evictions,
		idle:     after.IdleExpired - before.IdleExpired,
		absolute: after.AbsoluteExpired - before.AbsoluteExpired,
	}
	if got != want {
		return fmt.Errorf("op %+v: got removals %+v, want %+v", o, got, want)
	}
	if d := [4]uint64{after.Hits - before.Hits, after.Misses - before.Misses, after.Inserts - before.Inserts, after.Rebinds - before.Rebinds}; d != [4]uint64{wantHits, wantMisses, wantInserts, wantRebinds} {
		return fmt.Errorf("op %+v: got hits, misses, inserts, rebinds %v, want %v", o, d, [4]uint64{wantHits, wantMisses, wantInserts, wantRebinds})
	}
	if got := h.tb.Len(); got != len(h.model) {
		return fmt.Errorf("op %+v: got Len %d, want %d", o, got, len(h.model))
	}
	h.ops++
	if h.ops%h.compareEvery == 0 {
		return h.compare()
	}
	return nil
}

// compare checks that the table holds exactly the model's entries, that
// the per-pod counts agree, and the table's internal invariants.
func (h *harness) compare() error {
	if err := h.tb.check(); err != nil {
		return err
	}
	n := 0
	perPod := map[string]int64{}
	for _, s := range h.tb.shards {
		s.mu.Lock()
		for pos := range s.slots {
			if !s.slots[pos].used() {
				continue
			}
			e := h.tb.export(s, int32(pos))
			me, ok := h.model[e.Key]
			got := modelEntry{pod: e.Pod, created: stamp(e.Created), lastUsed: stamp(e.LastUsed), hits: e.Hits, raw: e.Raw}
			if !ok || got != me {
				s.mu.Unlock()
				return fmt.Errorf("key %d: got %+v, want %+v (in model: %v)", h.keys[e.Key], got, me, ok)
			}
			n++
		}
		s.mu.Unlock()
	}
	if n != len(h.model) {
		return fmt.Errorf("got %d entries, want %d", n, len(h.model))
	}
	if got := h.tb.Len(); got != n || got > h.max {
		return fmt.Errorf("got Len %d, want %d and at most %d", got, n, h.max)
	}
	for _, me := range h.model {
		perPod[me.pod]++
	}
	for _, r := range *h.tb.pods.recs.Load() {
		if got := h.tb.Sessions(r.name); got != perPod[r.name] {
			return fmt.Errorf("got Sessions(%s) = %d, want %d", r.name, got, perPod[r.name])
		}
	}
	return nil
}

// holds reports whether k has an entry, expired or not.
func (t *Table) holds(k Key) bool {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.find(k) != nilPos
}

func TestSessionsMatchModel(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		keys  int
		evict bool // whether the run must evict
	}{
		{"a table that never fills", Config{MaxEntries: 8192, IdleTimeout: time.Minute, AbsoluteTimeout: 5 * time.Minute}, 2000, false},
		{"a full one-shard table that evicts", Config{MaxEntries: 300, IdleTimeout: 2 * time.Minute}, 900, true},
		{"a full two-shard table with raw keys and an absolute timeout", Config{MaxEntries: 600, IdleTimeout: 5 * time.Minute, AbsoluteTimeout: 10 * time.Minute, KeepRawKeys: true}, 1500, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(tt.cfg, testKey)
			h.compareEvery = 97
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range 30_000 {
				o := op{key: rng.IntN(tt.keys), pod: rng.IntN(6)}
				switch r := rng.IntN(1000); {
				case r < 400:
					o.kind = opStore
				case r < 750:
					o.kind = opLookup
				case r < 800:
					o.kind = opDelete
				case r < 802:
					o.kind = opDeletePod
				case r < 880:
					o.kind, o.advance = opAdvance, time.Duration(rng.IntN(3000))*time.Millisecond
				case r < 900:
					o.kind = opExpire
				case r < 940:
					o.kind, o.idleFor, o.age, o.hits = opRestore, rng.IntN(200), rng.IntN(400), uint64(rng.IntN(3))
				default:
					o.kind = opPeek
				}
				if err := h.apply(o); err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
			}
			if err := h.compare(); err != nil {
				t.Fatal(err)
			}
			st := h.tb.Stats()
			if got := st.Evictions > 0; got != tt.evict {
				t.Errorf("got %d evictions, want evictions %v", st.Evictions, tt.evict)
			}
			if st.IdleExpired == 0 || st.Rebinds == 0 || st.Hits == 0 {
				t.Errorf("got stats %+v, want idle expiries, rebinds and hits", st)
			}
		})
	}
}
