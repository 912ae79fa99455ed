package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// sweepInterval is how often client connections are checked against their
// deadlines: a timeout fires up to two intervals late, never early.
const sweepInterval = 100 * time.Millisecond

// clientConns tracks a listener's client connections, HTTP/1.1 and HTTP/2
// alike: it caps them (limits.maxConnections) and counts them per address
// (limits.maxConnsPerIP), and enforces the header and idle timeouts of
// HTTP/1.1 connections (net/http's HTTP/2 server keeps its own).
//
// The timeouts are kept as HAProxy keeps its own: each connection carries
// the time its current wait ends, on a clock that a sweeping goroutine
// advances every sweepInterval, and the sweeper ends the waits that ran
// out. A request then costs two stores of a coarse time, where moving the
// socket's read deadline for each request and each keep-alive wait would
// cost a clock read and a runtime timer update each.
//
// A connection's deadline follows fasthttp's connection states
// (stateChanged): opened or a request's first byte in, the header timeout;
// the response written, the idle timeout; the handler reached, none (a
// request body sets its own deadline through SetReadDeadline). The sweeper
// ends a wait by moving the socket's read deadline to the past, so the read
// fails as a timeout and fasthttp answers it as it answers any: 408 for a
// request whose headers were late, a quiet close for an idle connection.
//
// Safe for concurrent use.
type clientConns struct {
	// listener names the listener (its configured address), for routes
	// that serve some listeners only.
	listener      string
	headerTimeout int64 // in ms
	idleTimeout   int64 // in ms
	maxConns      int   // 0: no cap
	maxPerAddr    int   // 0: no cap
	// trusted are the peers whose forwarding headers are believed
	// (listeners[].trustedProxies); empty: none.
	trusted []netip.Prefix
	// tls is set on a TLS listener: a connection over the cap is closed
	// without a cleartext answer the client could not read.
	tls bool
	// hostnames are those of the Gateway listeners sharing a TLS
	// listener, which misdirected requests are told from; nil: none.
	hostnames *listenerHostnames

	start time.Time
	now   atomic.Int64 // ms since start, advanced by run

	// guards conns and perAddr
	mu      sync.Mutex
	conns   map[*clientConn]struct{}
	perAddr map[netip.Addr]int
}

func newClientConns(listener string, lim limitSettings, trusted []netip.Prefix) *clientConns {
	return &clientConns{
		listener:      listener,
		trusted:       trusted,
		headerTimeout: lim.headerTimeout.Milliseconds(),
		idleTimeout:   lim.idleTimeout.Milliseconds(),
		maxConns:      lim.maxConnections,
		maxPerAddr:    lim.maxConnsPerIP,
		start:         time.Now(),
		conns:         map[*clientConn]struct{}{},
		perAddr:       map[netip.Addr]int{},
	}
}

// run advances the clock and ends the waits that ran out, until ctx ends.
func (cs *clientConns) run(ctx context.Context) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	var late []*clientConn
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Since(cs.start).Milliseconds()
		cs.now.Store(now)
		late = late[:0]
		cs.mu.Lock()
		for c := range cs.conns {
			if d := c.deadline.Load(); d != 0 && d <= now {
				late = append(late, c)
			}
		}
		cs.mu.Unlock()
		for _, c := range late {
			c.expire()
		}
		clear(late)
	}
}

// deadlineIn is the coarse time by which a wait of ms milliseconds that
// starts now has surely run out.
func (cs *clientConns) deadlineIn(ms int64) int64 {
	return cs.now.Load() + ms + sweepInterval.Milliseconds()
}

// listen wraps ln: its connections are tracked; one over the cap is
// answered 503, one over the cap for its address 429, and closed.
func (cs *clientConns) listen(ln net.Listener) net.Listener {
	return &clientListener{Listener: ln, conns: cs}
}

type clientListener struct {
	net.Listener
	conns *clientConns
}

func (l *clientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if cc := l.conns.add(c); cc != nil {
			return cc, nil
		}
	}
}

// add tracks c, or refuses it when its address is over the cap.
func (cs *clientConns) add(c net.Conn) *clientConn {
	cc := &clientConn{Conn: c, conns: cs}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		cc.addr = a.AddrPort().Addr().Unmap()
		cc.trusted = isTrusted(cs.trusted, cc.addr)
	}
	cc.deadline.Store(cs.deadlineIn(cs.headerTimeout))
	cs.mu.Lock()
	switch {
	case cs.maxConns > 0 && len(cs.conns) >= cs.maxConns:
		cs.mu.Unlock()
		cs.refuse(c, fasthttp.StatusServiceUnavailable, errServerFull)
		return nil
	case cs.maxPerAddr > 0 && cc.addr.IsValid() && cs.perAddr[cc.addr] >= cs.maxPerAddr:
		cs.mu.Unlock()
		cs.refuse(c, fasthttp.StatusTooManyRequests, errTooManyConns)
		return nil
	case cs.maxPerAddr > 0 && cc.addr.IsValid():
		cs.perAddr[cc.addr]++
	}
	cs.conns[cc] = struct{}{}
	cs.mu.Unlock()
	return cc
}

// replace tracks c in place of old, a connection that an event loop
// served and hands over: same peer, same place under the caps.
func (cs *clientConns) replace(old *clientConn, c net.Conn) *clientConn {
	cc := &clientConn{Conn: c, conns: cs, addr: old.addr, trusted: old.trusted}
	cc.deadline.Store(cs.deadlineIn(cs.headerTimeout))
	cs.mu.Lock()
	delete(cs.conns, old)
	cs.conns[cc] = struct{}{}
	cs.mu.Unlock()
	old.closeOnce.Do(func() {})
	return cc
}

// refuse closes a connection over a cap: on a cleartext listener after
// podpin's one-line HTTP/1.1 answer, on a TLS one at once (the client
// could not read a cleartext answer).
func (cs *clientConns) refuse(c net.Conn, code int, err error) {
	if cs.tls {
		c.Close()
		return
	}
	refuseConn(c, code, err)
}

func (cs *clientConns) remove(cc *clientConn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.conns, cc)
	if n, ok := cs.perAddr[cc.addr]; ok {
		if n <= 1 {
			delete(cs.perAddr, cc.addr)
		} else {
			cs.perAddr[cc.addr] = n - 1
		}
	}
}

// refuseConn writes podpin's one-line answer on a connection that is not
// served, and closes it. The write never waits long: the answer fits an
// empty socket buffer.
func refuseConn(c net.Conn, code int, err error) {
	body := "podpin: " + err.Error() + "\n"
	c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nX-Podpin-Error: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		code, fasthttp.StatusMessage(code), len(body), body)
	c.Close()
}

// stateChanged is the server's ConnState hook: it sets the deadline of the
// connection's next wait.
func (cs *clientConns) stateChanged(c net.Conn, state fasthttp.ConnState) {
	cc, ok := connOf(c)
	if !ok {
		return
	}
	switch state {
	case fasthttp.StateNew, fasthttp.StateActive:
		cc.deadline.Store(cs.deadlineIn(cs.headerTimeout))
	case fasthttp.StateIdle:
		cc.deadline.Store(cs.deadlineIn(cs.idleTimeout))
		if cc.ownDeadline.Load() {
			cc.ownDeadline.Store(false)
			cc.Conn.SetReadDeadline(time.Time{})
		}
	default:
		cc.deadline.Store(0)
	}
}

// handlerReached ends the header timeout of a request that reached the
// handler: its client is not waited for again before its body, which has
// its own deadline, or its next request.
func handlerReached(ctx *fasthttp.RequestCtx) {
	if cc, ok := connOf(ctx.Conn()); ok {
		cc.deadline.Store(0)
	}
}

// connOf is the tracked connection under c: c itself, or on a TLS
// listener the connection the TLS session runs over. A cleartext
// connection costs one type assertion, as before TLS.
func connOf(c net.Conn) (*clientConn, bool) {
	if cc, ok := c.(*clientConn); ok {
		return cc, true
	}
	if tc, ok := c.(*tls.Conn); ok {
		cc, ok := tc.NetConn().(*clientConn)
		return cc, ok
	}
	if ra, ok := c.(*tlsReadAhead); ok {
		return connOf(ra.Conn)
	}
	return nil, false
}

// clientConn is a tracked client connection.
type clientConn struct {
	net.Conn
	conns *clientConns
	addr  netip.Addr // the peer's address; invalid when not TCP
	// trusted is set when the peer is a trusted proxy, whose forwarding
	// headers are believed.
	trusted bool

	// deadline is when the current wait ends, in the clock of conns; 0:
	// none.
	deadline atomic.Int64
	// ownDeadline is set while a read deadline set through
	// SetReadDeadline (a request body's) is on the socket.
	ownDeadline atomic.Bool
	closeOnce   sync.Once

	// counted is set on a connection an event loop handed over, which it
	// already counted as an HTTP/1.1 connection.
	counted bool
	// moving guards Conn while an event loop moves a TLS connection to
	// the goroutine front end (moveTo) and the sweeper may expire it.
	moving sync.Mutex

	// unread holds the first bytes that sniff read, which Read returns
	// before reading the socket again.
	unread  []byte
	sniffed [len(h2Preface)]byte

	// guards h2Ended and h2Resets
	h2Mu sync.Mutex
	// h2Ended counts the forwarded HTTP/2 streams of the current window
	// (resetWindow), h2Resets those among them that the client reset
	// before their answer.
	h2Ended, h2Resets int
}

// sniff reads the connection's first bytes until they either are prefix
// or differ from it, and reports which; Read returns them again.
func (c *clientConn) sniff(prefix string) (bool, error) {
	n := 0
	for n < len(prefix) {
		m, err := c.Conn.Read(c.sniffed[n:len(prefix)])
		n += m
		if string(c.sniffed[:n]) != prefix[:n] {
			break
		}
		if err != nil {
			return false, err
		}
	}
	c.unread = c.sniffed[:n]
	return n == len(prefix) && string(c.sniffed[:n]) == prefix, nil
}

// Read returns what sniff read first, then what the socket brings.
func (c *clientConn) Read(b []byte) (int, error) {
	if len(c.unread) > 0 {
		n := copy(b, c.unread)
		c.unread = c.unread[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// expire ends the connection's current wait: its read fails as a timeout.
func (c *clientConn) expire() {
	c.deadline.Store(0)
	c.moving.Lock()
	defer c.moving.Unlock()
	c.Conn.SetReadDeadline(aLongTimeAgo)
}

// moveTo makes nc the connection under c, in place of the one an event
// loop served it over; a TLS session over c goes on over nc. Only expire,
// from the sweeper, may use c meanwhile.
func (c *clientConn) moveTo(nc net.Conn) {
	c.moving.Lock()
	defer c.moving.Unlock()
	c.Conn = nc
}

var aLongTimeAgo = time.Unix(1, 0)

// SetReadDeadline sets a deadline of the caller's (a request body's),
// which replaces the tracked one until the connection next changes state.
func (c *clientConn) SetReadDeadline(t time.Time) error {
	c.deadline.Store(0)
	c.ownDeadline.Store(!t.IsZero())
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline is SetReadDeadline and the write deadline together.
func (c *clientConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// ReadFrom writes what r holds straight to the socket, as the socket's own
// ReadFrom does: a streamed response body passes without a buffer between.
func (c *clientConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

func (c *clientConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		c.conns.remove(c)
		err = c.Conn.Close()
	})
	return err
}
