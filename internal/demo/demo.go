package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// DefaultPods are the pods of 'podpin demo': web-0, web-1 and web-2 on
// 127.0.0.1:9001-9003.
func DefaultPods() []Pod {
	return []Pod{
		{Name: "web-0", Addr: "127.0.0.1:9001"},
		{Name: "web-1", Addr: "127.0.0.1:9002"},
		{Name: "web-2", Addr: "127.0.0.1:9003"},
	}
}

// Config returns the demo's configuration, defaulted and validated: one
// route over pods, keyed by the default header, with the listener, admin
// address and balancer given. Its table keeps raw keys: the demo's keys
// are names, not credentials, and the console and the CLI can show them.
func Config(pods []Pod, listen, admin, balancer string) (*config.Config, error) {
	route := config.Route{Name: config.DefaultRoute, Balancer: balancer, Table: config.Table{KeepRawKeys: true}}
	for _, p := range pods {
		route.Backends = append(route.Backends, config.Backend{Name: p.Name, URL: "http://" + p.Addr})
	}
	cfg := &config.Config{
		Listeners: []config.Listener{{Address: listen}},
		Admin:     config.Admin{Address: admin},
		Shutdown:  config.Shutdown{DrainTimeout: 2 * time.Second},
		Routes:    []config.Route{route},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// WriteGuide writes what to try once the demo serves on listen, with its
// admin listener on admin. With caFile, the listener speaks TLS with the
// certificate caFile holds (WriteCertificate).
func WriteGuide(w io.Writer, listen, admin, caFile string) {
	curl, base, h2 := "curl", "http://"+listen, "curl --http2-prior-knowledge"
	if caFile != "" {
		curl = "curl --cacert " + caFile
		base = "https://" + listen
		h2 = curl + " --http2"
	}
	fmt.Fprintf(w, `podpin demo: three pods (web-0, web-1, web-2 on 127.0.0.1:9001-9003) behind podpin on %[1]s.

A session sticks to its pod; the same key always reaches the same pod:
  %[3]s -H 'X-Session: alice' %[4]s/
  %[3]s -H 'X-Session: alice' %[4]s/
A new session is placed by the balancer (round-robin):
  %[3]s -H 'X-Session: bob' %[4]s/
  %[3]s -H 'X-Session: carol' %[4]s/
No key: balanced, nothing pinned:
  %[3]s %[4]s/
The X-Podpin-Pod response header names the pod:
  %[3]s -si -H 'X-Session: alice' %[4]s/ | grep -i x-podpin-pod
HTTP/2 on the same port, each stream placed on its own:
  %[5]s -si -H 'X-Session: alice' %[4]s/
Where every session lives: the console at http://%[2]s/ or the CLI
(go build -o podpin ./cmd/podpin):
  podpin sessions list
  podpin sessions get alice
  podpin sessions pin alice web-2
  podpin pods
Metrics:
  curl -s http://%[2]s/metrics | grep ^podpin_

Press Ctrl-C to stop.
`, listen, admin, curl, base, h2)
}

// WriteCertificate writes a self-signed certificate for localhost and
// 127.0.0.1, valid for a week, and its private key into dir, as PEM files
// for a listener's tls block; clients trust the certificate file itself.
func WriteCertificate(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "podpin demo"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "demo.crt"), filepath.Join(dir, "demo.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
