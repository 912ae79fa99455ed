package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/pires/go-proxyproto"
)

// PROXY protocol error reasons, as podpin_proxy_protocol_errors_total
// labels them.
const (
	proxyMissing = "missing" // no header: the first bytes were not a PROXY signature
	proxyInvalid = "invalid" // a signature, then a header that does not parse
	proxyTimeout = "timeout" // no complete header within the header timeout
)

// newProxyListener reads the PROXY protocol header (version 1 or 2, from
// HAProxy's specification, proxy-protocol.txt) that an L4 load balancer
// sends first on each connection from sources (empty: every peer), and
// hands the connection on with the client address the header carries. A
// connection from a source that sends no valid header within the timeout
// is closed and counted by reason. Peers outside sources are handed on at
// once, as they are.
func newProxyListener(ln net.Listener, sources []netip.Prefix, timeout time.Duration, onError func(reason string)) *handshakeListener {
	skip := func(c net.Conn) bool { return !mustSendProxy(sources, c.RemoteAddr()) }
	open := func(c net.Conn) (net.Conn, bool) { return readProxyHeader(c, onError), false }
	return newHandshakeListener(ln, timeout, open, skip, nil)
}

// mustSendProxy reports whether a peer is one of the sources.
func mustSendProxy(sources []netip.Prefix, a net.Addr) bool {
	if len(sources) == 0 {
		return true
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range sources {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// readProxyHeader reads c's PROXY header and returns c with the client
// address the header names, or nil when there is no valid header.
func readProxyHeader(c net.Conn, onError func(reason string)) net.Conn {
	br := bufio.NewReaderSize(c, 512)
	h, err := proxyproto.Read(br)
	if err != nil {
		reason := proxyInvalid
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			reason = proxyTimeout
		case errors.Is(err, proxyproto.ErrNoProxyProtocol):
			reason = proxyMissing
		}
		onError(reason)
		return nil
	}
	pc := &proxiedConn{Conn: c, remote: c.RemoteAddr()}
	if br.Buffered() > 0 {
		pc.buf = br
	}
	// A LOCAL header (the balancer's own health check) carries no client:
	// the peer stays the connection's address.
	if h.Command.IsProxy() {
		if a, ok := h.SourceAddr.(*net.TCPAddr); ok {
			pc.remote = a
		}
	}
	return pc
}

// proxiedConn is a connection whose PROXY header was read: its remote
// address is the client the header named, and the bytes read past the
// header are read first.
type proxiedConn struct {
	net.Conn
	remote net.Addr
	buf    *bufio.Reader // bytes read past the header; nil once drained
}

func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }

func (c *proxiedConn) Read(b []byte) (int, error) {
	if c.buf != nil {
		n, err := c.buf.Read(b)
		if c.buf.Buffered() == 0 {
			c.buf = nil
		}
		return n, err
	}
	return c.Conn.Read(b)
}

// ReadFrom lets a streamed response body reach the socket's own ReadFrom.
func (c *proxiedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }
