package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/h2"
	"github.com/podpin/podpin/internal/metrics"
)

// useHTTP2 makes the harness's client speak HTTP/2: by ALPN on a TLS
// listener, with prior knowledge (h2c) on a cleartext one. One connection
// carries every request.
func (h *harness) useHTTP2() {
	var protos http.Protocols
	if h.tls != nil {
		protos.SetHTTP2(true)
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	h.client = &http.Client{Transport: &http.Transport{TLSClientConfig: h.tls, Protocols: &protos}}
}

// TestHTTP2StreamsArePlacedOneByOne sends many sessions over one HTTP/2
// connection, over TLS and in cleartext: each key keeps its pod, and the
// keys spread over the pods, so placement is per stream, not per
// connection.
func TestHTTP2StreamsArePlacedOneByOne(t *testing.T) {
	for _, tlsOn := range []bool{true, false} {
		t.Run(map[bool]string{true: "tls", false: "h2c"}[tlsOn], func(t *testing.T) {
			pods := threePods(t)
			var h *harness
			if tlsOn {
				h = startTLSProxy(t, oneRoute(pods...), config.Listener{}, Options{})
			} else {
				h = startProxy(t, oneRoute(pods...))
			}
			h.useHTTP2()
			first := map[string]string{}
			used := map[string]bool{}
			for round := range 3 {
				var mu sync.Mutex
				var wg sync.WaitGroup
				for i := range 30 {
					wg.Go(func() {
						key := fmt.Sprintf("h2-%d", i)
						resp, body := h.get("/", "X-Session: "+key)
						if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
							t.Errorf("key %s: %s %d (%s), want HTTP/2 200", key, resp.Proto, resp.StatusCode, body)
							return
						}
						if got := resp.Header.Get("X-Podpin-Pod"); got != body {
							t.Errorf("key %s: X-Podpin-Pod %q, but %q answered", key, got, body)
						}
						mu.Lock()
						defer mu.Unlock()
						used[body] = true
						if round == 0 {
							first[key] = body
						} else if first[key] != body {
							t.Errorf("key %s: went to %s, then %s", key, first[key], body)
						}
					})
				}
				wg.Wait()
			}
			if len(used) != 3 {
				t.Errorf("30 keys over one connection reached pods %v, want all three", used)
			}
		})
	}
}

// TestHTTP1AndHTTP2ShareAPort serves HTTP/1.1 and h2c on one cleartext port,
// and HTTP/1.1 and h2 on one TLS port: a key keeps its pod whichever the
// client speaks.
func TestHTTP1AndHTTP2ShareAPort(t *testing.T) {
	for _, tlsOn := range []bool{true, false} {
		pods := threePods(t)
		var h *harness
		if tlsOn {
			h = startTLSProxy(t, oneRoute(pods...), config.Listener{}, Options{})
		} else {
			h = startProxy(t, oneRoute(pods...))
		}
		h1 := h.client
		pinned := map[string]string{}
		for i := range 10 {
			key := fmt.Sprintf("both-%d", i)
			pinned[key] = h.podOf(key)
		}
		h.useHTTP2()
		for key, want := range pinned {
			if got := h.podOf(key); got != want {
				t.Errorf("tls %v: key %s on %s over HTTP/1.1, on %s over HTTP/2", tlsOn, key, want, got)
			}
		}
		h.client = h1
		resp, _ := h.get("/", "X-Session: both-0")
		if resp.ProtoMajor != 1 {
			t.Errorf("tls %v: an HTTP/1.1 client got %s", tlsOn, resp.Proto)
		}
	}
}

// TestHTTP2CanBeTurnedOff: with http2 false, TLS offers only http/1.1 and a
// cleartext HTTP/2 preface is a malformed HTTP/1.1 request.
func TestHTTP2CanBeTurnedOff(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	h := startTLSProxy(t, oneRoute(pod), config.Listener{HTTP2: ptr(false)}, Options{})
	cfg := h.tls.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	c, err := tls.Dial("tcp", h.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("ALPN chose %q with http2 off, want http/1.1", p)
	}
	// HTTP/2 needs ALPN h2 over TLS: the preface over http/1.1 is a bad
	// request.
	io.WriteString(c, h2Preface)
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Errorf("HTTP/2 preface over TLS http/1.1: got %q, want an HTTP/1.1 400", line)
	}
	c.Close()

	cfg2 := oneRoute(pod)
	cfg2.Listeners = []config.Listener{{Address: "127.0.0.1:0", HTTP2: ptr(false)}}
	h = startProxy(t, cfg2)
	conn := h.dial(t)
	defer conn.Close()
	io.WriteString(conn, h2Preface)
	line, _ = bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Errorf("HTTP/2 preface with http2 off: got %q, want an HTTP/1.1 400", line)
	}
}

// TestHTTP2RefusalsSpeakTheClientsProtocol: placement's refusals are
// podpin's one-line answers for HTTP, and statuses a gRPC client reads
// for gRPC.
func TestHTTP2RefusalsSpeakTheClientsProtocol(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	cfg := oneRoute(pod)
	cfg.Routes[0].Sticky.Missing = config.MissingReject
	h := startProxy(t, cfg)
	h.useHTTP2()
	resp, body := h.get("/")
	if resp.StatusCode != 400 || body != "podpin: request carries no session key\n" {
		t.Errorf("no key over HTTP/2: %d %q, want 400 and the reason", resp.StatusCode, body)
	}
	for _, c := range []struct {
		headers []string
		status  string
	}{
		{nil, "3"}, // INVALID_ARGUMENT
		{[]string{"X-Session: a", "X-Session: b"}, "3"},
	} {
		resp, _ := h.get("/pkg.Svc/Call", append(c.headers, "Content-Type: application/grpc", "TE: trailers")...)
		got := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status")
		if resp.StatusCode != 200 || got != c.status || resp.Header.Get("Content-Type") != "application/grpc" {
			t.Errorf("gRPC refusal %v: %d grpc-status %q content-type %q, want 200 %s application/grpc",
				c.headers, resp.StatusCode, got, resp.Header.Get("Content-Type"), c.status)
		}
		if msg := resp.Header.Get("Grpc-Message"); !strings.HasPrefix(msg, "podpin: ") {
			t.Errorf("gRPC refusal %v: grpc-message %q", c.headers, msg)
		}
	}
}

// TestHTTP2ConnectIsRefused: an HTTP/2 CONNECT gets 405 and never reaches
// a pod.
func TestHTTP2ConnectIsRefused(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	h := startProxy(t, oneRoute(pod))
	h.useHTTP2()
	req, _ := http.NewRequest(http.MethodConnect, "http://"+h.addr, nil)
	req.URL.Path = ""
	resp, body := h.do(req)
	if resp.StatusCode != 405 || body != "podpin: CONNECT is not served\n" {
		t.Errorf("CONNECT over HTTP/2: %d %q, want 405 and the reason", resp.StatusCode, body)
	}
	if pod.last() != nil {
		t.Error("the pod saw the CONNECT")
	}
}

// TestHTTP2PassesTrailersAndForwardingHeaders: an HTTP/1.1 pod's chunked
// trailers reach an HTTP/2 client, and the pod sees the X-Forwarded-*
// fields podpin writes for HTTP/1.1 clients.
func TestHTTP2PassesTrailersAndForwardingHeaders(t *testing.T) {
	pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	})
	h := startTLSProxy(t, oneRoute(pod), config.Listener{}, Options{})
	h.useHTTP2()
	resp, body := h.get("/x", "X-Session: k", "X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: http")
	if body != "body" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("got body %q trailers %v, want body and X-Checksum: abc", body, resp.Trailer)
	}
	got := pod.last().Header
	if xff := got.Get("X-Forwarded-For"); xff != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the client's list with the peer appended", xff)
	}
	if p := got.Get("X-Forwarded-Proto"); p != "https" {
		t.Errorf("X-Forwarded-Proto %q from an untrusted peer over TLS, want https", p)
	}
	if host := got.Get("X-Forwarded-Host"); host != h.addr {
		t.Errorf("X-Forwarded-Host %q, want %q", host, h.addr)
	}
	if v := pod.last().Host; v != h.addr {
		t.Errorf("the pod got Host %q, want the client's %q", v, h.addr)
	}
}

// newH2CPod is a pod that speaks only HTTP/2 with prior knowledge (h2c),
// as a gRPC server does. It answers with its name, the protocol it was
// reached over, and a trailer.
func newH2CPod(t *testing.T, name string) *testPod {
	t.Helper()
	p := &testPod{name: name}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.lastReq = r.Clone(context.Background())
		p.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Pod-Trailer")
		w.Header().Set("X-Pod-Proto", r.Proto)
		io.WriteString(w, name)
		w.Header().Set("X-Pod-Trailer", "end-"+name)
	}))
	p.srv.Config.Protocols = &protos
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

// h2cRoute is a route over pods written h2c://.
func h2cRoute(pods ...*testPod) *config.Config {
	cfg := oneRoute(pods...)
	for i := range cfg.Routes[0].Backends {
		b := &cfg.Routes[0].Backends[i]
		b.URL = strings.Replace(b.URL, "http://", "h2c://", 1)
	}
	return cfg
}

// TestH2CPodsServeBothFrontEnds: pods that speak only h2c are reached over
// HTTP/2 from HTTP/1.1 and HTTP/2 clients alike, keys stay on their pod,
// and an HTTP/2 client gets the pod's trailers.
func TestH2CPodsServeBothFrontEnds(t *testing.T) {
	pods := []*testPod{newH2CPod(t, "g-0"), newH2CPod(t, "g-1"), newH2CPod(t, "g-2")}
	h := startProxy(t, h2cRoute(pods...))
	pinned := map[string]string{}
	for i := range 12 {
		key := fmt.Sprintf("g-%d", i)
		resp, body := h.get("/", "X-Session: "+key)
		if resp.StatusCode != 200 || resp.Header.Get("X-Pod-Proto") != "HTTP/2.0" || resp.ProtoMajor != 1 {
			t.Fatalf("HTTP/1.1 client: %s %d, pod reached over %q (%s)", resp.Proto, resp.StatusCode, resp.Header.Get("X-Pod-Proto"), body)
		}
		pinned[key] = body
	}
	h.useHTTP2()
	for key, want := range pinned {
		resp, body := h.get("/", "X-Session: "+key)
		if body != want {
			t.Errorf("key %s: %s over HTTP/1.1, %s over HTTP/2", key, want, body)
		}
		if got := resp.Trailer.Get("X-Pod-Trailer"); got != "end-"+body {
			t.Errorf("key %s: trailer %q, want the pod's end-%s", key, got, body)
		}
	}
	if n := len(slices.Compact(slices.Sorted(maps.Values(pinned)))); n != 3 {
		t.Errorf("12 keys reached %d pods, want 3", n)
	}
}

// TestRefusedH2CPodRebindsItsKeys: a key placed on an h2c pod that refuses
// connections moves to another pod, over either front end, and stays
// there.
func TestRefusedH2CPodRebindsItsKeys(t *testing.T) {
	live := newH2CPod(t, "g-live")
	dead := newH2CPod(t, "g-dead")
	dead.srv.Close()
	h := startProxy(t, h2cRoute(dead, live))
	for i, k := range []string{"a", "b", "c", "d"} {
		if i == 2 {
			h.useHTTP2()
		}
		for range 2 {
			resp, body := h.get("/", "X-Session: "+k)
			if resp.StatusCode != 200 || body != "g-live" {
				t.Errorf("key %s: %d %q, want g-live", k, resp.StatusCode, body)
			}
		}
	}
}

// TestMaxConnectionsCountsBothProtocols: limits.maxConnections caps HTTP/1.1
// and HTTP/2 connections together; one over it gets 503, and a slot freed
// by a closed connection is taken again.
func TestMaxConnectionsCountsBothProtocols(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	cfg := oneRoute(pod)
	cfg.Limits.MaxConnections = 2
	h := startProxy(t, cfg)
	h2 := *h
	h2.useHTTP2()
	if resp, _ := h2.get("/", "X-Session: a"); resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("h2c: %s %d", resp.Proto, resp.StatusCode)
	}
	if resp, _ := h.get("/", "X-Session: a"); resp.StatusCode != 200 || resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1: %s %d", resp.Proto, resp.StatusCode)
	}
	// Both clients keep their connection open: a third is over the cap.
	c := h.dial(t)
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.HasPrefix(line, "HTTP/1.1 503") {
		t.Errorf("a third connection: got %q, want 503", line)
	}
	h2.client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := h.dial(t)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.HasPrefix(line, "HTTP/1.1 200") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the HTTP/2 connection closed: got %q, want 200", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGRPCStatusesCountInPassiveHealth: a pod that fails every gRPC call
// with UNAVAILABLE (HTTP 200 with grpc-status 14 in the trailers) is ejected
// like one answering 503, and its keys move to a healthy pod.
func TestGRPCStatusesCountInPassiveHealth(t *testing.T) {
	grpcPod := func(name, status string) *testPod {
		p := &testPod{name: name}
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			w.Header().Set("X-Pod", name)
			w.WriteHeader(200)
			w.Header().Set("Grpc-Status", status)
		}))
		p.srv.Config.Protocols = &protos
		p.srv.Start()
		t.Cleanup(p.srv.Close)
		return p
	}
	bad, good := grpcPod("g-bad", "14"), grpcPod("g-good", "0")
	cfg := h2cRoute(bad, good)
	cfg.Routes[0].Health.Passive.Consecutive5xx = 3
	h := startProxy(t, cfg)
	h.useHTTP2()
	call := func(key string) (pod, status string) {
		resp, _ := h.get("/pkg.Svc/Call", "X-Session: "+key, "Content-Type: application/grpc", "TE: trailers")
		return resp.Header.Get("X-Pod"), resp.Trailer.Get("Grpc-Status")
	}
	// Round robin: the first key goes to g-bad.
	if pod, status := call("k"); pod != "g-bad" || status != "14" {
		t.Fatalf("first call: pod %q status %q, want g-bad and 14", pod, status)
	}
	for range 2 {
		call("k")
	}
	if pod, status := call("k"); pod != "g-good" || status != "0" {
		t.Errorf("after three UNAVAILABLE answers: pod %q status %q, want the key moved to g-good", pod, status)
	}
}

// TestClientConnectionsAreCountedByProtocol: podpin_client_connections_total
// tells HTTP/1.1, h2 and h2c connections apart, per listener.
func TestClientConnectionsAreCountedByProtocol(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	for _, tlsOn := range []bool{false, true} {
		m := metrics.New(nil, nil)
		var h *harness
		if tlsOn {
			h = startTLSProxy(t, oneRoute(pod), config.Listener{}, Options{Metrics: m})
		} else {
			cfg := oneRoute(pod)
			cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0"}}
			h = startProxyWith(t, cfg, Options{Metrics: m})
		}
		for range 2 {
			h.get("/")
		}
		h.useHTTP2()
		for range 3 {
			h.get("/") // one connection carries them all
		}
		h.client.CloseIdleConnections()
		h.useHTTP2()
		h.get("/")
		h2 := map[bool]string{false: "h2c", true: "h2"}[tlsOn]
		want := map[string]float64{"http/1.1": 1, h2: 2}
		for proto, n := range want {
			var d dto.Metric
			if err := m.ClientConnections("127.0.0.1:0", proto).Write(&d); err != nil {
				t.Fatal(err)
			}
			if got := d.GetCounter().GetValue(); got != n {
				t.Errorf("tls %v: %s connections %v, want %v", tlsOn, proto, got, n)
			}
		}
	}
}

// TestRoutesMatchMethodsQueriesAndRegularExpressions: the matches Gateway
// API routes use pick the route over HTTP/1.1 and HTTP/2 alike.
func TestRoutesMatchMethodsQueriesAndRegularExpressions(t *testing.T) {
	api, canary, rest := newTestPod(t, "api-0", nil), newTestPod(t, "canary-0", nil), newTestPod(t, "rest-0", nil)
	cfg := &config.Config{Routes: []config.Route{
		{Name: "api", Match: config.Match{PathRegex: "/v[0-9]+/items(/.*)?", Methods: []string{"POST"}, HeaderRegex: map[string]string{"X-Version": "v[12]"}},
			Backends: []config.Backend{{Name: "api-0", URL: api.url()}}},
		{Name: "canary", Match: config.Match{Query: map[string]string{"env": "canary"}, QueryRegex: map[string]string{"shard": "[a-c]"}},
			Backends: []config.Backend{{Name: "canary-0", URL: canary.url()}}},
		{Name: "rest", Backends: []config.Backend{{Name: "rest-0", URL: rest.url()}}},
	}}
	h := startProxy(t, cfg)
	for _, h2 := range []bool{false, true} {
		if h2 {
			h.useHTTP2()
		}
		for _, c := range []struct {
			method, target string
			headers        []string
			want           string
		}{
			{"POST", "/v2/items/7", []string{"X-Version: v1"}, "api-0"},
			{"GET", "/v2/items/7", []string{"X-Version: v1"}, "rest-0"},
			{"POST", "/v2/items/7", []string{"X-Version: v3"}, "rest-0"},
			{"POST", "/v2/itemsx", []string{"X-Version: v1"}, "rest-0"},
			{"GET", "/x?env=canary&shard=b", nil, "canary-0"},
			{"GET", "/x?env=canary&shard=bb", nil, "rest-0"},
			{"GET", "/x?env=canary", nil, "rest-0"},
		} {
			req, _ := http.NewRequest(c.method, "http://"+h.addr+c.target, nil)
			for _, hv := range c.headers {
				name, value, _ := strings.Cut(hv, ": ")
				req.Header.Set(name, value)
			}
			if _, body := h.do(req); body != c.want {
				t.Errorf("HTTP/2 %v: %s %s %v reached %q, want %s", h2, c.method, c.target, c.headers, body, c.want)
			}
		}
	}
}

// TestMintedKeysGoOutAsACookie: with sticky.setCookie, a minted key comes
// back as a cookie (a session cookie unless maxAge is set, Secure over
// TLS), and a client that sends it back keeps its pod, over HTTP/1.1 and
// HTTP/2.
func TestMintedKeysGoOutAsACookie(t *testing.T) {
	pods := threePods(t)
	for _, c := range []struct {
		name   string
		tls    bool
		maxAge time.Duration
		want   []string // in the Set-Cookie value
		not    []string
	}{
		{"session cookie in cleartext", false, 0, []string{"Path=/", "HttpOnly", "SameSite=Lax"}, []string{"Max-Age", "Expires", "Secure"}},
		{"permanent cookie over TLS", true, time.Hour, []string{"Max-Age=3600", "Secure", "HttpOnly"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := oneRoute(pods...)
			cfg.Routes[0].Sticky = config.Sticky{Cookie: "podpin", Missing: config.MissingAssign, SetCookie: &config.SetCookie{MaxAge: c.maxAge}}
			var h *harness
			if c.tls {
				h = startTLSProxy(t, cfg, config.Listener{}, Options{})
			} else {
				h = startProxy(t, cfg)
			}
			for _, h2 := range []bool{false, true} {
				if h2 {
					h.useHTTP2()
				}
				resp, first := h.get("/")
				set := resp.Header.Get("Set-Cookie")
				key := resp.Header.Get("X-Session")
				if key == "" || !strings.HasPrefix(set, "podpin="+key+";") {
					t.Fatalf("HTTP/2 %v: Set-Cookie %q with key %q, want podpin=KEY", h2, set, key)
				}
				for _, w := range c.want {
					if !strings.Contains(set, w) {
						t.Errorf("HTTP/2 %v: Set-Cookie %q lacks %s", h2, set, w)
					}
				}
				for _, w := range c.not {
					if strings.Contains(set, w) {
						t.Errorf("HTTP/2 %v: Set-Cookie %q has %s", h2, set, w)
					}
				}
				for range 3 {
					resp, body := h.get("/", "Cookie: podpin="+key)
					if body != first || resp.Header.Get("Set-Cookie") != "" {
						t.Errorf("HTTP/2 %v: with the cookie: %q (Set-Cookie %q), want %q and no new cookie", h2, body, resp.Header.Get("Set-Cookie"), first)
					}
				}
			}
		})
	}
}

// TestHTTP2BodiesToHTTP1Pods: over HTTP/2, request bodies of known and
// unknown length reach an HTTP/1.1 pod whole, a long answer streams back
// whole, and HEAD gets the header only.
func TestHTTP2BodiesToHTTP1Pods(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", fmt.Sprintf("%d %d", len(b), r.ContentLength))
		if r.URL.Path == "/big" {
			io.WriteString(w, big)
			return
		}
		w.Write(b)
	})
	h := startTLSProxy(t, oneRoute(pod), config.Listener{}, Options{})
	h.useHTTP2()
	for _, known := range []bool{true, false} {
		var body io.Reader = strings.NewReader(big)
		if !known {
			body = io.MultiReader(strings.NewReader(big)) // no length: sent as it comes
		}
		req, _ := http.NewRequest("POST", "https://"+h.addr+"/echo", body)
		req.Header.Set("X-Session", "k")
		resp, got := h.do(req)
		if resp.StatusCode != 200 || got != big || !strings.HasPrefix(resp.Header.Get("X-Got"), fmt.Sprint(len(big))) {
			t.Errorf("known length %v: %d, %d bytes back, pod saw %q", known, resp.StatusCode, len(got), resp.Header.Get("X-Got"))
		}
	}
	resp, got := h.get("/big", "X-Session: k")
	if resp.StatusCode != 200 || got != big {
		t.Errorf("a 1 MiB answer: %d, %d bytes", resp.StatusCode, len(got))
	}
	req, _ := http.NewRequest("HEAD", "https://"+h.addr+"/big", nil)
	resp, got = h.do(req)
	if resp.StatusCode != 200 || got != "" {
		t.Errorf("HEAD: %d with %d bytes of body", resp.StatusCode, len(got))
	}
}

// TestAStreamGoesAgainWhenItsPooledConnectionIsLost: an h2c pod that
// closes a pooled connection under a stream whose body is still coming
// (a gRPC call that streams) before any answer gets the stream again on a
// fresh connection, with the body's beginning that had gone over the lost
// one, and the answer reaches the client whole.
func TestAStreamGoesAgainWhenItsPooledConnectionIsLost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	pod := &h2.Server{
		Handler: h2.HandlerFunc(func(s *h2.Stream) {
			if s.Path == "/drop" && s.Conn().(*countedPodConn).n == 1 {
				// The first connection dies under the stream.
				buf := make([]byte, 5)
				io.ReadFull(s, buf)
				s.Conn().Close()
				return
			}
			body, _ := io.ReadAll(s)
			s.WriteHeaders(200, nil, false)
			s.WriteData(body, true)
		}),
	}
	go pod.Serve(countingListener{ln, &conns})
	t.Cleanup(func() { pod.Close() })
	cfg := &config.Config{Routes: []config.Route{{Name: "default", Backends: []config.Backend{{Name: "g-0", URL: "h2c://" + ln.Addr().String()}}}}}
	h := startProxy(t, cfg)
	h.useHTTP2()
	// The pod's first connection is in the pool.
	if resp, body := h.get("/warm", "X-Session: k"); resp.StatusCode != 200 || body != "" {
		t.Fatalf("warm-up: %d %q", resp.StatusCode, body)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("part1"))
		time.Sleep(300 * time.Millisecond)
		pw.Write([]byte("part2"))
		pw.Close()
	}()
	req, err := http.NewRequest("POST", "http://"+h.addr+"/drop", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Session", "k")
	resp, body := h.do(req)
	if resp.StatusCode != 200 || body != "part1part2" {
		t.Errorf("got %d %q, want 200 and the whole body echoed", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("the pod saw %d connections, want 2", n)
	}
}

// countingListener numbers the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedPodConn{Conn: c, n: l.n.Add(1)}, nil
}

type countedPodConn struct {
	net.Conn
	n int32
}
