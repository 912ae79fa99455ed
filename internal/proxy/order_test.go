package proxy

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// oneProcessor runs the rest of the test with GOMAXPROCS=1.
func oneProcessor(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

// With one processor, goroutines that come to wait one after another in a
// round go in reverse order of coming, round after round.
func TestTurnsGoNewestFirst(t *testing.T) {
	oneProcessor(t)
	const n = 20
	var q turns
	want := make([]int, n)
	for i := range want {
		want[i] = n - 1 - i
	}
	for round := range 3 {
		went := comeInOrder(&q, n)
		if raceEnabled {
			// The race detector shuffles the run queue: only check that
			// every goroutine went.
			slices.Sort(went)
			slices.Reverse(went)
		}
		if !slices.Equal(went, want) {
			t.Fatalf("round %d: went in order %v, want %v", round, went, want)
		}
	}
}

// comeInOrder starts n goroutines that come to wait in q in order 0..n-1,
// each letting the next one start first, and returns the order they went in.
func comeInOrder(q *turns, n int) []int {
	start := make([]chan struct{}, n+1)
	for i := range start {
		start[i] = make(chan struct{})
	}
	var (
		mu   sync.Mutex
		went []int
		wg   sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			<-start[i]
			close(start[i+1])
			q.wait()
			mu.Lock()
			went = append(went, i)
			mu.Unlock()
		})
	}
	close(start[0])
	wg.Wait()
	return went
}

// However many goroutines wait at once, on however many processors, each
// is released.
func TestTurnsReleaseEveryWaiter(t *testing.T) {
	var q turns
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 2000 {
				q.wait()
			}
		})
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(time.Minute):
		t.Fatal("waiters still waiting after a minute")
	}
}

// With one processor the pods' requests take turns, and the proxy serves
// concurrent clients as before: every request answered, each session on
// one pod.
func TestOneProcessorProxyTakesTurns(t *testing.T) {
	oneProcessor(t)
	h := startProxy(t, oneRoute(threePods(t)...))
	if h.p.state.Load().upstream.order != &h.p.arrivals {
		t.Fatal("with GOMAXPROCS=1 the pod clients do not take turns")
	}
	const clients, requests = 32, 40
	pods := make([]map[string]bool, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		pods[c] = map[string]bool{}
		wg.Go(func() {
			for range requests {
				req, err := http.NewRequest("GET", "http://"+h.addr+"/", nil)
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("X-Session", fmt.Sprint("client-", c))
				resp, err := h.client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
				pods[c][resp.Header.Get("X-Podpin-Pod")] = true
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for c, seen := range pods {
		if len(seen) != 1 {
			t.Errorf("client %d's session was served by %v, want one pod", c, seen)
		}
	}
}
