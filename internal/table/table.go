package table

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Defaults for the zero Config fields.
const (
	DefaultMaxEntries  = 1_000_000
	DefaultIdleTimeout = 30 * time.Minute
	DefaultShards      = 64

	// maxShards bounds Config.Shards.
	maxShards = 1 << 16

	// minShardEntries is the least capacity a shard is given: smaller
	// tables get fewer shards, and below 512 entries one shard, whose LRU
	// order is exact.
	minShardEntries = 256
)

// epoch is the zero of the entries' uint32 second clocks, 2020-01-01 UTC
// in Unix seconds. It is fixed so that stored times mean the same after a
// restart; the clocks run out in 2156.
const epoch = 1577836800

// Config sets up a Table. The zero Config is usable: every zero field takes
// its default, and negative numbers count as zero.
type Config struct {
	// MaxEntries is the most entries the table holds (default 1,000,000).
	// When a shard is full, storing a new key evicts that shard's least
	// recently used entry.
	MaxEntries int

	// IdleTimeout drops an entry this long after its last use (default
	// 30m). Whole seconds, rounded up: an entry lives at least this long and
	// at most two seconds longer.
	IdleTimeout time.Duration

	// AbsoluteTimeout drops an entry this long after its creation, even if
	// in use (default 0: no limit). Whole seconds, rounded up, as above.
	AbsoluteTimeout time.Duration

	// Shards is the number of independently locked parts (default 64, at
	// most 65536). It is rounded up to a power of two, then halved until
	// each shard holds at least 256 entries, so a table of fewer than 512
	// entries has one shard and one LRU order.
	Shards int

	// KeepRawKeys keeps each entry's raw key value beside its digest, for
	// listing by value (default false: values may be credentials). Storing
	// then copies the value, one allocation per new entry.
	KeepRawKeys bool

	// Clock is the coarse clock the table reads with one atomic load per
	// operation; its owner stops it (see Clock). Nil: the table reads Now on
	// every operation.
	Clock *Clock

	// Now is the clock read on every operation when Clock is nil, and in
	// its place when both are set; tests inject a fake one. Nil: time.Now,
	// which at a million entries makes a hit about twice as slow as with a
	// Clock. Times before 2020 count as 2020-01-01.
	Now func() time.Time
}

// Entry is one entry as the table reports it.
type Entry struct {
	Key      Key
	Raw      string    // raw key value; empty unless Config.KeepRawKeys
	Pod      string    // pod identity
	Created  time.Time // when the key was stored or last rebound; second resolution, UTC
	LastUsed time.Time // second resolution, UTC
	Hits     uint64    // Lookup hits since Created; saturates at 2^32-1
}

// Stats counts what the table has done since New.
type Stats struct {
	Entries int // as Len

	Hits    uint64 // Lookups that found a live entry
	Misses  uint64 // Lookups that did not, including those that found it expired
	Inserts uint64 // new entries made by Store
	Rebinds uint64 // Stores that moved an entry to another pod

	Evictions       uint64 // removed to make room (capacity)
	BudgetEvictions uint64 // removed to make room in the shared Budget
	IdleExpired     uint64 // removed after IdleTimeout without use
	AbsoluteExpired uint64 // removed after AbsoluteTimeout since creation
}

// Table is a stick table: it maps session Keys to pod names, bounded in
// size, with idle and absolute expiry and segmented-LRU eviction.
//
// Table is safe for concurrent use. Keys are spread over shards by Key.Hi,
// each with its own mutex; there is no table-wide lock. Expired entries are
// removed when a Lookup or Store meets them and by Expire, which the owner
// calls periodically; until then they count in Len and Sessions but no
// read reports them.
//
// With a Clock (Config.Clock), an operation reads the time with one atomic
// load.
type Table struct {
	shards []*shard
	mask   uint64 // len(shards)-1
	pods   *podPool
	coarse *Clock           // nil: now is read instead
	now    func() time.Time // read on every operation when coarse is nil
	max    int

	// entries counts the entries of every shard, for the Budget's choice
	// of victim; it changes under a shard lock.
	entries atomic.Int64
	// budget is the Budget the table counts in; nil: none. Written
	// holding every shard lock (setBudget), read holding one.
	budget *Budget
}

// New returns an empty Table configured by cfg.
func New(cfg Config) *Table {
	maxEntries := cfg.MaxEntries
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	n := cfg.Shards
	if n <= 0 {
		n = DefaultShards
	}
	n = 1 << bits.Len(uint(min(n, maxShards)-1)) // round up to a power of two
	for n > 1 && maxEntries/n < minShardEntries {
		n /= 2
	}
	for maxEntries/n >= maxShardEntries {
		n *= 2
	}
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	t := &Table{
		shards: make([]*shard, n),
		mask:   uint64(n - 1),
		pods:   newPodPool(),
		coarse: cfg.Clock,
		now:    cfg.Now,
		max:    maxEntries,
	}
	switch {
	case cfg.Now != nil:
		t.coarse = nil
	case cfg.Clock == nil:
		t.now = time.Now
	}
	seed := rand.Uint64()
	for i := range t.shards {
		// Spread the remainder so that the capacities sum to maxEntries.
		capacity := maxEntries / n
		if i < maxEntries%n {
			capacity++
		}
		t.shards[i] = newShard(capacity, seed, seconds(idle), seconds(cfg.AbsoluteTimeout), cfg.KeepRawKeys, t)
	}
	return t
}

// seconds converts a timeout to whole seconds, rounded up; 0 or less is 0.
func seconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	return uint32(min(s, math.MaxUint32))
}

// stamp converts t to seconds since epoch, clamped to the uint32 range.
func stamp(t time.Time) uint32 {
	return uint32(min(max(t.Unix()-epoch, 0), math.MaxUint32))
}

func unstamp(s uint32) time.Time {
	return time.Unix(epoch+int64(s), 0).UTC()
}

// clock returns the current time in table seconds.
func (t *Table) clock() uint32 {
	if c := t.coarse; c != nil {
		return c.now.Load()
	}
	return stamp(t.now())
}

func (t *Table) shard(k Key) *shard {
	return t.shards[k.Hi&t.mask]
}

// Lookup returns the pod k is pinned to. On a hit it refreshes the entry's
// last use and counts the hit, and marks the entry for promotion in the
// LRU order; the entry itself moves only when an eviction reaches it, so a
// hit writes to no other entry. An entry found expired is removed and
// reported as a miss. The returned string is the table's interned copy.
// Lookup does not allocate.
func (t *Table) Lookup(k Key) (pod string, ok bool) {
	pod, _, _, ok = t.LookupSince(k)
	return pod, ok
}

// LookupSince is Lookup that also reports when the entry was used before
// this hit and the time of this hit (Unix seconds, both from the table's
// clock), so a caller can act once per period of use, such as refreshing a
// shared copy's expiry.
func (t *Table) LookupSince(k Key) (pod string, prevUse, now int64, ok bool) {
	s := t.shard(k)
	s.mu.Lock()
	s.tick(t.clock())
	pos := s.find(k)
	if pos == nilPos {
		s.misses++
		s.mu.Unlock()
		return "", 0, 0, false
	}
	if why := s.expiry(&s.slots[pos]); why != live {
		s.drop(pos, why)
		s.misses++
		s.mu.Unlock()
		return "", 0, 0, false
	}
	prev := s.slots[pos].lastUsed
	id := s.hit(pos)
	cur := s.slots[pos].lastUsed
	s.hits++
	s.mu.Unlock()
	return t.pods.name(id), epoch + int64(prev), epoch + int64(cur), true
}

// Peek returns k's live entry without refreshing it, promoting it or
// counting a hit or miss, for inspection. An expired entry is reported
// absent but left in place.
func (t *Table) Peek(k Key) (Entry, bool) {
	now := t.clock()
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	pos := s.find(k)
	if pos == nilPos || s.expiry(&s.slots[pos]) != live {
		return Entry{}, false
	}
	return t.export(s, pos), true
}

// export converts the entry at pos; s must be locked.
func (t *Table) export(s *shard, pos int32) Entry {
	e := &s.slots[pos]
	out := Entry{
		Key:      e.key,
		Pod:      t.pods.name(e.pod()),
		Created:  unstamp(e.created),
		LastUsed: unstamp(e.lastUsed),
		Hits:     uint64(e.hits),
	}
	if s.keepRaw {
		out.Raw = s.raws[pos]
	}
	return out
}

// Store pins k to pod and returns the pod it was pinned to before when
// that differs (rebound is then true).
//
// A new key is inserted into the probation segment, first evicting one
// entry when its shard is full (see the package doc for which) or, when
// the table belongs to a full Budget, one entry the Budget chooses. For a live entry on
// another pod, Store rebinds it: Created and Hits start over, counted in
// Stats.Rebinds. For a live entry already on pod, Store only refreshes its
// last use. An expired entry is replaced as if absent. raw is kept only
// when Config.KeepRawKeys is set.
//
// Store does not allocate in steady state; it does when a shard grows,
// when pod is seen for the first time, and to copy a new raw value.
func (t *Table) Store(k Key, pod string, raw []byte) (prev string, rebound bool) {
	s, rec := t.lockFor(k, pod)
	defer s.mu.Unlock()
	return t.storeLocked(s, k, rec, raw)
}

// lockFor returns the shard of k, locked and brought to the clock, and
// pod's record.
func (t *Table) lockFor(k Key, pod string) (*shard, *podRec) {
	now := t.clock()
	rec := t.pods.intern(pod)
	s := t.shard(k)
	s.mu.Lock()
	s.tick(now)
	return s, rec
}

// Claim pins k to pod unless a live entry pins it to a pod other than
// prev ("" when k was not pinned), in one step: of two placements of the
// same new key at once, the second follows the first. It returns the pod
// that holds k.
func (t *Table) Claim(k Key, prev, pod string, raw []byte) (winner string) {
	s, rec := t.lockFor(k, pod)
	defer s.mu.Unlock()
	if pos := s.findLive(k); pos != nilPos {
		if old := s.slots[pos].pod(); old != rec.id {
			if name := t.pods.name(old); name != prev {
				s.touch(pos)
				return name
			}
		}
	}
	t.storeLocked(s, k, rec, raw)
	return pod
}

// storeLocked is Store with s, the shard of k, locked and ticked.
func (t *Table) storeLocked(s *shard, k Key, rec *podRec, raw []byte) (prev string, rebound bool) {
	pos := s.findLive(k)
	if pos == nilPos && t.room(s, k) {
		pos = s.findLive(k)
	}
	if pos == nilPos {
		pos = s.insert(k, rec, s.clock, s.clock, 0)
		s.setRaw(pos, raw)
		s.inserts++
		return "", false
	}
	e := &s.slots[pos]
	if old := e.pod(); old != rec.id {
		prev, rebound = t.pods.name(old), true
		s.repoint(pos, rec)
		e.created = s.clock
		e.hits = 0
		e.meta &^= flagReferenced
		s.rebinds++
	}
	s.touch(pos)
	s.setRaw(pos, raw)
	return prev, rebound
}

// Restore inserts e with its own Created, LastUsed and Hits, for loading
// snapshots and entries from a shared store. A zero Created or LastUsed
// means now; times ahead of now are taken as now. An entry that has
// already expired at now is skipped and Restore returns false. Otherwise
// any entry for e.Key is overwritten and Restore returns true. An entry
// with hits enters the protected segment. Restore is not counted in Stats
// except for the evictions it causes.
func (t *Table) Restore(e Entry) bool {
	now := t.clock()
	rec := t.pods.intern(e.Pod)
	s := t.shard(e.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	created, lastUsed := s.clock, s.clock
	if !e.Created.IsZero() {
		created = min(stamp(e.Created), s.clock)
	}
	if !e.LastUsed.IsZero() {
		lastUsed = min(stamp(e.LastUsed), s.clock)
	}
	lastUsed = max(lastUsed, created)
	hits := uint32(min(e.Hits, math.MaxUint32))
	probe := entry{created: created, lastUsed: lastUsed}
	if s.expiry(&probe) != live {
		return false
	}
	pos := s.find(e.Key)
	if pos == nilPos && t.room(s, e.Key) {
		pos = s.find(e.Key)
	}
	if pos == nilPos {
		pos = s.insert(e.Key, rec, created, lastUsed, hits)
	} else {
		s.repoint(pos, rec)
		x := &s.slots[pos]
		x.created, x.lastUsed, x.hits = created, lastUsed, hits
		seg := probation
		if hits > 0 {
			seg = protected
		}
		s.moveFront(pos, seg)
	}
	if s.keepRaw && s.raws[pos] != e.Raw {
		s.raws[pos] = e.Raw
	}
	return true
}

// Delete removes k's entry and reports whether there was one.
func (t *Table) Delete(k Key) bool {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	pos := s.find(k)
	if pos == nilPos {
		return false
	}
	s.drop(pos, deleted)
	return true
}

// DeletePod removes every entry pinned to pod and returns how many. It
// visits every entry, one shard at a time.
func (t *Table) DeletePod(pod string) int {
	rec := t.pods.lookup(pod)
	if rec == nil || rec.sessions.Load() == 0 {
		return 0
	}
	n := 0
	for _, s := range t.shards {
		s.mu.Lock()
		n += s.dropPod(rec.id)
		s.mu.Unlock()
	}
	return n
}

// Len returns the number of entries, including expired ones not yet
// removed. It is at most Config.MaxEntries.
func (t *Table) Len() int {
	n := 0
	for _, s := range t.shards {
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// Sessions returns the number of entries pinned to pod, counted as Len
// counts them. It takes no shard lock.
func (t *Table) Sessions(pod string) int64 {
	if rec := t.pods.lookup(pod); rec != nil {
		return rec.sessions.Load()
	}
	return 0
}

// SessionCounter returns the live counter behind Sessions(pod), for
// callers that read it often, such as a least-sessions balancer. The
// pointer is never nil and stays valid for the table's life; the table
// keeps pod's name from then on. Callers must only read it.
func (t *Table) SessionCounter(pod string) *atomic.Int64 {
	return &t.pods.intern(pod).sessions
}

// Range calls fn for every live entry, one shard at a time, until fn
// returns false. It holds a shard's lock while calling fn, so fn must not
// call the table and should be quick. Entries stored during Range may or
// may not be seen.
func (t *Table) Range(fn func(Entry) bool) {
	now := t.clock()
	for _, s := range t.shards {
		s.mu.Lock()
		s.tick(now)
		for pos := range s.slots {
			if !s.slots[pos].used() || s.expiry(&s.slots[pos]) != live {
				continue
			}
			if !fn(t.export(s, int32(pos))) {
				s.mu.Unlock()
				return
			}
		}
		s.mu.Unlock()
	}
}

// Expire removes every expired entry and returns how many it removed. It
// reads every entry, one shard at a time, holding that shard's lock: a few
// milliseconds per million entries. Lookup and Store already treat expired
// entries as absent, so Expire only needs to run often enough to keep Len,
// Sessions and memory current; every few seconds to a minute suits most
// tables.
func (t *Table) Expire() int {
	now := t.clock()
	n := 0
	for _, s := range t.shards {
		s.mu.Lock()
		s.tick(now)
		n += s.expire()
		s.mu.Unlock()
	}
	return n
}

// MaxEntries returns the table's capacity: Config.MaxEntries or its
// default.
func (t *Table) MaxEntries() int { return t.max }

// Stats returns the table's counters, summed over its shards.
func (t *Table) Stats() Stats {
	var st Stats
	for _, s := range t.shards {
		s.mu.Lock()
		st.Entries += s.n
		st.Hits += s.hits
		st.Misses += s.misses
		st.Inserts += s.inserts
		st.Rebinds += s.rebinds
		st.Evictions += s.evictions
		st.BudgetEvictions += s.budgetEvictions
		st.IdleExpired += s.idleExpired
		st.AbsoluteExpired += s.absExpired
		s.mu.Unlock()
	}
	return st
}
