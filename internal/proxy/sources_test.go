package proxy

import (
	"errors"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
)

// podsOf returns the running route's pods by name.
func (h *harness) podsOf(route string) map[string]*pod {
	h.t.Helper()
	r, err := h.p.route(route)
	if err != nil {
		h.t.Fatal(err)
	}
	return r.pods.Load().byName
}

func TestStaticReloadTakesEffectWhenApplyReturns(t *testing.T) {
	pods := threePods(t)
	h := startProxy(t, oneRoute(pods...))
	before := h.pinKeys(90)
	was := h.podsOf("default")

	// web-1 drains, web-0 weighs more, web-2 comes back at a new address.
	moved := newTestPod(t, "web-2", nil)
	c := oneRoute(pods[0], pods[1], moved)
	c.Routes[0].Backends[0].Weight = 3
	c.Routes[0].Backends[1].State = "draining"
	h.apply(c)

	now := h.podsOf("default")
	if got := now["web-0"]; got.weight != 3 || got.backend != was["web-0"].backend {
		t.Errorf("web-0: weight %d, same backend %v; want weight 3 on its old backend (connections and counters kept)",
			got.weight, got.backend == was["web-0"].backend)
	}
	if got := now["web-1"]; got.state != discovery.Draining || got.backend != was["web-1"].backend {
		t.Errorf("web-1: state %v, same backend %v; want draining on its old backend", got.state, got.backend == was["web-1"].backend)
	}
	if got, want := now["web-2"].addr, strings.TrimPrefix(moved.url(), "http://"); got != want {
		t.Errorf("web-2 at %s, want its new address %s", got, want)
	}
	if !closed(h.p.Synced()) {
		t.Error("not synced after reloading static backends")
	}
	for key, want := range before {
		if got := h.podOf(key); got != want {
			t.Fatalf("key %q moved from %s to %s; a reload of static backends moves no session", key, want, got)
		}
	}
	if moved.last() == nil {
		t.Error("web-2's sessions did not reach it at its new address")
	}
}

func TestFailedApplyLeavesTheRunningRoutesAsTheyWere(t *testing.T) {
	pods := threePods(t)
	h := startProxy(t, oneRoute(pods...))
	before := h.pinKeys(30)
	r, _ := h.p.route("default")
	set := r.pods.Load()

	// The first route would lose web-1, but the second names a Service and
	// this proxy has no Kubernetes client.
	c := oneRoute(pods[0], pods[2])
	c.Routes = append(c.Routes, config.Route{Name: "shop", Match: config.Match{Host: "shop.example"}, Service: &config.Service{Name: "web", Port: "http"}})
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := h.p.Apply(c); !errors.Is(err, discovery.ErrNoKubernetes) {
		t.Fatalf("apply: got %v, want ErrNoKubernetes", err)
	}
	if cur, _ := h.p.route("default"); cur != r || cur.pods.Load() != set {
		t.Error("a failed apply replaced the running route or its pods")
	}
	if _, err := h.p.route("shop"); err == nil {
		t.Error("a failed apply added its route")
	}
	for key, want := range before {
		if got := h.podOf(key); got != want {
			t.Fatalf("key %q moved from %s to %s after a failed apply", key, want, got)
		}
	}
}

// mixedDiscoverer gives routes that name a Service the push source, and
// every other route its source from a discovery.Factory.
type mixedDiscoverer struct {
	push    *pushSource
	factory discovery.Factory
}

func (d *mixedDiscoverer) Source(route string, s discovery.Spec) (discovery.Source, error) {
	if s.Service != nil {
		return d.push, nil
	}
	return d.factory.Source(route, s)
}

func TestSyncedFollowsTheRunningConfiguration(t *testing.T) {
	pods := threePods(t)
	src := &pushSource{updates: make(chan []discovery.Endpoint), applied: make(chan struct{})}
	p := New(Options{Discoverer: &mixedDiscoverer{push: src}})
	defer p.Close()
	apply := func(routes ...config.Route) {
		t.Helper()
		c := &config.Config{Routes: routes}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := p.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	static := oneRoute(pods...).Routes[0]
	service := config.Route{Name: "shop", Match: config.Match{Host: "shop.example"}, Service: &config.Service{Name: "web", Port: "http"}}

	if closed(p.Synced()) {
		t.Error("synced before any configuration was applied")
	}
	apply(static)
	first := p.Synced()
	if !closed(first) {
		t.Fatal("static routes only: not synced when Apply returned")
	}

	apply(static, service)
	second := p.Synced()
	if closed(second) {
		t.Error("synced with a route whose source has not reported")
	}
	if !closed(first) {
		t.Error("a channel once closed was open again")
	}

	// A configuration applied before the sync takes the channel over.
	static.Backends = static.Backends[:2]
	apply(static, service)
	if p.Synced() != second {
		t.Error("a reload before the sync gave a new channel; waiters on the old one would wait forever")
	}
	src.push([]discovery.Endpoint{{Name: "web-0", Address: strings.TrimPrefix(pods[0].url(), "http://"), Weight: 1, State: discovery.Ready}})
	if !closed(second) {
		t.Error("not synced after the source reported")
	}
}
