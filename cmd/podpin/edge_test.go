package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/podpin/podpin/internal/haproxytest"
)

// TestListenerEdgeSettingsBehindHAProxy runs podpin behind a real HAProxy
// that sends PROXY protocol v2, on a listener that also trusts the proxies
// of 127.0.0.0/8: the client's address (127.0.0.2) reaches the pod and the
// client-IP key, its X-Forwarded-Proto is kept, and a reload that changes
// the listener applies on the same port.
func TestListenerEdgeSettingsBehindHAProxy(t *testing.T) {
	seen := make(chan http.Header, 16)
	pod := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		fmt.Fprint(w, "web-0")
	})
	cfg := filepath.Join(t.TempDir(), "podpin.yaml")
	file := func() string {
		return fmt.Sprintf(`listeners:
- {address: 127.0.0.1:0, proxyProtocol: true, proxyProtocolSources: [127.0.0.1], trustedProxies: [127.0.0.0/8]}
admin: {address: 127.0.0.1:0}
routes:
- name: default
  sticky: {clientIP: true}
  backends: [{name: web-0, url: %q}]
`, pod)
	}
	if err := os.WriteFile(cfg, []byte(file()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPodpin(t, "--config", cfg)
	lb := haproxytest.StartTCP(t, p.addr, "send-proxy-v2")

	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	req, _ := http.NewRequest("GET", "http://"+lb+"/", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d through haproxy, want 200", resp.StatusCode)
	}
	h := <-seen
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.2" {
		t.Errorf("pod received X-Forwarded-For %q, want the client's 127.0.0.2", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("pod received X-Forwarded-Proto %q, want the trusted https", got)
	}
	// The client-IP key is the client's address, not HAProxy's.
	if s := adminGet(t, p, "/api/v1/routes/default/sessions/127.0.0.2"); !strings.Contains(s, "web-0") {
		t.Errorf("session of 127.0.0.2: got %s, want it pinned to web-0", s)
	}

	// A changed listener applies on reload, on the same port: HAProxy is
	// no longer a trusted proxy, so its X-Forwarded-Proto no longer
	// passes, while its PROXY header still names the client.
	changed := strings.Replace(file(), "trustedProxies: [127.0.0.0/8]", "trustedProxies: [10.0.0.0/8]", 1) + "podHeader: X-Served-By\n"
	if err := os.WriteFile(cfg, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	p.waitLog(t, `msg="configuration reloaded"`)
	metrics := adminGet(t, p, "/metrics")
	if !regexp.MustCompile(`(?m)^podpin_config_restart_pending_settings 0$`).MatchString(metrics) {
		t.Errorf("metrics: no podpin_config_restart_pending_settings 0")
	}
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Served-By"); got != "web-0" {
		t.Errorf("X-Served-By after the reload: got %q, want web-0", got)
	}
	h = <-seen
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.2" {
		t.Errorf("after the reload the pod received X-Forwarded-For %q, want 127.0.0.2 (the PROXY header still counts)", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("after the reload the pod received X-Forwarded-Proto %q, want podpin's own http (HAProxy is no longer trusted)", got)
	}
}

func httptestServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// adminGet returns the body of a GET on podpin's admin listener.
func adminGet(t *testing.T, p *process, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}
