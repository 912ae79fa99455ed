package proxy

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/config"
)

// The tests here hold the filters and matches to what Gateway API's
// HTTPRoute spec (apis/v1/httproute_types.go) and the conformance suite's
// tests (conformance/tests/httproute-*.go, v1.7.0) check, with routes as a
// controller translates the suite's HTTPRoutes.

// TestRedirectURLsFollowGatewayAPI: the Location of a redirect, for the
// cases of HTTPRouteRedirectPath, HTTPRouteRedirectPortAndScheme,
// HTTPRouteRedirectScheme and HTTPRouteRedirectHostAndStatus, and the
// port rules of HTTPRequestRedirectFilter.Port.
func TestRedirectURLsFollowGatewayAPI(t *testing.T) {
	for _, c := range []struct {
		name     string
		matched  string // match.pathPrefix
		redirect config.Redirect
		scheme   string // of the request
		host     string // its Host
		listener string // its listener's port
		target   string // its path and query
		want     string
	}{
		// HTTPRouteRedirectPath, on a listener of port 80 (the suite
		// leaves port 80 out of the Host).
		{"prefix replaced", "/original-prefix", config.Redirect{PathPrefix: "/replacement-prefix"}, "http", "127.0.1.1", "80", "/original-prefix/lemon", "http://127.0.1.1/replacement-prefix/lemon"},
		{"full path replaced", "/full", config.Redirect{Path: "/full-path-replacement"}, "http", "127.0.1.1", "80", "/full/path/original", "http://127.0.1.1/full-path-replacement"},
		{"prefix and host", "/path-and-host", config.Redirect{Host: "example.org", PathPrefix: "/replacement-prefix"}, "http", "127.0.1.1", "80", "/path-and-host", "http://example.org/replacement-prefix"},
		{"full path and host", "/full-path-and-host", config.Redirect{Host: "example.org", Path: "/replacement-full"}, "http", "127.0.1.1", "80", "/full-path-and-host", "http://example.org/replacement-full"},
		{"the query is kept", "/original-prefix", config.Redirect{PathPrefix: "/replacement-prefix"}, "http", "127.0.1.1", "80", "/original-prefix/lemon?a=b&c", "http://127.0.1.1/replacement-prefix/lemon?a=b&c"},
		{"a prefix replaced by /", "/original-prefix", config.Redirect{PathPrefix: "/"}, "http", "127.0.1.1", "80", "/original-prefix/lemon", "http://127.0.1.1/lemon"},
		{"the whole path replaced by /", "/original-prefix", config.Redirect{PathPrefix: "/"}, "http", "127.0.1.1", "80", "/original-prefix", "http://127.0.1.1/"},

		// HTTPRouteRedirectPortAndScheme: a listener of port 80.
		{"80: scheme nil, port nil", "", config.Redirect{Host: "example.org"}, "http", "127.0.1.1", "80", "/p", "http://example.org/p"},
		{"80: scheme nil, port 80", "", config.Redirect{Host: "example.org", Port: 80}, "http", "127.0.1.1", "80", "/p", "http://example.org/p"},
		{"80: scheme nil, port 8080", "", config.Redirect{Host: "example.org", Port: 8080}, "http", "127.0.1.1", "80", "/p", "http://example.org:8080/p"},
		{"80: scheme https, port nil", "", config.Redirect{Host: "example.org", Scheme: "https"}, "http", "127.0.1.1", "80", "/p", "https://example.org/p"},
		{"80: scheme https, port 443", "", config.Redirect{Host: "example.org", Scheme: "https", Port: 443}, "http", "127.0.1.1", "80", "/p", "https://example.org/p"},
		{"80: scheme https, port 8443", "", config.Redirect{Host: "example.org", Scheme: "https", Port: 8443}, "http", "127.0.1.1", "80", "/p", "https://example.org:8443/p"},
		// A listener of port 8080: without scheme or port, its port.
		{"8080: scheme nil, port nil", "", config.Redirect{Host: "example.org"}, "http", "127.0.1.1:8080", "8080", "/p", "http://example.org:8080/p"},
		{"8080: a Host without the port", "", config.Redirect{Host: "example.org"}, "http", "example.com", "8080", "/p", "http://example.org:8080/p"},
		{"8080: scheme nil, port 80", "", config.Redirect{Host: "example.org", Port: 80}, "http", "127.0.1.1:8080", "8080", "/p", "http://example.org/p"},
		{"8080: scheme https, port nil", "", config.Redirect{Host: "example.org", Scheme: "https"}, "http", "127.0.1.1:8080", "8080", "/p", "https://example.org/p"},
		// An HTTPS listener of port 443.
		{"443: scheme nil, port nil", "", config.Redirect{Host: "example.org"}, "https", "example.org", "443", "/p", "https://example.org/p"},
		{"443: scheme nil, port 443", "", config.Redirect{Host: "example.org", Port: 443}, "https", "example.org", "443", "/p", "https://example.org/p"},
		{"443: scheme nil, port 8443", "", config.Redirect{Host: "example.org", Port: 8443}, "https", "example.org", "443", "/p", "https://example.org:8443/p"},
		{"443: scheme http, port nil", "", config.Redirect{Host: "example.org", Scheme: "http"}, "https", "example.org", "443", "/p", "http://example.org/p"},
		{"443: scheme http, port 80", "", config.Redirect{Host: "example.org", Scheme: "http", Port: 80}, "https", "example.org", "443", "/p", "http://example.org/p"},
		{"443: scheme http, port 8080", "", config.Redirect{Host: "example.org", Scheme: "http", Port: 8080}, "https", "example.org", "443", "/p", "http://example.org:8080/p"},

		// HTTPRouteRedirectHostAndStatus and the request's own host.
		{"the host only, from a Host with another port", "", config.Redirect{Host: "example.org"}, "http", "gw.example:1234", "80", "/p", "http://example.org/p"},
		{"nothing but the status: the request's own URL", "", config.Redirect{Status: 301}, "http", "gw.example", "80", "/p?q=1", "http://gw.example/p?q=1"},
		{"an IPv6 Host keeps its brackets", "", config.Redirect{PathPrefix: "/b"}, "http", "[::1]:8080", "8080", "/a", "http://[::1]:8080/b"},
		{"an IPv6 Host on port 80", "", config.Redirect{Scheme: "http"}, "http", "[::1]:8080", "8080", "/a", "http://[::1]/a"},
		{"the listener's port unknown: the Host's", "", config.Redirect{Path: "/x"}, "http", "gw.example:9000", "", "/a", "http://gw.example:9000/x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rd := c.redirect
			if rd.PathPrefix != "" && c.matched == "" {
				c.matched = "/a"
			}
			f := &filters{redirect: &rd, matched: c.matched}
			path, query, _ := strings.Cut(c.target, "?")
			if got := f.redirectURL(c.scheme, c.host, c.listener, path, query); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

// TestRedirectsEndToEnd: every status Gateway API allows goes out as
// set, and a redirect without scheme or port takes the port of the
// listener the request came in on, over HTTP/1.1 and HTTP/2.
func TestRedirectsEndToEnd(t *testing.T) {
	var routes []config.Route
	for _, code := range []int{301, 302, 303, 307, 308} {
		routes = append(routes, config.Route{
			Name:     fmt.Sprintf("r%d", code),
			Match:    config.Match{PathPrefix: fmt.Sprintf("/%d", code)},
			Redirect: &config.Redirect{Host: "example.org", PathPrefix: "/to", Status: code},
		})
	}
	h := startProxy(t, &config.Config{Routes: routes})
	_, port, _ := net.SplitHostPort(h.addr)
	for _, h2 := range []bool{false, true} {
		if h2 {
			h.useHTTP2()
		}
		h.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		for _, code := range []int{301, 302, 303, 307, 308} {
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/%d/x?y=1", h.addr, code), nil)
			req.Host = "gw.example" // no port: the listener's is used
			resp, _ := h.do(req)
			want := "http://example.org:" + port + "/to/x?y=1"
			if resp.StatusCode != code || resp.Header.Get("Location") != want {
				t.Errorf("HTTP/2 %v: got %d %q, want %d %q", h2, resp.StatusCode, resp.Header.Get("Location"), code, want)
			}
		}
	}
}

// TestPrefixReplacementsFollowGatewayAPI: ReplacePrefixMatch as the
// table of HTTPPathModifier.ReplacePrefixMatch gives it (its empty
// replacement written "/", which gives the same paths), and the cases of
// HTTPRouteRewritePath.
func TestPrefixReplacementsFollowGatewayAPI(t *testing.T) {
	for _, c := range []struct{ path, matched, prefix, want string }{
		{"/foo/bar", "/foo", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo", "/xyz/", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz/", "/xyz/bar"},
		{"/foo", "/foo", "/xyz", "/xyz"},
		{"/foo/", "/foo", "/xyz", "/xyz/"},
		{"/foo/bar", "/foo", "/", "/bar"},
		{"/foo/", "/foo", "/", "/"},
		{"/foo", "/foo", "/", "/"},
		// HTTPRouteRewritePath.
		{"/prefix/one/two", "/prefix/one", "/one", "/one/two"},
		{"/strip-prefix/three", "/strip-prefix", "/", "/three"},
		{"/strip-prefix", "/strip-prefix", "/", "/"},
		{"/prefix/rewrite-path-and-modify-headers/one", "/prefix/rewrite-path-and-modify-headers", "/prefix", "/prefix/one"},
		// A prefix of "/" matches everything; the replacement goes in
		// front.
		{"/a/b", "/", "/xyz", "/xyz/a/b"},
		{"/", "/", "/xyz", "/xyz/"},
	} {
		f := &filters{matched: c.matched}
		if got := f.newPath(c.path, "", c.prefix); got != c.want {
			t.Errorf("%s with prefix %s replaced by %s: got %s, want %s", c.path, c.matched, c.prefix, got, c.want)
		}
	}
}

// TestHeaderModifiersAsTheSuiteChecksThem: the cases of
// HTTPRouteRequestHeaderModifier and HTTPRouteResponseHeaderModifier:
// names in any case, set replacing every field of its name, add
// appending, remove; over HTTP/1.1 and HTTP/2, to HTTP/1.1 and h2c pods.
func TestHeaderModifiersAsTheSuiteChecksThem(t *testing.T) {
	for _, h2cPod := range []bool{false, true} {
		pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["X-Header-Set"] = []string{"pod-1", "pod-2"}
			h["X-Header-Add"] = []string{"pod-add"}
			h["X-Header-Remove"] = []string{"gone"}
			h["X-Header-Keep"] = []string{"kept"}
			fmt.Fprint(w, "web-0")
		})
		cfg := oneRoute(pod)
		if h2cPod {
			pod = newH2CPod(t, "web-0")
			cfg = h2cRoute(pod)
		}
		rc := &cfg.Routes[0]
		rc.RequestHeaders = config.HeaderEdits{
			Set:    map[string]string{"X-Header-Set": "header-set", "x-lower-set": "lower-set"},
			Add:    map[string]string{"X-Header-Add": "header-add", "x-Mixedcase-ADD": "mixed"},
			Remove: []string{"X-Header-Remove", "x-lower-remove"},
		}
		rc.ResponseHeaders = config.HeaderEdits{
			Set:    map[string]string{"x-header-set": "set-overwrites-values"},
			Add:    map[string]string{"X-HEADER-ADD": "add-appends-values", "X-New-Add": "new"},
			Remove: []string{"x-header-remove"},
		}
		h := startProxy(t, cfg)
		for _, h2 := range []bool{false, true} {
			if h2 {
				h.useHTTP2()
			}
			name := fmt.Sprintf("h2c pod %v, HTTP/2 %v", h2cPod, h2)
			req, _ := http.NewRequest("GET", "http://"+h.addr+"/", nil)
			req.Header["x-header-set"] = []string{"original-1", "original-2"}
			req.Header["x-header-add"] = []string{"original-val-add"}
			req.Header["x-header-remove"] = []string{"original-val-remove"}
			req.Header["X-Lower-Remove"] = []string{"x"}
			req.Header["Another-Header"] = []string{"another-header-val"}
			resp, body := h.do(req)
			if resp.StatusCode != 200 || body != "web-0" {
				t.Fatalf("%s: %d %q", name, resp.StatusCode, body)
			}
			got := pod.last().Header
			for field, want := range map[string]string{
				"X-Header-Set":    "header-set",
				"X-Lower-Set":     "lower-set",
				"X-Header-Add":    "original-val-add,header-add",
				"X-Mixedcase-Add": "mixed",
				"Another-Header":  "another-header-val",
				"X-Header-Remove": "",
				"X-Lower-Remove":  "",
			} {
				if v := strings.Join(got.Values(field), ","); v != want {
					t.Errorf("%s: the pod got %s %q, want %q", name, field, v, want)
				}
			}
			if h2cPod {
				continue // newH2CPod answers without the fields to edit
			}
			for field, want := range map[string]string{
				"X-Header-Set":    "set-overwrites-values",
				"X-Header-Add":    "pod-add,add-appends-values",
				"X-New-Add":       "new",
				"X-Header-Remove": "",
				"X-Header-Keep":   "kept",
			} {
				if v := strings.Join(resp.Header.Values(field), ","); v != want {
					t.Errorf("%s: the client got %s %q, want %q", name, field, v, want)
				}
			}
		}
	}
}

// TestMatchesAsTheSuiteChecksThem: header names in any case with exact
// values (HTTPRouteHeaderMatching), the first query parameter of a name
// with an exact value (HTTPRouteQueryParamMatching), and Gateway API's
// wildcard hostnames, over HTTP/1.1 and HTTP/2.
func TestMatchesAsTheSuiteChecksThem(t *testing.T) {
	pods := map[string]*testPod{}
	for _, name := range []string{"by-header", "by-query", "by-suffix", "other"} {
		pods[name] = newTestPod(t, name, nil)
	}
	route := func(name string, m config.Match) config.Route {
		return config.Route{Name: name, Match: m, Backends: []config.Backend{{Name: name, URL: pods[name].url()}}}
	}
	h := startProxy(t, &config.Config{Routes: []config.Route{
		route("by-header", config.Match{Headers: map[string]string{"version": "one", "COLOR": "orange"}}),
		route("by-query", config.Match{Query: map[string]string{"animal": "whale"}}),
		route("by-suffix", config.Match{HostSuffix: ".wildcard.org"}),
		route("other", config.Match{}),
	}})
	for _, h2 := range []bool{false, true} {
		if h2 {
			h.useHTTP2()
		}
		for _, c := range []struct {
			host, target string
			headers      map[string]string
			want         string
		}{
			{"gw", "/", map[string]string{"Version": "one", "Color": "orange"}, "by-header"},
			{"gw", "/", map[string]string{"version": "one", "color": "orange"}, "by-header"},
			{"gw", "/", map[string]string{"VERSION": "one", "COLOR": "orange"}, "by-header"},
			{"gw", "/", map[string]string{"Version": "One", "Color": "orange"}, "other"},
			{"gw", "/", map[string]string{"Version": "one"}, "other"},
			{"gw", "/?animal=whale", nil, "by-query"},
			{"gw", "/?animal=whale&animal=dolphin", nil, "by-query"},
			{"gw", "/?animal=dolphin&animal=whale", nil, "other"},
			{"gw", "/?animal=Whale", nil, "other"},
			{"gw", "/?ANIMAL=whale", nil, "other"},
			{"a.wildcard.org", "/", nil, "by-suffix"},
			{"a.b.wildcard.org:8080", "/", nil, "by-suffix"},
			{"wildcard.org", "/", nil, "other"},
		} {
			req, _ := http.NewRequest("GET", "http://"+h.addr+c.target, nil)
			req.Host = c.host
			for k, v := range c.headers {
				req.Header[k] = []string{v}
			}
			if resp, body := h.do(req); resp.StatusCode != 200 || body != c.want {
				t.Errorf("HTTP/2 %v: %s%s %v: got %d %q, want %q", h2, c.host, c.target, c.headers, resp.StatusCode, body, c.want)
			}
		}
	}
}
