package ingress

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podpin/podpin/internal/certs"
)

// ReasonTLSSecret: a Secret named in spec.tls is missing or does not hold a
// usable certificate; its hosts get the default certificate.
const ReasonTLSSecret = "InvalidTLSSecret"

// secretLabel is the listener label of the expiry metric for certificates
// read from Secrets, whose name label is the Secret's namespace/name.
const secretLabel = "ingress"

// CertMetrics receives the expiry of the certificates read from Secrets;
// *metrics.Metrics is one.
type CertMetrics interface {
	CertificateExpiry(listener, name string, notAfter time.Time)
	CertificateGone(listener, name string)
}

// secretCert is a Secret's certificate as last read, by its
// resourceVersion, so a Secret is parsed again only when it changes.
type secretCert struct {
	version string
	cert    *tls.Certificate
	err     error
}

// readSecret returns the certificate of the Secret ns/name, parsed again
// only when the Secret changed. c.mu must be held.
func (c *Controller) readSecret(ns, name string) (*tls.Certificate, error) {
	key := ns + "/" + name
	c.secretsRead[key] = true
	sec, err := c.secrets.Secrets(ns).Get(name)
	if err != nil {
		delete(c.secretCache, key)
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("Secret %s not found (or not of type %s)", key, corev1.SecretTypeTLS)
		}
		return nil, fmt.Errorf("Secret %s: %w", key, err)
	}
	if sc, ok := c.secretCache[key]; ok && sc.version == sec.ResourceVersion {
		return sc.cert, sc.err
	}
	cert, err := certs.Parse(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		err = fmt.Errorf("Secret %s does not hold a certificate and its key: %w", key, err)
	}
	c.secretCache[key] = secretCert{version: sec.ResourceVersion, cert: cert, err: err}
	return cert, err
}

// updateCertificatesLocked gives the certificate source the certificates
// of the served Ingresses' spec.tls and the default Secret, and the hosts
// to redirect to https. An Ingress whose Secret is missing or malformed
// gets a Warning Event naming it, once per change; its hosts get the
// default certificate. c.mu must be held.
func (c *Controller) updateCertificatesLocked(list []*networkingv1.Ingress) {
	if c.certSource == nil {
		return
	}
	c.secretsRead = map[string]bool{}
	byKey := map[string]*networkingv1.Ingress{}
	for _, ing := range list {
		byKey[ing.Namespace+"/"+ing.Name] = ing
	}
	keys := make([]string, 0, len(c.known))
	for key, st := range c.known {
		if st.valid {
			keys = append(keys, key)
		}
	}
	// Oldest first, as routes are: the first Ingress to list a host
	// serves its certificate.
	slices.SortFunc(keys, func(a, b string) int {
		if d := c.known[a].spec.created.Compare(c.known[b].spec.created); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	var hostCerts []certs.HostCert
	redirect := map[string]bool{}
	used := map[string]*tls.Certificate{}
	for _, key := range keys {
		st := c.known[key]
		var msgs []string
		for i, t := range st.spec.tls {
			hosts := t.hosts
			if len(hosts) == 0 {
				// No hosts: the hosts of the Ingress's rules.
				for _, r := range st.spec.rules {
					if r.host != "" {
						hosts = append(hosts, r.host)
					}
				}
			}
			if st.redirect {
				for _, h := range hosts {
					redirect[h] = true
				}
			}
			if t.secret == "" {
				msgs = append(msgs, fmt.Sprintf("spec.tls[%d]: no secretName; hosts %s get the default certificate", i, strings.Join(hosts, ", ")))
				continue
			}
			cert, err := c.readSecret(st.spec.namespace, t.secret)
			if err != nil {
				msgs = append(msgs, fmt.Sprintf("spec.tls[%d]: %v; hosts %s get the default certificate", i, err, strings.Join(hosts, ", ")))
				continue
			}
			used[st.spec.namespace+"/"+t.secret] = cert
			hostCerts = append(hostCerts, certs.HostCert{Hosts: hosts, Cert: cert})
		}
		report := strings.Join(msgs, "\n")
		if report != st.tlsReport {
			st.tlsReport = report
			if ing := byKey[key]; ing != nil && c.recorder != nil {
				for _, m := range msgs {
					c.recorder.Event(ing, corev1.EventTypeWarning, ReasonTLSSecret, m)
				}
			}
			if report != "" {
				c.log.Warn("ingress TLS Secret not usable", "ingress", key, "problems", report)
			}
		}
	}

	var def *tls.Certificate
	if c.defaultSecret != "" {
		ns, name, _ := strings.Cut(c.defaultSecret, "/")
		cert, err := c.readSecret(ns, name)
		msg := ""
		if err != nil {
			msg = err.Error()
		} else {
			def = cert
			used[c.defaultSecret] = cert
		}
		if msg != c.defaultReport {
			c.defaultReport = msg
			if msg != "" {
				c.log.Error("the default TLS Secret is not usable; the listeners' own default certificate is served", "secret", c.defaultSecret, "error", msg)
			} else {
				c.log.Info("default TLS Secret loaded", "secret", c.defaultSecret, "names", cert.Leaf.DNSNames)
			}
		}
	}
	// Secrets no Ingress names any more leave the cache.
	for key := range c.secretCache {
		if !c.secretsRead[key] {
			delete(c.secretCache, key)
		}
	}
	c.certSource.Set(hostCerts, def)
	c.certSource.SetRedirects(redirect)

	if c.certMetrics != nil {
		for name, cert := range used {
			c.certMetrics.CertificateExpiry(secretLabel, name, cert.Leaf.NotAfter)
		}
		for name := range c.measured {
			if used[name] == nil {
				c.certMetrics.CertificateGone(secretLabel, name)
			}
		}
	}
	c.measured = used
}

// ParseSecretRef splits "namespace/name", as --default-tls-secret takes it.
func ParseSecretRef(s string) (ns, name string, err error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", errors.New("--default-tls-secret: want NAMESPACE/NAME, got " + fmt.Sprintf("%q", s))
	}
	return ns, name, nil
}
