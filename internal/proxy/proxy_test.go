package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// testPod is a real HTTP server standing in for a pod. It answers with its
// name and records the last request it saw.
type testPod struct {
	name string
	srv  *httptest.Server

	// guards lastReq
	mu      sync.Mutex
	lastReq *http.Request
}

// last returns the last request the pod received.
func (p *testPod) last() *http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastReq
}

func newTestPod(t *testing.T, name string, h http.HandlerFunc) *testPod {
	t.Helper()
	p := &testPod{name: name}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.lastReq = r.Clone(context.Background())
		p.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, name)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testPod) url() string { return p.srv.URL }

// harness is a running proxy on a loopback port.
type harness struct {
	t      *testing.T
	p      *Proxy
	addr   string
	client *http.Client
	// tls is the client side of a TLS listener; nil for cleartext.
	tls *tls.Config
	// listener is the proxy's listener at addr.
	listener config.Listener
}

// dial opens a connection to the proxy, with TLS on a TLS listener.
func (h *harness) dial(t *testing.T) net.Conn {
	t.Helper()
	if h.tls != nil {
		c, err := tls.Dial("tcp", h.addr, h.tls)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startProxy applies cfg (after defaults) and serves it on a free port.
func startProxy(t *testing.T, cfg *config.Config) *harness {
	t.Helper()
	return startProxyWith(t, cfg, Options{})
}

// startProxyWith is startProxy with the proxy's options.
func startProxyWith(t *testing.T, cfg *config.Config, o Options) *harness {
	t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	p := New(o)
	t.Cleanup(p.Close)
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	l := cfg.Listeners[0]
	if os.Getenv("PODPIN_TEST_GOROUTINES") == "1" && l.EventLoop == nil {
		// The whole suite again, served by the goroutine front end alone
		// (scripts/test).
		l.EventLoop = ptr(false)
	}
	return &harness{
		t: t, p: p, addr: serveLoopback(t, p, l), listener: l,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
}

// serveLoopback serves p on a new loopback port, as the listener l, until
// the test ends; it returns the port's address.
func serveLoopback(t *testing.T, p *Proxy, l config.Listener) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.ServeListener(ctx, ln, l, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// oneRoute is a configuration with one route over pods.
func oneRoute(pods ...*testPod) *config.Config {
	r := config.Route{Name: "default"}
	for _, p := range pods {
		r.Backends = append(r.Backends, config.Backend{Name: p.name, URL: p.url()})
	}
	return &config.Config{Routes: []config.Route{r}}
}

// get sends a GET with the given headers ("Name: value") and returns the
// response with its body read.
func (h *harness) get(path string, headers ...string) (*http.Response, string) {
	h.t.Helper()
	scheme := "http://"
	if h.tls != nil {
		scheme = "https://"
	}
	req, err := http.NewRequest("GET", scheme+h.addr+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, hv := range headers {
		name, value, _ := strings.Cut(hv, ": ")
		req.Header.Add(name, value)
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) (*http.Response, string) {
	h.t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, string(b)
}

// podOf returns the pod that served a session key.
func (h *harness) podOf(key string) string {
	h.t.Helper()
	resp, body := h.get("/", "X-Session: "+key)
	if resp.StatusCode != 200 {
		h.t.Fatalf("key %q: got status %d (%s), want 200", key, resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Podpin-Pod"); got != body {
		h.t.Fatalf("key %q: X-Podpin-Pod %q, but %q answered", key, got, body)
	}
	return body
}

func threePods(t *testing.T) []*testPod {
	return []*testPod{newTestPod(t, "web-0", nil), newTestPod(t, "web-1", nil), newTestPod(t, "web-2", nil)}
}

func TestSessionsStickToTheirPod(t *testing.T) {
	h := startProxy(t, oneRoute(threePods(t)...))
	first := map[string]string{}
	count := map[string]int{}
	for i := range 300 {
		key := fmt.Sprintf("user-%d", i)
		first[key] = h.podOf(key)
		count[first[key]]++
	}
	for pod, n := range count {
		if n != 100 {
			t.Errorf("round-robin placed %d of 300 sessions on %s, want 100", n, pod)
		}
	}
	for round := range 3 {
		for key, want := range first {
			if got := h.podOf(key); got != want {
				t.Fatalf("round %d: key %q went to %s, want its pod %s", round, key, got, want)
			}
		}
	}
	st := h.p.state.Load().routes[0].Table.Stats()
	if st.Entries != 300 || st.Hits != 900 || st.Inserts != 300 {
		t.Errorf("table stats: got %d entries, %d hits, %d inserts; want 300, 900, 300", st.Entries, st.Hits, st.Inserts)
	}
}

func TestHashBalancerPlacesKeysTheSameWayInEveryProxy(t *testing.T) {
	pods := threePods(t)
	cfg := func() *config.Config {
		c := oneRoute(pods...)
		c.Routes[0].Balancer = "hash"
		return c
	}
	a, b := startProxy(t, cfg()), startProxy(t, cfg())
	spread := map[string]int{}
	for i := range 300 {
		key := fmt.Sprintf("k%d", i)
		pa, pb := a.podOf(key), b.podOf(key)
		if pa != pb {
			t.Fatalf("key %q: one proxy placed it on %s, the other on %s", key, pa, pb)
		}
		spread[pa]++
	}
	for pod, n := range spread {
		if n < 60 || n > 140 {
			t.Errorf("hash placed %d of 300 keys on %s, want about 100", n, pod)
		}
	}
}

func TestMissingKeyPolicies(t *testing.T) {
	t.Run("balance forwards and pins nothing", func(t *testing.T) {
		h := startProxy(t, oneRoute(threePods(t)...))
		seen := map[string]int{}
		for range 6 {
			resp, body := h.get("/")
			if resp.StatusCode != 200 {
				t.Fatalf("got %d, want 200", resp.StatusCode)
			}
			seen[body]++
		}
		if len(seen) != 3 {
			t.Errorf("keyless requests reached %v, want all three pods", seen)
		}
		if n := h.p.state.Load().routes[0].Table.Len(); n != 0 {
			t.Errorf("table holds %d entries after keyless requests, want 0", n)
		}
	})
	t.Run("assign mints a key the client can send back", func(t *testing.T) {
		pods := threePods(t)
		c := oneRoute(pods...)
		c.Routes[0].Sticky.Missing = config.MissingAssign
		h := startProxy(t, c)
		resp, body := h.get("/")
		key := resp.Header.Get("X-Session")
		if len(key) != 32 || strings.Trim(key, "0123456789abcdef") != "" {
			t.Fatalf("assigned key %q, want 32 hex digits", key)
		}
		var seenByPod string
		for _, p := range pods {
			if p.name == body {
				seenByPod = p.last().Header.Get("X-Session")
			}
		}
		if seenByPod != key {
			t.Errorf("pod saw key %q, want the assigned %q", seenByPod, key)
		}
		for range 5 {
			if got := h.podOf(key); got != body {
				t.Fatalf("assigned key went to %s, want %s", got, body)
			}
		}
	})
	t.Run("reject answers 400", func(t *testing.T) {
		c := oneRoute(threePods(t)...)
		c.Routes[0].Sticky.Missing = config.MissingReject
		h := startProxy(t, c)
		resp, body := h.get("/")
		if resp.StatusCode != 400 || body != "podpin: request carries no session key\n" {
			t.Errorf("got %d %q, want 400 with the reason", resp.StatusCode, body)
		}
	})
}

func TestBadKeysAreClientErrorsAndStoreNothing(t *testing.T) {
	h := startProxy(t, oneRoute(threePods(t)...))
	cases := []struct {
		name    string
		headers []string
		reason  string
	}{
		{"a key sent twice", []string{"X-Session: a", "X-Session: b"}, "session key header sent more than once"},
		{"a key over 256 bytes", []string{"X-Session: " + strings.Repeat("k", 257)}, "session key is too long"},
		{"a key with a space", []string{"X-Session: a b"}, "session key has bytes outside visible ASCII"},
		{"a key with a non-ASCII byte", []string{"X-Session: caf\xc3\xa9"}, "session key has bytes outside visible ASCII"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.get("/", c.headers...)
			if resp.StatusCode != 400 || body != "podpin: "+c.reason+"\n" {
				t.Errorf("got %d %q, want 400 %q", resp.StatusCode, body, c.reason)
			}
		})
	}
	if n := h.p.state.Load().routes[0].Table.Len(); n != 0 {
		t.Errorf("table holds %d entries, want 0", n)
	}
	if got := h.podOf(strings.Repeat("k", 256)); got == "" {
		t.Error("a 256-byte key was refused")
	}
}

func TestKeyFallbacks(t *testing.T) {
	pods := threePods(t)
	c := oneRoute(pods...)
	c.Routes[0].Sticky.Cookie = "sid"
	c.Routes[0].Sticky.Query = "session"
	h := startProxy(t, c)
	want := h.podOf("shared-key")
	for _, tc := range []struct {
		name    string
		path    string
		headers []string
	}{
		{"from the cookie", "/", []string{"Cookie: theme=dark; sid=shared-key"}},
		{"from the query", "/?session=shared-key", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 3 {
				_, got := h.get(tc.path, tc.headers...)
				if got != want {
					t.Errorf("got %s, want %s (the header's pod for the same key)", got, want)
				}
			}
		})
	}
	t.Run("from the client address", func(t *testing.T) {
		c := oneRoute(pods...)
		c.Routes[0].Sticky.ClientIP = true
		h := startProxy(t, c)
		_, first := h.get("/")
		for range 5 {
			if _, got := h.get("/"); got != first {
				t.Fatalf("got %s, want %s for the same client address", got, first)
			}
		}
		if n := h.p.state.Load().routes[0].Table.Len(); n != 1 {
			t.Errorf("table holds %d entries, want 1 (127.0.0.1)", n)
		}
	})
}

func TestLearningFromTheResponse(t *testing.T) {
	login := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/login" {
				w.Header().Set("X-Session", "issued-by-"+name)
			}
			fmt.Fprint(w, name)
		}
	}
	pods := []*testPod{newTestPod(t, "web-0", login("web-0")), newTestPod(t, "web-1", login("web-1"))}
	c := oneRoute(pods...)
	c.Routes[0].Sticky.Learn = true
	h := startProxy(t, c)
	_, issuer := h.get("/login")
	for range 4 {
		if got := h.podOf("issued-by-" + issuer); got != issuer {
			t.Fatalf("learned key went to %s, want %s which issued it", got, issuer)
		}
	}
}

func TestRoutesMatchHeadersHostAndPath(t *testing.T) {
	apache, nginx, api, other, login := newTestPod(t, "apache", nil), newTestPod(t, "nginx", nil), newTestPod(t, "api", nil), newTestPod(t, "other", nil), newTestPod(t, "login", nil)
	shop := newTestPod(t, "shop", nil)
	route := func(name string, m config.Match, p *testPod) config.Route {
		return config.Route{Name: name, Match: m, Backends: []config.Backend{{Name: p.name, URL: p.url()}}}
	}
	h := startProxy(t, &config.Config{Routes: []config.Route{
		route("apache", config.Match{Headers: map[string]string{"X-Route": "apache"}}, apache),
		route("nginx", config.Match{Headers: map[string]string{"X-Route": "nginx"}}, nginx),
		route("api", config.Match{Host: "api.example.com", PathPrefix: "/v1/"}, api),
		route("other", config.Match{PathPrefix: "/static"}, other),
		route("login", config.Match{Path: "/login"}, login),
		route("shop", config.Match{Host: "*.shop.example.com"}, shop),
	}})
	cases := []struct {
		name    string
		path    string
		headers []string
		want    string
		code    int
	}{
		{"X-Route apache", "/", []string{"X-Route: apache"}, "apache", 200},
		{"X-Route nginx", "/", []string{"X-Route: nginx"}, "nginx", 200},
		{"host and path prefix", "/v1/users", []string{"Host: API.example.com:8080"}, "api", 200},
		{"host without the prefix", "/v2/users", []string{"Host: api.example.com"}, "podpin: no route matches this request\n", 404},
		{"a path prefix alone", "/static/app.js", nil, "other", 200},
		{"a prefix matches whole path elements only", "/staticfiles", nil, "podpin: no route matches this request\n", 404},
		{"an exact path", "/login", nil, "login", 200},
		{"a wildcard host matches one label", "/", []string{"Host: eu.shop.example.com"}, "shop", 200},
		{"a wildcard host does not match two labels", "/", []string{"Host: a.eu.shop.example.com"}, "podpin: no route matches this request\n", 404},
		{"an exact path does not match below it", "/login/x", nil, "podpin: no route matches this request\n", 404},
		{"nothing matching", "/", []string{"X-Route: haproxy"}, "podpin: no route matches this request\n", 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+h.addr+c.path, nil)
			for _, hv := range c.headers {
				name, value, _ := strings.Cut(hv, ": ")
				if name == "Host" {
					req.Host = value
				} else {
					req.Header.Set(name, value)
				}
			}
			resp, body := h.do(req)
			if resp.StatusCode != c.code || body != c.want {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, c.code, c.want)
			}
		})
	}
}

func TestPodHeaderCanBeRenamedOrTurnedOff(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	for _, tc := range []struct {
		setting *string
		header  string
	}{
		{nil, "X-Podpin-Pod"},
		{ptr("X-Served-By"), "X-Served-By"},
		{ptr(""), ""},
	} {
		c := oneRoute(pod)
		c.PodHeader = tc.setting
		h := startProxy(t, c)
		resp, _ := h.get("/", "X-Session: a")
		for _, name := range []string{"X-Podpin-Pod", "X-Served-By"} {
			got := resp.Header.Get(name)
			want := ""
			if name == tc.header {
				want = "web-0"
			}
			if got != want {
				t.Errorf("pod header setting %v: %s = %q, want %q", tc.header, name, got, want)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
