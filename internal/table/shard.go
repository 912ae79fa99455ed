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
// own entry and nothing else, which keeps the hit path at two cache misses
// (index slot, entry) in a table larger than the CPU caches.
const (
	probation = 0
	protected = 1
)

// Bits of entry.meta above the pod id.
const (
	podMask        = maxPods - 1
	flagProtected  = 1 << 30 // the entry is in the protected segment
	flagReferenced = 1 << 31 // hit since it was last linked at a segment head
)

// nilPos marks the end of a segment list.
const nilPos int32 = -1

// maxShardEntries bounds a shard's capacity so that positions fit in int32.
const maxShardEntries = 1 << 30

// Why an entry left the table, for the Stats counters.
type reason uint8

const (
	live reason = iota // not expired
	idleExpiry
	absoluteExpiry
	capacityEviction
	deleted
)

// entry is one table entry in 32 bytes, two to a cache line, so that a hit
// reads one line. Times are seconds since epoch.
type entry struct {
	key      Key
	meta     uint32 // pod id in the low 30 bits, then flagProtected and flagReferenced
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

func (e *entry) pod() uint32 { return e.meta & podMask }

func (e *entry) segment() int { return int(e.meta>>30) & 1 }

// segList is one segment: a doubly linked list threaded through the
// entries by position, most recently linked at the head.
type segList struct {
	head, tail int32
	n          int
}

// shard is one lock's worth of the table: an open-addressing hash index
// over a dense slice of entries, and the two segment lists through them.
type shard struct {
	mu sync.Mutex
	// guards every field below up to "Read-only"

	// index holds one slot per uint32: 0 when empty, else the entry's
	// position+1 in the low posBits bits and a tag from Key.Hi above them,
	// so that probing rarely reads an entry that does not match. Linear
	// probing from home; the length is a power of two, at most 3/4 full.
	index []uint32
	shift uint // 64 - log2(len(index))

	entries []entry  // dense; removal moves the last entry into the hole
	links   []link   // parallel to entries
	raws    []string // parallel to entries when raw keys are kept, else nil

	seg   [2]segList
	clock uint32 // the latest time seen; never goes back

	hits, misses, inserts, rebinds     uint64
	evictions, idleExpired, absExpired uint64

	// Read-only after newShard.
	capacity     int
	protectedCap int    // most entries in the protected segment: 80% of capacity
	posBits      uint   // low bits of an index slot that hold position+1
	seed         uint64 // mixes Key.Lo so that slot collisions are not predictable
	idle         uint32 // seconds; at least 1
	absolute     uint32 // seconds; 0 means no limit
	keepRaw      bool
	pods         *podPool

	_ [64]byte // keeps a neighbouring shard's hot fields off these cache lines
}

const minIndex = 16

func newShard(capacity int, seed uint64, idle, absolute uint32, keepRaw bool, pods *podPool) *shard {
	s := &shard{
		index:        make([]uint32, minIndex),
		shift:        64 - 4,
		capacity:     capacity,
		protectedCap: capacity * 4 / 5,
		posBits:      uint(bits.Len32(uint32(capacity))),
		seed:         seed,
		idle:         idle,
		absolute:     absolute,
		keepRaw:      keepRaw,
		pods:         pods,
	}
	s.seg[probation] = segList{head: nilPos, tail: nilPos}
	s.seg[protected] = segList{head: nilPos, tail: nilPos}
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
// of the seeded Lo keeps crafted keys from piling onto one slot.
func (s *shard) home(k Key) uint32 {
	return uint32(((k.Lo ^ s.seed) * 0x9e3779b97f4a7c15) >> s.shift)
}

// tag returns the bits of k that its index slot keeps above the position.
func (s *shard) tag(k Key) uint32 {
	return uint32(k.Hi>>32) << s.posBits
}

func (s *shard) posMask() uint32 {
	return 1<<s.posBits - 1
}

// find returns the position of k's entry, or nilPos.
func (s *shard) find(k Key) int32 {
	mask := uint32(len(s.index) - 1)
	posMask := s.posMask()
	tag := s.tag(k)
	for i := s.home(k); ; i = (i + 1) & mask {
		v := s.index[i]
		if v == 0 {
			return nilPos
		}
		if v&^posMask == tag {
			if pos := int32(v&posMask) - 1; s.entries[pos].key == k {
				return pos
			}
		}
	}
}

// slot returns the index slot that holds position pos, whose key is k.
func (s *shard) slot(k Key, pos int32) uint32 {
	mask := uint32(len(s.index) - 1)
	posMask := s.posMask()
	want := uint32(pos) + 1
	i := s.home(k)
	for s.index[i]&posMask != want {
		i = (i + 1) & mask
	}
	return i
}

func (s *shard) indexPut(k Key, pos int32) {
	mask := uint32(len(s.index) - 1)
	i := s.home(k)
	for s.index[i] != 0 {
		i = (i + 1) & mask
	}
	s.index[i] = s.tag(k) | (uint32(pos) + 1)
}

// indexDelete empties slot i with backward-shift deletion (Knuth, TAOCP
// vol. 3, 6.4, Algorithm R), so lookups never meet tombstones.
func (s *shard) indexDelete(i uint32) {
	mask := uint32(len(s.index) - 1)
	posMask := s.posMask()
	j := i
	for {
		j = (j + 1) & mask
		v := s.index[j]
		if v == 0 {
			break
		}
		// The entry at j can fill the hole at i unless its home lies
		// cyclically in (i, j].
		h := s.home(s.entries[v&posMask-1].key)
		if (j-h)&mask >= (j-i)&mask {
			s.index[i] = v
			i = j
		}
	}
	s.index[i] = 0
}

// growIndex doubles the index and reinserts every entry.
func (s *shard) growIndex() {
	s.index = make([]uint32, 2*len(s.index))
	s.shift--
	for p := range s.entries {
		s.indexPut(s.entries[p].key, int32(p))
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
	e := &s.entries[pos]
	e.meta = e.meta&^flagProtected | uint32(seg)<<30
}

func (s *shard) unlink(pos int32) {
	l := &s.seg[s.entries[pos].segment()]
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
	s.entries[pos].meta &^= flagReferenced
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
		e := &s.entries[t]
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
	e := &s.entries[pos]
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
	s.entries[pos].lastUsed = s.clock
	seg := s.entries[pos].segment()
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

// insert adds a new entry for k, evicting first when the shard is full, and
// returns its position. An entry with hits enters the protected segment.
func (s *shard) insert(k Key, pod *podRec, created, lastUsed, hits uint32) int32 {
	if len(s.entries) >= s.capacity {
		s.evict()
	}
	if (len(s.entries)+1)*4 > len(s.index)*3 {
		s.growIndex()
	}
	if len(s.entries) == cap(s.entries) {
		// Grow by doubling but never past capacity, so that a full shard
		// holds no spare room.
		n := min(max(2*cap(s.entries), minIndex), s.capacity)
		grown := make([]entry, len(s.entries), n)
		copy(grown, s.entries)
		s.entries = grown
		links := make([]link, len(s.links), n)
		copy(links, s.links)
		s.links = links
		if s.keepRaw {
			raws := make([]string, len(s.raws), n)
			copy(raws, s.raws)
			s.raws = raws
		}
	}
	pos := int32(len(s.entries))
	s.entries = append(s.entries, entry{
		key:      k,
		meta:     pod.id,
		hits:     hits,
		created:  created,
		lastUsed: lastUsed,
	})
	s.links = append(s.links, link{})
	if s.keepRaw {
		s.raws = append(s.raws, "")
	}
	s.indexPut(k, pos)
	s.pushFront(pos, probation)
	if hits > 0 {
		s.moveFront(pos, protected)
	}
	pod.sessions.Add(1)
	return pos
}

// evict removes one entry to make room: the probation tail, after moving
// referenced entries met there to protected. An expired victim counts as
// expired rather than evicted.
func (s *shard) evict() {
	for {
		victim := s.seg[probation].tail
		if victim == nilPos {
			// Only when protectedCap equals capacity; kept so that evict
			// never depends on that ratio.
			victim = s.seg[protected].tail
		}
		e := &s.entries[victim]
		why := s.expiry(e)
		if why == live && e.meta&flagReferenced != 0 {
			s.moveFront(victim, protected)
			continue
		}
		if why == live {
			why = capacityEviction
		}
		s.drop(victim, why)
		return
	}
}

// repoint moves the entry at pos to pod, keeping the per-pod counts exact.
func (s *shard) repoint(pos int32, pod *podRec) {
	e := &s.entries[pos]
	s.pods.rec(e.pod()).sessions.Add(-1)
	pod.sessions.Add(1)
	e.meta = e.meta&^podMask | pod.id
}

// drop removes the entry at pos, counting it under why. The last entry
// moves into pos, so callers walking positions must walk downwards.
func (s *shard) drop(pos int32, why reason) {
	switch why {
	case idleExpiry:
		s.idleExpired++
	case absoluteExpiry:
		s.absExpired++
	case capacityEviction:
		s.evictions++
	}
	e := &s.entries[pos]
	s.pods.rec(e.pod()).sessions.Add(-1)
	s.unlink(pos)
	s.indexDelete(s.slot(e.key, pos))

	last := int32(len(s.entries) - 1)
	if pos != last {
		m, ml := s.entries[last], s.links[last]
		s.entries[pos], s.links[pos] = m, ml
		i := s.slot(m.key, last)
		s.index[i] = s.index[i]&^s.posMask() | (uint32(pos) + 1)
		if ml.prev != nilPos {
			s.links[ml.prev].next = pos
		} else {
			s.seg[m.segment()].head = pos
		}
		if ml.next != nilPos {
			s.links[ml.next].prev = pos
		} else {
			s.seg[m.segment()].tail = pos
		}
		if s.keepRaw {
			s.raws[pos] = s.raws[last]
		}
	}
	s.entries = s.entries[:last]
	s.links = s.links[:last]
	if s.keepRaw {
		s.raws[last] = ""
		s.raws = s.raws[:last]
	}
}

// expire removes every expired entry and returns how many it removed. With
// lazy promotion the lists are not in time order, so it reads every entry,
// in memory order, which runs at memory bandwidth.
func (s *shard) expire() int {
	n := 0
	for pos := int32(len(s.entries)) - 1; pos >= 0; pos-- {
		if why := s.expiry(&s.entries[pos]); why != live {
			s.drop(pos, why)
			n++
		}
	}
	return n
}

// dropPod removes every entry pinned to pod id and returns how many.
func (s *shard) dropPod(id uint32) int {
	n := 0
	for pos := int32(len(s.entries)) - 1; pos >= 0; pos-- {
		if s.entries[pos].pod() == id {
			s.drop(pos, deleted)
			n++
		}
	}
	return n
}
