package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/podpin/podpin/internal/config"
)

// newDelayPod is a pod that waits as the conformance suite's echo server
// does: ?delay=D before its answer, or with &slowbody=1 after the first
// part of its body, flushed with the header. It speaks h2c when h2c is
// set, HTTP/1.1 otherwise. A wait ends early when the request does (podpin
// closed the connection or reset the stream).
func newDelayPod(t *testing.T, name string, h2c bool) *testPod {
	t.Helper()
	p := &testPod{name: name}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.lastReq = r.Clone(context.Background())
		p.mu.Unlock()
		delay, _ := time.ParseDuration(r.URL.Query().Get("delay"))
		wait := func() {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		if r.URL.Query().Get("slowbody") != "" {
			io.WriteString(w, "start ")
			w.(http.Flusher).Flush()
			wait()
			io.WriteString(w, "end")
			return
		}
		wait()
		io.WriteString(w, name)
	}))
	if h2c {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		p.srv.Config.Protocols = &protos
	}
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

// timedRoute is a route over pod for requests under prefix, with the given
// timeouts (nil: unset).
func timedRoute(name, prefix string, pod *testPod, h2c bool, request, backend *time.Duration) config.Route {
	url := pod.url()
	if h2c {
		url = strings.Replace(url, "http://", "h2c://", 1)
	}
	return config.Route{
		Name:     name,
		Match:    config.Match{PathPrefix: prefix},
		Backends: []config.Backend{{Name: pod.name, URL: url}},
		Timeouts: config.Timeouts{Request: request, BackendRequest: backend},
	}
}

// TestRouteTimeouts: a route's request and backendRequest timeouts answer
// 504 when the pod's header comes too late, cut off a body still streaming
// when they run out, and 0 lifts them, backendRequest lifting
// upstream.responseTimeout too; over HTTP/1.1 and HTTP/2, to HTTP/1.1 and
// h2c pods (the conformance suite's HTTPRouteTimeoutRequest and
// HTTPRouteTimeoutBackendRequest, plus the streamed body).
func TestRouteTimeouts(t *testing.T) {
	short, off := ptr(400*time.Millisecond), ptr(time.Duration(0))
	for _, h2cPod := range []bool{false, true} {
		pod := newDelayPod(t, "web-0", h2cPod)
		h := startProxy(t, &config.Config{Routes: []config.Route{
			timedRoute("request", "/request", pod, h2cPod, short, nil),
			timedRoute("request-off", "/disable-request", pod, h2cPod, off, nil),
			timedRoute("backend", "/backend", pod, h2cPod, nil, short),
			timedRoute("both", "/both", pod, h2cPod, ptr(time.Hour), short),
		}})
		// A global wait for the pod's header shorter than the delays: a
		// route's backendRequest of 0 lifts it, a route without one
		// keeps it.
		global := &config.Config{
			Upstream: config.Upstream{ResponseTimeout: 250 * time.Millisecond},
			Routes: []config.Route{
				timedRoute("backend-off", "/disable-backend", pod, h2cPod, nil, off),
				timedRoute("plain", "/plain", pod, h2cPod, nil, nil),
			},
		}
		hg := startProxy(t, global)
		for _, h2 := range []bool{false, true} {
			if h2 {
				h.useHTTP2()
				hg.useHTTP2()
			}
			for _, c := range []struct {
				h      *harness
				target string
				code   int
			}{
				{h, "/request", 200},
				{h, "/request?delay=1s", 504},
				{h, "/disable-request?delay=1s", 200},
				{h, "/backend", 200},
				{h, "/backend?delay=1s", 504},
				{h, "/both?delay=1s", 504},
				{hg, "/disable-backend?delay=700ms", 200},
				{hg, "/plain?delay=700ms", 504},
			} {
				resp, body := c.h.get(c.target)
				if resp.StatusCode != c.code {
					t.Errorf("h2c pod %v, HTTP/2 %v: %s: got %d %q, want %d", h2cPod, h2, c.target, resp.StatusCode, body, c.code)
				}
				if c.code == 504 && body != "podpin: pod web-0 failed: no response in time\n" {
					t.Errorf("h2c pod %v, HTTP/2 %v: %s: body %q, want podpin's reason", h2cPod, h2, c.target, body)
				}
			}
			// A body that streams when a timeout runs out is cut off: the
			// client has the header and the first part, then an error.
			for _, target := range []string{"/request?slowbody=1&delay=5s", "/backend?slowbody=1&delay=5s"} {
				resp, err := h.client.Get("http://" + h.addr + target)
				if err != nil {
					t.Fatalf("h2c pod %v, HTTP/2 %v: %s: %v", h2cPod, h2, target, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "start " || err == nil {
					t.Errorf("h2c pod %v, HTTP/2 %v: %s: got %d %q, %v; want 200, the first part and an error", h2cPod, h2, target, resp.StatusCode, b, err)
				}
			}
			resp, body := h.get("/disable-request?slowbody=1&delay=600ms")
			if resp.StatusCode != 200 || body != "start end" {
				t.Errorf("h2c pod %v, HTTP/2 %v: a slow body without timeouts: %d %q, want it whole", h2cPod, h2, resp.StatusCode, body)
			}
		}
	}
}

// TestRouteTimeoutsEndGRPCCallsWithDeadlineExceeded: a gRPC call over a
// route's request timeout ends with DEADLINE_EXCEEDED and the route's
// reason in the trailers, and the pod's call is cancelled, whether the pod
// sent its header or not.
func TestRouteTimeoutsEndGRPCCallsWithDeadlineExceeded(t *testing.T) {
	pod := startGRPCPod(t, "g-0")
	cfg := grpcRoute(pod)
	cfg.Routes[0].Timeouts.Request = ptr(400 * time.Millisecond)
	h := startProxy(t, cfg)
	c := h.grpcClient()
	ctx, cancel := context.WithTimeout(withKey(context.Background(), "k"), 10*time.Second)
	defer cancel()

	_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("wait")}})
	st, _ := status.FromError(err)
	if st.Code() != codes.DeadlineExceeded || st.Message() != "podpin: pod g-0 did not finish within the route's timeouts" {
		t.Errorf("a call the pod holds after its header: %v %q, want DEADLINE_EXCEEDED and the route's reason", st.Code(), st.Message())
	}
	select {
	case err := <-pod.ended:
		if status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled) {
			t.Errorf("the pod's call ended with %v, want it cancelled", err)
		}
	case <-ctx.Done():
		t.Error("the pod's call was never cancelled")
	}

	slow := &testgrpc.ResponseParameters{Size: 1, IntervalUs: 1_500_000}
	stream := func(body string) error {
		s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
			Payload:            &testgrpc.Payload{Body: []byte(body)},
			ResponseParameters: []*testgrpc.ResponseParameters{slow, slow},
		})
		if err != nil {
			return err
		}
		for {
			if _, err = s.Recv(); err != nil {
				return err
			}
		}
	}
	st, _ = status.FromError(stream("header-first"))
	if st.Code() != codes.DeadlineExceeded || st.Message() != "podpin: pod g-0 did not finish within the route's timeouts" {
		t.Errorf("a stream past the timeout: %v %q, want DEADLINE_EXCEEDED and the route's reason", st.Code(), st.Message())
	}
	st, _ = status.FromError(stream(""))
	if st.Code() != codes.DeadlineExceeded || st.Message() != "podpin: pod g-0 failed: no response in time" {
		t.Errorf("a stream without a header by the timeout: %v %q, want DEADLINE_EXCEEDED and podpin's reason", st.Code(), st.Message())
	}
	if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Errorf("a quick call on the same route: %v", err)
	}
}

// TestRouteTimeoutsBoundAnUpgradeUntilItsAnswer: a WebSocket upgrade on a
// route with timeouts gets 504 when the pod's answer comes too late;
// once upgraded, the tunnel outlives them.
func TestRouteTimeoutsBoundAnUpgradeUntilItsAnswer(t *testing.T) {
	pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		if d, _ := time.ParseDuration(r.URL.Query().Get("delay")); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
		}
		echoWebSocket(w, r, func(msg []byte) []byte { return msg })
	})
	cfg := oneRoute(pod)
	cfg.Routes[0].Timeouts.Request = ptr(400 * time.Millisecond)
	h := startProxy(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, resp, err := websocket.Dial(ctx, "ws://"+h.addr+"/ws?delay=2s", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("an upgrade answered after the request timeout: %v, %v; want 504", resp, err)
	}

	c, _, err := websocket.Dial(ctx, "ws://"+h.addr+"/ws", nil)
	if err != nil {
		t.Fatalf("an upgrade answered at once: %v", err)
	}
	defer c.CloseNow()
	for i := range 3 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // 600ms in all: past the request timeout
		}
		if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if _, got, err := c.Read(ctx); err != nil || string(got) != "ping" {
			t.Fatalf("message %d: got %q, %v; want the echo", i, got, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}
