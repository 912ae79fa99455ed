package proxy

import (
	"net/http"
	"testing"

	"github.com/podpin/podpin/internal/config"
)

func TestForwardedHeadersPassOnlyFromTrustedProxies(t *testing.T) {
	sent := []string{
		"X-Session: a",
		"X-Forwarded-For: 203.0.113.7",
		"X-Forwarded-Proto: https",
		"X-Forwarded-Host: shop.example",
		"X-Forwarded-Port: 443",
	}
	for _, tt := range []struct {
		name    string
		trusted []string
		want    func(h *harness) map[string]string
	}{
		{
			name:    "a trusted load balancer's proto, host and port are kept",
			trusted: []string{"10.0.0.0/8", "127.0.0.1"},
			want: func(h *harness) map[string]string {
				return map[string]string{
					"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
					"X-Forwarded-Proto": "https",
					"X-Forwarded-Host":  "shop.example",
					"X-Forwarded-Port":  "443",
				}
			},
		},
		{
			name:    "any other peer's are overwritten",
			trusted: []string{"10.0.0.0/8"},
			want: func(h *harness) map[string]string {
				return map[string]string{
					"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
					"X-Forwarded-Proto": "http",
					"X-Forwarded-Host":  h.addr,
					"X-Forwarded-Port":  "",
				}
			},
		},
		{
			name: "no trusted list: overwritten as well",
			want: func(h *harness) map[string]string {
				return map[string]string{
					"X-Forwarded-Proto": "http",
					"X-Forwarded-Host":  h.addr,
					"X-Forwarded-Port":  "",
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := newTestPod(t, "web-0", nil)
			cfg := oneRoute(pod)
			cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0", TrustedProxies: tt.trusted}}
			h := startProxy(t, cfg)
			h.get("/", sent...)
			got := pod.last().Header
			for name, want := range tt.want(h) {
				if g := got.Get(name); g != want {
					t.Errorf("pod received %s: %q, want %q", name, g, want)
				}
			}
		})
	}
}

func TestTrustedProxiesMissingForwardedProtoGetPodpins(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	cfg := oneRoute(pod)
	cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0", TrustedProxies: []string{"127.0.0.0/8"}}}
	h := startProxy(t, cfg)
	h.get("/", "X-Session: a", "X-Forwarded-For: 203.0.113.7")
	got := pod.last().Header
	if g := got.Get("X-Forwarded-Proto"); g != "http" {
		t.Errorf("pod received X-Forwarded-Proto %q, want podpin's http", g)
	}
	if g := got.Get("X-Forwarded-Host"); g != h.addr {
		t.Errorf("pod received X-Forwarded-Host %q, want podpin's %q", g, h.addr)
	}
}

func TestClientIPKeysUseTheClientBehindTrustedProxies(t *testing.T) {
	for _, tt := range []struct {
		name    string
		trusted []string
		xff     []string // X-Forwarded-For fields, in order
		want    string   // the key pinned
	}{
		{"the rightmost address no trusted proxy vouches for", []string{"127.0.0.0/8", "10.0.0.0/8"},
			[]string{"192.0.2.1, 198.51.100.1, 10.1.2.3"}, "198.51.100.1"},
		{"across several fields", []string{"127.0.0.0/8", "10.0.0.0/8"},
			[]string{"198.51.100.2", "10.1.2.3"}, "198.51.100.2"},
		{"an entry that is no address ends the search", []string{"127.0.0.0/8", "10.0.0.0/8"},
			[]string{"198.51.100.3, unknown, 10.1.2.3"}, "10.1.2.3"},
		{"every hop trusted: the leftmost", []string{"127.0.0.0/8", "10.0.0.0/8"},
			[]string{"10.9.9.9, 10.1.2.3"}, "10.9.9.9"},
		{"no header: the peer", []string{"127.0.0.0/8"}, nil, "127.0.0.1"},
		{"an untrusted peer's header is not believed", []string{"10.0.0.0/8"},
			[]string{"198.51.100.4"}, "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := newTestPod(t, "web-0", nil)
			cfg := oneRoute(pod)
			cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0", TrustedProxies: tt.trusted}}
			cfg.Routes[0].Sticky.ClientIP = true
			h := startProxy(t, cfg)
			req, err := http.NewRequest("GET", "http://"+h.addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if resp, body := h.do(req); resp.StatusCode != 200 {
				t.Fatalf("status %d (%s), want 200", resp.StatusCode, body)
			}
			if _, err := h.p.Session("default", tt.want); err != nil {
				t.Errorf("key %q not pinned: %v", tt.want, err)
			}
			if page, _ := h.p.Sessions("default", SessionQuery{}); len(page.Sessions) != 1 {
				t.Errorf("sessions: got %d, want 1", len(page.Sessions))
			}
		})
	}
}
