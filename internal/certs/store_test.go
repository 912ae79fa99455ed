package certs_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/logtest"
	"github.com/podpin/podpin/internal/metrics"
)

// serve runs a TLS server on the store's configuration that completes
// handshakes and closes, and returns its address.
func serve(t *testing.T, s *certs.Store) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				c.Read(make([]byte, 1))
			}()
		}
	}()
	return ln.Addr().String()
}

func TestCertificatesAreChosenByServerName(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	var pairs []certs.Pair
	for _, names := range [][]string{
		{"default.test"},
		{"a.example.com", "b.example.com"},
		{"*.example.com"},
		{"*.wild.test", "exact.wild.test"},
		{"a.example.com"}, // a later certificate never takes a name an earlier one has
	} {
		c, k := ca.WriteFiles(t, dir, strings.ReplaceAll(names[0], "*", "star")+"-"+string(rune('0'+len(pairs))), names...)
		pairs = append(pairs, certs.Pair{CertFile: c, KeyFile: k})
	}
	s, err := certs.New(certs.Options{Pairs: pairs})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	for _, c := range []struct{ sni, want string }{
		{"a.example.com", "a.example.com"},
		{"B.Example.com", "a.example.com"}, // names are case-insensitive; b is the second name of that certificate
		{"c.example.com", "*.example.com"},
		{"x.y.example.com", "default.test"}, // a wildcard covers one label only
		{"example.com", "default.test"},
		{"exact.wild.test", "*.wild.test"},
		{"other.test", "default.test"},
		{"", "default.test"},
	} {
		cfg := ca.Client(c.sni)
		if c.sni == "x.y.example.com" || c.sni == "example.com" || c.sni == "other.test" {
			// The default does not name these: check which one came, not the name.
			cfg = ca.Client("")
			cfg.ServerName = c.sni
		}
		if got := certstest.Served(t, addr, cfg); got != c.want {
			t.Errorf("SNI %q: got certificate %q, want %q", c.sni, got, c.want)
		}
	}
}

func TestTLS11IsRefused(t *testing.T) {
	ca := certstest.NewCA(t)
	c, k := ca.WriteFiles(t, t.TempDir(), "a", "a.test")
	for _, v := range []struct {
		min     uint16
		version uint16
		ok      bool
	}{
		{0, tls.VersionTLS11, false},
		{0, tls.VersionTLS12, true},
		{tls.VersionTLS13, tls.VersionTLS12, false},
		{tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		s, err := certs.New(certs.Options{Pairs: []certs.Pair{{CertFile: c, KeyFile: k}}, MinVersion: v.min})
		if err != nil {
			t.Fatal(err)
		}
		addr := serve(t, s)
		cfg := ca.Client("a.test")
		cfg.MinVersion, cfg.MaxVersion = v.version, v.version
		conn, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			conn.Close()
		}
		if (err == nil) != v.ok {
			t.Errorf("min %x, client %x: got error %v, want success %v", v.min, v.version, err, v.ok)
		}
	}
}

// kubeVolume lays out files as a Kubernetes Secret volume does: the files
// are symlinks through ..data, a symlink to a timestamped folder, which an
// update replaces with one rename.
type kubeVolume struct {
	dir string
	n   int
}

func (v *kubeVolume) write(t *testing.T, files map[string][]byte) {
	t.Helper()
	v.n++
	ts := filepath.Join(v.dir, "..2026_"+string(rune('a'+v.n)))
	if err := os.Mkdir(ts, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(ts, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(v.dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func TestRotationBySymlinkSwapAndABadFileKeepsTheOld(t *testing.T) {
	ca := certstest.NewCA(t)
	vol := &kubeVolume{dir: t.TempDir()}
	c1, k1 := ca.Issue(t, time.Now().Add(24*time.Hour), "one.test")
	vol.write(t, map[string][]byte{"tls.crt": c1, "tls.key": k1})
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, nil)
	log, logs := logtest.New()
	certFile := filepath.Join(vol.dir, "tls.crt")
	s, err := certs.New(certs.Options{
		Listener: ":8443",
		Pairs:    []certs.Pair{{CertFile: certFile, KeyFile: filepath.Join(vol.dir, "tls.key")}},
		Interval: 20 * time.Millisecond,
		Logger:   log,
		Metrics:  m,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := serve(t, s)
	served := func() string { return certstest.Served(t, addr, withName(ca.Client(""), "x.test")) }
	expiry := func() float64 {
		return value(t, reg, "podpin_tls_certificate_expiry_timestamp_seconds", "name", certFile)
	}
	if got := served(); got != "one.test" {
		t.Fatalf("got %q, want one.test", got)
	}
	firstExpiry := expiry()

	notAfter := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	c2, k2 := ca.Issue(t, notAfter, "two.test")
	vol.write(t, map[string][]byte{"tls.crt": c2, "tls.key": k2})
	waitFor(t, "the rotated certificate", func() bool { return served() == "two.test" })
	if got := expiry(); got != float64(notAfter.Unix()) || got == firstExpiry {
		t.Errorf("expiry metric: got %v, want %v", got, notAfter.Unix())
	}

	// A malformed certificate, then a key that belongs to another one.
	c3, _ := ca.Issue(t, notAfter, "three.test")
	for i, bad := range [][]byte{[]byte("-----BEGIN CERTIFICATE-----\nnot base64\n"), c3} {
		vol.write(t, map[string][]byte{"tls.crt": bad, "tls.key": k2})
		waitFor(t, "a reload error", func() bool {
			return value(t, reg, "podpin_tls_certificate_reload_errors_total", "listener", ":8443") == float64(i+1)
		})
	}
	if got := served(); got != "two.test" {
		t.Errorf("after bad files: got %q, want the previous two.test", got)
	}
	if l := logs.String(); strings.Count(l, "certificate files did not load") != 2 || !strings.Contains(l, certFile) {
		t.Errorf("want two errors naming %s, got log:\n%s", certFile, l)
	}
}

func withName(c *tls.Config, name string) *tls.Config {
	c.ServerName = name
	return c
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// value is the value of the metric name whose label has the value v; 0
// when there is none.
func value(t *testing.T, reg *prometheus.Registry, name, label, v string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == v {
					if m.Gauge != nil {
						return m.Gauge.GetValue()
					}
					return m.Counter.GetValue()
				}
			}
		}
	}
	return 0
}
