package table

import (
	"math"
	"math/bits"
	"sync"
)

// Segments of the segmented LRU (Karedla, Love and Wherry, "Caching
// strategies to improve disk system performance", IEEE Computer, 1994).
// New entries enter probation; an entry hit after its insertion moves to
// protected, so a flood of keys seen once only churns probation.
//
// Promotion is lazy, as in CLOCK (Corbató, 1968) and the "lazy promotion"
// of Yang et al., "FIFO queues are all you need for cache eviction", SOSP
// 2023: a hit only sets the entry's referenced flag, and the entry moves
// when it reaches the tail of its segment. A hit therefore writes to its
// own entry and nothing else, which keeps the hit path at one cache miss
// in a table larger than the CPU caches.
const (
	probation = 0
	protected = 1
)

// Bits of entry.meta above the pod id.
const (
	podMask        = maxPods - 1
	flagUsed       = 1 << 29 // the slot holds an entry
	flagProtected  = 1 << 30 // the entry is in the protected segment
	flagReferenced = 1 << 31 // hit since it was last linked at a segment head
)

// nilPos marks the end of a segment list.
const nilPos int32 = -1

// maxShardEntries bounds a shard's capacity so that slot positions fit in
// int32.
const maxShardEntries = 1 << 29

// Why an entry left the table, for the Stats counters.
type reason uint8

const (
	live reason = iota // not expired
	idleExpiry
	absoluteExpiry
	capacityEviction
	budgetEviction
	deleted
)

// entry is one table entry in 32 bytes, two to a cache line, so that a hit
// reads one line. Times are seconds since epoch. An empty slot is all
// zero.
type entry struct {
	key      Key
	meta     uint32 // pod id in the low 29 bits, then flagUsed, flagProtected and flagReferenced
	hits     uint32 // saturates at math.MaxUint32
	created  uint32
	lastUsed uint32
}

// link is an entry's place in its segment list, kept apart from the entry
// because only list changes read it, not hits.
type link struct {
	prev int32 // toward the segment's head; nilPos at the head
	next int32 // toward the segment's tail; nilPos at the tail
}

func (e *entry) used() bool { return e.meta&flagUsed != 0 }

func (e *entry) pod() uint32 { return e.meta & podMask }

func (e *entry) segment() int { return int(e.meta>>30) & 1 }

// segList is one segment: a doubly linked list threaded through the
// entries by slot, most recently linked at the head.
type segList struct {
	head, tail int32
	n          int
}

// shard is one lock's worth of the table: an open-addressing hash table
// whose slots hold the entries themselves, so that a hit reads the slot it
// probes and nothing else, and the two segment lists through them.
type shard struct {
	mu sync.Mutex
	// guards every field below up to "Read-only"

	// slots is probed linearly from a key's home slot; an entry sits in
	// the first free slot from its home, and removal shifts the entries
	// after it back (Knuth, TAOCP vol. 3, 6.4, Algorithm R), so probing
	// never meets tombstones and stops at the first empty slot. At most
	// 3/4 of the slots are used; the slice grows by half, up to the size
	// that holds capacity entries at that load.
	slots []entry
	links []link   // parallel to slots
	raws  []string // parallel to slots when raw keys are kept, else nil
	n     int      // used slots

	seg   [2]segList
	clock uint32 // the latest time seen; never goes back

	hits, misses, inserts, rebinds     uint64
	evictions, idleExpired, absExpired uint64
	budgetEvictions                    uint64

	// Read-only after newShard.
	capacity     int
	maxSlots     int    // slots that hold capacity entries at 3/4 load
	protectedCap int    // most entries in the protected segment: 80% of capacity
	seed         uint64 // mixes Key.Lo so that slot collisions are not predictable
	idle         uint32 // seconds; at least 1
	absolute     uint32 // seconds; 0 means no limit
	keepRaw      bool
	pods         *podPool
	owner        *Table

	_ [64]byte // keeps a neighbouring shard's hot fields off these cache lines
}

const minSlots = 16

func newShard(capacity int, seed uint64, idle, absolute uint32, keepRaw bool, owner *Table) *shard {
	s := &shard{
		capacity:     capacity,
		maxSlots:     max((capacity*4+2)/3, minSlots),
		protectedCap: capacity * 4 / 5,
		seed:         seed,
		idle:         idle,
		absolute:     absolute,
		keepRaw:      keepRaw,
		pods:         owner.pods,
		owner:        owner,
	}
	s.seg[probation] = segList{head: nilPos, tail: nilPos}
	s.seg[protected] = segList{head: nilPos, tail: nilPos}
	s.resize(minSlots)
	return s
}

// tick advances the shard's clock to now. The clock never goes back, so a
// wall clock stepped backwards cannot make times run backwards.
func (s *shard) tick(now uint32) {
	if now > s.clock {
		s.clock = now
	}
}

// home is the first slot probed for k. Multiplicative (Fibonacci) hashing
// of the seeded Lo keeps crafted keys from piling onto one slot; the
// multiply-high maps it onto any number of slots (Lemire's fast range).
func (s *shard) home(k Key) int32 {
	hi, _ := bits.Mul64((k.Lo^s.seed)*0x9e3779b97f4a7c15, uint64(len(s.slots)))
	return int32(hi)
}

// after is the slot probed after i.
func (s *shard) after(i int32) int32 {
	if i++; int(i) == len(s.slots) {
		return 0
	}
	return i
}

// find returns the slot of k's entry, or nilPos.
func (s *shard) find(k Key) int32 {
	for i := s.home(k); ; i = s.after(i) {
		e := &s.slots[i]
		if !e.used() {
			return nilPos
		}
		if e.key == k {
			return i
		}
	}
}

// findLive returns the slot of k's live entry, or nilPos after dropping
// an expired one.
func (s *shard) findLive(k Key) int32 {
	pos := s.find(k)
	if pos != nilPos {
		if why := s.expiry(&s.slots[pos]); why != live {
			s.drop(pos, why)
			return nilPos
		}
	}
	return pos
}

// free returns the slot an entry for k, which must be absent, goes into.
func (s *shard) free(k Key) int32 {
	i := s.home(k)
	for s.slots[i].used() {
		i = s.after(i)
	}
	return i
}

// remove empties slot i by shifting back the entries after it that may
// fill it, so that lookups never meet tombstones.
func (s *shard) remove(i int32) {
	size := int32(len(s.slots))
	for j := s.after(i); s.slots[j].used(); j = s.after(j) {
		// The entry at j can fill the hole at i unless its home lies
		// cyclically in (i, j].
		h := s.home(s.slots[j].key)
		if (j-h+size)%size >= (j-i+size)%size {
			s.relocate(j, i)
			i = j
		}
	}
	s.slots[i] = entry{}
	s.links[i] = link{}
	if s.keepRaw {
		s.raws[i] = ""
	}
}

// relocate moves the linked entry in slot from to the empty slot to.
func (s *shard) relocate(from, to int32) {
	e, l := s.slots[from], s.links[from]
	s.slots[to], s.links[to] = e, l
	if l.prev != nilPos {
		s.links[l.prev].next = to
	} else {
		s.seg[e.segment()].head = to
	}
	if l.next != nilPos {
		s.links[l.next].prev = to
	} else {
		s.seg[e.segment()].tail = to
	}
	if s.keepRaw {
		s.raws[to] = s.raws[from]
	}
}

// resize moves every entry into size new slots, keeping each segment's
// order.
func (s *shard) resize(size int) {
	slots, links, raws, segs := s.slots, s.links, s.raws, s.seg
	s.slots = make([]entry, size)
	s.links = make([]link, size)
	if s.keepRaw {
		s.raws = make([]string, size)
	}
	for seg := range segs {
		s.seg[seg] = segList{head: nilPos, tail: nilPos}
		for pos := segs[seg].tail; pos != nilPos; pos = links[pos].prev {
			i := s.free(slots[pos].key)
			s.slots[i] = slots[pos]
			if s.keepRaw {
				s.raws[i] = raws[pos]
			}
			s.pushFront(i, seg)
		}
	}
}

// sweep calls fn for every used slot, walking down from an empty one so
// that fn may drop the entry it is given: removal shifts back only entries
// already visited.
func (s *shard) sweep(fn func(pos int32)) {
	size := int32(len(s.slots))
	start := int32(0)
	for s.slots[start].used() {
		start++
	}
	for k := int32(1); k < size; k++ {
		if pos := (start - k + size) % size; s.slots[pos].used() {
			fn(pos)
		}
	}
}

// pushFront links pos at the head of segment seg.
func (s *shard) pushFront(pos int32, seg int) {
	l := &s.seg[seg]
	s.links[pos] = link{prev: nilPos, next: l.head}
	if l.head != nilPos {
		s.links[l.head].prev = pos
	} else {
		l.tail = pos
	}
	l.head = pos
	l.n++
	e := &s.slots[pos]
	e.meta = e.meta&^flagProtected | uint32(seg)<<30
}

func (s *shard) unlink(pos int32) {
	l := &s.seg[s.slots[pos].segment()]
	k := s.links[pos]
	if k.prev != nilPos {
		s.links[k.prev].next = k.next
	} else {
		l.head = k.next
	}
	if k.next != nilPos {
		s.links[k.next].prev = k.prev
	} else {
		l.tail = k.prev
	}
	l.n--
}

// moveFront relinks pos at the head of seg, clearing its referenced flag,
// and keeps the protected segment within protectedCap.
func (s *shard) moveFront(pos int32, seg int) {
	s.unlink(pos)
	s.slots[pos].meta &^= flagReferenced
	s.pushFront(pos, seg)
	if seg == protected && s.seg[protected].n > s.protectedCap {
		s.demote()
	}
}

// demote moves the protected segment's least recently used entry to the
// probation head. Referenced entries met at the tail get a second chance
// at the protected head instead; each costs one earlier hit, so demote
// takes O(1) amortized.
func (s *shard) demote() {
	for {
		t := s.seg[protected].tail
		if t == nilPos {
			return
		}
		e := &s.slots[t]
		s.unlink(t)
		if e.meta&flagReferenced != 0 {
			e.meta &^= flagReferenced
			s.pushFront(t, protected)
			continue
		}
		s.pushFront(t, probation)
		return
	}
}

// expiry reports whether e has expired at the shard's clock, and how.
func (s *shard) expiry(e *entry) reason {
	if s.absolute > 0 && s.clock-e.created > s.absolute {
		return absoluteExpiry
	}
	if s.clock-e.lastUsed > s.idle {
		return idleExpiry
	}
	return live
}

// hit records a use of the live entry at pos and returns its pod id. It
// writes to that entry only; the entry moves when it reaches a tail.
func (s *shard) hit(pos int32) uint32 {
	e := &s.slots[pos]
	if e.hits != math.MaxUint32 {
		e.hits++
	}
	e.lastUsed = s.clock
	e.meta |= flagReferenced
	return e.pod()
}

// touch relinks pos at the head of its own segment after a Store, keeping
// its referenced flag.
func (s *shard) touch(pos int32) {
	s.slots[pos].lastUsed = s.clock
	seg := s.slots[pos].segment()
	s.unlink(pos)
	s.pushFront(pos, seg)
}

// setRaw records raw as pos's raw key when raw keys are kept. It allocates
// only when the stored value differs.
func (s *shard) setRaw(pos int32, raw []byte) {
	if s.keepRaw && s.raws[pos] != string(raw) {
		s.raws[pos] = string(raw)
	}
}

// insert adds a new entry for k, which must be absent, evicting first when
// the shard is full, and returns its slot. An entry with hits enters the
// protected segment.
func (s *shard) insert(k Key, pod *podRec, created, lastUsed, hits uint32) int32 {
	if s.n >= s.capacity {
		s.evict(capacityEviction)
	}
	if (s.n+1)*4 > len(s.slots)*3 {
		s.resize(min(len(s.slots)+len(s.slots)/2, s.maxSlots))
	}
	pos := s.free(k)
	s.slots[pos] = entry{
		key:      k,
		meta:     pod.id | flagUsed,
		hits:     hits,
		created:  created,
		lastUsed: lastUsed,
	}
	s.n++
	s.count(1)
	s.pushFront(pos, probation)
	if hits > 0 {
		s.moveFront(pos, protected)
	}
	pod.sessions.Add(1)
	return pos
}

// count adds d to the entry counts of the shard's table and budget.
func (s *shard) count(d int64) {
	s.owner.entries.Add(d)
	if b := s.owner.budget; b != nil {
		b.used.Add(d)
	}
}

// evict removes one entry to make room, counted under why: the probation
// tail, after moving referenced entries met there to protected. An expired
// victim counts as expired rather than evicted.
func (s *shard) evict(why reason) {
	evicted := why
	for {
		victim := s.seg[probation].tail
		if victim == nilPos {
			// Only when protectedCap equals capacity; kept so that evict
			// never depends on that ratio.
			victim = s.seg[protected].tail
		}
		e := &s.slots[victim]
		why := s.expiry(e)
		if why == live && e.meta&flagReferenced != 0 {
			s.moveFront(victim, protected)
			continue
		}
		if why == live {
			why = evicted
		}
		s.drop(victim, why)
		return
	}
}

// repoint moves the entry at pos to pod, keeping the per-pod counts exact.
func (s *shard) repoint(pos int32, pod *podRec) {
	e := &s.slots[pos]
	s.pods.rec(e.pod()).sessions.Add(-1)
	pod.sessions.Add(1)
	e.meta = e.meta&^podMask | pod.id
}

// drop removes the entry at pos, counting it under why. Entries after it
// may shift back into its slot (see sweep).
func (s *shard) drop(pos int32, why reason) {
	switch why {
	case idleExpiry:
		s.idleExpired++
	case absoluteExpiry:
		s.absExpired++
	case capacityEviction:
		s.evictions++
	case budgetEviction:
		s.budgetEvictions++
	}
	s.pods.rec(s.slots[pos].pod()).sessions.Add(-1)
	s.unlink(pos)
	s.remove(pos)
	s.n--
	s.count(-1)
}

// expire removes every expired entry and returns how many it removed. With
// lazy promotion the lists are not in time order, so it reads every slot,
// in memory order, which runs at memory bandwidth.
func (s *shard) expire() int {
	n := 0
	s.sweep(func(pos int32) {
		if why := s.expiry(&s.slots[pos]); why != live {
			s.drop(pos, why)
			n++
		}
	})
	return n
}

// dropPod removes every entry pinned to pod id and returns how many.
func (s *shard) dropPod(id uint32) int {
	n := 0
	s.sweep(func(pos int32) {
		if s.slots[pos].pod() == id {
			s.drop(pos, deleted)
			n++
		}
	})
	return n
}
