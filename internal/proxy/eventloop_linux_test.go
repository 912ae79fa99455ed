package proxy

import (
	"context"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// The listeners of a proxy share one set of loops, one per processor, and
// while they run GOMAXPROCS is one above them, so that goroutines never
// wait for a processor a loop holds while it waits in epoll. The last
// listener to stop ends the loops and sets GOMAXPROCS back.
func TestListenersShareTheLoopsAndLeaveAProcessorToGoroutines(t *testing.T) {
	if os.Getenv("PODPIN_TEST_GOROUTINES") == "1" {
		t.Skip("the goroutine front end alone")
	}
	before := runtime.GOMAXPROCS(0)
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
	if got := runtime.GOMAXPROCS(0); got != before+1 {
		t.Errorf("GOMAXPROCS is %d while loops run, want %d", got, before+1)
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
