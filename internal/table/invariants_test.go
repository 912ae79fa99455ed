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
		total += s.n
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
	}
	if total > t.max {
		return fmt.Errorf("got %d entries, want at most %d", total, t.max)
	}
	if got := t.entries.Load(); got != int64(total) {
		return fmt.Errorf("got an entry count of %d, want %d (the shards' sum)", got, total)
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
	n := s.n
	if n > s.capacity {
		return fmt.Errorf("got %d entries, want at most capacity %d", n, s.capacity)
	}
	if len(s.slots) > s.maxSlots || s.maxSlots*3 < s.capacity*4 {
		return fmt.Errorf("got %d slots, %d at most, for capacity %d", len(s.slots), s.maxSlots, s.capacity)
	}
	if n*4 > len(s.slots)*3 {
		return fmt.Errorf("got %d slots for %d entries, over 3/4 full", len(s.slots), n)
	}
	used := 0
	for pos := range s.slots {
		e := &s.slots[pos]
		if !e.used() {
			if *e != (entry{}) || s.links[pos] != (link{}) || (s.keepRaw && s.raws[pos] != "") {
				return fmt.Errorf("empty slot %d is not zero", pos)
			}
			continue
		}
		used++
		if got := s.find(e.key); got != int32(pos) {
			return fmt.Errorf("find(entry in slot %d) = %d", pos, got)
		}
		if e.created > e.lastUsed || e.lastUsed > s.clock {
			return fmt.Errorf("entry %d: created %d, lastUsed %d, clock %d out of order", pos, e.created, e.lastUsed, s.clock)
		}
		counts[e.pod()]++
	}
	if used != n {
		return fmt.Errorf("got %d used slots, want %d", used, n)
	}
	if !s.keepRaw && s.raws != nil {
		return fmt.Errorf("got %d raw keys with raw keys off", len(s.raws))
	}
	if len(s.links) != len(s.slots) {
		return fmt.Errorf("got %d links for %d slots", len(s.links), len(s.slots))
	}
	if s.keepRaw && len(s.raws) != len(s.slots) {
		return fmt.Errorf("got %d raw keys for %d slots", len(s.raws), len(s.slots))
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
			e := &s.slots[pos]
			if !e.used() {
				return fmt.Errorf("segment %d links empty slot %d", seg, pos)
			}
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
