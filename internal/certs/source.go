package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"sync/atomic"
)

// Source holds certificates that come from somewhere other than files
// (the kubernetes.io/tls Secrets of Ingresses), for every listener whose
// Store takes it (Options.Source). Set replaces its whole content at once;
// a handshake reads it with one atomic load and no lock.
//
// A Source's certificates come before the Store's files: a host listed in
// the Source gets the Source's certificate; any other name is looked up
// among the files; a name found nowhere gets the Source's default when it
// has one, else the files' default.
type Source struct {
	set      atomic.Pointer[sourceSet]
	redirect atomic.Pointer[map[string]bool]
}

type sourceSet struct {
	hosts    map[string]*tls.Certificate // exact names, lower case
	wildcard map[string]*tls.Certificate // by the name without its "*."
	def      *tls.Certificate
}

// HostCert is one certificate for the hosts it serves.
type HostCert struct {
	// Hosts are the server names the certificate is served for, exact or
	// wildcards ("*.example.com" covers a.example.com, as in Store).
	Hosts []string
	Cert  *tls.Certificate
}

// NewSource returns an empty Source: every Store that takes it serves its
// own files until Set gives it certificates.
func NewSource() *Source {
	s := &Source{}
	s.set.Store(&sourceSet{hosts: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}})
	s.redirect.Store(&map[string]bool{})
	return s
}

// SetRedirects replaces the hosts whose cleartext requests are redirected
// to https (lower case, without a port).
func (s *Source) SetRedirects(hosts map[string]bool) {
	s.redirect.Store(&hosts)
}

// Redirects reports whether a cleartext request for host (as in the Host
// header: any case, maybe with a port) is redirected to https. A nil
// Source redirects nothing.
func (s *Source) Redirects(host []byte) bool {
	if s == nil {
		return false
	}
	m := *s.redirect.Load()
	if len(m) == 0 || len(host) == 0 {
		return false
	}
	h := string(host)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return m[strings.ToLower(h)]
}

// Set replaces the Source's certificates: each HostCert's hosts get its
// certificate (the first one listed for a host wins); def, when not nil, is
// the default for names nothing else serves.
func (s *Source) Set(certs []HostCert, def *tls.Certificate) {
	ss := &sourceSet{hosts: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}, def: def}
	for _, hc := range certs {
		for _, h := range hc.Hosts {
			h = strings.ToLower(strings.TrimSuffix(h, "."))
			m := ss.hosts
			if rest, ok := strings.CutPrefix(h, "*."); ok {
				m, h = ss.wildcard, rest
			}
			if _, taken := m[h]; !taken && hc.Cert != nil {
				m[h] = hc.Cert
			}
		}
	}
	s.set.Store(ss)
}

// find returns the Source's certificate for name, nil when it has none.
func (s *Source) find(name string) *tls.Certificate {
	ss := s.set.Load()
	if name == "" {
		return nil
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if c, ok := ss.hosts[name]; ok {
		return c
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		return ss.wildcard[parent]
	}
	return nil
}

func (s *Source) def() *tls.Certificate { return s.set.Load().def }

// Parse makes a certificate from PEM data, as a kubernetes.io/tls Secret
// holds it (tls.crt and tls.key), with its leaf parsed. The error says what
// is wrong.
func Parse(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	if len(certPEM) == 0 {
		return nil, fmt.Errorf("tls.crt is empty")
	}
	if len(keyPEM) == 0 {
		return nil, fmt.Errorf("tls.key is empty")
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &c, nil
}
