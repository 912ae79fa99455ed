package proxy

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/table"
)

// twoRoutes has routes "quiet" and "flooded" over pods, told apart by the
// X-Route header.
func twoRoutes(budget int, pods ...*testPod) *config.Config {
	c := &config.Config{Limits: config.Limits{TableEntries: budget}}
	for _, name := range []string{"quiet", "flooded"} {
		r := config.Route{Name: name, Match: config.Match{Headers: map[string]string{"X-Route": name}}}
		for _, p := range pods {
			r.Backends = append(r.Backends, config.Backend{Name: p.name, URL: p.url()})
		}
		c.Routes = append(c.Routes, r)
	}
	return c
}

// podOn returns the pod that served key on route.
func (h *harness) podOn(route, key string) string {
	h.t.Helper()
	resp, body := h.get("/", "X-Route: "+route, "X-Session: "+key)
	if resp.StatusCode != 200 {
		h.t.Fatalf("route %s, key %q: got status %d (%s), want 200", route, key, resp.StatusCode, body)
	}
	return body
}

// budgetUsed checks that the proxy's budget counts exactly the running
// routes' tables and returns that count.
func budgetUsed(t *testing.T, p *Proxy) int {
	t.Helper()
	total := 0
	for _, r := range p.state.Load().routes {
		total += r.Table.Len()
	}
	if got := p.budget.Used(); got != total {
		t.Fatalf("the budget counts %d entries, want %d: those of the running tables", got, total)
	}
	return total
}

func TestTableBudgetBoundsEveryRouteTogether(t *testing.T) {
	pods := threePods(t)
	reg := prometheus.NewRegistry()
	var p *Proxy
	m := metrics.New(reg, func() []metrics.RouteStats { return p.RouteStats() })
	h := startProxyWith(t, twoRoutes(1000, pods...), Options{Metrics: m})
	p = h.p

	sessions := map[string]string{}
	for i := range 300 {
		key := fmt.Sprint("quiet-", i)
		sessions[key] = h.podOn("quiet", key)
	}
	for i := range 3000 {
		h.podOn("flooded", fmt.Sprint("flood-", i))
	}
	for key, want := range sessions {
		if got := h.podOn("quiet", key); got != want {
			t.Fatalf("session %q on the quiet route moved from %s to %s while another route was flooded", key, want, got)
		}
	}
	if got := budgetUsed(t, p); got > 1000 {
		t.Errorf("the tables hold %d entries together, want at most the budget of 1000", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var budget, budgetEvictions float64
	for _, f := range families {
		for _, s := range f.GetMetric() {
			switch {
			case f.GetName() == "podpin_table_budget_entries":
				budget = s.GetGauge().GetValue()
			case f.GetName() == "podpin_table_evictions_total" && label(s, "reason") == "budget":
				budgetEvictions += s.GetCounter().GetValue()
			}
		}
	}
	if budget != 1000 {
		t.Errorf("podpin_table_budget_entries: got %v, want 1000", budget)
	}
	if budgetEvictions < 2000 {
		t.Errorf("podpin_table_evictions_total{reason=\"budget\"}: got %v, want the flood's 2300 or so", budgetEvictions)
	}
}

// TestAFailedReloadLeavesTheBudgetOnTheRunningTables resizes a route's
// table in a reload that then fails on a later route: the running tables
// stay the budget's members, and the table built for the failed reload
// counts nowhere. A reload that succeeds moves the budget to its tables.
func TestAFailedReloadLeavesTheBudgetOnTheRunningTables(t *testing.T) {
	pods := threePods(t)
	h := startProxy(t, twoRoutes(500, pods...))
	for i := range 400 {
		h.podOn("quiet", fmt.Sprint("k-", i))
	}
	budgetUsed(t, h.p)

	c := twoRoutes(500, pods...)
	c.Routes[0].Table.MaxEntries = 5000 // a new table for "quiet"
	c.Routes = append(c.Routes, config.Route{Name: "shop", Match: config.Match{Host: "shop.example"}, Service: &config.Service{Name: "web", Port: "http"}})
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := h.p.Apply(c); !errors.Is(err, discovery.ErrNoKubernetes) {
		t.Fatalf("apply: got %v, want ErrNoKubernetes", err)
	}
	for i := range 400 {
		h.podOn("flooded", fmt.Sprint("f-", i))
	}
	if got := budgetUsed(t, h.p); got > 500 {
		t.Errorf("after a failed reload the tables hold %d entries, want at most 500", got)
	}

	c = twoRoutes(300, pods...)
	c.Routes[0].Table.MaxEntries = 5000
	h.apply(c)
	if got := budgetUsed(t, h.p); got > 300 {
		t.Errorf("after a reload to a budget of 300 the tables hold %d entries", got)
	}
}

func TestTableBudgetIsDerivedFromTheMemoryLimit(t *testing.T) {
	cases := []struct {
		name     string
		memLimit int64
		entries  int  // limits.tableEntries
		raw      bool // a route keeps raw keys of up to 256 bytes
		want     int
	}{
		{"256 MiB at 90%, as the chart sets it", 256 << 20 * 9 / 10, 0, false, 754_974},
		{"raw keys of 256 bytes count too", 256 << 20 * 9 / 10, 0, true, 171_585},
		{"no memory limit", math.MaxInt64, 0, false, 0},
		{"an explicit budget wins", 256 << 20, 1234, true, 1234},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pods := threePods(t)
			cfg := twoRoutes(c.entries, pods...)
			cfg.Routes[1].Table.KeepRawKeys = c.raw
			h := startProxyWith(t, cfg, Options{MemoryLimit: c.memLimit})
			h.podOn("quiet", "k") // serving has begun when the test ends
			if got := h.p.budget.Limit(); got != c.want {
				t.Errorf("got a budget of %d entries, want %d", got, c.want)
			}
		})
	}
	if got := table.EntriesFor(0, 0); got != 0 {
		t.Errorf("EntriesFor(0): got %d, want 0", got)
	}
}

// label returns the value of m's label name.
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
