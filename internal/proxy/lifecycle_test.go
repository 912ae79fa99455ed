package proxy

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
)

// pinKeys places n keys and returns key -> pod.
func (h *harness) pinKeys(n int) map[string]string {
	h.t.Helper()
	m := map[string]string{}
	for i := range n {
		key := fmt.Sprintf("s%d", i)
		m[key] = h.podOf(key)
	}
	return m
}

// apply reloads the proxy with cfg.
func (h *harness) apply(cfg *config.Config) {
	h.t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.p.Apply(cfg); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) rebinds(route string) map[string]uint64 {
	info, err := h.p.Route(route)
	if err != nil {
		h.t.Fatal(err)
	}
	return info.Rebinds
}

func (h *harness) podState(route, pod string) string {
	rs, _ := h.p.Route(route)
	for _, p := range rs.Pods {
		if p.Name == pod {
			return p.State
		}
	}
	return "absent"
}

func TestAddingPodsMovesNoSession(t *testing.T) {
	pods := threePods(t)
	h := startProxy(t, oneRoute(pods[:2]...))
	before := h.pinKeys(200)
	h.apply(oneRoute(pods...))
	for key, want := range before {
		if got := h.podOf(key); got != want {
			t.Fatalf("after scale-up key %q moved from %s to %s", key, want, got)
		}
	}
	// New sessions now reach the new pod too.
	after := map[string]int{}
	for i := range 30 {
		after[h.podOf(fmt.Sprintf("new-%d", i))]++
	}
	if after["web-2"] == 0 {
		t.Errorf("no new session reached the added pod: %v", after)
	}
}

func TestRemovingAPodMovesOnlyItsSessions(t *testing.T) {
	pods := threePods(t)
	h := startProxy(t, oneRoute(pods...))
	before := h.pinKeys(300)
	h.apply(oneRoute(pods[0], pods[2]))
	moved := 0
	for key, was := range before {
		got := h.podOf(key)
		switch {
		case was == "web-1" && got == "web-1":
			t.Fatalf("key %q still reached removed pod web-1", key)
		case was == "web-1":
			moved++
		case got != was:
			t.Fatalf("key %q moved from %s to %s although its pod stayed", key, was, got)
		}
	}
	if moved != 100 {
		t.Errorf("moved %d sessions, want web-1's 100", moved)
	}
	if got := h.rebinds("default"); got["gone"] != 100 || len(got) != 1 {
		t.Errorf("rebinds %v, want gone: 100", got)
	}
}

func TestDrainingPodKeepsItsSessionsAndTakesNoNewOnes(t *testing.T) {
	pods := threePods(t)
	h := startProxy(t, oneRoute(pods...))
	before := h.pinKeys(90)
	c := oneRoute(pods...)
	c.Routes[0].Backends[1].State = "draining"
	h.apply(c)
	for key, want := range before {
		if got := h.podOf(key); got != want {
			t.Fatalf("key %q moved from %s to %s while web-1 drains", key, want, got)
		}
	}
	for i := range 60 {
		if got := h.podOf(fmt.Sprintf("new-%d", i)); got == "web-1" {
			t.Fatal("a new session went to the draining pod web-1")
		}
	}
	if st := h.podState("default", "web-1"); st != "draining" {
		t.Errorf("web-1 state %q, want draining", st)
	}

	t.Run("without drain its sessions move at once", func(t *testing.T) {
		c := oneRoute(pods...)
		c.Routes[0].Backends[1].State = "draining"
		c.Routes[0].Drain = ptr(false)
		h.apply(c)
		for key, was := range before {
			if got := h.podOf(key); was == "web-1" && got == "web-1" {
				t.Fatalf("key %q stayed on draining web-1 with drain off", key)
			}
		}
		if got := h.rebinds("default")["draining"]; got != 30 {
			t.Errorf("draining rebinds %d, want 30", got)
		}
	})
}

func TestNotReadyPodLosesItsSessions(t *testing.T) {
	pods := threePods(t)
	h := startProxy(t, oneRoute(pods...))
	before := h.pinKeys(30)
	c := oneRoute(pods...)
	c.Routes[0].Backends[0].State = "not-ready"
	h.apply(c)
	for key, was := range before {
		got := h.podOf(key)
		if got == "web-0" {
			t.Fatalf("key %q reached not-ready web-0", key)
		}
		if was != "web-0" && got != was {
			t.Fatalf("key %q moved from %s to %s", key, was, got)
		}
	}
	if got := h.rebinds("default")["unready"]; got != 10 {
		t.Errorf("unready rebinds %d, want 10", got)
	}
}

func TestStrictRouteAnswers503InsteadOfRebinding(t *testing.T) {
	pods := threePods(t)
	c := oneRoute(pods...)
	c.Routes[0].Strict = true
	h := startProxy(t, c)
	before := h.pinKeys(9)
	c = oneRoute(pods[1:]...)
	c.Routes[0].Strict = true
	h.apply(c)
	for key, was := range before {
		resp, body := h.get("/", "X-Session: "+key)
		if was == "web-0" {
			if resp.StatusCode != 503 || body != "podpin: the pinned pod cannot serve and this route never rebinds\n" {
				t.Errorf("key %q on removed pod: got %d %q, want 503", key, resp.StatusCode, body)
			}
			continue
		}
		if body != was {
			t.Errorf("key %q: got %s, want %s", key, body, was)
		}
	}
	if got := h.rebinds("default"); len(got) != 0 {
		t.Errorf("strict route rebound sessions: %v", got)
	}
}

func TestKilledPodsSessionsRebindOnTheirNextRequest(t *testing.T) {
	pods := threePods(t)
	h := startProxy(t, oneRoute(pods...))
	before := h.pinKeys(30)
	pods[2].srv.Close()
	for key, was := range before {
		got := h.podOf(key) // fails the test on any non-200
		if was == "web-2" && got == "web-2" {
			t.Fatalf("key %q answered by dead web-2", key)
		}
		if was != "web-2" && got != was {
			t.Fatalf("key %q moved from %s to %s", key, was, got)
		}
		if again := h.podOf(key); again != got {
			t.Fatalf("key %q rebound to %s then went to %s", key, got, again)
		}
	}
	// The first five find the pod refusing connections; then passive health
	// ejects it (5 failures in a row, the default) and the rest rebind for
	// that reason without trying it.
	if got := h.rebinds("default"); got["connect-failed"] != 5 || got["ejected"] != 5 || len(got) != 2 {
		t.Errorf("rebinds %v, want connect-failed: 5, ejected: 5", got)
	}
}

func TestPassiveHealthEjectsAFailingPodWithACap(t *testing.T) {
	pods := threePods(t)
	c := oneRoute(pods...)
	c.Routes[0].Health.Passive = config.Passive{ConsecutiveFailures: 3, BaseEjection: 300 * time.Millisecond, MaxEjection: time.Second, MaxEjectedPercent: 34}
	h := startProxy(t, c)
	before := h.pinKeys(30)
	pods[0].srv.Close()
	pods[1].srv.Close()
	for key := range before {
		h.get("/", "X-Session: "+key)
	}
	states := map[string]string{}
	for _, p := range pods {
		states[p.name] = h.podState("default", p.name)
	}
	ejected := 0
	for _, st := range states {
		if st == "ejected" {
			ejected++
		}
	}
	if ejected != 1 || states["web-2"] != "ready" {
		t.Errorf("states %v: want exactly one of web-0, web-1 ejected (cap 34%% of 3 pods)", states)
	}
	// The ejection ends by itself.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && (h.podState("default", "web-0") == "ejected" || h.podState("default", "web-1") == "ejected") {
		time.Sleep(50 * time.Millisecond)
	}
	if st := h.podState("default", "web-0") + "," + h.podState("default", "web-1"); st != "ready,ready" {
		t.Errorf("after the ejection period: %s, want ready,ready", st)
	}
}

func TestActiveHealthChecksTakeAPodOutAndBack(t *testing.T) {
	var sick atomic.Bool
	handler := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" && name == "web-1" && sick.Load() {
				http.Error(w, "sick", 500)
				return
			}
			fmt.Fprint(w, name)
		}
	}
	pods := []*testPod{newTestPod(t, "web-0", handler("web-0")), newTestPod(t, "web-1", handler("web-1"))}
	c := oneRoute(pods...)
	c.Routes[0].Health.Active = config.Active{Path: "/healthz", Interval: 20 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 2}
	h := startProxy(t, c)
	before := h.pinKeys(10)
	waitState := func(want string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for h.podState("default", "web-1") != want {
			if time.Now().After(deadline) {
				t.Fatalf("web-1 state %q, want %q", h.podState("default", "web-1"), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	sick.Store(true)
	waitState("unhealthy")
	for key := range before {
		if got := h.podOf(key); got != "web-0" {
			t.Fatalf("key %q went to %s while web-1 is unhealthy", key, got)
		}
	}
	if got := h.rebinds("default")["unhealthy"]; got != 5 {
		t.Errorf("unhealthy rebinds %d, want 5", got)
	}
	sick.Store(false)
	waitState("ready")
}

func TestReloadUnderLoadDropsNoRequest(t *testing.T) {
	pods := threePods(t)
	h := startProxy(t, oneRoute(pods...))
	want := h.pinKeys(50)
	keys := make([]string, 0, len(want))
	for k := range maps.Keys(want) {
		keys = append(keys, k)
	}
	var failures, moved, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := keys[i%len(keys)]
				req, _ := http.NewRequest("GET", "http://"+h.addr+"/", nil)
				req.Header.Set("X-Session", key)
				resp, err := h.client.Do(req)
				total.Add(1)
				if err != nil {
					failures.Add(1)
					continue
				}
				var body [16]byte
				n, _ := resp.Body.Read(body[:])
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
				} else if string(body[:n]) != want[key] {
					moved.Add(1)
				}
			}
		})
	}
	for i := range 40 {
		c := oneRoute(pods...)
		c.Routes[0].Table.IdleTimeout = time.Duration(10+i%2) * time.Minute // alternate: rebuild the table
		c.Routes[0].Balancer = []string{"round-robin", "least-conn"}[i%2]
		h.apply(c)
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || moved.Load() != 0 || total.Load() < 100 {
		t.Errorf("%d requests during 40 reloads: %d failed, %d moved; want none", total.Load(), failures.Load(), moved.Load())
	}
}

func TestSnapshotRestoresEverySessionIntoANewProxy(t *testing.T) {
	pods := threePods(t)
	h := startProxy(t, oneRoute(pods...))
	before := h.pinKeys(100)
	snap := h.p.Snapshot()

	// A new process: the balancer would place keys differently (least-conn
	// from a fresh start), so only the restored table can keep them.
	c := oneRoute(pods...)
	c.Routes[0].Balancer = "hash"
	h2 := startProxy(t, c)
	loaded, dropped, err := h2.p.Restore(snap)
	if err != nil || loaded != 100 || dropped != 0 {
		t.Fatalf("restore: loaded %d, dropped %d, err %v; want 100, 0, nil", loaded, dropped, err)
	}
	for key, want := range before {
		if got := h2.podOf(key); got != want {
			t.Fatalf("after restore key %q went to %s, want %s", key, got, want)
		}
	}

	t.Run("a snapshot under another secret is refused", func(t *testing.T) {
		p := New(Options{KeySecret: []byte("other")})
		defer p.Close()
		c := oneRoute(pods...)
		c.SetDefaults()
		p.Apply(c)
		if _, _, err := p.Restore(snap); err == nil {
			t.Error("restore under another secret succeeded, want an error")
		}
	})
}

// pushSource is an endpoint source the test drives by hand, standing in for
// the Kubernetes and DNS sources (tested on their own against real servers).
type pushSource struct {
	updates chan []discovery.Endpoint
	applied chan struct{}
}

func (s *pushSource) Start(update func([]discovery.Endpoint)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case eps := <-s.updates:
				update(eps)
				s.applied <- struct{}{}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// push reports eps and waits until the proxy applied them.
func (s *pushSource) push(eps []discovery.Endpoint) {
	s.updates <- eps
	<-s.applied
}

type pushDiscoverer struct{ src *pushSource }

func (d pushDiscoverer) Source(string, discovery.Spec) (discovery.Source, error) { return d.src, nil }

// closed reports whether c is closed, without waiting.
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestEndpointSourceChangesPodsWithoutReload(t *testing.T) {
	pods := threePods(t)
	ep := func(p *testPod, st discovery.State) discovery.Endpoint {
		return discovery.Endpoint{Name: p.name, Address: strings.TrimPrefix(p.url(), "http://"), Weight: 1, State: st}
	}
	src := &pushSource{updates: make(chan []discovery.Endpoint), applied: make(chan struct{})}
	p := New(Options{Discoverer: pushDiscoverer{src}})
	cfg := &config.Config{Routes: []config.Route{{Name: "web", Service: &config.Service{Name: "web", Port: "http"}}}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if closed(p.Synced()) {
		t.Error("synced before the source reported")
	}
	src.push([]discovery.Endpoint{ep(pods[0], discovery.Ready), ep(pods[1], discovery.Ready)})
	if !closed(p.Synced()) {
		t.Error("not synced after the source reported")
	}
	r, _ := p.route("web")
	if n := len(r.pods.Load().fresh); n != 2 {
		t.Fatalf("%d candidate pods, want 2", n)
	}
	src.push(nil)
	if n := len(r.pods.Load().all); n != 0 {
		t.Errorf("%d pods after an empty set, want 0", n)
	}
	src.push([]discovery.Endpoint{ep(pods[0], discovery.Draining), ep(pods[1], discovery.Ready), ep(pods[2], discovery.Ready)})
	rs, _ := p.Route("web")
	states := map[string]string{}
	for _, pi := range rs.Pods {
		states[pi.Name] = pi.State
	}
	if want := map[string]string{"web-0": "draining", "web-1": "ready", "web-2": "ready"}; !maps.Equal(states, want) {
		t.Errorf("pod states %v, want %v", states, want)
	}
}
