package demo

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
)

func TestConfigServesEveryPodAndKeepsRawKeys(t *testing.T) {
	cfg, err := Config(DefaultPods(), "127.0.0.1:18080", "127.0.0.1:19901", "hash")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	if len(cfg.Routes) != 1 || len(r.Backends) != 3 || r.Backends[2].URL != "http://127.0.0.1:9003" {
		t.Errorf("routes: got %+v, want one route over web-0, web-1 and web-2", cfg.Routes)
	}
	if !r.Table.KeepRawKeys || r.Balancer != "hash" || cfg.Listeners[0].Address != "127.0.0.1:18080" || cfg.Admin.Address != "127.0.0.1:19901" {
		t.Errorf("got %+v, want raw keys kept, the hash balancer and the addresses given", cfg)
	}
}

func TestConfigRefusesAnUnknownBalancer(t *testing.T) {
	if _, err := Config(DefaultPods(), "127.0.0.1:18080", "127.0.0.1:19901", "fastest"); err == nil || !strings.Contains(err.Error(), "routes[0].balancer") {
		t.Errorf("got %v, want an error naming routes[0].balancer", err)
	}
}

func TestGuideNamesTheListeners(t *testing.T) {
	var b strings.Builder
	WriteGuide(&b, "127.0.0.1:18080", "127.0.0.1:19901", "")
	for _, want := range []string{"behind podpin on 127.0.0.1:18080.", "curl http://127.0.0.1:18080/\n", "the console at http://127.0.0.1:19901/", "curl -s http://127.0.0.1:19901/metrics"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("guide lacks %q:\n%s", want, b.String())
		}
	}
}

func TestGuideOverTLSTrustsTheCertificate(t *testing.T) {
	var b strings.Builder
	WriteGuide(&b, "127.0.0.1:18443", "127.0.0.1:19901", "/tmp/d/demo.crt")
	for _, want := range []string{"curl --cacert /tmp/d/demo.crt https://127.0.0.1:18443/\n", "--http2 -si"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("guide lacks %q:\n%s", want, b.String())
		}
	}
}

func TestCertificateServesLocalhostAndLoopback(t *testing.T) {
	certFile, keyFile, err := WriteCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
