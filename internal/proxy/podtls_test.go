package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/logtest"
)

// tlsPod is a real HTTPS server standing in for a pod that speaks TLS,
// with a certificate from the test's CA. It answers with its name and
// counts the TLS handshakes and the requests it saw.
type tlsPod struct {
	name       string
	srv        *httptest.Server
	handshakes atomic.Int32
	requests   atomic.Int32
}

func newTLSPod(t *testing.T, name string, ca *certstest.CA, certNames ...string) *tlsPod {
	t.Helper()
	return newTLSPodWith(t, name, nil, ca, certNames...)
}

// newTLSPodWith is newTLSPod with a handler of its own; nil answers with
// the pod's name.
func newTLSPodWith(t *testing.T, name string, h http.HandlerFunc, ca *certstest.CA, certNames ...string) *tlsPod {
	t.Helper()
	p := &tlsPod{name: name}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, name)
	}))
	// The refused handshakes are the point of some tests: not logged.
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	p.srv.TLS = ca.Server(t, certNames...)
	p.srv.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		p.handshakes.Add(1)
		return nil, nil
	}
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	return p
}

// url is the pod's https:// URL.
func (p *tlsPod) url() string { return p.srv.URL }

// httpsRoute is a route named "default" over pods, with their TLS checked
// as podTLS says.
func httpsRoute(podTLS config.PodTLS, pods ...*tlsPod) *config.Config {
	r := config.Route{Name: "default", Pods: config.Pods{TLS: podTLS}}
	for _, p := range pods {
		r.Backends = append(r.Backends, config.Backend{Name: p.name, URL: p.url()})
	}
	return &config.Config{Routes: []config.Route{r}}
}

func TestSessionsStickToHTTPSPodsVerifiedByTheirCA(t *testing.T) {
	ca := certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	pods := []*tlsPod{newTLSPod(t, "web-0", ca, "web.shop.svc"), newTLSPod(t, "web-1", ca, "web.shop.svc")}
	h := startProxy(t, httpsRoute(config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}, pods...))
	pinned := h.pinKeys(20)
	served := map[string]int{}
	for key, pod := range pinned {
		served[pod]++
		for range 3 {
			if got := h.podOf(key); got != pod {
				t.Fatalf("key %q went to %s, then to %s", key, pod, got)
			}
		}
	}
	if len(served) != 2 {
		t.Errorf("new sessions went to %v, want both pods", served)
	}
}

func TestHTTPSPodIsCheckedAgainstTheHostOfItsAddress(t *testing.T) {
	// Without pods.tls.serverName, the pod's address is the name: an IP
	// address must be in the certificate's IP addresses.
	ca := certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	good := newTLSPod(t, "web-0", ca, "127.0.0.1")
	h := startProxy(t, httpsRoute(config.PodTLS{CAFile: caFile}, good))
	if got := h.podOf("a"); got != "web-0" {
		t.Errorf("got %q, want web-0", got)
	}

	named := newTLSPod(t, "web-1", ca, "web.shop.svc")
	h = startProxy(t, httpsRoute(config.PodTLS{CAFile: caFile}, named))
	resp, body := h.get("/", "X-Session: a")
	if want := "pod web-1 failed: TLS: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"; resp.StatusCode != 502 || !strings.Contains(body, want) {
		t.Errorf("got %d %q, want 502 with %q", resp.StatusCode, body, want)
	}
}

func TestHTTPSPodThatFailsVerificationIs502AndCountsAsAFailure(t *testing.T) {
	ca, other := certstest.NewCA(t), certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	for _, c := range []struct {
		name string
		pod  *tlsPod
		tls  config.PodTLS
		want string
	}{
		{"a certificate from an unknown CA", newTLSPod(t, "web-0", other, "web.shop.svc"),
			config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"},
			"pod web-0 failed: TLS: certificate signed by unknown authority"},
		{"a certificate for another name", newTLSPod(t, "web-0", ca, "web.shop.svc"),
			config.PodTLS{CAFile: caFile, ServerName: "api.shop.svc"},
			"pod web-0 failed: TLS: certificate is valid for web.shop.svc, not api.shop.svc"},
		{"a certificate no system root vouches for", newTLSPod(t, "web-0", ca, "web.shop.svc"),
			config.PodTLS{ServerName: "web.shop.svc"},
			"pod web-0 failed: TLS: certificate signed by unknown authority"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := httpsRoute(c.tls, c.pod)
			cfg.Routes[0].Health.Passive = config.Passive{ConsecutiveFailures: 3}
			h := startProxy(t, cfg)
			for i := range 3 {
				resp, body := h.get("/", "X-Session: a")
				if resp.StatusCode != 502 || body != "podpin: "+c.want+"\n" {
					t.Fatalf("request %d: got %d %q, want 502 %q", i, resp.StatusCode, body, c.want)
				}
			}
			if n := c.pod.requests.Load(); n != 0 {
				t.Errorf("the pod saw %d requests, want none", n)
			}
			// Three failures in a row eject the pod (passive health).
			if got := h.podState("default", "web-0"); got != "ejected" {
				t.Errorf("pod state %q, want ejected after three failed handshakes", got)
			}
		})
	}
}

func TestFailedPodHandshakeIsLoggedAtDebugLevel(t *testing.T) {
	var buf logtest.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pod := newTLSPod(t, "web-0", certstest.NewCA(t), "web.shop.svc")
	h := startProxyWith(t, httpsRoute(config.PodTLS{ServerName: "web.shop.svc"}, pod), Options{Logger: log})
	if resp, _ := h.get("/", "X-Session: a"); resp.StatusCode != 502 {
		t.Fatalf("got %d, want 502", resp.StatusCode)
	}
	for line := range strings.SplitSeq(buf.String(), "\n") {
		if strings.Contains(line, "level=DEBUG") && strings.Contains(line, `msg="pod TLS handshake failed"`) &&
			strings.Contains(line, "pod=web-0") && strings.Contains(line, "unknown authority") {
			return
		}
	}
	t.Errorf("no debug line for the failed handshake; log:\n%s", buf.String())
}

func TestHTTPSPodWithInsecureSkipVerifyAcceptsAnyCertificate(t *testing.T) {
	pod := newTLSPod(t, "web-0", certstest.NewCA(t), "anything.test")
	h := startProxy(t, httpsRoute(config.PodTLS{InsecureSkipVerify: true}, pod))
	if got := h.podOf("a"); got != "web-0" {
		t.Errorf("got %q, want web-0", got)
	}
}

func TestHTTPSPodConnectionsAreReused(t *testing.T) {
	ca := certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	pod := newTLSPod(t, "web-0", ca, "web.shop.svc")
	h := startProxy(t, httpsRoute(config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}, pod))
	for i := range 50 {
		h.podOf(fmt.Sprintf("s%d", i))
	}
	if n := pod.requests.Load(); n != 50 {
		t.Errorf("the pod saw %d requests, want 50", n)
	}
	if n := pod.handshakes.Load(); n != 1 {
		t.Errorf("%d TLS handshakes for 50 requests in a row, want 1", n)
	}
}

func TestRefusedHTTPSPodRebindsItsSession(t *testing.T) {
	ca := certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	pods := []*tlsPod{newTLSPod(t, "web-0", ca, "web.shop.svc"), newTLSPod(t, "web-1", ca, "web.shop.svc")}
	h := startProxy(t, httpsRoute(config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}, pods...))
	key := "s"
	was := h.podOf(key)
	dead, alive := pods[0], pods[1]
	if was == pods[1].name {
		dead, alive = pods[1], pods[0]
	}
	dead.srv.Close()
	if got := h.podOf(key); got != alive.name {
		t.Fatalf("after %s stopped, key went to %q, want %s", dead.name, got, alive.name)
	}
	if got := h.rebinds("default"); got["connect-failed"] != 1 {
		t.Errorf("rebinds %v, want one connect-failed", got)
	}
}

func TestRouteProtocolWinsOverTheBackendURL(t *testing.T) {
	ca := certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	pod := newTLSPod(t, "web-0", ca, "web.shop.svc")
	cfg := httpsRoute(config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}, pod)
	cfg.Routes[0].Backends[0].URL = "http://" + pod.srv.Listener.Addr().String()
	cfg.Routes[0].Pods.Protocol = config.PodHTTPS
	h := startProxy(t, cfg)
	if got := h.podOf("a"); got != "web-0" {
		t.Errorf("got %q, want web-0", got)
	}
}

func TestApplyReadsThePodCAFile(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	caFile := ca.WriteCAFile(t, dir)
	pod := newTLSPod(t, "web-0", ca, "web.shop.svc")
	h := startProxy(t, httpsRoute(config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}, pod))
	h.podOf("a")

	// The file goes: the next configuration cannot be applied, and the
	// running one stays.
	if err := os.Remove(caFile); err != nil {
		t.Fatal(err)
	}
	next := httpsRoute(config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}, pod)
	next.SetDefaults()
	err := h.p.Apply(next)
	if want := `route "default": pods.tls.caFile: "` + caFile + `" cannot be read: no such file or directory`; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if got := h.podOf("a"); got != "web-0" {
		t.Errorf("after a failed apply, got %q, want web-0", got)
	}

	// Another CA's file: the pods are connected to anew, and refused.
	other := certstest.NewCA(t)
	if err := os.WriteFile(caFile, other.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	h.apply(httpsRoute(config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}, pod))
	if resp, body := h.get("/", "X-Session: a"); resp.StatusCode != 502 || !strings.Contains(body, "certificate signed by unknown authority") {
		t.Errorf("under another CA: got %d %q, want 502 for an unknown authority", resp.StatusCode, body)
	}
}

func TestPodWhoseProtocolChangesGetsANewBackend(t *testing.T) {
	src := &pushSource{updates: make(chan []discovery.Endpoint), applied: make(chan struct{})}
	p := New(Options{Discoverer: pushDiscoverer{src}})
	defer p.Close()
	cfg := &config.Config{Routes: []config.Route{{Name: "web", Service: &config.Service{Name: "web", Port: "http"}}}}
	cfg.SetDefaults()
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ep := discovery.Endpoint{Name: "web-0", Address: "127.0.0.1:8443", Weight: 1, State: discovery.Ready}
	r, _ := p.route("web")
	src.push([]discovery.Endpoint{ep})
	first := r.pods.Load().byName["web-0"].backend
	src.push([]discovery.Endpoint{ep})
	if again := r.pods.Load().byName["web-0"].backend; again != first {
		t.Error("the same endpoint got a new backend")
	}
	ep.Protocol = config.PodHTTPS
	src.push([]discovery.Endpoint{ep})
	b := r.pods.Load().byName["web-0"].backend
	if b == first || b.protocol != config.PodHTTPS {
		t.Errorf("after the pod turned to https: same backend %v, protocol %q; want a new https backend", b == first, b.protocol)
	}
}

func TestActiveHealthChecksSpeakTLSToHTTPSPods(t *testing.T) {
	ca := certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	pod := newTLSPod(t, "web-0", ca, "web.shop.svc")
	cfg := httpsRoute(config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}, pod)
	cfg.Routes[0].Health.Active = config.Active{Path: "/healthz", Interval: 20 * time.Millisecond, HealthyThreshold: 1, UnhealthyThreshold: 1}
	startProxy(t, cfg)
	waitUntil(t, "a health check reaches the pod over TLS", func() bool { return pod.requests.Load() >= 2 })
}

func TestWebSocketThroughAnHTTPSPod(t *testing.T) {
	ca := certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		c.Write(r.Context(), typ, []byte("tls: "+string(msg)))
	}))
	srv.TLS = ca.Server(t, "web.shop.svc")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cfg := &config.Config{Routes: []config.Route{{
		Name:     "default",
		Backends: []config.Backend{{Name: "web-0", URL: srv.URL}},
		Pods:     config.Pods{TLS: config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}},
	}}}
	h := startProxy(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+h.addr+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"X-Session": {"a"}}})
	if err != nil {
		t.Fatalf("dial through proxy: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "tls: hello" {
		t.Errorf("got %q, want %q", got, "tls: hello")
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestHTTPSPodThatDoesNotSpeakTLSIs502(t *testing.T) {
	for _, c := range []struct {
		name  string
		serve func(net.Conn)
		want  string
	}{
		{"a pod that answers in cleartext", func(c net.Conn) {
			defer c.Close()
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			io.Copy(io.Discard, c)
		}, "pod web-0 failed: TLS: first record does not look like a TLS handshake"},
		{"a pod that never answers the handshake", func(c net.Conn) {
			defer c.Close()
			io.Copy(io.Discard, c)
		}, "pod web-0 failed: TLS: handshake not done in time (upstream.connectTimeout)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pod := startTCPPod(t, c.serve)
			cfg := &config.Config{
				Upstream: config.Upstream{ConnectTimeout: 300 * time.Millisecond},
				Routes: []config.Route{{
					Name:     "default",
					Backends: []config.Backend{{Name: "web-0", URL: "https://" + pod.ln.Addr().String()}},
					Pods:     config.Pods{TLS: config.PodTLS{ServerName: "web.shop.svc"}},
				}},
			}
			h := startProxy(t, cfg)
			resp, body := h.get("/", "X-Session: a")
			if resp.StatusCode != 502 || body != "podpin: "+c.want+"\n" {
				t.Errorf("got %d %q, want 502 %q", resp.StatusCode, body, c.want)
			}
		})
	}
}

func TestLongBodiesStreamFromHTTPSPodsOverOneConnection(t *testing.T) {
	ca := certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	const size = 1 << 20
	var handshakes atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No Content-Length: chunked, streamed through podpin.
		io.CopyN(w, &pattern{}, size)
	}))
	srv.TLS = ca.Server(t, "web.shop.svc")
	srv.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		handshakes.Add(1)
		return nil, nil
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h := startProxy(t, &config.Config{Routes: []config.Route{{
		Name:     "default",
		Backends: []config.Backend{{Name: "web-0", URL: srv.URL}},
		Pods:     config.Pods{TLS: config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}},
	}}})
	for i := range 3 {
		resp, body := h.get("/", "X-Session: a")
		if resp.StatusCode != 200 || len(body) != size {
			t.Fatalf("request %d: got %d with %d bytes, want 200 with %d", i, resp.StatusCode, len(body), size)
		}
		var want strings.Builder
		io.CopyN(&want, &pattern{}, size)
		if body != want.String() {
			t.Fatalf("request %d: the body differs from what the pod sent", i)
		}
	}
	if n := handshakes.Load(); n != 1 {
		t.Errorf("%d TLS handshakes for 3 streamed answers in a row, want 1", n)
	}
}

func TestKeysIssuedByHTTPSPodsAreLearned(t *testing.T) {
	ca := certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	var issued atomic.Int32
	issuing := func(name string) *tlsPod {
		return newTLSPodWith(t, name, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Session") == "" {
				w.Header().Set("X-Session", fmt.Sprintf("%s-key-%d", name, issued.Add(1)))
			}
			fmt.Fprint(w, name)
		}, ca, "web.shop.svc")
	}
	cfg := httpsRoute(config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}, issuing("web-0"), issuing("web-1"))
	cfg.Routes[0].Sticky.Learn = true
	h := startProxy(t, cfg)
	for range 6 {
		resp, pod := h.get("/")
		key := resp.Header.Get("X-Session")
		if !strings.HasPrefix(key, pod+"-key-") {
			t.Fatalf("%s answered with key %q, want one it issued", pod, key)
		}
		for range 3 {
			if got := h.podOf(key); got != pod {
				t.Fatalf("key %q issued by %s went to %s", key, pod, got)
			}
		}
	}
}

func TestActiveHealthChecksSpeakH2CToH2CPods(t *testing.T) {
	var checks atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			checks.Add(1)
		}
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	cfg := &config.Config{Routes: []config.Route{{
		Name:     "default",
		Backends: []config.Backend{{Name: "g-0", URL: "h2c://" + srv.Listener.Addr().String()}},
		Health:   config.Health{Active: config.Active{Path: "/healthz", Interval: 20 * time.Millisecond, HealthyThreshold: 1, UnhealthyThreshold: 1}},
	}}}
	startProxy(t, cfg)
	waitUntil(t, "health checks reach the pod over HTTP/2", func() bool { return checks.Load() >= 2 })
}
