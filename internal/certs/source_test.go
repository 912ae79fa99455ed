package certs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/certstest"
)

func TestASourceComesBeforeTheFilesAndSwapsWhole(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	c0, k0 := ca.WriteFiles(t, dir, "file-default", "file-default.test")
	c1, k1 := ca.WriteFiles(t, dir, "file-wild", "*.example.com")
	src := certs.NewSource()
	s, err := certs.New(certs.Options{Pairs: []certs.Pair{{CertFile: c0, KeyFile: k0}, {CertFile: c1, KeyFile: k1}}, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	issue := func(names ...string) *certs.HostCert {
		cp, kp := ca.Issue(t, time.Now().Add(time.Hour), names...)
		c, err := certs.Parse(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		return &certs.HostCert{Hosts: names, Cert: c}
	}
	// The client sends the name and checks the chain, not the name: a
	// default certificate is not valid for it.
	served := func(name string) string {
		cfg := ca.Client("")
		cfg.ServerName = name
		return certstest.Served(t, addr, cfg)
	}

	// Empty: the files alone.
	if got := served("a.example.com"); got != "*.example.com" {
		t.Errorf("a.example.com, empty source: served %q", got)
	}
	if got := served("other.test"); got != "file-default.test" {
		t.Errorf("other.test, empty source: served %q", got)
	}

	a := issue("a.example.com")
	wild := issue("*.apps.test")
	def := issue("secret-default.test")
	src.Set([]certs.HostCert{*a, *wild}, def.Cert)
	for name, want := range map[string]string{
		"x.apps.test":   "*.apps.test",         // a wildcard host of the source
		"x.y.apps.test": "secret-default.test", // a wildcard covers one label
		"a.example.com": "a.example.com",       // the source's own host, before the file's wildcard
		"b.example.com": "*.example.com",       // the files' names before the source's default
		"other.test":    "secret-default.test", // the source's default before the files'
	} {
		if got := served(name); got != want {
			t.Errorf("%s: served %q, want %q", name, got, want)
		}
	}

	// A new set replaces the old one whole.
	src.Set(nil, nil)
	if got := served("a.example.com"); got != "*.example.com" {
		t.Errorf("a.example.com after clearing: served %q", got)
	}
	if got := served("other.test"); got != "file-default.test" {
		t.Errorf("other.test after clearing: served %q", got)
	}
}

func TestParseSaysWhatIsWrong(t *testing.T) {
	ca := certstest.NewCA(t)
	cp, kp := ca.Issue(t, time.Now().Add(time.Hour), "x.test")
	_, otherKey := ca.Issue(t, time.Now().Add(time.Hour), "y.test")
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"no cert", nil, kp, "tls.crt is empty"},
		{"no key", cp, nil, "tls.key is empty"},
		{"garbage", []byte("not pem"), kp, "failed to find any PEM data"},
		{"mismatch", cp, otherKey, "does not match"},
	} {
		_, err := certs.Parse(tc.cert, tc.key)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
	c, err := certs.Parse(cp, kp)
	if err != nil || c.Leaf == nil || c.Leaf.Subject.CommonName != "x.test" {
		t.Errorf("good pair: %v, %v", c, err)
	}
}
