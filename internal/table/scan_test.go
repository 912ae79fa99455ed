package table

import "testing"

func TestScanListsAStillTableExactlyOnceAcrossPages(t *testing.T) {
	tb := New(Config{MaxEntries: 100_000, Shards: 8})
	const n = 5000
	for i := range n {
		tb.Store(Key{Hi: uint64(i) * 0x9e3779b97f4a7c15, Lo: uint64(i)}, "web-0", nil)
	}
	seen := map[Key]int{}
	var cursor uint64
	pages := 0
	for {
		got := 0
		cursor = tb.Scan(cursor, func(e Entry) bool {
			seen[e.Key]++
			got++
			return got < 300
		})
		pages++
		if cursor == 0 {
			break
		}
		if pages > n {
			t.Fatal("scan never ends")
		}
	}
	if len(seen) != n {
		t.Errorf("listed %d distinct entries, want %d", len(seen), n)
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("entry %v listed %d times, want once", k, c)
		}
	}
	if pages < n/300 {
		t.Errorf("listed in %d pages, want at least %d", pages, n/300)
	}
}
