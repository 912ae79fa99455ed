package admin_test

import (
	"encoding/json"
	"errors"
	"io"
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

const readToken = "read-only-token-value"

func TestReadOnlyTokenReadsAndCannotWrite(t *testing.T) {
	e := startEnv(t, apiConfig(), admin.Options{Token: token, ReadToken: readToken})
	if code, body := e.call("PUT", "/api/v1/routes/default/sessions/bob", `{"pod": "web-1"}`); code != 200 {
		t.Fatalf("pin bob with the admin token: got %d %s, want 200", code, body)
	}
	for _, tt := range []struct {
		name         string
		method, path string
		body         string
		token        string
		want         int
		wantError    string // the JSON error's text, for refusals
	}{
		{name: "routes are read", method: "GET", path: "/api/v1/routes", token: readToken, want: 200},
		{name: "a route's pods are read", method: "GET", path: "/api/v1/routes/default", token: readToken, want: 200},
		{name: "sessions are listed", method: "GET", path: "/api/v1/routes/default/sessions", token: readToken, want: 200},
		{name: "a session is read", method: "GET", path: "/api/v1/routes/default/sessions/bob", token: readToken, want: 200},
		{name: "metrics are read", method: "GET", path: "/metrics", token: readToken, want: 200},
		{name: "the console is read", method: "GET", path: "/", token: readToken, want: 200},
		{name: "a pin is refused", method: "PUT", path: "/api/v1/routes/default/sessions/alice", body: `{"pod": "web-0"}`, token: readToken, want: 403,
			wantError: "the read-only token cannot pin or delete sessions: it needs the admin token"},
		{name: "an unpin is refused", method: "DELETE", path: "/api/v1/routes/default/sessions/bob", token: readToken, want: 403,
			wantError: "the read-only token cannot pin or delete sessions: it needs the admin token"},
		{name: "a clear is refused", method: "DELETE", path: "/api/v1/routes/default/sessions?pod=web-1", token: readToken, want: 403,
			wantError: "the read-only token cannot pin or delete sessions: it needs the admin token"},
		{name: "the profiler is refused", method: "GET", path: "/debug/pprof/cmdline", token: readToken, want: 403,
			wantError: "the read-only token cannot use the profiler: it needs the admin token"},
		{name: "a wrong token is still unauthorized", method: "GET", path: "/api/v1/routes", token: "wrong", want: 401,
			wantError: "missing or wrong bearer token"},
		{name: "the admin token still unpins", method: "DELETE", path: "/api/v1/routes/default/sessions/bob", token: token, want: 204},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, e.admin.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tt.token)
			code, got := e.do(req)
			if code != tt.want {
				t.Fatalf("got status %d, want %d; body %s", code, tt.want, got)
			}
			if tt.wantError == "" {
				return
			}
			var msg struct{ Error string }
			if err := json.Unmarshal([]byte(got), &msg); err != nil || msg.Error != tt.wantError {
				t.Errorf("got body %q, want the error %q", got, tt.wantError)
			}
		})
	}
	if _, err := e.proxy.Session("default", "alice"); !errors.Is(err, proxy.ErrNoSuchSession) {
		t.Errorf("alice after a refused pin: got error %v, want %v", err, proxy.ErrNoSuchSession)
	}
}

func TestOpenMetricsNeedNoToken(t *testing.T) {
	e := startEnv(t, apiConfig(), admin.Options{Token: token, OpenMetrics: true})
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/metrics", 200},
		{"/api/v1/routes", 401},
		{"/debug/pprof/cmdline", 401},
	} {
		req, err := http.NewRequest("GET", e.admin.URL+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		code, body := e.do(req)
		if code != tt.want {
			t.Errorf("GET %s without a token: got %d, want %d", tt.path, code, tt.want)
		}
		if tt.path == "/metrics" && !strings.Contains(body, "podpin_table_lookups_total") {
			t.Errorf("GET /metrics without a token: got %.200q, want podpin's metrics", body)
		}
	}
	// Metrics open to scrapers are not open to other sites' pages.
	req, err := http.NewRequest("GET", e.admin.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "http://evil.example")
	if code, _ := e.do(req); code != 403 {
		t.Errorf("GET /metrics from another origin: got %d, want 403", code)
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
