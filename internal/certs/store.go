// Package certs serves a TLS listener's certificates: it loads them from
// PEM files, picks one per handshake by the name the client asks for
// (SNI), and reloads the files when they change, without a restart.
//
// Selection, for a client that sends server name N: with a Source (the
// certificates of Ingress Secrets, or of a Gateway listener: Sources keeps
// one per listener address), its certificate for N first, see Source. A
// Store without files serves its Source alone. Then the first certificate
// with N among its DNS names, else the first with a wildcard name that
// covers N (*.example.com covers a.example.com, not a.b.example.com nor
// example.com), else the default, which is the first certificate. A client
// that sends no name gets the default.
//
// Reload: every second (Options.Interval) the files are read again and
// compared with what was loaded; a pair whose files changed is parsed
// anew. Reading through the file's path follows symlink swaps, so the
// atomic updates of Kubernetes Secret and ConfigMap volumes (a ..data
// symlink moved to a new folder) are seen. A pair that no longer loads
// (malformed PEM, a key that does not match) keeps serving its previous
// certificate; the error is logged once per change, with the file names,
// and counted.
//
// Metrics (through the Metrics interface; internal/metrics implements it):
//
//	podpin_tls_certificate_expiry_timestamp_seconds{listener,name}  each served certificate's notAfter
//	podpin_tls_certificate_reload_errors_total{listener}            changed files that did not load
package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often the files are checked for changes.
const DefaultInterval = time.Second

// Pair is one certificate: a PEM certificate chain (leaf first) and its
// private key.
type Pair struct {
	CertFile string
	KeyFile  string
}

// Metrics receives the store's measurements. A nil Metrics records nothing.
type Metrics interface {
	// CertificateExpiry records when the certificate named name (its
	// certificate file) of listener expires.
	CertificateExpiry(listener, name string, notAfter time.Time)
	// CertificateReloadError counts a changed pair of files that did not
	// load.
	CertificateReloadError(listener string)
}

// Options configure a Store.
type Options struct {
	// Listener names the listener in logs and metrics (its address).
	Listener string
	// Pairs are the certificates; the first is the default. At least one,
	// unless Source is given: a Store without files serves the Source's
	// certificates alone, and fails a handshake the Source has no
	// certificate for.
	Pairs []Pair
	// MinVersion is the oldest TLS version accepted. Zero: TLS 1.2.
	MinVersion uint16
	// NextProtos are the ALPN protocols offered, in order of preference.
	// Empty: none is negotiated.
	NextProtos []string
	// Interval is how often the files are checked. Zero: DefaultInterval.
	Interval time.Duration
	// Logger gets reload errors and replaced certificates. Nil: discarded.
	Logger *slog.Logger
	// Metrics, when not nil, gets expiry times and reload errors.
	Metrics Metrics
	// Source, when not nil, holds certificates that come before the
	// files' (see Source).
	Source *Source
}

// Store holds a listener's certificates. Safe for concurrent use: a
// handshake reads an immutable index that a reload replaces whole.
type Store struct {
	o     Options
	index atomic.Pointer[index]
	// loaded is each pair's last loaded files; only Run touches it after New.
	loaded []loadedPair
}

// loadedPair is what a pair's files held when they were last read.
type loadedPair struct {
	cert, key []byte
	tls       *tls.Certificate
}

// index finds a certificate for a server name.
type index struct {
	exact    map[string]*tls.Certificate
	wildcard map[string]*tls.Certificate // by the name without its "*."
	def      *tls.Certificate
}

// New loads every pair. Any pair that does not load is an error naming its
// files: a listener does not start without all of its certificates.
func New(o Options) (*Store, error) {
	if len(o.Pairs) == 0 && o.Source == nil {
		return nil, fmt.Errorf("no certificate")
	}
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{o: o, loaded: make([]loadedPair, len(o.Pairs))}
	for i, p := range o.Pairs {
		lp, err := readPair(p)
		if err != nil {
			return nil, err
		}
		s.loaded[i] = lp
	}
	s.rebuild()
	return s, nil
}

// TLSConfig returns a server configuration that takes its certificates
// from the store.
func (s *Store) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     s.o.MinVersion,
		NextProtos:     s.o.NextProtos,
		GetCertificate: s.GetCertificate,
	}
}

// GetCertificate picks the certificate for a handshake, as the package doc
// says. An unknown name gets the default; it fails only in a Store without
// files whose Source has no certificate for the name and no default.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if src := s.o.Source; src != nil {
		if c := src.find(hello.ServerName); c != nil {
			return c, nil
		}
		ix := s.index.Load()
		if c := ix.findOwn(hello.ServerName); c != nil {
			return c, nil
		}
		if c := src.def(); c != nil {
			return c, nil
		}
		if ix.def == nil {
			return nil, fmt.Errorf("no certificate for server name %q", hello.ServerName)
		}
		return ix.def, nil
	}
	return s.index.Load().find(hello.ServerName), nil
}

// findOwn returns the certificate with name among its names (exact or by
// wildcard), nil when there is none.
func (ix *index) findOwn(name string) *tls.Certificate {
	if name == "" {
		return nil
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if c, ok := ix.exact[name]; ok {
		return c
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c, ok := ix.wildcard[parent]; ok {
			return c
		}
	}
	return nil
}

func (ix *index) find(name string) *tls.Certificate {
	if c := ix.findOwn(name); c != nil {
		return c
	}
	return ix.def
}

// Run checks the files every interval and reloads the pairs that changed,
// until ctx ends.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.Check()
	}
}

// Check reads the files once and reloads the pairs that changed. It
// reports whether any certificate was replaced. Run calls it; it is not
// safe to call concurrently with Run.
func (s *Store) Check() bool {
	changed := false
	for i, p := range s.o.Pairs {
		cur := &s.loaded[i]
		cert, errC := os.ReadFile(p.CertFile)
		key, errK := os.ReadFile(p.KeyFile)
		if errC == nil && errK == nil && bytes.Equal(cert, cur.cert) && bytes.Equal(key, cur.key) {
			continue
		}
		lp, err := loadPair(p, cert, errC, key, errK)
		if err != nil {
			// Remember the bad content so the error is logged once per
			// change, while the previous certificate keeps serving.
			cur.cert, cur.key = cert, key
			s.o.Logger.Error("certificate files did not load; the previous certificate stays",
				"listener", s.o.Listener, "certFile", p.CertFile, "keyFile", p.KeyFile, "err", err)
			if s.o.Metrics != nil {
				s.o.Metrics.CertificateReloadError(s.o.Listener)
			}
			continue
		}
		*cur = lp
		changed = true
		s.o.Logger.Info("certificate reloaded", "listener", s.o.Listener, "certFile", p.CertFile,
			"names", lp.tls.Leaf.DNSNames, "notAfter", lp.tls.Leaf.NotAfter)
	}
	if changed {
		s.rebuild()
	}
	return changed
}

// rebuild makes a new index from the loaded certificates and publishes it.
// A pair whose files never loaded is skipped; New guarantees there is none.
func (s *Store) rebuild() {
	ix := &index{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}}
	for i, lp := range s.loaded {
		c := lp.tls
		if ix.def == nil {
			ix.def = c
		}
		for _, n := range c.Leaf.DNSNames {
			n = strings.ToLower(n)
			m := ix.exact
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				m, n = ix.wildcard, rest
			}
			if _, taken := m[n]; !taken {
				m[n] = c
			}
		}
		if s.o.Metrics != nil {
			s.o.Metrics.CertificateExpiry(s.o.Listener, s.o.Pairs[i].CertFile, c.Leaf.NotAfter)
		}
	}
	s.index.Store(ix)
}

// readPair reads and parses a pair's files.
func readPair(p Pair) (loadedPair, error) {
	cert, errC := os.ReadFile(p.CertFile)
	key, errK := os.ReadFile(p.KeyFile)
	return loadPair(p, cert, errC, key, errK)
}

func loadPair(p Pair, cert []byte, errC error, key []byte, errK error) (loadedPair, error) {
	if errC != nil {
		return loadedPair{}, fmt.Errorf("reading certificate: %w", errC)
	}
	if errK != nil {
		return loadedPair{}, fmt.Errorf("reading key: %w", errK)
	}
	c, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return loadedPair{}, fmt.Errorf("certificate %q with key %q: %w", p.CertFile, p.KeyFile, err)
	}
	return loadedPair{cert: cert, key: key, tls: &c}, nil
}

// Validate loads a pair once, as New would, and reports why it does not
// load.
func Validate(p Pair) error {
	_, err := readPair(p)
	return err
}
