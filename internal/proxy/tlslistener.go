package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TLS handshake error reasons, as podpin_tls_handshake_errors_total labels
// them.
const (
	handshakeTimeout = "timeout" // no complete handshake within the header timeout
	handshakeEOF     = "eof"     // the client closed or reset the connection
	handshakeVersion = "version" // no protocol version in common (TLS 1.1 and older)
	handshakeNotTLS  = "not-tls" // the first bytes were not a TLS record (cleartext HTTP)
	handshakeOther   = "other"   // anything else: no common cipher, a bad message...
)

// tlsListener terminates TLS on the connections of the listener it wraps
// and hands on only those whose handshake completed. Each handshake runs
// in a goroutine of the connection's own, bounded by the timeout, so a
// slow or silent client never holds up the accept loop or another
// client. A failed handshake is counted by reason and logged at debug
// level; a client that spoke cleartext HTTP gets a one-line 400.
//
// Safe for concurrent use. Close stops the accept loop and every
// handshake under way, and waits for them.
type tlsListener struct {
	net.Listener
	config  *tls.Config
	timeout time.Duration
	onError func(reason string, err error)

	ready   chan net.Conn
	stopped chan struct{} // closed when the accept loop ends
	err     error         // why it ended; set before stopped is closed
	loop    sync.WaitGroup

	// guards pending and closed
	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections in their handshake
	closed  bool
}

func newTLSListener(ln net.Listener, config *tls.Config, timeout time.Duration, onError func(string, error)) *tlsListener {
	l := &tlsListener{
		Listener: ln,
		config:   config,
		timeout:  timeout,
		onError:  onError,
		ready:    make(chan net.Conn),
		stopped:  make(chan struct{}),
		pending:  map[net.Conn]struct{}{},
	}
	l.loop.Go(l.acceptLoop)
	return l
}

// Accept returns the next connection whose handshake completed.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.stopped:
		return nil, l.err
	}
}

// Close closes the listener, ends the handshakes under way (their
// connections are closed) and waits for every goroutine it started.
func (l *tlsListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.pending {
		c.SetDeadline(aLongTimeAgo)
	}
	l.mu.Unlock()
	l.loop.Wait()
	return err
}

func (l *tlsListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.err = err
			close(l.stopped)
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.pending[c] = struct{}{}
		l.mu.Unlock()
		l.loop.Go(func() { l.handshake(c) })
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	c.SetDeadline(time.Now().Add(l.timeout))
	tc := tls.Server(c, l.config)
	err := tc.Handshake()
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if err != nil {
		reason := handshakeReason(err)
		if rhe := (tls.RecordHeaderError{}); errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader[:]) {
			refuseConn(rhe.Conn, 400, errPlainHTTP)
		}
		l.onError(reason, err)
		c.Close()
		return
	}
	// The header timeout of the first request starts when the server takes
	// the connection.
	c.SetDeadline(time.Time{})
	select {
	case l.ready <- tc:
	case <-l.stopped:
		tc.Close()
	}
}

// handshakeReason sorts a failed handshake for the metric.
func handshakeReason(err error) string {
	var ne net.Error
	var rhe tls.RecordHeaderError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return handshakeTimeout
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
		return handshakeEOF
	case errors.As(err, &rhe):
		return handshakeNotTLS
	case strings.Contains(err.Error(), "unsupported versions"):
		// crypto/tls gives this error no type of its own.
		return handshakeVersion
	}
	return handshakeOther
}

// looksLikeHTTP reports whether a connection's first bytes open an HTTP/1
// request line rather than a TLS record.
func looksLikeHTTP(b []byte) bool {
	for _, m := range []string{"GET ", "HEAD", "POST", "PUT ", "DELE", "OPTI", "PATC", "CONN", "TRAC"} {
		if string(b[:len(m)]) == m {
			return true
		}
	}
	return false
}
