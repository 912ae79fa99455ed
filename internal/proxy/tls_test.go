package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/metrics"
)

// startTLSProxy serves cfg on a TLS listener with a certificate for
// podpin.test from a CA of the test's own; l holds the listener's other
// settings.
func startTLSProxy(t *testing.T, cfg *config.Config, l config.Listener, o Options) *harness {
	t.Helper()
	ca := certstest.NewCA(t)
	c, k := ca.WriteFiles(t, t.TempDir(), "podpin", "podpin.test")
	l.Address = "127.0.0.1:0"
	l.TLS = &config.ListenerTLS{Certificates: []config.Certificate{{CertFile: c, KeyFile: k}}}
	cfg.Listeners = []config.Listener{l}
	h := startProxyWith(t, cfg, o)
	h.tls = ca.Client("podpin.test")
	h.client = &http.Client{Transport: &http.Transport{TLSClientConfig: h.tls, MaxIdleConnsPerHost: 64}}
	return h
}

func TestEdgeRequestsOverTLS(t *testing.T) {
	for _, c := range edgeCases {
		// Over TLS, podpin says so to the pod.
		c.podRecv = slices.Clone(c.podRecv)
		for i, s := range c.podRecv {
			c.podRecv[i] = strings.ReplaceAll(s, "X-Forwarded-Proto: http\r\n", "X-Forwarded-Proto: https\r\n")
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pod := newRawPod(t)
			cfg := &config.Config{Routes: []config.Route{{Name: "default", Backends: []config.Backend{{Name: "pod-0", URL: pod.url()}}}}}
			h := startTLSProxy(t, cfg, config.Listener{}, Options{})
			c.check(t, pod, func() net.Conn { return h.dial(t) })
		})
	}
}

func TestEdgeSizeLimitsOverTLS(t *testing.T) {
	for _, c := range sizeLimitCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pod := newRawPod(t)
			cfg := &config.Config{Limits: sizeLimits, Routes: []config.Route{{Name: "default", Backends: []config.Backend{{Name: "pod-0", URL: pod.url()}}}}}
			h := startTLSProxy(t, cfg, config.Listener{}, Options{})
			c.check(t, pod, func() net.Conn { return h.dial(t) })
		})
	}
}

func TestSessionsStickOverTLS(t *testing.T) {
	pods := threePods(t)
	h := startTLSProxy(t, oneRoute(pods...), config.Listener{}, Options{})
	// A new connection for every request: stickiness cannot come from
	// connection reuse.
	h.client.Transport.(*http.Transport).DisableKeepAlives = true
	seen := map[string]bool{}
	for i := range 12 {
		key := "tls-session-" + string(rune('a'+i))
		first := h.podOf(key)
		seen[first] = true
		for range 3 {
			if got := h.podOf(key); got != first {
				t.Fatalf("key %q: went to %q, then %q", key, first, got)
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("12 sessions landed on %d pods, want all 3", len(seen))
	}
	var proto string
	for _, p := range pods {
		if r := p.last(); r != nil {
			proto = r.Header.Get("X-Forwarded-Proto")
		}
	}
	if proto != "https" {
		t.Errorf("pod received X-Forwarded-Proto %q, want https", proto)
	}
}

func TestTLSForwardedProtoFromATrustedProxyIsKept(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	h := startTLSProxy(t, oneRoute(pod), config.Listener{TrustedProxies: []string{"127.0.0.1"}}, Options{})
	h.get("/", "X-Forwarded-Proto: http", "X-Forwarded-For: 198.51.100.1")
	if got := pod.last().Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("got X-Forwarded-Proto %q, want the trusted proxy's http", got)
	}
	h.get("/")
	if got := pod.last().Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("without one from the proxy: got X-Forwarded-Proto %q, want https", got)
	}
}

func TestTLSAfterAProxyProtocolHeader(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	h := startTLSProxy(t, oneRoute(pod), config.Listener{ProxyProtocol: true}, Options{})
	raw, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(raw, "PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"); err != nil {
		t.Fatal(err)
	}
	codes, _, _ := rawExchangeOn(t, tls.Client(raw, h.tls), "GET / HTTP/1.1\r\nHost: podpin.test\r\nConnection: close\r\n\r\n", 1)
	if !equalInts(codes, []int{200}) {
		t.Fatalf("got statuses %v, want [200]", codes)
	}
	if got := pod.last().Header.Get("X-Forwarded-For"); got != "203.0.113.7" {
		t.Errorf("got X-Forwarded-For %q, want the PROXY header's client 203.0.113.7", got)
	}
}

func TestTLSHandshakeFailuresAreCountedAndBounded(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, nil)
	cfg := oneRoute(pod)
	cfg.Limits.HeaderTimeout = 300 * time.Millisecond
	h := startTLSProxy(t, cfg, config.Listener{}, Options{Metrics: m})
	count := func(reason string) float64 {
		return handshakeErrors(t, reg, reason)
	}

	// A client that connects and says nothing is closed after the header
	// timeout, not held.
	silent, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ne net.Error
	if _, err := silent.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("silent client: got read error %v, want the connection closed", err)
	}

	// TLS 1.1 is refused.
	old := h.tls.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	if c, err := tls.Dial("tcp", h.addr, old); err == nil {
		c.Close()
		t.Errorf("a TLS 1.1 handshake succeeded")
	}

	// Cleartext HTTP gets a readable refusal.
	codes, bodies, closed := rawExchange(t, h.addr, "GET / HTTP/1.1\r\nHost: podpin.test\r\n\r\n", 1)
	if !equalInts(codes, []int{400}) || !strings.Contains(bodies[0], "cleartext HTTP sent to a TLS listener") || !closed {
		t.Errorf("cleartext request: got %v %q closed %v, want 400 naming the mistake, closed", codes, bodies, closed)
	}

	waitUntil(t, "the handshake errors counted", func() bool {
		return count("timeout") == 1 && count("version") == 1 && count("not-tls") == 1
	})
	// The listener still serves.
	if resp, body := h.get("/"); resp.StatusCode != 200 || body != "web-0" {
		t.Errorf("after the failed handshakes: got %d %q, want 200 web-0", resp.StatusCode, body)
	}
}

// waitUntil polls ok until it holds, or fails the test after 5 seconds.
func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// handshakeErrors reads podpin_tls_handshake_errors_total{reason}.
func handshakeErrors(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "podpin_tls_handshake_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestServeListenerStoppedAtOnceReturns(t *testing.T) {
	ca := certstest.NewCA(t)
	cert, key := ca.WriteFiles(t, t.TempDir(), "podpin", "podpin.test")
	for _, l := range []config.Listener{
		{},
		{TLS: &config.ListenerTLS{Certificates: []config.Certificate{{CertFile: cert, KeyFile: key}}}},
	} {
		p := New(Options{})
		cfg := oneRoute(newTestPod(t, "web-0", nil))
		cfg.SetDefaults()
		if err := p.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		// Stopped before it starts: the server may not have taken the
		// listener when the shutdown comes.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- p.ServeListener(ctx, ln, l, time.Second) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("ServeListener (tls %v) did not return after its context ended", l.TLS != nil)
		}
		p.Close()
	}
}

func TestTLSConnectionOverThePerAddressCapIsClosed(t *testing.T) {
	cfg := oneRoute(newTestPod(t, "web-0", nil))
	cfg.Limits.MaxConnsPerIP = 1
	h := startTLSProxy(t, cfg, config.Listener{}, Options{})
	first := h.dial(t)
	defer first.Close()
	if c, err := tls.Dial("tcp", h.addr, h.tls); err == nil {
		// The refusal may come after the client's side of the handshake.
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("a second connection from one address was kept open over a cap of 1 (read: %v)", err)
		}
	}
	codes, _, _ := rawExchangeOn(t, first, "GET / HTTP/1.1\r\nHost: podpin.test\r\nConnection: close\r\n\r\n", 1)
	if !equalInts(codes, []int{200}) {
		t.Errorf("the first connection: got %v, want [200]", codes)
	}
}
