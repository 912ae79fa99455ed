package table

import (
	"fmt"
	"sync"
	"testing"
)

// storeRange stores keys [from, to) in tb, pinned to pod.
func storeRange(tb *Table, from, to int, pod string) {
	for i := from; i < to; i++ {
		tb.Store(testKey(i), pod, nil)
	}
}

func TestBudgetEvictsFromTheLargestTableForASmallOne(t *testing.T) {
	a, b := New(Config{MaxEntries: 10_000}), New(Config{MaxEntries: 10_000})
	budget := NewBudget(1000)
	budget.SetTables([]*Table{a, b})
	storeRange(a, 0, 1000, "pod-a")
	storeRange(b, 1_000_000, 1_000_300, "pod-b")
	mustCheck(t, a)
	mustCheck(t, b)
	if got := a.Len() + b.Len(); got != 1000 {
		t.Errorf("got %d entries in both tables, want the budget's 1000", got)
	}
	if got := b.Len(); got != 300 {
		t.Errorf("got %d entries in the small table, want all 300 it stored", got)
	}
	if got := a.Stats().BudgetEvictions; got != 300 {
		t.Errorf("got %d budget evictions from the large table, want 300", got)
	}
	if got := budget.Used(); got != 1000 {
		t.Errorf("got Used %d, want 1000", got)
	}
}

func TestBudgetEvictsFromATableAtTheAverage(t *testing.T) {
	a, b := New(Config{MaxEntries: 10_000}), New(Config{MaxEntries: 10_000})
	budget := NewBudget(1000)
	budget.SetTables([]*Table{a, b})
	storeRange(a, 0, 500, "pod-a")
	storeRange(b, 1_000_000, 1_000_500, "pod-b")
	storeRange(b, 2_000_000, 2_010_000, "pod-b") // a flood on b
	if got := a.Len(); got != 500 {
		t.Errorf("got %d entries in the quiet table, want its 500: the flooded one holds the average", got)
	}
	if got := b.Len(); got != 500 {
		t.Errorf("got %d entries in the flooded table, want 500", got)
	}
	if got, want := b.Stats().BudgetEvictions, uint64(10_000); got != want {
		t.Errorf("got %d budget evictions from the flooded table, want %d", got, want)
	}
}

func TestBudgetEvictsSessionsInUseLast(t *testing.T) {
	tb := New(Config{MaxEntries: 100_000})
	budget := NewBudget(2000)
	budget.SetTables([]*Table{tb})
	storeRange(tb, 0, 500, "pod-1")
	for i := range 500 {
		tb.Lookup(testKey(i)) // in use: hit after insertion
	}
	storeRange(tb, 1_000_000, 1_050_000, "pod-2") // 50,000 keys seen once
	for i := range 500 {
		if pod, ok := tb.Lookup(testKey(i)); !ok || pod != "pod-1" {
			t.Fatalf("session %d: got %q, %v after the flood, want pod-1", i, pod, ok)
		}
	}
	if got := tb.Len(); got != 2000 {
		t.Errorf("got %d entries, want the budget's 2000", got)
	}
	mustCheck(t, tb)
}

func TestBudgetMembership(t *testing.T) {
	a, b, c := New(Config{}), New(Config{}), New(Config{})
	storeRange(a, 0, 100, "p")
	storeRange(b, 1000, 1200, "p")
	storeRange(c, 2000, 2400, "p")
	budget := NewBudget(0)
	budget.SetTables([]*Table{a, b})
	if got := budget.Used(); got != 300 {
		t.Errorf("after joining a and b: got Used %d, want 300", got)
	}
	storeRange(a, 100, 150, "p")
	c.Delete(testKey(2000)) // not a member: not counted
	budget.SetTables([]*Table{b, c, c})
	if got := budget.Used(); got != 599 {
		t.Errorf("after a left and c joined: got Used %d, want 200+399", got)
	}
	a.Delete(testKey(0)) // left: no longer counted
	storeRange(b, 1200, 1210, "p")
	if got := budget.Used(); got != 609 {
		t.Errorf("after b grew by 10: got Used %d, want 609", got)
	}
	other := NewBudget(0)
	other.SetTables([]*Table{c})
	if got, got2 := budget.Used(), other.Used(); got != 609-399 || got2 != 399 {
		t.Errorf("after c moved to another budget: got Used %d and %d, want 210 and 399", got, got2)
	}
}

func TestBudgetSetLimitEvictsDownToIt(t *testing.T) {
	a, b := New(Config{}), New(Config{})
	storeRange(a, 0, 3000, "p")
	storeRange(b, 10_000, 11_000, "p")
	budget := NewBudget(0)
	budget.SetTables([]*Table{a, b})
	budget.SetLimit(2000)
	if got := a.Len() + b.Len(); got != 2000 {
		t.Errorf("got %d entries after lowering the limit to 2000, want 2000", got)
	}
	if got := b.Len(); got != 1000 {
		t.Errorf("got %d entries in the smaller table, want its 1000: the larger one gives", got)
	}
	budget.SetLimit(0)
	storeRange(a, 100_000, 105_000, "p")
	if got := budget.Used(); got != 7000 {
		t.Errorf("got Used %d with no limit, want 2000+5000", got)
	}
}

func TestBudgetRestoreCountsAndEvicts(t *testing.T) {
	tb := New(Config{})
	budget := NewBudget(100)
	budget.SetTables([]*Table{tb})
	for i := range 300 {
		tb.Restore(Entry{Key: testKey(i), Pod: "p"})
	}
	if got := tb.Len(); got != 100 {
		t.Errorf("got %d entries after restoring 300 into a budget of 100, want 100", got)
	}
	mustCheck(t, tb)
}

// TestBudgetUnderConcurrentInserts runs inserts, lookups and membership
// changes at once (run it with -race): the counts stay exact, and the
// total passes the limit by no more than the inserts in flight.
func TestBudgetUnderConcurrentInserts(t *testing.T) {
	const workers, limit = 8, 5000
	tables := []*Table{New(Config{}), New(Config{}), New(Config{})}
	budget := NewBudget(limit)
	budget.SetTables(tables)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range 20_000 {
				tb := tables[(w+i)%len(tables)]
				k := testKey(w*1_000_000 + i)
				tb.Store(k, fmt.Sprint("pod-", i%4), nil)
				tb.Lookup(k)
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			budget.SetTables(tables[:1+i%len(tables)])
		}
		budget.SetTables(tables)
	})
	wg.Wait()
	total := 0
	for _, tb := range tables {
		mustCheck(t, tb)
		total += tb.Len()
	}
	if got := budget.Used(); got != total {
		t.Errorf("got Used %d, want %d (the tables' Len)", got, total)
	}
	if total > limit+workers {
		t.Errorf("got %d entries, want at most %d + %d in flight", total, limit, workers)
	}
}

func TestLookupInABudgetDoesNotAllocate(t *testing.T) {
	tb := New(Config{MaxEntries: 10_000})
	budget := NewBudget(1000)
	budget.SetTables([]*Table{tb})
	storeRange(tb, 0, 1000, "pod")
	i := 0
	if got := testing.AllocsPerRun(1000, func() { tb.Lookup(testKey(i % 1000)); i++ }); got != 0 {
		t.Errorf("got %v allocs per Lookup, want 0", got)
	}
	if got := testing.AllocsPerRun(1000, func() { tb.Store(testKey(5000+i), "pod", nil); i++ }); got != 0 {
		t.Errorf("got %v allocs per Store that evicts for the budget, want 0", got)
	}
}
