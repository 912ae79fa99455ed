package table

import (
	"cmp"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Config.Now, since real time cannot be
// advanced by half an hour in a test.
type fakeClock struct {
	mu sync.Mutex
	// guards now
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testKey returns a well-spread Key for i without hashing a string.
func testKey(i int) Key {
	return Key{Hi: mix64(uint64(i)), Lo: mix64(uint64(i) ^ 0x632be59bd9b4e019)}
}

// mix64 is the SplitMix64 finalizer.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func mustCheck(t *testing.T, tb *Table) {
	t.Helper()
	if err := tb.check(); err != nil {
		t.Fatal(err)
	}
}

func TestNewShardCount(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want int
	}{
		{"the default is 64 shards", Config{}, 64},
		{"a count is rounded up to a power of two", Config{Shards: 5}, 8},
		{"a table under 512 entries has one shard", Config{MaxEntries: 511}, 1},
		{"each shard holds at least 256 entries", Config{MaxEntries: 1000}, 2},
		{"a large table keeps the asked count", Config{MaxEntries: 10_000_000, Shards: 256}, 256},
		{"negative values take the defaults", Config{MaxEntries: -1, Shards: -1}, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := New(tt.cfg)
			if got := len(tb.shards); got != tt.want {
				t.Errorf("got %d shards, want %d", got, tt.want)
			}
			capacity := 0
			for _, s := range tb.shards {
				capacity += s.capacity
			}
			if capacity != tb.max {
				t.Errorf("got shard capacities summing to %d, want %d", capacity, tb.max)
			}
		})
	}
}

func TestLookupCountsHitsAndMisses(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*Table)
		wantPod    string
		wantOK     bool
		wantHits   uint64
		wantMisses uint64
	}{
		{
			name:       "an unknown key is a miss",
			setup:      func(*Table) {},
			wantMisses: 1,
		},
		{
			name:     "a stored key is a hit on its pod",
			setup:    func(tb *Table) { tb.Store(testKey(1), "pod-a", nil) },
			wantPod:  "pod-a",
			wantOK:   true,
			wantHits: 1,
		},
		{
			name: "a deleted key is a miss",
			setup: func(tb *Table) {
				tb.Store(testKey(1), "pod-a", nil)
				tb.Delete(testKey(1))
			},
			wantMisses: 1,
		},
		{
			name:       "another key is a miss",
			setup:      func(tb *Table) { tb.Store(testKey(2), "pod-a", nil) },
			wantMisses: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := New(Config{MaxEntries: 100})
			tt.setup(tb)
			pod, ok := tb.Lookup(testKey(1))
			if pod != tt.wantPod || ok != tt.wantOK {
				t.Errorf("got Lookup = %q, %v, want %q, %v", pod, ok, tt.wantPod, tt.wantOK)
			}
			st := tb.Stats()
			if st.Hits != tt.wantHits || st.Misses != tt.wantMisses {
				t.Errorf("got %d hits, %d misses, want %d, %d", st.Hits, st.Misses, tt.wantHits, tt.wantMisses)
			}
			mustCheck(t, tb)
		})
	}
}

func TestLookupCountsHitsPerEntry(t *testing.T) {
	tb := New(Config{MaxEntries: 100})
	tb.Store(testKey(1), "pod-a", nil)
	for range 3 {
		tb.Lookup(testKey(1))
	}
	e, ok := tb.Peek(testKey(1))
	if !ok {
		t.Fatal("got no entry, want one")
	}
	if e.Hits != 3 {
		t.Errorf("got %d hits, want 3", e.Hits)
	}
}

func TestStoreRebinds(t *testing.T) {
	tests := []struct {
		name        string
		first       string // pod stored first; "" stores nothing
		second      string
		wantPrev    string
		wantRebound bool
		wantStats   Stats
		wantCreated time.Duration // after the start of the clock
		wantHits    uint64
	}{
		{
			name:      "storing a new key inserts it",
			second:    "pod-a",
			wantStats: Stats{Entries: 1, Inserts: 1, Hits: 1},
			// Created by the second Store, one minute in.
			wantCreated: time.Minute,
			wantHits:    1,
		},
		{
			name:        "storing the same pod again only refreshes",
			first:       "pod-a",
			second:      "pod-a",
			wantStats:   Stats{Entries: 1, Inserts: 1, Hits: 2},
			wantCreated: 0,
			wantHits:    2,
		},
		{
			name:        "storing another pod rebinds and starts the entry over",
			first:       "pod-a",
			second:      "pod-b",
			wantPrev:    "pod-a",
			wantRebound: true,
			wantStats:   Stats{Entries: 1, Inserts: 1, Rebinds: 1, Hits: 2},
			wantCreated: time.Minute,
			wantHits:    1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			start := clock.Now()
			tb := New(Config{MaxEntries: 100, Now: clock.Now})
			k := testKey(1)
			if tt.first != "" {
				tb.Store(k, tt.first, nil)
				tb.Lookup(k)
			}
			clock.Advance(time.Minute)
			prev, rebound := tb.Store(k, tt.second, nil)
			if prev != tt.wantPrev || rebound != tt.wantRebound {
				t.Errorf("got Store = %q, %v, want %q, %v", prev, rebound, tt.wantPrev, tt.wantRebound)
			}
			tb.Lookup(k)
			if got := tb.Stats(); got != tt.wantStats {
				t.Errorf("got stats %+v, want %+v", got, tt.wantStats)
			}
			e, _ := tb.Peek(k)
			if want := start.Add(tt.wantCreated); !e.Created.Equal(want) {
				t.Errorf("got Created %v, want %v", e.Created, want)
			}
			if want := start.Add(time.Minute); !e.LastUsed.Equal(want) {
				t.Errorf("got LastUsed %v, want %v", e.LastUsed, want)
			}
			if e.Hits != tt.wantHits {
				t.Errorf("got %d hits, want %d", e.Hits, tt.wantHits)
			}
			if got := tb.Sessions(tt.second); got != 1 {
				t.Errorf("got %d sessions on %s, want 1", got, tt.second)
			}
			if tt.first != "" && tt.first != tt.second {
				if got := tb.Sessions(tt.first); got != 0 {
					t.Errorf("got %d sessions on %s, want 0", got, tt.first)
				}
			}
			mustCheck(t, tb)
		})
	}
}

func TestExpiry(t *testing.T) {
	const idle, absolute = 30 * time.Minute, 2 * time.Hour
	type step struct {
		advance time.Duration
		op      string // "lookup" (want a hit when hit is set), "expire", "store"
		hit     bool
	}
	tests := []struct {
		name      string
		steps     []step
		wantStats Stats
	}{
		{
			name:      "an entry is still live at exactly the idle timeout",
			steps:     []step{{idle, "lookup", true}},
			wantStats: Stats{Entries: 1, Inserts: 1, Hits: 1},
		},
		{
			name:      "an entry idle past the timeout is a miss",
			steps:     []step{{idle + time.Second, "lookup", false}},
			wantStats: Stats{Inserts: 1, Misses: 1, IdleExpired: 1},
		},
		{
			name: "a hit refreshes the idle timer",
			steps: []step{
				{idle - time.Minute, "lookup", true},
				{idle - time.Minute, "lookup", true},
				{idle - time.Minute, "lookup", true},
			},
			wantStats: Stats{Entries: 1, Inserts: 1, Hits: 3},
		},
		{
			name: "a store of the same pod refreshes the idle timer",
			steps: []step{
				{idle - time.Minute, "store", false},
				{idle - time.Minute, "lookup", true},
			},
			wantStats: Stats{Entries: 1, Inserts: 1, Hits: 1},
		},
		{
			name: "the absolute timeout drops an entry in use",
			steps: []step{
				{20 * time.Minute, "lookup", true},
				{20 * time.Minute, "lookup", true},
				{20 * time.Minute, "lookup", true},
				{20 * time.Minute, "lookup", true},
				{20 * time.Minute, "lookup", true},
				{20 * time.Minute, "lookup", true},
				{time.Second, "lookup", false},
			},
			wantStats: Stats{Inserts: 1, Hits: 6, Misses: 1, AbsoluteExpired: 1},
		},
		{
			name:      "Expire removes an idle entry",
			steps:     []step{{idle + time.Second, "expire", false}},
			wantStats: Stats{Inserts: 1, IdleExpired: 1},
		},
		{
			name: "Expire removes an entry past the absolute timeout",
			steps: []step{
				{25 * time.Minute, "lookup", true},
				{25 * time.Minute, "lookup", true},
				{25 * time.Minute, "lookup", true},
				{25 * time.Minute, "lookup", true},
				{20*time.Minute + time.Second, "expire", false},
			},
			wantStats: Stats{Inserts: 1, Hits: 4, AbsoluteExpired: 1},
		},
		{
			name:      "a store over an expired entry inserts afresh",
			steps:     []step{{idle + time.Second, "store", false}},
			wantStats: Stats{Entries: 1, Inserts: 2, IdleExpired: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			tb := New(Config{MaxEntries: 100, IdleTimeout: idle, AbsoluteTimeout: absolute, Now: clock.Now})
			k := testKey(1)
			tb.Store(k, "pod-a", nil)
			for i, st := range tt.steps {
				clock.Advance(st.advance)
				switch st.op {
				case "lookup":
					if _, ok := tb.Lookup(k); ok != st.hit {
						t.Fatalf("step %d: got hit %v, want %v", i, ok, st.hit)
					}
				case "expire":
					if got := tb.Expire(); got != 1 {
						t.Fatalf("step %d: got Expire = %d, want 1", i, got)
					}
				case "store":
					if _, rebound := tb.Store(k, "pod-a", nil); rebound {
						t.Fatalf("step %d: got a rebind, want none", i)
					}
				}
			}
			if got := tb.Stats(); got != tt.wantStats {
				t.Errorf("got stats %+v, want %+v", got, tt.wantStats)
			}
			if got, want := tb.Sessions("pod-a"), int64(tt.wantStats.Entries); got != want {
				t.Errorf("got %d sessions, want %d", got, want)
			}
			mustCheck(t, tb)
		})
	}
}

func TestExpireRemovesOnlyExpiredEntries(t *testing.T) {
	clock := newFakeClock()
	tb := New(Config{MaxEntries: 10_000, IdleTimeout: time.Minute, Now: clock.Now})
	store := func(from, to int) {
		for i := from; i < to; i++ {
			tb.Store(testKey(i), "pod-a", nil)
		}
	}
	store(0, 1000)
	clock.Advance(30 * time.Second)
	store(1000, 2000)
	clock.Advance(30 * time.Second)
	store(2000, 3000)
	// Keep half of the oldest keys in use.
	for i := range 500 {
		if _, ok := tb.Lookup(testKey(i)); !ok {
			t.Fatalf("key %d: got a miss, want a hit", i)
		}
	}
	clock.Advance(31 * time.Second)
	// Keys 500-999 were last used 91s ago and 1000-1999 61s ago.
	if got := tb.Expire(); got != 1500 {
		t.Errorf("got Expire = %d, want 1500", got)
	}
	if got := tb.Len(); got != 1500 {
		t.Errorf("got Len %d, want 1500", got)
	}
	if got := tb.Stats().IdleExpired; got != 1500 {
		t.Errorf("got %d idle expiries, want 1500", got)
	}
	for i := range 3000 {
		_, ok := tb.Peek(testKey(i))
		if want := i < 500 || i >= 2000; ok != want {
			t.Fatalf("key %d: got present %v, want %v", i, ok, want)
		}
	}
	mustCheck(t, tb)
}

func TestEvictionPicksLeastRecentlyUsed(t *testing.T) {
	tests := []struct {
		name    string
		max     int      // 0 means 4: one shard, at most 3 protected entries
		ops     []string // "s3" stores key 3, "l3" looks it up
		want    []int    // keys present at the end
		evicted uint64
	}{
		{
			name:    "the oldest new key goes first",
			ops:     []string{"s1", "s2", "s3", "s4", "s5"},
			want:    []int{2, 3, 4, 5},
			evicted: 1,
		},
		{
			name:    "storing a key again makes it recent",
			ops:     []string{"s1", "s2", "s3", "s4", "s1", "s5"},
			want:    []int{1, 3, 4, 5},
			evicted: 1,
		},
		{
			name:    "a key hit once survives a run of new keys",
			ops:     []string{"s1", "s2", "s3", "s4", "l1", "s5", "s6", "s7"},
			want:    []int{1, 5, 6, 7},
			evicted: 3,
		},
		{
			name:    "keys hit once outlast every later new key",
			ops:     []string{"s1", "s2", "s3", "l1", "l2", "l3", "s4", "s5", "s6"},
			want:    []int{1, 2, 3, 6},
			evicted: 2,
		},
		{
			name:    "a hit that overfills protected demotes the oldest protected key",
			ops:     []string{"s1", "s2", "s3", "s4", "l1", "l2", "l3", "l4", "s5"},
			want:    []int{2, 3, 4, 5},
			evicted: 1,
		},
		{
			name: "a protected key hit again gets a second chance over an older one",
			max:  6, // at most 4 protected
			ops: []string{"s1", "s2", "s3", "s4", "s5", "s6", "l1", "l2", "l3", "l4", "s7",
				"l6", "l1", "s8", "s9"},
			want:    []int{1, 3, 4, 6, 8, 9},
			evicted: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			tb := New(Config{MaxEntries: cmp.Or(tt.max, 4), Now: clock.Now})
			for _, op := range tt.ops {
				// Step the clock so that each use is in its own second.
				clock.Advance(time.Second)
				var i int
				fmt.Sscanf(op[1:], "%d", &i)
				if op[0] == 's' {
					tb.Store(testKey(i), "pod-a", nil)
				} else if _, ok := tb.Lookup(testKey(i)); !ok {
					t.Fatalf("%s: got a miss, want a hit", op)
				}
			}
			var got []int
			for i := 1; i <= 10; i++ {
				if _, ok := tb.Peek(testKey(i)); ok {
					got = append(got, i)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got keys %v, want %v", got, tt.want)
			}
			if got := tb.Stats().Evictions; got != tt.evicted {
				t.Errorf("got %d evictions, want %d", got, tt.evicted)
			}
			mustCheck(t, tb)
		})
	}
}

func TestFloodOfNewKeysKeepsActiveSessions(t *testing.T) {
	tb := New(Config{MaxEntries: 1000})
	for i := range 100 {
		tb.Store(testKey(i), "pod-a", nil)
	}
	for range 2 {
		for i := range 100 {
			if _, ok := tb.Lookup(testKey(i)); !ok {
				t.Fatalf("key %d: got a miss, want a hit", i)
			}
		}
	}
	const flood = 1_000_000
	for i := range flood {
		tb.Store(testKey(1000+i), "pod-b", nil)
	}
	for i := range 100 {
		if _, ok := tb.Peek(testKey(i)); !ok {
			t.Errorf("key %d: got evicted, want kept", i)
		}
	}
	if got := tb.Len(); got != 1000 {
		t.Errorf("got Len %d, want 1000", got)
	}
	if got, want := tb.Stats().Evictions, uint64(flood-900); got != want {
		t.Errorf("got %d evictions, want %d", got, want)
	}
	if got := tb.Sessions("pod-a"); got != 100 {
		t.Errorf("got %d sessions on pod-a, want 100", got)
	}
	mustCheck(t, tb)
}

func TestDeletePod(t *testing.T) {
	tb := New(Config{MaxEntries: 10_000})
	pods := []string{"pod-a", "pod-b", "pod-c"}
	for i := range 3000 {
		tb.Store(testKey(i), pods[i%3], nil)
	}
	if got := tb.DeletePod("pod-b"); got != 1000 {
		t.Errorf("got DeletePod = %d, want 1000", got)
	}
	if got := tb.DeletePod("pod-b"); got != 0 {
		t.Errorf("got a second DeletePod = %d, want 0", got)
	}
	if got := tb.DeletePod("pod-unknown"); got != 0 {
		t.Errorf("got DeletePod of an unknown pod = %d, want 0", got)
	}
	for i := range 3000 {
		pod, ok := tb.Lookup(testKey(i))
		if want := i%3 != 1; ok != want || (ok && pod != pods[i%3]) {
			t.Fatalf("key %d: got %q, %v, want %q, %v", i, pod, ok, pods[i%3], want)
		}
	}
	for pod, want := range map[string]int64{"pod-a": 1000, "pod-b": 0, "pod-c": 1000} {
		if got := tb.Sessions(pod); got != want {
			t.Errorf("got %d sessions on %s, want %d", got, pod, want)
		}
	}
	mustCheck(t, tb)
}

func TestRestore(t *testing.T) {
	const idle, absolute = 30 * time.Minute, 2 * time.Hour
	clock := newFakeClock()
	now := clock.Now()
	tests := []struct {
		name     string
		existing string // pod already stored for the key, if any
		entry    Entry
		want     bool
		wantPod  string
		wantLast time.Time
	}{
		{
			name:     "a live entry keeps its own times and hits",
			entry:    Entry{Pod: "pod-a", Created: now.Add(-time.Hour), LastUsed: now.Add(-10 * time.Minute), Hits: 7},
			want:     true,
			wantPod:  "pod-a",
			wantLast: now.Add(-10 * time.Minute),
		},
		{
			name:    "an idle-expired entry is skipped",
			entry:   Entry{Pod: "pod-a", Created: now.Add(-time.Hour), LastUsed: now.Add(-idle - time.Second)},
			want:    false,
			wantPod: "",
		},
		{
			name:    "an entry past the absolute timeout is skipped",
			entry:   Entry{Pod: "pod-a", Created: now.Add(-absolute - time.Second), LastUsed: now},
			want:    false,
			wantPod: "",
		},
		{
			name:     "an existing entry is overwritten",
			existing: "pod-b",
			entry:    Entry{Pod: "pod-a", Created: now.Add(-time.Hour), LastUsed: now.Add(-time.Minute)},
			want:     true,
			wantPod:  "pod-a",
			wantLast: now.Add(-time.Minute),
		},
		{
			name:     "a skipped entry leaves the existing one alone",
			existing: "pod-b",
			entry:    Entry{Pod: "pod-a", Created: now.Add(-time.Hour), LastUsed: now.Add(-time.Hour)},
			want:     false,
			wantPod:  "pod-b",
			wantLast: now,
		},
		{
			name:     "times ahead of now are taken as now",
			entry:    Entry{Pod: "pod-a", Created: now.Add(time.Hour), LastUsed: now.Add(time.Hour)},
			want:     true,
			wantPod:  "pod-a",
			wantLast: now,
		},
		{
			name:     "zero times mean now",
			entry:    Entry{Pod: "pod-a"},
			want:     true,
			wantPod:  "pod-a",
			wantLast: now,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := New(Config{MaxEntries: 100, IdleTimeout: idle, AbsoluteTimeout: absolute, Now: clock.Now})
			k := testKey(1)
			if tt.existing != "" {
				tb.Store(k, tt.existing, nil)
			}
			e := tt.entry
			e.Key = k
			if got := tb.Restore(e); got != tt.want {
				t.Errorf("got Restore = %v, want %v", got, tt.want)
			}
			got, ok := tb.Peek(k)
			if ok != (tt.wantPod != "") || got.Pod != tt.wantPod {
				t.Fatalf("got Peek = %q, %v, want %q", got.Pod, ok, tt.wantPod)
			}
			if ok && !got.LastUsed.Equal(tt.wantLast) {
				t.Errorf("got LastUsed %v, want %v", got.LastUsed, tt.wantLast)
			}
			if tt.want && tt.entry.Hits != got.Hits {
				t.Errorf("got %d hits, want %d", got.Hits, tt.entry.Hits)
			}
			if tt.existing != "" && tt.existing != got.Pod {
				if n := tb.Sessions(tt.existing); n != 0 {
					t.Errorf("got %d sessions on %s, want 0", n, tt.existing)
				}
			}
			wantInserts := uint64(0)
			if tt.existing != "" {
				wantInserts = 1 // the Store above
			}
			if got := tb.Stats(); got.Inserts != wantInserts || got.Rebinds != 0 {
				t.Errorf("got %d inserts, %d rebinds, want %d, 0: Restore is not counted", got.Inserts, got.Rebinds, wantInserts)
			}
			mustCheck(t, tb)
		})
	}
}

func TestRestoreRoundTrip(t *testing.T) {
	clock := newFakeClock()
	src := New(Config{MaxEntries: 5000, KeepRawKeys: true, Now: clock.Now})
	for i := range 3000 {
		src.Store(testKey(i), fmt.Sprintf("pod-%d", i%7), []byte(fmt.Sprint("session-", i)))
		if i%3 == 0 {
			src.Lookup(testKey(i))
		}
		if i%500 == 0 {
			clock.Advance(time.Minute)
		}
	}
	dst := New(Config{MaxEntries: 5000, KeepRawKeys: true, Now: clock.Now})
	src.Range(func(e Entry) bool {
		if !dst.Restore(e) {
			t.Fatalf("got Restore = false for a live entry")
		}
		return true
	})
	want := map[Key]Entry{}
	src.Range(func(e Entry) bool { want[e.Key] = e; return true })
	n := 0
	dst.Range(func(e Entry) bool {
		n++
		if w := want[e.Key]; e != w {
			t.Errorf("got %+v, want %+v", e, w)
		}
		return true
	})
	if n != len(want) {
		t.Errorf("got %d entries, want %d", n, len(want))
	}
	for i := range 7 {
		pod := fmt.Sprintf("pod-%d", i)
		if got, want := dst.Sessions(pod), src.Sessions(pod); got != want {
			t.Errorf("got %d sessions on %s, want %d", got, pod, want)
		}
	}
	mustCheck(t, dst)
	clock.Advance(DefaultIdleTimeout + 2*time.Second)
	if got := dst.Expire(); got != 3000 {
		t.Errorf("got Expire = %d, want 3000", got)
	}
	mustCheck(t, dst)
}

func TestRange(t *testing.T) {
	clock := newFakeClock()
	tb := New(Config{MaxEntries: 10_000, IdleTimeout: time.Minute, Now: clock.Now})
	for i := range 100 {
		tb.Store(testKey(i), "pod-a", nil)
	}
	clock.Advance(50 * time.Second)
	for i := 100; i < 300; i++ {
		tb.Store(testKey(i), "pod-b", nil)
	}
	clock.Advance(11 * time.Second) // keys 0-99 are now idle past the timeout

	seen := map[Key]string{}
	tb.Range(func(e Entry) bool {
		seen[e.Key] = e.Pod
		return true
	})
	if len(seen) != 200 {
		t.Errorf("got %d entries, want the 200 live ones", len(seen))
	}
	for i := 100; i < 300; i++ {
		if seen[testKey(i)] != "pod-b" {
			t.Fatalf("key %d: got pod %q, want pod-b", i, seen[testKey(i)])
		}
	}

	calls := 0
	tb.Range(func(Entry) bool {
		calls++
		return calls < 10
	})
	if calls != 10 {
		t.Errorf("got %d calls after returning false, want 10", calls)
	}
}

func TestPeekDoesNotCountOrRefresh(t *testing.T) {
	clock := newFakeClock()
	tb := New(Config{MaxEntries: 100, Now: clock.Now})
	k := testKey(1)
	tb.Store(k, "pod-a", nil)
	before := tb.Stats()
	clock.Advance(time.Minute)
	for range 3 {
		if _, ok := tb.Peek(k); !ok {
			t.Fatal("got no entry, want one")
		}
	}
	if _, ok := tb.Peek(testKey(2)); ok {
		t.Error("got an entry for an unknown key, want none")
	}
	if got := tb.Stats(); got != before {
		t.Errorf("got stats %+v, want %+v", got, before)
	}
	e, _ := tb.Peek(k)
	if want := clock.Now().Add(-time.Minute); !e.LastUsed.Equal(want) || e.Hits != 0 {
		t.Errorf("got LastUsed %v, %d hits, want %v, 0", e.LastUsed, e.Hits, want)
	}
}

func TestKeepRawKeys(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep raw keys ", keep), func(t *testing.T) {
			tb := New(Config{MaxEntries: 1000, KeepRawKeys: keep})
			raw := []byte("user-42")
			tb.Store(testKey(1), "pod-a", raw)
			tb.Store(testKey(2), "pod-a", []byte("user-43"))
			raw[0] = 'X' // the table must hold its own copy
			tb.Delete(testKey(2))
			want := ""
			if keep {
				want = "user-42"
			}
			e, _ := tb.Peek(testKey(1))
			if e.Raw != want {
				t.Errorf("got Peek Raw %q, want %q", e.Raw, want)
			}
			tb.Range(func(e Entry) bool {
				if e.Raw != want {
					t.Errorf("got Range Raw %q, want %q", e.Raw, want)
				}
				return true
			})
			mustCheck(t, tb)
		})
	}
}

func TestSessionCounter(t *testing.T) {
	tb := New(Config{MaxEntries: 100})
	c := tb.SessionCounter("pod-a")
	if c == nil || c.Load() != 0 {
		t.Fatalf("got counter %v, want a zero counter", c)
	}
	tb.Store(testKey(1), "pod-a", nil)
	tb.Store(testKey(2), "pod-a", nil)
	if got := tb.SessionCounter("pod-a"); got != c {
		t.Error("got a different counter on the second call, want the same")
	}
	if got := c.Load(); got != 2 {
		t.Errorf("got counter %d, want 2", got)
	}
	if got := tb.Sessions("pod-z"); got != 0 {
		t.Errorf("got %d sessions for an unknown pod, want 0", got)
	}
}

func TestLookupReturnsTheInternedName(t *testing.T) {
	tb := New(Config{MaxEntries: 100})
	tb.Store(testKey(1), "pod-a", nil)
	tb.Store(testKey(2), string([]byte("pod-a")), nil)
	a, _ := tb.Lookup(testKey(1))
	b, _ := tb.Lookup(testKey(2))
	if a != "pod-a" || b != "pod-a" {
		t.Fatalf("got %q and %q, want pod-a", a, b)
	}
	if len(*tb.pods.recs.Load()) != 1 {
		t.Errorf("got %d interned names, want 1", len(*tb.pods.recs.Load()))
	}
}

// clockCase is a Clock for Config.Clock, or nil, named for a subtest.
type clockCase struct {
	name  string
	clock *Clock
}

// bothClocks returns a coarse Clock, stopped when the test and its
// subtests end, and the wall clock read per operation.
func bothClocks(t *testing.T) []clockCase {
	c := NewClock()
	t.Cleanup(c.Stop)
	return []clockCase{{"a coarse clock", c}, {"the wall clock read per operation", nil}}
}

// TestHitPathDoesNotAllocate checks Lookup and Store on a known key with
// both clocks: the coarse Clock of the request path and the wall clock read
// per operation.
func TestHitPathDoesNotAllocate(t *testing.T) {
	for _, tt := range bothClocks(t) {
		t.Run(tt.name, func(t *testing.T) {
			tb := New(Config{MaxEntries: 10_000, Clock: tt.clock})
			for i := range 5000 {
				tb.Store(testKey(i), fmt.Sprint("pod-", i%10), nil)
			}
			i := 0
			lookups := testing.AllocsPerRun(1000, func() {
				tb.Lookup(testKey(i % 5000))
				i++
			})
			stores := testing.AllocsPerRun(1000, func() {
				tb.Store(testKey(10_000+i), "pod-3", nil)
				i++
			})
			if lookups != 0 || stores != 0 {
				t.Errorf("got %v allocs per Lookup, %v per Store, want 0", lookups, stores)
			}
		})
	}
}

// TestDefaultClocksFollowTheWallClock checks the coarse Clock and the wall
// clock read per operation: an entry stored now carries the current second,
// give or take the coarse clock's tick and the second's rounding, and its
// last use moves on with time.
func TestDefaultClocksFollowTheWallClock(t *testing.T) {
	for _, tt := range bothClocks(t) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := New(Config{MaxEntries: 1000, Clock: tt.clock})
			k := testKey(1)
			before := time.Now()
			tb.Store(k, "web-0", nil)
			e, ok := tb.Peek(k)
			if !ok {
				t.Fatal("stored entry not found")
			}
			if d := e.Created.Sub(before); d < -time.Second-coarseTick || d > time.Second {
				t.Fatalf("entry created %v, %v from the wall clock", e.Created, d)
			}
			time.Sleep(1200 * time.Millisecond)
			tb.Lookup(k)
			if e2, _ := tb.Peek(k); !e2.LastUsed.After(e.LastUsed) {
				t.Errorf("last use %v did not move on from %v after 1.2s", e2.LastUsed, e.LastUsed)
			}
		})
	}
}

// TestStoppedClockStandsStill checks that Stop ends the Clock's readings
// (its goroutine is gone): a table reading it sees no time pass. Stop may
// be called again.
func TestStoppedClockStandsStill(t *testing.T) {
	clock := NewClock()
	clock.Stop()
	tb := New(Config{MaxEntries: 1000, Clock: clock})
	k := testKey(1)
	tb.Store(k, "web-0", nil)
	e, _ := tb.Peek(k)
	time.Sleep(1200 * time.Millisecond)
	tb.Lookup(k)
	if e2, _ := tb.Peek(k); !e2.LastUsed.Equal(e.LastUsed) {
		t.Errorf("last use moved from %v to %v on a stopped clock", e.LastUsed, e2.LastUsed)
	}
	clock.Stop()
}

// TestInjectedClockTakesPrecedence checks that Now, when set, is read
// instead of Clock.
func TestInjectedClockTakesPrecedence(t *testing.T) {
	clock := NewClock()
	defer clock.Stop()
	fake := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tb := New(Config{MaxEntries: 1000, Clock: clock, Now: func() time.Time { return fake }})
	k := testKey(1)
	tb.Store(k, "web-0", nil)
	if e, _ := tb.Peek(k); !e.Created.Equal(fake) {
		t.Errorf("entry created %v, want the injected %v", e.Created, fake)
	}
}

func TestClaimKeepsTheFirstPlacement(t *testing.T) {
	tb := New(Config{MaxEntries: 100})
	if got := tb.Claim(testKey(1), "", "pod-a", nil); got != "pod-a" {
		t.Errorf("first claim of a new key: got %q, want pod-a", got)
	}
	// A second placement of the same new key, made before it saw the
	// first, follows the first.
	if got := tb.Claim(testKey(1), "", "pod-b", nil); got != "pod-a" {
		t.Errorf("second claim of a new key: got %q, want the first claim's pod-a", got)
	}
	// Moving the key off the pod it was found on replaces that pin...
	if got := tb.Claim(testKey(1), "pod-a", "pod-c", nil); got != "pod-c" {
		t.Errorf("claim moving the key off pod-a: got %q, want pod-c", got)
	}
	// ...but not a pin made since by someone else.
	if got := tb.Claim(testKey(1), "pod-a", "pod-d", nil); got != "pod-c" {
		t.Errorf("claim moving the key off pod-a again: got %q, want pod-c, pinned since", got)
	}
	if pod, _ := tb.Lookup(testKey(1)); pod != "pod-c" {
		t.Errorf("key pinned to %q, want pod-c", pod)
	}
	mustCheck(t, tb)
}

func TestConcurrentClaimsOfANewKeyAgree(t *testing.T) {
	tb := New(Config{MaxEntries: 1000})
	for i := range 200 {
		var wg sync.WaitGroup
		winners := make([]string, 8)
		for j := range winners {
			wg.Go(func() { winners[j] = tb.Claim(testKey(i), "", fmt.Sprintf("pod-%d", j), nil) })
		}
		wg.Wait()
		for _, w := range winners {
			if w != winners[0] {
				t.Fatalf("key %d: claims answered %q, want one pod for all", i, winners)
			}
		}
	}
	mustCheck(t, tb)
}
