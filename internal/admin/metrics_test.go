package admin_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/config"
)

// TestMetricsAfterKnownTraffic sends a known sequence through a real proxy
// to real pods and reads exact values from /metrics on the admin listener.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	cfg := &config.Config{
		Listeners: []config.Listener{{Address: "127.0.0.1:0"}},
		Routes: []config.Route{{
			Name:     "default",
			Balancer: "round-robin",
			Backends: []config.Backend{
				{Name: "web-0", URL: namedPod(t, "web-0")},
				{Name: "web-1", URL: namedPod(t, "web-1")},
				{Name: "web-2", URL: namedPod(t, "web-2"), State: "not-ready"},
			},
		}},
	}
	e := startEnv(t, cfg, admin.Options{Token: token})

	// Round robin over the two ready pods: a goes to web-0, b to web-1.
	for _, step := range []struct{ key, pod string }{
		{"a", "web-0"}, // miss
		{"b", "web-1"}, // miss
		{"a", "web-0"}, // hit
		{"a", "web-0"}, // hit
		{"b", "web-1"}, // hit
	} {
		if code, pod := e.send(step.key); code != 200 || pod != step.pod {
			t.Fatalf("key %q: got %d from %q, want 200 from %s", step.key, code, pod, step.pod)
		}
	}
	// An operator pins c to the pod that is not ready; its first request
	// rebinds it (reason unready) to the next pod in turn, web-0.
	if code, body := e.call("PUT", "/api/v1/routes/default/sessions/c", `{"pod": "web-2"}`); code != 200 {
		t.Fatalf("pin: got %d %s, want 200", code, body)
	}
	if code, pod := e.send("c"); code != 200 || pod != "web-0" {
		t.Fatalf("key c: got %d from %q, want 200 from web-0", code, pod)
	}
	// A key sent twice is a client error: 400, counted without a pod.
	req, _ := http.NewRequest("GET", "http://"+e.proxyAddr+"/", nil)
	req.Header["X-Session"] = []string{"d", "e"}
	if code, _ := e.do(req); code != 400 {
		t.Fatalf("duplicate key header: got %d, want 400", code)
	}

	got := e.scrape()
	want := map[string]float64{
		`podpin_table_lookups_total{result="hit",route="default"}`:                 3,
		`podpin_table_lookups_total{result="miss",route="default"}`:                2,
		`podpin_table_lookups_total{result="rebind",route="default"}`:              1,
		`podpin_table_lookups_total{result="none",route="default"}`:                0,
		`podpin_proxy_requests_total{code="2xx",pod="web-0",route="default"}`:      4,
		`podpin_proxy_requests_total{code="2xx",pod="web-1",route="default"}`:      2,
		`podpin_proxy_requests_total{code="2xx",pod="web-2",route="default"}`:      0,
		`podpin_proxy_requests_total{code="4xx",pod="",route="default"}`:           1,
		`podpin_proxy_requests_total{code="5xx",pod="web-0",route="default"}`:      0,
		`podpin_proxy_in_flight_requests{pod="web-0",route="default"}`:             0,
		`podpin_table_rebinds_total{pod="web-2",reason="unready",route="default"}`: 1,
		`podpin_table_sessions{pod="web-0",route="default"}`:                       2,
		`podpin_table_sessions{pod="web-1",route="default"}`:                       1,
		`podpin_table_entries{route="default"}`:                                    3,
		`podpin_table_evictions_total{reason="capacity",route="default"}`:          0,
		`podpin_proxy_upstream_latency_seconds_count{pod="web-0",route="default"}`: 4,
	}
	for series, w := range want {
		g, ok := got[series]
		if !ok {
			t.Errorf("%s: missing from /metrics", series)
			continue
		}
		if g != w {
			t.Errorf("%s: got %v, want %v", series, g, w)
		}
	}
	if v, ok := got[`podpin_table_sessions{pod="web-2",route="default"}`]; ok && v != 0 {
		t.Errorf("sessions on web-2: got %v, want 0 or no series", v)
	}
	for series := range got {
		if strings.Contains(series, `"a"`) || strings.Contains(series, `"c"`) {
			t.Errorf("series %s carries a session key", series)
		}
	}

	// The API agrees with the metrics.
	code, body := e.call("GET", "/api/v1/routes/default/pods", "")
	for _, frag := range []string{`"name": "web-0"`, `"sessions": 2`, `"requests": 4`, `"unready": 1`} {
		if code != 200 || !strings.Contains(body, frag) {
			t.Errorf("pods: got %d %s, want it to contain %s", code, body, frag)
		}
	}
}

// scrape reads /metrics and returns every sample by its series, as the
// text format writes it (labels sorted by name).
func (e *env) scrape() map[string]float64 {
	e.t.Helper()
	code, body := e.call("GET", "/metrics", "")
	if code != 200 {
		e.t.Fatalf("/metrics: got %d %s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			e.t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestInFlightRequestsAreCountedWhileTheyWait holds two requests at a pod
// and reads the in-flight gauge during and after them.
func TestInFlightRequestsAreCountedWhileTheyWait(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 2)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		<-release
		fmt.Fprint(w, "slow")
	}))
	t.Cleanup(slow.Close)
	cfg := &config.Config{
		Listeners: []config.Listener{{Address: "127.0.0.1:0"}},
		Routes:    []config.Route{{Name: "default", Backends: []config.Backend{{Name: "slow-0", URL: slow.URL}}}},
	}
	e := startEnv(t, cfg, admin.Options{Token: token})
	series := `podpin_proxy_in_flight_requests{pod="slow-0",route="default"}`

	done := make(chan error, 2)
	for _, key := range []string{"a", "b"} {
		go func() {
			req, _ := http.NewRequest("GET", "http://"+e.proxyAddr+"/", nil)
			req.Header.Set("X-Session", key)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("key %s: got %d, want 200", key, resp.StatusCode)
				}
			}
			done <- err
		}()
	}
	<-arrived
	<-arrived
	if got := e.scrape()[series]; got != 2 {
		t.Errorf("two requests held at the pod: got %v in flight, want 2", got)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if got, ok := e.scrape()[series]; !ok || got != 0 {
		t.Errorf("after the answers: got %v (present %v) in flight, want 0", got, ok)
	}
}
