package table

import (
	"fmt"
	"testing"
	"unsafe"
)

// check verifies every structural invariant of t and returns the first
// violation found. It locks one shard at a time, so it must only be called
// while no other goroutine uses t.
func (t *Table) check() error {
	counts := map[uint32]int64{}
	total := 0
	for i, s := range t.shards {
		s.mu.Lock()
		err := s.check(counts)
		total += len(s.entries)
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
	}
	if total > t.max {
		return fmt.Errorf("got %d entries, want at most %d", total, t.max)
	}
	var sum int64
	for _, r := range *t.pods.recs.Load() {
		if got, want := r.sessions.Load(), counts[r.id]; got != want {
			return fmt.Errorf("pod %q: got %d sessions, want %d", r.name, got, want)
		}
		sum += r.sessions.Load()
	}
	if sum != int64(total) {
		return fmt.Errorf("got %d sessions over all pods, want %d (Len)", sum, total)
	}
	return nil
}

func (s *shard) check(counts map[uint32]int64) error {
	n := len(s.entries)
	if n > s.capacity {
		return fmt.Errorf("got %d entries, want at most capacity %d", n, s.capacity)
	}
	if len(s.index)&(len(s.index)-1) != 0 || 64-s.shift != uint(bitsLen(len(s.index))) {
		return fmt.Errorf("index length %d and shift %d disagree", len(s.index), s.shift)
	}
	if n*4 > len(s.index)*3 {
		return fmt.Errorf("index %d slots for %d entries, over 3/4 full", len(s.index), n)
	}
	used := 0
	seen := make([]bool, n)
	for slot, v := range s.index {
		if v == 0 {
			continue
		}
		used++
		pos := int(v&s.posMask()) - 1
		if pos >= n {
			return fmt.Errorf("slot %d points past the entries: %d", slot, pos)
		}
		if got, want := v&^s.posMask(), s.tag(s.entries[pos].key); got != want {
			return fmt.Errorf("slot %d: got tag %#x, want %#x", slot, got, want)
		}
		if seen[pos] {
			return fmt.Errorf("position %d indexed twice", pos)
		}
		seen[pos] = true
	}
	if used != n {
		return fmt.Errorf("got %d index slots in use, want %d", used, n)
	}
	for pos := range s.entries {
		e := &s.entries[pos]
		if got := s.find(e.key); got != int32(pos) {
			return fmt.Errorf("find(entry %d) = %d", pos, got)
		}
		if e.created > e.lastUsed || e.lastUsed > s.clock {
			return fmt.Errorf("entry %d: created %d, lastUsed %d, clock %d out of order", pos, e.created, e.lastUsed, s.clock)
		}
		counts[e.pod()]++
	}
	if !s.keepRaw && s.raws != nil {
		return fmt.Errorf("got %d raw keys with raw keys off", len(s.raws))
	}
	if len(s.links) != n {
		return fmt.Errorf("got %d links for %d entries", len(s.links), n)
	}
	if s.keepRaw && len(s.raws) != n {
		return fmt.Errorf("got %d raw keys for %d entries", len(s.raws), n)
	}

	listed := 0
	for seg := range s.seg {
		l := s.seg[seg]
		prev := nilPos
		count := 0
		for pos := l.head; pos != nilPos; pos = s.links[pos].next {
			if count > n {
				return fmt.Errorf("segment %d has a cycle", seg)
			}
			e := &s.entries[pos]
			if got := s.links[pos].prev; got != prev {
				return fmt.Errorf("segment %d: entry %d has prev %d, want %d", seg, pos, got, prev)
			}
			if e.segment() != seg {
				return fmt.Errorf("entry %d is in list %d but flagged %d", pos, seg, e.segment())
			}
			prev = pos
			count++
		}
		if l.tail != prev {
			return fmt.Errorf("segment %d: tail %d, want %d", seg, l.tail, prev)
		}
		if count != l.n {
			return fmt.Errorf("segment %d: counted %d entries, want %d", seg, count, l.n)
		}
		listed += count
	}
	if listed != n {
		return fmt.Errorf("got %d entries in lists, want %d", listed, n)
	}
	if s.seg[protected].n > s.protectedCap {
		return fmt.Errorf("got %d protected entries, want at most %d", s.seg[protected].n, s.protectedCap)
	}
	return nil
}

func bitsLen(n int) int {
	b := 0
	for ; n > 1; n >>= 1 {
		b++
	}
	return b
}

// TestEntryLayout guards the sizes the memory budget and the one-line hit
// path rest on.
func TestEntryLayout(t *testing.T) {
	if got := unsafe.Sizeof(entry{}); got != 32 {
		t.Errorf("got entry size %d, want 32", got)
	}
	if got := unsafe.Sizeof(link{}); got != 8 {
		t.Errorf("got link size %d, want 8", got)
	}
}
