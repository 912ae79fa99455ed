package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/certstest"
)

// curlResult is what one curl run showed: the status, the body, the
// certificate's subject, the protocol ALPN settled on and the HTTP version
// of the answer ("1.1", "2").
type curlResult struct {
	code          string
	body          string
	subject, alpn string
	version       string
}

var (
	curlSubject = regexp.MustCompile(`(?m)^\*\s+subject: .*CN ?= ?([^,\s]+)`)
	curlALPN    = regexp.MustCompile(`(?m)^\* ALPN(?:, server accepted to use|: server accepted) (\S+)`)
)

// curlTLS asks podpin at addr for / over TLS as host (which curl sends as
// SNI; an IP address sends none), with curl's own TLS stack. args come
// before the URL.
func curlTLS(t *testing.T, addr, host string, args ...string) curlResult {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed (Debian package curl)")
	}
	_, port, _ := net.SplitHostPort(addr)
	url := "https://" + net.JoinHostPort(host, port) + "/"
	all := append([]string{"-sS", "-v", "--max-time", "10", "-w", "\n%{http_code} %{http_version}"}, args...)
	if net.ParseIP(host) == nil {
		all = append(all, "--resolve", host+":"+port+":127.0.0.1")
	}
	cmd := exec.Command("curl", append(all, url)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %v: %v\n%s", cmd.Args, err, errOut.String())
	}
	r := parseCurl(out.String())
	if m := curlSubject.FindStringSubmatch(errOut.String()); m != nil {
		r.subject = m[1]
	}
	if m := curlALPN.FindStringSubmatch(errOut.String()); m != nil {
		r.alpn = m[1]
	}
	return r
}

// parseCurl reads the body, status and HTTP version that curl printed
// with -w "\n%{http_code} %{http_version}".
func parseCurl(out string) curlResult {
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		return curlResult{}
	}
	code, version, _ := strings.Cut(out[i+1:], " ")
	return curlResult{body: out[:i], code: code, version: version}
}

func TestCurlOverTLSWithSNI(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	caFile := ca.WriteCAFile(t, dir)
	var certs strings.Builder
	for _, names := range [][]string{{"default.test"}, {"api.example.com"}, {"*.apps.test"}} {
		c, k := ca.WriteFiles(t, dir, strings.TrimPrefix(names[0], "*."), names...)
		fmt.Fprintf(&certs, "    - {certFile: %q, keyFile: %q}\n", c, k)
	}
	pods := []string{"web-0=" + namedPod(t, "web-0", 0).URL, "web-1=" + namedPod(t, "web-1", 0).URL, "web-2=" + namedPod(t, "web-2", 0).URL}
	cfg := filepath.Join(dir, "podpin.yaml")
	writeConfig(t, cfg, "", pods...)
	b, _ := os.ReadFile(cfg)
	file := strings.Replace(string(b), "listeners: [{address: 127.0.0.1:0}]\n",
		"listeners:\n- address: 127.0.0.1:0\n  tls:\n    certificates:\n"+certs.String(), 1)
	if err := os.WriteFile(cfg, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPodpin(t, "--config", cfg)

	for _, c := range []struct {
		name, host string
		args       []string
		want       string
	}{
		{"an exact name", "api.example.com", []string{"--cacert", caFile}, "api.example.com"},
		{"a wildcard", "shop.apps.test", []string{"--cacert", caFile}, "*.apps.test"},
		{"the default by name", "default.test", []string{"--cacert", caFile}, "default.test"},
		// The default does not name these hosts: curl is told not to check
		// the name, and the test checks which certificate came.
		{"an unknown name gets the default", "unknown.test", []string{"-k"}, "default.test"},
		{"no SNI gets the default", "127.0.0.1", []string{"-k"}, "default.test"},
	} {
		for _, proto := range []struct{ flag, alpn, version string }{
			{"--http1.1", "http/1.1", "1.1"},
			{"--http2", "h2", "2"},
		} {
			t.Run(c.name+" over "+proto.alpn, func(t *testing.T) {
				r := curlTLS(t, p.addr, c.host, append(c.args, proto.flag, "-H", "X-Session: curl-1")...)
				if r.code != "200" || !strings.HasPrefix(r.body, "web-") {
					t.Errorf("got %s %q, want 200 from a pod", r.code, r.body)
				}
				if r.subject != c.want {
					t.Errorf("got certificate %q, want %q", r.subject, c.want)
				}
				if r.alpn != proto.alpn || r.version != proto.version {
					t.Errorf("got ALPN %q and HTTP/%s, want %s and HTTP/%s", r.alpn, r.version, proto.alpn, proto.version)
				}
			})
		}
	}

	t.Run("a session keeps its pod over HTTP/1.1 and HTTP/2", func(t *testing.T) {
		first := curlTLS(t, p.addr, "api.example.com", "--cacert", caFile, "--http1.1", "-H", "X-Session: both-1")
		second := curlTLS(t, p.addr, "api.example.com", "--cacert", caFile, "--http2", "-H", "X-Session: both-1")
		if first.body != second.body || second.version != "2" {
			t.Errorf("HTTP/1.1 went to %q, HTTP/%s to %q: want HTTP/2 and the same pod", first.body, second.version, second.body)
		}
	})

	t.Run("sessions stick across connections", func(t *testing.T) {
		pods := map[string]bool{}
		for i := range 6 {
			key := fmt.Sprintf("X-Session: tls-%d", i)
			first := curlTLS(t, p.addr, "api.example.com", "--cacert", caFile, "--http1.1", "-H", key).body
			pods[first] = true
			for range 3 {
				if got := curlTLS(t, p.addr, "api.example.com", "--cacert", caFile, "--http1.1", "-H", key).body; got != first {
					t.Fatalf("%s: went to %q, then %q", key, first, got)
				}
			}
		}
		if len(pods) < 2 {
			t.Errorf("6 sessions all landed on %v: want them spread", pods)
		}
	})

	t.Run("the expiry of every certificate is a metric", func(t *testing.T) {
		resp, err := http.Get("http://" + p.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if n := strings.Count(string(b), "podpin_tls_certificate_expiry_timestamp_seconds{"); n != 3 {
			t.Errorf("got %d expiry series, want 3:\n%s", n, b)
		}
	})
}

// secretVolume lays files out as a Kubernetes Secret volume does: each
// file is a symlink through ..data, a symlink to a timestamped folder that
// an update replaces with one rename.
type secretVolume struct {
	dir string
	n   int
}

func (v *secretVolume) write(t *testing.T, crt, key []byte) {
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..2026_12_03_%02d", v.n)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tls.crt": crt, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(v.dir, ts, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if v.n == 1 {
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func TestQuickTLSFlagsAndRotationWithoutRestart(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	caFile := ca.WriteCAFile(t, dir)
	vol := &secretVolume{dir: filepath.Join(dir, "secret")}
	if err := os.Mkdir(vol.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	day := time.Now().Add(24 * time.Hour)
	c1, k1 := ca.Issue(t, day, "podpin.test")
	vol.write(t, c1, k1)
	p := startPodpin(t, "--listen", "127.0.0.1:0", "--backend", "web-0="+namedPod(t, "web-0", 0).URL,
		"--tls-cert", filepath.Join(vol.dir, "tls.crt"), "--tls-key", filepath.Join(vol.dir, "tls.key"))
	r := curlTLS(t, p.addr, "podpin.test", "--cacert", caFile, "--http1.1")
	if r.code != "200" || r.body != "web-0" || r.subject != "podpin.test" {
		t.Fatalf("got %s %q from certificate %q, want 200 web-0 from podpin.test", r.code, r.body, r.subject)
	}

	// The Secret is updated: a certificate for new names.
	c2, k2 := ca.Issue(t, day, "podpin.test", "rotated.test")
	vol.write(t, c2, k2)
	p.waitLog(t, `certificate reloaded`)
	if r := curlTLS(t, p.addr, "rotated.test", "--cacert", caFile, "--http1.1"); r.code != "200" || r.subject != "podpin.test" {
		t.Errorf("after rotation: got %s from %q, want 200 from the new certificate (valid for rotated.test)", r.code, r.subject)
	}

	// A malformed update keeps the rotated certificate.
	vol.write(t, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"), k2)
	p.waitLog(t, `certificate files did not load.*tls\.crt`)
	if r := curlTLS(t, p.addr, "rotated.test", "--cacert", caFile, "--http1.1"); r.code != "200" {
		t.Errorf("after a malformed update: got %s, want 200 from the certificate before it", r.code)
	}
}

func TestQuickTLSFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"a certificate without its key", []string{"--tls-cert", "/x.crt"}, "--tls-cert and --tls-key go together"},
		{"a missing certificate file", []string{"--tls-cert", "/nonexistent/tls.crt", "--tls-key", "/nonexistent/tls.key"},
			`listeners[0].tls.certificates[0].certFile: "/nonexistent/tls.crt" cannot be read: no such file or directory`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--backend", "web-0=http://127.0.0.1:1"}, tt.args...)
			r := runCLI(t, nil, args...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("podpin %v: got exit %d, stderr %q; want exit 1 naming %q", args, r.code, r.stderr, tt.want)
			}
		})
	}
}
