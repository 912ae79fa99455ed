package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Key types the TLS workloads' certificate may have (PODPIN_BENCH_TLS_KEY).
const (
	keyECDSA = "ecdsa" // P-256, the default
	keyRSA   = "rsa"   // 2048 bits
)

// certFiles are one certificate as each program reads it.
type certFiles struct {
	cert, key string // PEM chain and key: podpin
	combined  string // chain and key in one file: HAProxy's crt
}

// writeCert writes a self-signed certificate for localhost and 127.0.0.1,
// with a key of the given type, into dir. Both proxies serve the same one.
func writeCert(dir, keyType string) (certFiles, error) {
	var (
		key crypto.Signer
		err error
	)
	switch keyType {
	case keyECDSA:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case keyRSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return certFiles{}, fmt.Errorf("key type %q: want %s or %s", keyType, keyECDSA, keyRSA)
	}
	if err != nil {
		return certFiles{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return certFiles{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return certFiles{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	f := certFiles{
		cert:     filepath.Join(dir, "tls.crt"),
		key:      filepath.Join(dir, "tls.key"),
		combined: filepath.Join(dir, "tls.pem"),
	}
	for file, data := range map[string][]byte{f.cert: certPEM, f.key: keyPEM, f.combined: append(certPEM, keyPEM...)} {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			return certFiles{}, err
		}
	}
	return f, nil
}
