package certs_test

import (
	"crypto/tls"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/certstest"
)

func TestSourcesGiveOneSourcePerAddress(t *testing.T) {
	s := certs.NewSources()
	var wg sync.WaitGroup
	got := make([]*certs.Source, 16)
	for i := range got {
		wg.Go(func() { got[i] = s.For("127.0.1.1:443") })
	}
	wg.Wait()
	for i, src := range got {
		if src == nil || src != got[0] {
			t.Fatalf("For from goroutine %d: got %p, want the one Source %p every caller gets", i, src, got[0])
		}
	}
	if s.For("127.0.1.2:443") == got[0] {
		t.Error("another address got the same Source")
	}
	var none *certs.Sources
	if none.For("127.0.1.1:443") != nil {
		t.Error("a nil Sources gave a Source")
	}
}

// TestAStoreWithoutFilesServesItsSourceAlone: a Store of no files serves
// what its Source holds; a name it has nothing for, with no default, fails
// the handshake, and the next handshake works once the Source has one.
func TestAStoreWithoutFilesServesItsSourceAlone(t *testing.T) {
	ca := certstest.NewCA(t)
	if _, err := certs.New(certs.Options{}); err == nil {
		t.Error("a Store with neither files nor a Source: got no error")
	}
	src := certs.NewSource()
	s, err := certs.New(certs.Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	handshake := func(name string) (string, error) {
		cfg := ca.Client("")
		cfg.ServerName = name
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}
	if got, err := handshake("a.test"); err == nil {
		t.Errorf("an empty Source: served %q, want the handshake to fail", got)
	}
	issue := func(names ...string) *tls.Certificate {
		cp, kp := ca.Issue(t, time.Now().Add(time.Hour), names...)
		c, err := certs.Parse(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	src.Set([]certs.HostCert{{Hosts: []string{"a.test"}, Cert: issue("a.test")}}, nil)
	if got, err := handshake("a.test"); err != nil || got != "a.test" {
		t.Errorf("a.test: served %q, %v; want its certificate", got, err)
	}
	for _, name := range []string{"b.test", ""} {
		if got, err := handshake(name); err == nil {
			t.Errorf("%q without a default: served %q, want the handshake to fail", name, got)
		}
	}
	if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "b.test"}); err == nil || !strings.Contains(err.Error(), `no certificate for server name "b.test"`) {
		t.Errorf("GetCertificate for b.test: got %v, want an error naming it", err)
	}
	src.Set(nil, issue("default.test"))
	if got, err := handshake("b.test"); err != nil || got != "default.test" {
		t.Errorf("b.test with a default: served %q, %v; want the default", got, err)
	}
}
