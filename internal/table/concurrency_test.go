package table

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestConcurrentUseKeepsInvariants(t *testing.T) {
	clock := newFakeClock()
	const maxEntries, keys = 1024, 3000
	tb := New(Config{MaxEntries: maxEntries, IdleTimeout: 20 * time.Second, AbsoluteTimeout: time.Minute, Now: clock.Now})
	pods := []string{"pod-a", "pod-b", "pod-c", "pod-d", "pod-e"}
	counters := make([]int64, 0, len(pods))

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 20_000 {
				k := testKey(rng.IntN(keys))
				switch r := rng.IntN(1000); {
				case r < 450:
					tb.Lookup(k)
				case r < 850:
					tb.Store(k, pods[rng.IntN(len(pods))], nil)
				case r < 930:
					tb.Delete(k)
				case r < 960:
					tb.Restore(Entry{Key: k, Pod: pods[rng.IntN(len(pods))], LastUsed: clock.Now().Add(-5 * time.Second), Hits: 1})
				case r < 975:
					tb.Peek(k)
				case r < 985:
					tb.Expire()
				case r < 990:
					clock.Advance(time.Second)
				case r < 992:
					tb.DeletePod(pods[rng.IntN(len(pods))])
				case r < 994:
					n := 0
					tb.Range(func(Entry) bool { n++; return n < 50 })
				default:
					tb.Sessions(pods[rng.IntN(len(pods))])
					tb.Stats()
				}
			}
		})
	}
	wg.Wait()

	if err := tb.check(); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, pod := range pods {
		sum += tb.Sessions(pod)
		counters = append(counters, tb.SessionCounter(pod).Load())
	}
	if n := tb.Len(); int64(n) != sum || n > maxEntries {
		t.Errorf("got Len %d and %d sessions (per pod %v), want equal and at most %d", n, sum, counters, maxEntries)
	}
	if st := tb.Stats(); st.Entries != tb.Len() || st.Hits == 0 || st.Evictions == 0 {
		t.Errorf("got stats %+v, want hits and evictions, and Entries equal to Len", st)
	}
}
