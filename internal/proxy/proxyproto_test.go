package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/haproxytest"
	"github.com/podpin/podpin/internal/metrics"
)

// clientFrom is an HTTP client whose connections leave from the loopback
// address ip, so that it differs from the address HAProxy connects from.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// proxyProtocolErrors reads podpin_proxy_protocol_errors_total{reason}.
func proxyProtocolErrors(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "podpin_proxy_protocol_errors_total" {
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

// startPROXYProxy serves one client-IP route over pod on a listener that
// expects PROXY headers from sources.
func startPROXYProxy(t *testing.T, pod *testPod, sources []string) (*harness, *prometheus.Registry) {
	t.Helper()
	cfg := oneRoute(pod)
	cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0", ProxyProtocol: true, ProxyProtocolSources: sources}}
	cfg.Limits.HeaderTimeout = 500 * time.Millisecond
	cfg.Routes[0].Sticky.ClientIP = true
	reg := prometheus.NewRegistry()
	return startProxyWith(t, cfg, Options{Metrics: metrics.New(reg, nil)}), reg
}

func TestTheClientAddressComesThroughHAProxysPROXYHeader(t *testing.T) {
	for _, send := range []string{"send-proxy", "send-proxy-v2"} {
		t.Run(send, func(t *testing.T) {
			pod := newTestPod(t, "web-0", nil)
			h, _ := startPROXYProxy(t, pod, []string{"127.0.0.1"})
			lb := haproxytest.StartTCP(t, h.addr, send)
			client := clientFrom("127.0.0.2")
			for i := range 3 { // keep-alive off: three connections, three headers
				resp, err := client.Get("http://" + lb + "/")
				if err != nil {
					t.Fatalf("request %d through haproxy: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("request %d: status %d, want 200", i, resp.StatusCode)
				}
			}
			if got := pod.last().Header.Get("X-Forwarded-For"); got != "127.0.0.2" {
				t.Errorf("pod received X-Forwarded-For %q, want the client's 127.0.0.2", got)
			}
			if _, err := h.p.Session("default", "127.0.0.2"); err != nil {
				t.Errorf("client-IP key 127.0.0.2 not pinned: %v", err)
			}
			if page, _ := h.p.Sessions("default", SessionQuery{}); len(page.Sessions) != 1 {
				t.Errorf("sessions: got %d, want 1 (the client's, not HAProxy's)", len(page.Sessions))
			}
		})
	}
}

func TestPROXYProtocolRefusesSourcesWithoutAValidHeader(t *testing.T) {
	for _, tt := range []struct {
		name   string
		send   string // "" sends nothing
		reason string
	}{
		{"plain HTTP from a source", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", proxyMissing},
		{"a header that does not parse", "PROXY TCP4 not-an-address 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", proxyInvalid},
		{"a silent source", "", proxyTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := newTestPod(t, "web-0", nil)
			h, reg := startPROXYProxy(t, pod, []string{"127.0.0.1"})
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.send != "" {
				io.WriteString(c, tt.send)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil || len(got) != 0 {
				t.Errorf("connection: read %q, %v; want it closed with no answer", got, err)
			}
			if n := proxyProtocolErrors(t, reg, tt.reason); n != 1 {
				t.Errorf("podpin_proxy_protocol_errors_total{reason=%q}: got %v, want 1", tt.reason, n)
			}
			if pod.last() != nil {
				t.Errorf("the pod received a request")
			}
		})
	}
}

func TestPeersOutsideTheSourcesAreServedWithoutAHeader(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	h, reg := startPROXYProxy(t, pod, []string{"127.0.0.1"})
	resp, err := clientFrom("127.0.0.3").Get("http://" + h.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if got := pod.last().Header.Get("X-Forwarded-For"); got != "127.0.0.3" {
		t.Errorf("pod received X-Forwarded-For %q, want the peer's 127.0.0.3", got)
	}
	for _, reason := range []string{proxyMissing, proxyInvalid, proxyTimeout} {
		if n := proxyProtocolErrors(t, reg, reason); n != 0 {
			t.Errorf("podpin_proxy_protocol_errors_total{reason=%q}: got %v, want 0", reason, n)
		}
	}
}

func TestAClosedPROXYListenerEndsItsHeaderReads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newProxyListener(ln, nil, time.Minute, func(string) {})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The connection's header read is under way and would wait a minute.
	for pending := 0; pending == 0; time.Sleep(5 * time.Millisecond) {
		l.mu.Lock()
		pending = len(l.pending)
		l.mu.Unlock()
		if ctx.Err() != nil {
			t.Fatal("the connection's header read never started")
		}
	}
	closed := make(chan struct{})
	go func() { l.Close(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close waited for a header read")
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Accept after Close: got a connection, want an error")
	}
}
