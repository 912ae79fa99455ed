package table

import (
	"math"
	"sync"
	"sync/atomic"
)

// BytesPerEntry is what one entry costs the process, at most, measured as
// resident memory in a flood of new keys: 54 bytes in a full table, up to
// 80 while a shard grows and its old slots are copied, and twice that
// before Go's collector, at the default GOGC of 100, frees what a growth
// left behind.
const BytesPerEntry = 160

// EntriesFor returns the budget that keeps the tables within half of
// memLimit, Go's memory limit in bytes (runtime/debug.SetMemoryLimit),
// leaving the other half to connections, buffers and the collector's
// headroom. rawKeyBytes is the longest raw key value kept beside an entry
// (Config.KeepRawKeys), 0 when none is: each entry is then counted with
// twice that string and its header more. A limit of 0 or less, or
// math.MaxInt64 (Go's "no limit"), gives 0: no budget.
func EntriesFor(memLimit int64, rawKeyBytes int) int {
	if memLimit <= 0 || memLimit == math.MaxInt64 {
		return 0
	}
	perEntry := int64(BytesPerEntry)
	if rawKeyBytes > 0 {
		perEntry += 2 * (16 + int64(rawKeyBytes))
	}
	return int(memLimit / 2 / perEntry)
}

// Budget bounds the entries of several tables together, so that memory
// follows one total however many tables there are. Each table still keeps
// its own MaxEntries.
//
// When the budget is full, storing a new key first evicts one entry: from
// the storing table when it holds at least the average per member, else
// from the member that holds the most. Within that table the entry goes as
// capacity evictions go (see the package doc): keys seen once first,
// sessions in use last. Such removals count in Stats.BudgetEvictions.
//
// Lookups never touch the budget; each new entry costs two atomic adds.
// Under concurrent inserts the total may pass the limit by at most the
// number of inserts in flight.
//
// A Budget is safe for concurrent use. The zero Budget has no limit.
type Budget struct {
	limit atomic.Int64 // 0: no limit
	used  atomic.Int64 // entries in the member tables

	// tables are the members, an immutable slice replaced whole.
	tables atomic.Pointer[[]*Table]

	// guards membership changes: SetTables and the tables' budget fields
	mu sync.Mutex
}

// maxRoomTries bounds the evictions one insert makes when other inserts
// keep filling the budget.
const maxRoomTries = 8

// NewBudget returns a Budget of limit entries; 0 or less means no limit.
func NewBudget(limit int) *Budget {
	b := &Budget{}
	b.limit.Store(int64(max(limit, 0)))
	return b
}

// Limit returns the most entries the members may hold together; 0 means
// no limit.
func (b *Budget) Limit() int { return int(b.limit.Load()) }

// Used returns the entries the members hold, including expired ones not
// yet removed.
func (b *Budget) Used() int { return int(b.used.Load()) }

// SetLimit changes the limit (0 or less: none) and evicts down to it.
func (b *Budget) SetLimit(limit int) {
	b.limit.Store(int64(max(limit, 0)))
	b.trim()
}

// SetTables makes ts exactly the budget's members: tables not in ts leave
// it and stop counting in it, tables in ts join it with the entries they
// hold. It then evicts down to the limit. A table belongs to at most one
// budget; one that belongs to another is moved to this one.
func (b *Budget) SetTables(ts []*Table) {
	b.mu.Lock()
	keep := make(map[*Table]bool, len(ts))
	for _, t := range ts {
		keep[t] = true
	}
	if cur := b.tables.Load(); cur != nil {
		for _, t := range *cur {
			if !keep[t] {
				t.setBudget(nil)
			}
		}
	}
	members := make([]*Table, 0, len(keep))
	for _, t := range ts {
		if keep[t] {
			delete(keep, t)
			t.setBudget(b)
			members = append(members, t)
		}
	}
	b.tables.Store(&members)
	b.mu.Unlock()
	b.trim()
}

// full reports whether a new entry must first make room.
func (b *Budget) full() bool {
	lim := b.limit.Load()
	return lim > 0 && b.used.Load() >= lim
}

// makeRoom evicts entries until a new one fits, for an insert of k into t,
// which holds no shard lock.
func (b *Budget) makeRoom(t *Table, k Key) {
	for range maxRoomTries {
		if !b.full() {
			return
		}
		v := b.victim(t)
		if v == nil || !v.evictFor(k) {
			return
		}
	}
}

// over reports whether the members hold more than the limit.
func (b *Budget) over() bool {
	lim := b.limit.Load()
	return lim > 0 && b.used.Load() > lim
}

// trim evicts until the members fit the limit.
func (b *Budget) trim() {
	var k Key
	for b.over() {
		v := b.victim(nil)
		if v == nil || !v.evictFor(k) {
			return
		}
		k.Hi++ // spread the evictions over the shards
	}
}

// victim returns the member an entry goes from when t stores a new one: t
// itself when it holds at least the average per member, else the member
// that holds the most. Nil when there are no members.
func (b *Budget) victim(t *Table) *Table {
	cur := b.tables.Load()
	if cur == nil || len(*cur) == 0 {
		return nil
	}
	ts := *cur
	if t != nil && t.entries.Load() > 0 && t.entries.Load()*int64(len(ts)) >= b.used.Load() {
		return t
	}
	var largest *Table
	for _, m := range ts {
		if largest == nil || m.entries.Load() > largest.entries.Load() {
			largest = m
		}
	}
	return largest
}

// setBudget moves t into b (nil: out of any budget), carrying its entry
// count. It holds every shard lock so that no insert or removal runs
// meanwhile; b.mu is held by the caller.
func (t *Table) setBudget(b *Budget) {
	for _, s := range t.shards {
		s.mu.Lock()
	}
	if t.budget != b {
		n := t.entries.Load()
		if t.budget != nil {
			t.budget.used.Add(-n)
		}
		if b != nil {
			b.used.Add(n)
		}
		t.budget = b
	}
	for _, s := range t.shards {
		s.mu.Unlock()
	}
}

// evictFor removes one entry for the budget, from the shard k maps to or,
// when that one is empty, the next one that is not. It reports whether it
// removed one.
func (t *Table) evictFor(k Key) bool {
	first := k.Hi & t.mask
	for i := range uint64(len(t.shards)) {
		s := t.shards[(first+i)&t.mask]
		s.mu.Lock()
		if s.n > 0 {
			s.evict(budgetEviction)
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
	}
	return false
}

// room makes space in t's budget for a new entry of k in s, which must be
// locked and absent k. When entries must go first, it unlocks s meanwhile
// and reports true: the caller then looks k up again. A full shard needs
// no room, since its own eviction keeps the total.
func (t *Table) room(s *shard, k Key) bool {
	b := t.budget
	if b == nil || s.n >= s.capacity || !b.full() {
		return false
	}
	s.mu.Unlock()
	b.makeRoom(t, k)
	s.mu.Lock()
	return true
}
