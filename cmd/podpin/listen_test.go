package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
)

// TestListenFlagOverTheFile checks what --listen (with --tls-cert and
// --tls-key) does to the file's listeners: it moves the one listener and
// keeps its other settings, and refuses to guess among several.
func TestListenFlagOverTheFile(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	fileCert, fileKey := ca.WriteFiles(t, dir, "file", "file.test")
	flagCert, flagKey := ca.WriteFiles(t, dir, "flag", "flag.test")
	cfgFile := filepath.Join(dir, "podpin.yaml")
	edge := fmt.Sprintf(`{address: "127.0.0.1:8443", trustedProxies: [10.0.0.0/8], proxyProtocol: true, proxyProtocolSources: [10.1.0.0/16],
   tls: {minVersion: "1.3", certificates: [{certFile: %q, keyFile: %q}]}}`, fileCert, fileKey)
	moved := func(addr string, certs ...config.Certificate) []config.Listener {
		return []config.Listener{{
			Address:              addr,
			TrustedProxies:       []string{"10.0.0.0/8"},
			ProxyProtocol:        true,
			ProxyProtocolSources: []string{"10.1.0.0/16"},
			TLS:                  &config.ListenerTLS{MinVersion: config.TLS13, Certificates: certs},
		}}
	}
	for _, tt := range []struct {
		name      string
		listeners string // the listeners: section of the file, "" for none
		flags     []string
		want      []config.Listener
		wantErr   string // "" for success
	}{
		{
			name:      "the one listener moves and keeps its proxies, PROXY protocol and TLS",
			listeners: "[" + edge + "]",
			flags:     []string{"--listen", "0.0.0.0:9443"},
			want:      moved("0.0.0.0:9443", config.Certificate{CertFile: fileCert, KeyFile: fileKey}),
		},
		{
			name:      "--tls-cert replaces the certificates and keeps the TLS version",
			listeners: "[" + edge + "]",
			flags:     []string{"--listen", "0.0.0.0:9443", "--tls-cert", flagCert, "--tls-key", flagKey},
			want:      moved("0.0.0.0:9443", config.Certificate{CertFile: flagCert, KeyFile: flagKey}),
		},
		{
			name:      "--tls-cert turns a cleartext listener into a TLS one",
			listeners: "[{address: 127.0.0.1:8080, trustedProxies: [10.0.0.0/8]}]",
			flags:     []string{"--listen", ":8443", "--tls-cert", flagCert, "--tls-key", flagKey},
			want: []config.Listener{{Address: ":8443", TrustedProxies: []string{"10.0.0.0/8"},
				TLS: &config.ListenerTLS{MinVersion: config.TLS12, Certificates: []config.Certificate{{CertFile: flagCert, KeyFile: flagKey}}}}},
		},
		{
			name:  "a file without listeners gets one at the flag's address",
			flags: []string{"--listen", ":9000"},
			want:  []config.Listener{{Address: ":9000"}},
		},
		{
			name:      "without the flag the file's listeners stay",
			listeners: "[{address: 127.0.0.1:8080}, " + edge + "]",
			want: append([]config.Listener{{Address: "127.0.0.1:8080"}},
				moved("127.0.0.1:8443", config.Certificate{CertFile: fileCert, KeyFile: fileKey})...),
		},
		{
			name:      "several listeners are refused, naming the flag",
			listeners: "[{address: 127.0.0.1:8080}, " + edge + "]",
			flags:     []string{"--listen", ":9000"},
			wantErr:   "--listen cannot choose among the 2 listeners of " + cfgFile,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			yaml := "routes:\n- name: default\n  backends: [{name: web-0, url: 'http://127.0.0.1:9001'}]\n"
			if tt.listeners != "" {
				yaml = "listeners: " + tt.listeners + "\n" + yaml
			}
			if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := parseServeFlags(append([]string{"--config", cfgFile}, tt.flags...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := f.load()
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("got error %v, want listeners %+v", err, tt.want)
			case !reflect.DeepEqual(cfg.Listeners, tt.want):
				t.Errorf("listeners: got %s, want %s", listenersString(cfg.Listeners), listenersString(tt.want))
			}
		})
	}
}

func listenersString(ls []config.Listener) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "%+v", l)
		if l.TLS != nil {
			fmt.Fprintf(&b, " tls %+v", *l.TLS)
		}
		b.WriteString("; ")
	}
	return b.String()
}

// TestListenFlagKeepsTheListenersEdgeSettings runs podpin with a file whose
// one listener takes the PROXY protocol from 127.0.0.1, trusts the proxy
// the header names, and terminates TLS, and with --listen moving it to a
// free port. A client sends the PROXY header, then TLS, then a request:
// the pod sees the address from the header and the forwarded host the
// trusted proxy sent, which takes every one of those settings.
func TestListenFlagKeepsTheListenersEdgeSettings(t *testing.T) {
	seen := make(chan http.Header, 1)
	pod := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		fmt.Fprint(w, "web-0")
	})
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, dir, "tls", "podpin.test")
	cfg := filepath.Join(dir, "podpin.yaml")
	file := fmt.Sprintf(`listeners:
- address: 127.0.0.1:1
  proxyProtocol: true
  proxyProtocolSources: [127.0.0.1]
  trustedProxies: [192.0.2.9]
  tls: {certificates: [{certFile: %q, keyFile: %q}]}
admin: {address: 127.0.0.1:0}
routes:
- name: default
  backends: [{name: web-0, url: %q}]
`, certFile, keyFile, pod)
	if err := os.WriteFile(cfg, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPodpin(t, "--config", cfg, "--listen", "127.0.0.1:0")
	if strings.HasSuffix(p.addr, ":1") {
		t.Fatalf("podpin listens on %s, the file's address, want the --listen one", p.addr)
	}

	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "PROXY TCP4 192.0.2.9 127.0.0.1 40000 443\r\n"); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, ca.Client("podpin.test"))
	req, _ := http.NewRequest("GET", "https://podpin.test/", nil)
	req.Header.Set("X-Forwarded-Host", "edge.example")
	if err := req.Write(tc); err != nil {
		t.Fatalf("request over TLS after the PROXY header: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), req)
	if err != nil {
		t.Fatalf("response over TLS after the PROXY header: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "web-0" {
		t.Fatalf("got %d %q, want 200 from web-0", resp.StatusCode, body)
	}
	h := <-seen
	if got := h.Get("X-Forwarded-For"); got != "192.0.2.9" {
		t.Errorf("pod received X-Forwarded-For %q, want 192.0.2.9 from the PROXY header", got)
	}
	if got := h.Get("X-Forwarded-Host"); got != "edge.example" {
		t.Errorf("pod received X-Forwarded-Host %q, want the trusted proxy's edge.example", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("pod received X-Forwarded-Proto %q, want https", got)
	}
}
