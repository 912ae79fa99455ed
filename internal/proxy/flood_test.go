package proxy

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/logtest"
	"github.com/podpin/podpin/internal/metrics"
)

// TestAFloodOfOneTimeKeysMovesNoRealSession pins 1,000 sessions that come
// back (so the table protects them), then floods a small table with
// one-time keys from one client while the real sessions keep coming: none
// of them moves. With newSessionsPerIP set, the flood is then answered 429
// while the real sessions are still served.
func TestAFloodOfOneTimeKeysMovesNoRealSession(t *testing.T) {
	pods := threePods(t)
	cfg := func(perIP float64) *config.Config {
		c := oneRoute(pods...)
		c.Routes[0].Table.MaxEntries = 2048
		c.Routes[0].Sticky.NewSessionsPerIP = perIP
		return c
	}
	h := startProxy(t, cfg(0))
	real := map[string]string{}
	for i := range 1000 {
		key := fmt.Sprintf("real-%d", i)
		real[key] = h.podOf(key)
	}
	check := func(round string) {
		for key, want := range real {
			if got := h.podOf(key); got != want {
				t.Fatalf("%s: session %q moved from %s to %s", round, key, want, got)
			}
		}
	}
	check("second visit") // the second hit protects them

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 2500 {
				h.podOf(fmt.Sprintf("flood-%d-%d", w, i))
			}
		})
	}
	check("during the flood")
	wg.Wait()
	check("after 10,000 one-time keys")
	if ev := h.p.state.Load().routes[0].Table.Stats().Evictions; ev < 5000 {
		t.Errorf("the table evicted %d entries, want the flood to churn it", ev)
	}

	h.apply(cfg(10))
	refused := 0
	for i := range 300 {
		resp, body := h.get("/", fmt.Sprintf("X-Session: capped-%d", i))
		switch {
		case resp.StatusCode == 429 && body == "podpin: too many new sessions from this address\n" && resp.Header.Get("Retry-After") == "1":
			refused++
		case resp.StatusCode != 200:
			t.Fatalf("got %d %q, want 200 or 429", resp.StatusCode, body)
		}
	}
	if refused < 250 {
		t.Errorf("%d of 300 new sessions refused at 10 per second, want most", refused)
	}
	check("while new sessions are capped")
}

// TestSessionKeysNeverReachMetrics sends requests with distinctive keys,
// including ones that are refused, and scrapes the metrics and reads the
// debug log: no key appears in either.
func TestSessionKeysNeverReachMetrics(t *testing.T) {
	var logs logtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	var p *Proxy
	m := metrics.New(reg, func() []metrics.RouteStats { return p.RouteStats() })
	c := oneRoute(threePods(t)...)
	c.Routes[0].Sticky.Learn = true
	h := startProxyWith(t, c, Options{Metrics: m, Logger: log, KeySecret: []byte("s3cret-digest-key")})
	p = h.p
	keys := []string{"tok-Zq81LmPx", "Bearer.eyJhbGciOiJIUzI1NiJ9", "sess-4242-deadbeef"}
	for _, k := range keys {
		h.podOf(k)
		h.podOf(k)
	}
	h.get("/", "X-Session: dup-Zq81", "X-Session: dup-Zq82")
	h.get("/", "X-Session: "+strings.Repeat("long-Zq81", 40))
	h.get("/", "X-Session: space Zq81")

	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	text := rec.Body.String()
	if !strings.Contains(text, "podpin_") {
		t.Fatalf("scrape has no podpin metrics:\n%s", text)
	}
	for _, k := range append(keys, "Zq81", "s3cret") {
		if strings.Contains(text, k) {
			t.Errorf("metrics carry %q", k)
		}
		if strings.Contains(logs.String(), k) {
			t.Errorf("the log carries %q", k)
		}
	}
}
