package admin_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/proxy"
)

const token = "s3cret-token-value"

func TestAccessRules(t *testing.T) {
	e := startEnv(t, apiConfig(), admin.Options{Token: token})
	port := e.admin.Listener.Addr().(*net.TCPAddr).Port
	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		host   string // "" sends the listener address
		want   int
	}{
		{name: "a request without the token is refused", path: "/api/v1/routes", want: 401},
		{name: "a wrong token is refused", path: "/api/v1/routes", header: map[string]string{"Authorization": "Bearer wrong-" + token}, want: 401},
		{name: "a token cut short is refused", path: "/api/v1/routes", header: map[string]string{"Authorization": "Bearer " + token[:5]}, want: 401},
		{name: "the token in another scheme is refused", path: "/api/v1/routes", header: map[string]string{"Authorization": "Basic " + token}, want: 401},
		{name: "the right token is accepted", path: "/api/v1/routes", header: bearer(token), want: 200},
		{name: "the scheme name is case-insensitive", path: "/api/v1/routes", header: map[string]string{"Authorization": "bearer " + token}, want: 200},
		{name: "an edit without the token is refused", method: "DELETE", path: "/api/v1/routes/default/sessions?pod=web-0", want: 401},
		{name: "metrics need the token", path: "/metrics", want: 401},
		{name: "metrics are served with the token", path: "/metrics", header: bearer(token), want: 200},
		{name: "the profiler needs the token", path: "/debug/pprof/", want: 401},
		{name: "the profiler is served with the token", path: "/debug/pprof/cmdline", header: bearer(token), want: 200},
		{name: "the liveness probe stays open", path: "/healthz", want: 200},
		{name: "the readiness probe stays open", path: "/readyz", want: 200},
		{name: "the console page loads without the token so it can ask for it", path: "/", want: 200},
		{name: "the console script loads without the token", path: "/ui/console.js", want: 200},
		{name: "the console page is also at /ui/", path: "/ui/", want: 200},
		{name: "an unknown page needs the token", path: "/nope", want: 401},
		{name: "another site's origin is refused", path: "/api/v1/routes", header: with(bearer(token), "Origin", "http://evil.example"), want: 403},
		{name: "another site's origin is refused for the console too", path: "/", header: map[string]string{"Origin": "https://evil.example"}, want: 403},
		{name: "a null origin is refused", path: "/api/v1/routes", header: with(bearer(token), "Origin", "null"), want: 403},
		{name: "the listener's own origin is accepted", path: "/api/v1/routes", header: with(bearer(token), "Origin", e.admin.URL), want: 200},
		{name: "a cross-site fetch is refused", path: "/api/v1/routes", header: with(bearer(token), "Sec-Fetch-Site", "cross-site"), want: 403},
		{name: "a foreign host on a loopback listener is refused", path: "/api/v1/routes", header: bearer(token), host: "evil.example:" + itoa(port), want: 403},
		{name: "a foreign host is refused before the token is asked", path: "/api/v1/routes", host: "rebind.evil.example", want: 403},
		{name: "localhost is accepted", path: "/api/v1/routes", header: bearer(token), host: "localhost:" + itoa(port), want: 200},
		{name: "IPv6 loopback is accepted", path: "/api/v1/routes", header: bearer(token), host: "[::1]:" + itoa(port), want: 200},
		{name: "a forwarded port on localhost is accepted", path: "/api/v1/routes", header: bearer(token), host: "127.0.0.1:8080", want: 200},
		{name: "probes answer whatever the host", path: "/healthz", host: "evil.example", want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			req, err := http.NewRequest(method, e.admin.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			code, body := e.do(req)
			if code != tt.want {
				t.Fatalf("got status %d, want %d; body %s", code, tt.want, body)
			}
			if code >= 400 && !strings.HasPrefix(body, "{") {
				t.Errorf("got body %q, want a JSON error", body)
			}
			if strings.Contains(body, token[:8]) {
				t.Errorf("body %q contains the token", body)
			}
		})
	}
}

func TestNoTokenOnLoopback(t *testing.T) {
	e := startEnv(t, apiConfig(), admin.Options{})
	for _, path := range []string{"/api/v1/routes", "/metrics", "/debug/pprof/", "/"} {
		if code, body := e.call("GET", path, ""); code != 200 {
			t.Errorf("GET %s: got %d %s, want 200 without a token on loopback", path, code, body)
		}
	}
	if code, _ := e.call("PUT", "/api/v1/routes/default/sessions/alice", `{"pod": "web-0"}`); code != 200 {
		t.Errorf("pin: got %d, want 200", code)
	}
}

// TestNonLoopbackListener checks that a listener bound to every interface
// accepts any Host (it sits behind Services and port forwards) and relies
// on the token alone.
func TestNonLoopbackListener(t *testing.T) {
	p := proxy.New(proxy.Options{})
	cfg := apiConfig()
	cfg.SetDefaults()
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s := admin.New(admin.Options{Address: "0.0.0.0:9901", Token: token, Inspector: p})
	for _, tt := range []struct {
		name  string
		token string
		want  int
	}{
		{"a named host with the token is accepted", token, 200},
		{"a named host without the token is refused", "", 401},
	} {
		req := httptest.NewRequest("GET", "http://podpin-admin.podpin.svc:9901/api/v1/routes", nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%s: got %d %s, want %d", tt.name, rec.Code, rec.Body, tt.want)
		}
	}
}

// TestGetNeverChangesState sends reads to the URLs that edit, with the
// bodies that would edit, and checks that nothing changed.
func TestGetNeverChangesState(t *testing.T) {
	e := startEnv(t, apiConfig(), admin.Options{})
	if code, _ := e.call("PUT", "/api/v1/routes/default/sessions/bob", `{"pod": "web-1"}`); code != 200 {
		t.Fatalf("pin bob: got %d, want 200", code)
	}
	for _, tt := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/api/v1/routes/default/sessions/alice", `{"pod": "web-0"}`, 404},
		{"HEAD", "/api/v1/routes/default/sessions/alice", `{"pod": "web-0"}`, 405},
		{"POST", "/api/v1/routes/default/sessions/alice", `{"pod": "web-0"}`, 405},
		{"PATCH", "/api/v1/routes/default/sessions/alice", `{"pod": "web-0"}`, 405},
		{"GET", "/api/v1/routes/default/sessions?pod=web-1", "", 200},
		{"POST", "/api/v1/routes/default/sessions?pod=web-1", "", 405},
		{"GET", "/api/v1/routes/default/sessions/bob", "", 200},
		{"GET", "/api/v1/routes/default/sessions/bob?pod=web-0", `{"pod": "web-0"}`, 200},
	} {
		if code, body := e.call(tt.method, tt.path, tt.body); code != tt.want {
			t.Errorf("%s %s: got %d %s, want %d", tt.method, tt.path, code, body, tt.want)
		}
	}
	if _, err := e.proxy.Session("default", "alice"); !errors.Is(err, proxy.ErrNoSuchSession) {
		t.Errorf("alice after reads: got error %v, want %v", err, proxy.ErrNoSuchSession)
	}
	s, err := e.proxy.Session("default", "bob")
	if err != nil || s.Pod != "web-1" || s.Hits != 0 {
		t.Errorf("bob after reads: got %+v, %v; want still on web-1 with no hits", s, err)
	}
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func with(h map[string]string, k, v string) map[string]string {
	h[k] = v
	return h
}

func itoa(n int) string { return strconv.Itoa(n) }
