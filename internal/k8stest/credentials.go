package k8stest

import (
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

// writeCredentials writes what kube-apiserver needs to authenticate itself
// and its clients into cp.dir:
//
//   - ca.crt, serving.crt, serving.key: a throwaway CA and the serving
//     certificate it signs for 127.0.0.1 and localhost, so clients verify
//     the server instead of skipping TLS verification;
//   - sa.key, sa.pub: the RSA key that signs and verifies service-account
//     tokens;
//   - tokens.csv: the static bearer tokens of the administrator and of
//     podpin's service account.
func (cp *ControlPlane) writeCredentials() error {
	caPEM, err := cp.writeServingCert()
	if err != nil {
		return fmt.Errorf("generating serving certificate: %w", err)
	}
	cp.caPEM = caPEM

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generating service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return fmt.Errorf("encoding service-account key: %w", err)
	}
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n%s,%s,podpin,\"%s\"\n",
		cp.AdminToken, cp.PodpinToken, PodpinUser, podpinGroups)
	return writeFiles(cp.dir, map[string][]byte{
		"sa.key":     pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)),
		"sa.pub":     pemBlock("PUBLIC KEY", pub),
		"tokens.csv": []byte(tokens),
	})
}

// writeServingCert writes a CA and a serving certificate it signed, and
// returns the CA certificate.
func (cp *ControlPlane) writeServingCert() ([]byte, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "podpin-test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	caPEM := pemBlock("CERTIFICATE", caDER)
	err = writeFiles(cp.dir, map[string][]byte{
		"ca.crt":      caPEM,
		"serving.crt": pemBlock("CERTIFICATE", der),
		"serving.key": pemBlock("EC PRIVATE KEY", keyDER),
	})
	return caPEM, err
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFiles(dir string, files map[string][]byte) error {
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
