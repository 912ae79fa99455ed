package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/redistest"
	"github.com/podpin/podpin/internal/store"
)

// The listeners of a proxy share one set of loops, one per processor, and
// while they run GOMAXPROCS is half as much again (rounded down), so that
// goroutines need not wait for a processor a loop holds while it waits in
// epoll. The last listener to stop ends the loops and sets GOMAXPROCS
// back.
func TestListenersShareTheLoopsAndLeaveAProcessorToGoroutines(t *testing.T) {
	if os.Getenv("PODPIN_TEST_GOROUTINES") == "1" {
		t.Skip("the goroutine front end alone")
	}
	for _, procs := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("GOMAXPROCS=", procs), func(t *testing.T) {
			prev := runtime.GOMAXPROCS(procs)
			defer runtime.GOMAXPROCS(prev)
			testSharedLoops(t, procs)
		})
	}
}

func testSharedLoops(t *testing.T, before int) {
	cfg := oneRoute(threePods(t)...)
	cfg.SetDefaults()
	p := New(Options{})
	defer p.Close()
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	type served struct {
		h    *harness
		stop func()
	}
	serve := func() served {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.ServeListener(ctx, ln, config.Listener{EventLoop: ptr(true)}, time.Second) }()
		h := &harness{t: t, p: p, addr: ln.Addr().String(), client: &http.Client{Transport: &http.Transport{}}}
		return served{h, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}}
	}
	loops := func() (n, fronts int) {
		p.loopMu.Lock()
		defer p.loopMu.Unlock()
		if p.loops != nil {
			n = len(p.loops.loops)
		}
		return n, p.loopFronts
	}
	a, b := serve(), serve()
	for _, s := range []served{a, b} {
		if resp, body := s.h.get("/", "X-Session: alice"); resp.StatusCode != 200 {
			t.Fatalf("got %d %q, want 200", resp.StatusCode, body)
		}
	}
	if n, fronts := loops(); n != before || fronts != 2 {
		t.Errorf("two listeners run %d loops for %d fronts, want %d loops for 2", n, fronts, before)
	}
	want := map[int]int{1: 1, 2: 3, 4: 6}[before]
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Errorf("GOMAXPROCS is %d while %d loops run, want %d", got, before, want)
	}
	a.stop()
	if resp, body := b.h.get("/", "X-Session: alice"); resp.StatusCode != 200 {
		t.Fatalf("after the other listener stopped: got %d %q, want 200", resp.StatusCode, body)
	}
	if n, fronts := loops(); n != before || fronts != 1 {
		t.Errorf("one listener left: %d loops for %d fronts, want %d loops for 1", n, fronts, before)
	}
	b.stop()
	if n, fronts := loops(); n != 0 || fronts != 0 {
		t.Errorf("no listener left: %d loops for %d fronts, want none", n, fronts)
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS is %d after the loops stopped, want %d back", got, before)
	}
}

// A route whose table is in Redis is served by the goroutine front end: a
// new key waits for Redis there, on its own connection, while the loops
// go on answering the requests of other routes. Here Redis answers eight
// seconds late; requests on eight other connections, which cover every
// loop, are answered in the meantime.
func TestALateRedisHoldsNoLoop(t *testing.T) {
	srv := redistest.Start(t)
	late := redistest.NewFaults(t, srv.Addr)
	s, err := store.New(store.Options{URL: "redis://" + late.Addr, Timeout: 20 * time.Second, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	pods := threePods(t)
	var backends []config.Backend
	for _, p := range pods {
		backends = append(backends, config.Backend{Name: p.name, URL: p.url()})
	}
	cfg := &config.Config{
		Listeners: []config.Listener{{Address: "127.0.0.1:0", EventLoop: ptr(true)}},
		Store:     config.Store{Type: config.StoreMemory, Redis: config.Redis{URL: "redis://" + late.Addr}},
		Routes: []config.Route{
			{Name: "shared", Match: config.Match{PathPrefix: "/shared"}, Backends: backends, Store: config.StoreRedis},
			{Name: "local", Match: config.Match{PathPrefix: "/local"}, Backends: backends},
		},
	}
	h := startProxyWith(t, cfg, Options{Shared: s})
	late.SetLatency(8 * time.Second)
	slow := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+h.addr+"/shared/a", nil)
		req.Header.Set("X-Session", "new-key")
		resp, err := h.client.Do(req)
		if err != nil {
			slow <- err
			return
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			err = fmt.Errorf("got %d, want 200", resp.StatusCode)
		}
		slow <- err
	}()
	client := &http.Client{Timeout: 4 * time.Second}
	for i := range 8 {
		// A connection of its own each: the loops take connections in
		// turn.
		client.Transport = &http.Transport{DisableKeepAlives: true}
		req, _ := http.NewRequest("GET", "http://"+h.addr+"/local/a", nil)
		req.Header.Set("X-Session", fmt.Sprint("local-", i))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d on the in-memory route while Redis is late: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d on the in-memory route: got %d, want 200", i, resp.StatusCode)
		}
	}
	select {
	case err := <-slow:
		t.Fatalf("the new key's request ended before Redis answered (%v)", err)
	default:
	}
	late.Cut(true) // Redis fails now: the key is placed locally
	if err := <-slow; err != nil {
		t.Errorf("the new key's request, once Redis failed: %v", err)
	}
}
