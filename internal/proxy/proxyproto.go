package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
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

// proxyListener reads the PROXY protocol header (version 1 or 2, from
// HAProxy's specification, proxy-protocol.txt) that an L4 load balancer
// sends first on each connection, and hands the connection on with the
// client address the header carries. The header is read in a goroutine of
// the connection's own, so a slow or silent peer never holds up the accept
// loop. A connection from a source that sends no valid header within the
// timeout is closed and counted. Peers outside sources are handed on at
// once, as they are.
//
// Safe for concurrent use. Close stops the accept loop and every header
// read, and waits for them.
type proxyListener struct {
	net.Listener
	sources []netip.Prefix // empty: every peer must send a header
	timeout time.Duration
	onError func(reason string)

	ready   chan net.Conn
	stopped chan struct{} // closed when the accept loop ends
	err     error         // why it ended; set before stopped is closed
	loop    sync.WaitGroup

	// guards pending and closed
	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections whose header is being read
	closed  bool
}

func newProxyListener(ln net.Listener, sources []netip.Prefix, timeout time.Duration, onError func(string)) *proxyListener {
	l := &proxyListener{
		Listener: ln,
		sources:  sources,
		timeout:  timeout,
		onError:  onError,
		ready:    make(chan net.Conn),
		stopped:  make(chan struct{}),
		pending:  map[net.Conn]struct{}{},
	}
	l.loop.Go(l.acceptLoop)
	return l
}

// Accept returns the next connection whose header was read, or whose peer
// sends none.
func (l *proxyListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.stopped:
		return nil, l.err
	}
}

// Close closes the listener, ends the header reads under way (their
// connections are closed) and waits for every goroutine it started.
func (l *proxyListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.pending {
		c.SetReadDeadline(aLongTimeAgo)
	}
	l.mu.Unlock()
	l.loop.Wait()
	return err
}

func (l *proxyListener) acceptLoop() {
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
		if !l.mustSend(c.RemoteAddr()) {
			l.handOn(c)
			continue
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

// mustSend reports whether a peer is one of the sources.
func (l *proxyListener) mustSend(a net.Addr) bool {
	if len(l.sources) == 0 {
		return true
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range l.sources {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// handOn passes a ready connection to Accept, or closes it when the
// listener stopped meanwhile.
func (l *proxyListener) handOn(c net.Conn) {
	select {
	case l.ready <- c:
	case <-l.stopped:
		c.Close()
	}
}

func (l *proxyListener) handshake(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(l.timeout))
	br := bufio.NewReaderSize(c, 512)
	h, err := proxyproto.Read(br)
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if err != nil {
		reason := proxyInvalid
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			reason = proxyTimeout
		case errors.Is(err, proxyproto.ErrNoProxyProtocol):
			reason = proxyMissing
		}
		l.onError(reason)
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
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
	l.handOn(pc)
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
