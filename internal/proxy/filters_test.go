package proxy

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/podpin/podpin/internal/config"
)

// TestRoutesEditHeadersAndRewriteTheTarget: a route's header edits,
// host and path rewrites reach the pod, and its response edits reach the
// client, over HTTP/1.1 and HTTP/2, to HTTP/1.1 and h2c pods.
func TestRoutesEditHeadersAndRewriteTheTarget(t *testing.T) {
	for _, h2cPod := range []bool{false, true} {
		var pod *testPod
		if h2cPod {
			pod = newH2CPod(t, "web-0")
		} else {
			pod = newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Server", "app/1.0")
				w.Header().Set("X-Pod-Proto", r.Proto)
				fmt.Fprint(w, "web-0")
			})
		}
		cfg := oneRoute(pod)
		if h2cPod {
			cfg = h2cRoute(pod)
		}
		rc := &cfg.Routes[0]
		rc.Match.PathPrefix = "/shop"
		rc.Rewrite = &config.Rewrite{Host: "store.internal", PathPrefix: "/store"}
		rc.RequestHeaders = config.HeaderEdits{Set: map[string]string{"X-Tenant": "blue"}, Add: map[string]string{"X-Trace": "podpin"}, Remove: []string{"X-Debug"}}
		rc.ResponseHeaders = config.HeaderEdits{Set: map[string]string{"X-Frame-Options": "DENY"}, Remove: []string{"Server"}}
		h := startProxy(t, cfg)
		for _, h2 := range []bool{false, true} {
			if h2 {
				h.useHTTP2()
			}
			name := fmt.Sprintf("h2c pod %v, HTTP/2 client %v", h2cPod, h2)
			resp, body := h.get("/shop/cart?id=7", "X-Session: k", "X-Tenant: red", "X-Trace: client", "X-Debug: 1")
			if resp.StatusCode != 200 || body != "web-0" {
				t.Fatalf("%s: %d %q", name, resp.StatusCode, body)
			}
			got := pod.last()
			if got.URL.Path != "/store/cart" || got.URL.RawQuery != "id=7" || got.Host != "store.internal" {
				t.Errorf("%s: the pod got %s %s?%s, want store.internal /store/cart?id=7", name, got.Host, got.URL.Path, got.URL.RawQuery)
			}
			if got.Header.Get("X-Forwarded-Host") != h.addr {
				t.Errorf("%s: X-Forwarded-Host %q, want the client's host", name, got.Header.Get("X-Forwarded-Host"))
			}
			if v := got.Header.Values("X-Tenant"); len(v) != 1 || v[0] != "blue" {
				t.Errorf("%s: X-Tenant %q, want [blue]", name, v)
			}
			if v := got.Header.Values("X-Trace"); len(v) != 2 || v[0] != "client" || v[1] != "podpin" {
				t.Errorf("%s: X-Trace %q, want [client podpin]", name, v)
			}
			if got.Header.Get("X-Debug") != "" {
				t.Errorf("%s: X-Debug reached the pod", name)
			}
			if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Server") == "app/1.0" {
				t.Errorf("%s: answer headers %v, want X-Frame-Options: DENY and not the pod's Server", name, resp.Header)
			}
		}
	}
}

// TestRoutesRedirect: a route that redirects answers with the URL its
// redirect makes, over HTTP/1.1 and HTTP/2, and reaches no pod.
func TestRoutesRedirect(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	cfg := &config.Config{Routes: []config.Route{
		{Name: "to-https", Match: config.Match{Host: "old.example"}, Redirect: &config.Redirect{Scheme: "https", Host: "new.example", Status: 301}},
		{Name: "moved", Match: config.Match{PathPrefix: "/old"}, Redirect: &config.Redirect{PathPrefix: "/new", Port: 8443}},
		{Name: "web", Backends: []config.Backend{{Name: "web-0", URL: pod.url()}}},
	}}
	h := startProxy(t, cfg)
	h.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, h2 := range []bool{false, true} {
		if h2 {
			h.useHTTP2()
			h.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		}
		for _, c := range []struct {
			host, target string
			code         int
			location     string
		}{
			{"old.example:8080", "/a/b?x=1", 301, "https://new.example/a/b?x=1"},
			{"shop.example:8080", "/old/item?x=1", 302, "http://shop.example:8443/new/item?x=1"},
			{"shop.example", "/old", 302, "http://shop.example:8443/new"},
		} {
			req, _ := http.NewRequest("GET", "http://"+h.addr+c.target, nil)
			req.Host = c.host
			resp, _ := h.do(req)
			if resp.StatusCode != c.code || resp.Header.Get("Location") != c.location {
				t.Errorf("HTTP/2 %v: %s%s: %d %q, want %d %q", h2, c.host, c.target, resp.StatusCode, resp.Header.Get("Location"), c.code, c.location)
			}
		}
	}
	if pod.last() != nil {
		t.Error("a redirected request reached the pod")
	}
}

func TestNewPathReplacesTheMatchedPrefix(t *testing.T) {
	for _, c := range []struct{ matched, path, prefix, want string }{
		{"/prefix/one", "/prefix/one/two", "/one", "/one/two"},
		{"/strip-prefix", "/strip-prefix/three", "/", "/three"},
		{"/strip-prefix", "/strip-prefix", "/", "/"},
		{"/shop/", "/shop/cart", "/store/", "/store/cart"},
		{"/shop", "/shop", "/store", "/store"},
	} {
		f := &filters{matched: c.matched}
		if got := f.newPath(c.path, "", c.prefix); got != c.want {
			t.Errorf("matched %s, path %s, replaced by %s: got %s, want %s", c.matched, c.path, c.prefix, got, c.want)
		}
	}
}
