package table

import (
	"bytes"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// benchPods are the pod names the benchmarks pin keys to.
var benchPods = func() []string {
	pods := make([]string, 50)
	for i := range pods {
		pods[i] = fmt.Sprintf("web-7d9f8b6c5-%05d", i)
	}
	return pods
}()

// benchClock is a coarse Clock for a benchmark's tables, as the proxy gives
// its route tables, stopped when the benchmark ends.
func benchClock(b *testing.B) *Clock {
	c := NewClock()
	b.Cleanup(c.Stop)
	return c
}

// fill stores keys 0 to n-1 in tb.
func fill(tb *Table, n int) {
	for i := range n {
		tb.Store(testKey(i), benchPods[i%len(benchPods)], nil)
	}
}

// xorshift is a per-goroutine random source that does not allocate.
type xorshift uint64

func (x *xorshift) next() uint64 {
	*x ^= *x << 13
	*x ^= *x >> 7
	*x ^= *x << 17
	return uint64(*x)
}

// BenchmarkLookupHit looks up random stored keys, from all Ps at once and
// from one goroutine: in a table of one million entries, far larger than
// the CPU caches, where the cost is mostly one memory read (the probed
// slot holds the entry), and in one of 10,000 that stays in cache.
func BenchmarkLookupHit(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000} {
		// Room for all n in every shard, so that every key hits.
		tb := New(Config{MaxEntries: n + n/2, Clock: benchClock(b)})
		fill(tb, n)
		if got := tb.Len(); got != n {
			b.Fatalf("got Len %d, want %d", got, n)
		}
		var seeds atomic.Uint64
		b.Run(fmt.Sprintf("%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				x := xorshift(mix64(seeds.Add(1)))
				for pb.Next() {
					if _, ok := tb.Lookup(testKey(int(x.next() % uint64(n)))); !ok {
						b.Error("got a miss, want a hit")
						return
					}
				}
			})
		})
		b.Run(fmt.Sprintf("%d/serial", n), func(b *testing.B) {
			b.ReportAllocs()
			x := xorshift(mix64(seeds.Add(1)))
			for b.Loop() {
				tb.Lookup(testKey(int(x.next() % uint64(n))))
			}
		})
	}
}

// BenchmarkLookupMiss looks up keys absent from a table of one million
// entries.
func BenchmarkLookupMiss(b *testing.B) {
	const n = 1_000_000
	tb := New(Config{MaxEntries: n + n/10, Clock: benchClock(b)})
	fill(tb, n)
	var seeds atomic.Uint64
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			x := xorshift(mix64(seeds.Add(1)))
			for pb.Next() {
				if _, ok := tb.Lookup(testKey(n + int(x.next()%n))); ok {
					b.Error("got a hit, want a miss")
					return
				}
			}
		})
	})
}

// BenchmarkStoreInsertEvict stores new keys into a full table of one
// million entries: every Store inserts and evicts.
func BenchmarkStoreInsertEvict(b *testing.B) {
	const n = 1_000_000
	tb := New(Config{MaxEntries: n, Clock: benchClock(b)})
	fill(tb, 2*n)
	b.ReportAllocs()
	i := 2 * n
	for b.Loop() {
		tb.Store(testKey(i), benchPods[i%len(benchPods)], nil)
		i++
	}
	if st := tb.Stats(); st.Evictions < uint64(b.N) {
		b.Errorf("got %d evictions, want at least %d", st.Evictions, b.N)
	}
}

// BenchmarkStoreRebind moves stored keys between pods in a table of one
// million entries.
func BenchmarkStoreRebind(b *testing.B) {
	const n = 1_000_000
	tb := New(Config{MaxEntries: n + n/10, Clock: benchClock(b)})
	fill(tb, n)
	b.ReportAllocs()
	x := xorshift(1)
	for b.Loop() {
		tb.Store(testKey(int(x.next()%n)), benchPods[x.next()%uint64(len(benchPods))], nil)
	}
}

// BenchmarkExpire sweeps a table of one million entries of which none has
// expired: the fixed cost of each periodic Expire.
func BenchmarkExpire(b *testing.B) {
	const n = 1_000_000
	tb := New(Config{MaxEntries: n + n/10, Clock: benchClock(b)})
	fill(tb, n)
	b.ReportAllocs()
	for b.Loop() {
		if got := tb.Expire(); got != 0 {
			b.Fatalf("got Expire = %d, want 0", got)
		}
	}
}

func BenchmarkDigest(b *testing.B) {
	d := NewDigester([]byte("secret"))
	for _, size := range []int{16, 64, 256, 1024} {
		value := bytes.Repeat([]byte{'k'}, size)
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				d.Key("default/web", value)
			}
		})
	}
}

// BenchmarkMemoryPerEntry reports the heap a table uses per entry, raw
// keys off, and fails when it exceeds the targets: 64 bytes per entry in a
// full table of one million entries, 1 GiB in all for ten million, and 80
// bytes per entry in a table still growing (one million entries in a table
// for ten million), whose slots are between 1/2 and 3/4 used. It only runs
// when benchmarks are asked for, as the large case needs over 500 MB.
func BenchmarkMemoryPerEntry(b *testing.B) {
	for _, tt := range []struct {
		name         string
		n, capacity  int
		maxPerEntry  float64
		maxHeapBytes float64
	}{
		{"1M", 1_000_000, 1_000_000, 64, 1 << 30},
		{"10M", 10_000_000, 10_000_000, 64, 1 << 30},
		{"1M-of-10M", 1_000_000, 10_000_000, 80, 1 << 30},
	} {
		b.Run(tt.name, func(b *testing.B) {
			// Memory is measured once, whatever b.N: filling the table is the
			// whole cost, and repeating it says nothing more.
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			tb := New(Config{MaxEntries: tt.capacity, Clock: benchClock(b)})
			fill(tb, tt.n)
			runtime.GC()
			runtime.ReadMemStats(&after)
			entries := tb.Len()
			heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
			perEntry := heap / float64(entries)
			runtime.KeepAlive(tb)
			for b.Loop() {
			}
			b.ReportMetric(perEntry, "B/entry")
			b.ReportMetric(heap/(1<<20), "MiB")
			b.ReportMetric(float64(entries), "entries")
			if perEntry > tt.maxPerEntry || heap > tt.maxHeapBytes {
				b.Errorf("got %.1f B/entry, %.0f MiB for %d entries, want at most %.0f B/entry and %.0f MiB",
					perEntry, heap/(1<<20), entries, tt.maxPerEntry, tt.maxHeapBytes/(1<<20))
			}
		})
	}
}
