package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
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

// newTLSListener terminates TLS on the connections of ln and hands on only
// those whose handshake completed within the timeout. A failed handshake is
// counted by reason and logged at debug level (onError); a client that
// spoke cleartext HTTP gets a one-line 400.
func newTLSListener(ln net.Listener, config *tls.Config, timeout time.Duration, onError func(reason string, err error)) *handshakeListener {
	return newHandshakeListener(ln, timeout, func(c net.Conn) net.Conn {
		tc := tls.Server(c, config)
		err := tc.Handshake()
		if err == nil {
			return tc
		}
		if rhe := (tls.RecordHeaderError{}); errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader[:]) {
			refuseConn(rhe.Conn, 400, errPlainHTTP)
		}
		onError(handshakeReason(err), err)
		return nil
	}, nil)
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
