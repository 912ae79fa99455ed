package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/podpin/podpin/internal/config"
)

// podProtocol is the protocol podpin speaks to a pod: the route's
// pods.protocol when set, else what the pod's source says, HTTP/1.1 when
// it says nothing.
func podProtocol(route, endpoint string) string {
	switch {
	case route != "":
		return route
	case endpoint != "":
		return endpoint
	}
	return config.PodHTTP
}

// mayHaveHTTPS reports whether a pod of rc may speak https: the route says
// so, or leaves it to pods that can (a static backend written https://, or
// a Service's port, whose appProtocol may say https).
func mayHaveHTTPS(rc config.Route) bool {
	switch rc.Pods.Protocol {
	case config.PodHTTPS:
		return true
	case "":
		return rc.Service != nil || slices.ContainsFunc(rc.Backends, func(b config.Backend) bool {
			_, p, _ := config.BackendURL(b.URL)
			return p == config.PodHTTPS
		})
	}
	return false
}

// newPodTLS builds the TLS client configuration of rc's https pods, nil
// when none of its pods can speak https. The CA file is read now: one that
// cannot be read is an error naming the route and the field. Its
// ServerName is empty unless pods.tls.serverName sets it: each pod's
// client then checks the host of its own address. It offers no ALPN
// protocol, so a pod answers in HTTP/1.1; a client that speaks HTTP/2 to
// pods clones it and adds "h2".
func newPodTLS(rc config.Route) (*tls.Config, error) {
	if !mayHaveHTTPS(rc) {
		return nil, nil
	}
	t := rc.Pods.TLS
	roots, err := t.RootCAs()
	if err != nil {
		return nil, fmt.Errorf("route %q: pods.tls.caFile: %w", rc.Name, err)
	}
	return &tls.Config{
		RootCAs:            roots,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify,
		MinVersion:         tls.VersionTLS12,
		// New connections to a pod resume its TLS session: a cheaper
		// handshake when the pool grows again.
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
	}, nil
}

// samePodTLS reports whether a and b check pods alike, so connections made
// under one may serve the other.
func samePodTLS(a, b *tls.Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ServerName == b.ServerName && a.InsecureSkipVerify == b.InsecureSkipVerify &&
		a.RootCAs.Equal(b.RootCAs)
}

// forAddress returns cfg for the pod at addr (host:port): cfg itself when
// it names the server, else a copy that checks the host of addr.
func forAddress(cfg *tls.Config, addr string) *tls.Config {
	if cfg.ServerName != "" {
		return cfg
	}
	c := cfg.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		c.ServerName = host
	}
	return c
}

// dialTLS connects to addr and completes a TLS handshake with cfg, both
// within ctx. A failure to connect is a *dialError (nothing was sent, so
// another pod may be tried); a failed handshake is a *tlsError.
func dialTLS(ctx context.Context, d *net.Dialer, addr string, cfg *tls.Config) (net.Conn, error) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{err}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, &tlsError{err}
	}
	return tc, nil
}

// tlsError marks a failed TLS handshake with a pod: its certificate did not
// verify, or the pod does not speak TLS. The pod is not tried again at once
// and no other pod takes its session: the fault is its setup, not its
// load.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// reason says in one line why the handshake failed, for the 502 answer.
func (e *tlsError) reason() string {
	var cv *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(e.err, &unknown):
		return "certificate signed by unknown authority"
	case errors.As(e.err, &cv):
		return strings.TrimPrefix(cv.Err.Error(), "x509: ")
	case errors.Is(e.err, context.DeadlineExceeded):
		return "handshake not done in time (upstream.connectTimeout)"
	case errors.Is(e.err, io.EOF):
		return "connection closed during the handshake"
	}
	return strings.TrimPrefix(e.err.Error(), "tls: ")
}

func isTLSError(err error) (*tlsError, bool) {
	var te *tlsError
	ok := errors.As(err, &te)
	return te, ok
}
