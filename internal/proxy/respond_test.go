package proxy

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/metrics"
)

// TestRoutesThatRespondByThemselves: a route with respond answers every
// request with its status and a one-line text, over HTTP/1.1 and HTTP/2,
// with its response header edits, reaches no pod, and counts its answers;
// a gRPC call gets the gRPC status that maps.
func TestRoutesThatRespondByThemselves(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	cfg := &config.Config{Routes: []config.Route{
		{Name: "broken", Match: config.Match{PathPrefix: "/broken"}, Respond: &config.Respond{Status: 500},
			ResponseHeaders: config.HeaderEdits{Set: map[string]string{"X-Rule": "broken"}}},
		{Name: "grpc-broken", Match: config.Match{PathPrefix: "/grpc.testing.TestService"}, Respond: &config.Respond{Status: 500}},
		{Name: "web", Backends: []config.Backend{{Name: "web-0", URL: pod.url()}}},
	}}
	reg := prometheus.NewRegistry()
	h := startProxyWith(t, cfg, Options{Metrics: metrics.New(reg, nil)})
	for _, h2 := range []bool{false, true} {
		if h2 {
			h.useHTTP2()
		}
		resp, body := h.get("/broken/a?x=1", "X-Session: k")
		want := "podpin: 500 Internal Server Error (route \"broken\" answers by itself)\n"
		if resp.StatusCode != 500 || body != want {
			t.Errorf("HTTP/2 %v: got %d %q, want 500 %q", h2, resp.StatusCode, body, want)
		}
		if resp.Header.Get("X-Rule") != "broken" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("HTTP/2 %v: answer headers %v, want X-Rule: broken and a text body", h2, resp.Header)
		}
		if resp, body := h.get("/", "X-Session: k"); resp.StatusCode != 200 || body != "web-0" {
			t.Errorf("HTTP/2 %v: the other route: %d %q, want the pod's answer", h2, resp.StatusCode, body)
		}
	}
	if pod.last().URL.Path != "/" {
		t.Errorf("the pod got %s, want only the other route's requests", pod.last().URL.Path)
	}
	if got := metricValues(t, reg, "podpin_proxy_requests_total", "route")["broken"]; got != 2 {
		t.Errorf("counted answers of the route that responds: got %v, want 2", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := h.grpcClient().UnaryCall(ctx, &testgrpc.SimpleRequest{})
	st, _ := status.FromError(err)
	if st.Code() != codes.Unavailable || st.Message() != `podpin: 500 Internal Server Error (route "grpc-broken" answers by itself)` {
		t.Errorf("gRPC: got %v %q, want UNAVAILABLE with the route's reason", st.Code(), st.Message())
	}
}

// TestRespondKeepsStatusesAsGiven: any status from 200 to 599 goes out
// as configured.
func TestRespondKeepsStatusesAsGiven(t *testing.T) {
	for _, code := range []int{200, 204, 404, 503} {
		h := startProxy(t, &config.Config{Routes: []config.Route{{Name: "r", Respond: &config.Respond{Status: code}}}})
		resp, body := h.get("/")
		if resp.StatusCode != code {
			t.Errorf("respond %d: got %d", code, resp.StatusCode)
		}
		if code != http.StatusNoContent && !strings.Contains(body, http.StatusText(code)) {
			t.Errorf("respond %d: body %q, want the status text", code, body)
		}
	}
}
