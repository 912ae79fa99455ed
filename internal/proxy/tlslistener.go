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
// those whose handshake completed within the timeout: to h2 those that
// chose HTTP/2 by ALPN, to Accept the others. A failed handshake is
// counted by reason and logged at debug level (onError); a client that
// spoke cleartext HTTP gets a one-line 400.
func newTLSListener(ln net.Listener, config *tls.Config, timeout time.Duration, onError func(reason string, err error), h2 *connQueue) *handshakeListener {
	return newHandshakeListener(ln, timeout, func(c net.Conn) (net.Conn, bool) {
		tc := tls.Server(c, config)
		err := tc.Handshake()
		if err == nil {
			return tc, tc.ConnectionState().NegotiatedProtocol == "h2"
		}
		if rhe := (tls.RecordHeaderError{}); errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader[:]) {
			refuseConn(rhe.Conn, 400, errPlainHTTP)
		}
		onError(handshakeReason(err), err)
		return nil, false
	}, nil, h2)
}

// h2Preface opens every HTTP/2 connection (RFC 9113, section 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// newH2CListener sorts the cleartext connections of ln, whose connections
// are tracked (clientConn): those that open with the HTTP/2 preface (h2c
// with prior knowledge) go to h2, the others to Accept. The bytes read to
// tell them apart are read again by whoever serves the connection.
func newH2CListener(ln net.Listener, timeout time.Duration, h2 *connQueue) *handshakeListener {
	return newHandshakeListener(ln, timeout, func(c net.Conn) (net.Conn, bool) {
		cc := c.(*clientConn)
		h2c, err := cc.sniff(h2Preface)
		if err != nil {
			return nil, false
		}
		return cc, h2c
	}, nil, h2)
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
