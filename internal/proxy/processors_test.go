package proxy

import (
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"testing"
)

// Concurrent clients are all served, each session on one pod, whether the
// proxy runs on one processor or on two.
func TestConcurrentClientsOnOneAndTwoProcessors(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprint(procs, " processors"), func(t *testing.T) {
			prev := runtime.GOMAXPROCS(procs)
			t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
			h := startProxy(t, oneRoute(threePods(t)...))
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
		})
	}
}
