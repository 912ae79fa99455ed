package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// idleTicks is how many cleaner ticks make a connection's idle timeout: a
// connection is closed after 1 to 1+1/idleTicks times the timeout unused.
const idleTicks = 4

// podClient sends requests to one pod over a pool of keep-alive
// connections. The connection released last is taken first, so the
// surplus of a busier moment ages out. Taking and returning a connection
// costs one short-held lock each and reads no clock; a goroutine of the
// pool's own closes the connections left idle too long, and ends once none
// is idle. Safe for concurrent use.
//
// The exchange itself is podClient.roundTrip's (transport.go).
type podClient struct {
	// dial opens a connection to the pod, with its TLS handshake done for
	// an https pod; a failure to connect is a *dialError, a failed
	// handshake a *tlsError.
	dial func() (net.Conn, error)
	// timeout is the longest silence while an answer is read (podConn).
	timeout time.Duration
	// maxConns caps the open connections; 0: no cap. A request finding
	// them all busy waits up to wait for one, then fails with
	// fasthttp.ErrNoFreeConns.
	maxConns int
	wait     time.Duration
	// idleTimeout closes connections unused this long; 0: never.
	idleTimeout time.Duration

	readers sync.Pool // *bufio.Reader
	writers sync.Pool // *bufio.Writer
	streams sync.Pool // *podStream

	// guards idle, open, waiters and cleaning
	mu   sync.Mutex
	idle []*podConn // the last released at the end
	// open counts the connections open or being dialed.
	open int
	// waiters are the requests waiting at the cap, oldest first. One is
	// handed a released connection, or nil when a connection closed: it
	// then dials one in its place.
	waiters  []chan *podConn
	cleaning bool          // the cleaner runs
	kick     chan struct{} // wakes the cleaner before its tick
}

// newPodClient returns the client of the pod at addr. With tc it speaks
// TLS: each new connection is verified as tc says (the host of addr
// when tc names no server), its handshake within the connect timeout.
func newPodClient(addr string, s upstreamSettings, tc *tls.Config) *podClient {
	d := &net.Dialer{Timeout: s.connectTimeout, KeepAlive: 30 * time.Second}
	dial := func() (net.Conn, error) {
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, &dialError{err}
		}
		return conn, nil
	}
	if tc != nil {
		tc = forAddress(tc, addr)
		dial = func() (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), s.connectTimeout)
			defer cancel()
			return dialTLS(ctx, d, addr, tc)
		}
	}
	c := &podClient{
		dial:        dial,
		timeout:     s.readTimeout,
		maxConns:    s.maxConns,
		wait:        s.connectTimeout,
		idleTimeout: s.idleConnTimeout,
		kick:        make(chan struct{}, 1),
	}
	c.streams.New = func() any { return &podStream{c: c} }
	return c
}

// Do sends req to the pod and reads its answer into resp. A body longer
// than bufferedBody streams from the pod's connection until resp's body
// stream is closed. A pooled connection that the pod closed while it was
// idle fails on first use, and a pod that closed its idle connections (a
// restart, a short keep-alive timeout) may leave more than one in the pool:
// a request that is safe to send twice (GET, HEAD or OPTIONS without a
// body) goes up to three times. A pod that took the request and stayed
// silent is not asked again: the timeout already cost the client its wait.
func (c *podClient) Do(req *fasthttp.Request, resp *fasthttp.Response) error {
	return c.do(context.Background(), time.Time{}, req, resp)
}

// DoUntil is Do with a deadline for the whole exchange (a route's
// timeouts): writing the request, reading the answer, and reading a body
// that streams after DoUntil returned, which then fails with a timeout.
func (c *podClient) DoUntil(until time.Time, req *fasthttp.Request, resp *fasthttp.Response) error {
	return c.do(context.Background(), until, req, resp)
}

// DoContext is Do for a request that ctx may cancel (an HTTP/2 stream the
// client reset): until the answer's header is in, the end of ctx closes
// the pod's connection, so that the pod sees its client go, and the
// request is not sent again. A deadline of ctx (a route's timeouts) bounds
// the whole exchange, as in DoUntil.
func (c *podClient) DoContext(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) error {
	until, _ := ctx.Deadline()
	return c.do(ctx, until, req, resp)
}

func (c *podClient) do(ctx context.Context, until time.Time, req *fasthttp.Request, resp *fasthttp.Response) error {
	// The path goes as the client sent it, not cleaned up.
	req.URI().DisablePathNormalizing = true
	for attempt := 1; ; attempt++ {
		retry, err := c.roundTrip(ctx, until, req, resp)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retry || attempt == 3 || !resendable(req, err) {
			if err == io.EOF {
				err = fasthttp.ErrConnectionClosed
			}
			return err
		}
	}
}

// resendable reports whether req may go again after err.
func resendable(req *fasthttp.Request, err error) bool {
	safe := req.Header.IsGet() || req.Header.IsHead() || req.Header.IsOptions()
	n := req.Header.ContentLength()
	bodyless := (n == 0 || n == -2) && !req.IsBodyStream()
	stale := !isDialError(err) && !errors.Is(err, fasthttp.ErrTimeout)
	return safe && bodyless && stale
}

// acquire returns a connection to the pod: an idle one, a new one, or,
// at the cap, the first one released within the wait.
func (c *podClient) acquire() (*podConn, error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		pc := c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return pc, nil
	}
	if c.maxConns <= 0 || c.open < c.maxConns {
		c.open++
		c.mu.Unlock()
		return c.connect()
	}
	w := make(chan *podConn, 1)
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()

	t := time.NewTimer(c.wait)
	defer t.Stop()
	select {
	case pc := <-w:
		return c.handedOver(pc)
	case <-t.C:
	}
	c.mu.Lock()
	if i := slices.Index(c.waiters, w); i >= 0 {
		c.waiters = slices.Delete(c.waiters, i, i+1)
		c.mu.Unlock()
		return nil, fasthttp.ErrNoFreeConns
	}
	c.mu.Unlock()
	// It was handed something as the wait ran out.
	return c.handedOver(<-w)
}

// reserve counts a connection that an event loop opens to the pod, under
// the same cap, or reports that the cap is reached. Its place is given
// up through closed.
func (c *podClient) reserve() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.maxConns > 0 && c.open >= c.maxConns {
		return false
	}
	c.open++
	return true
}

// handedOver takes what a waiter was handed: a connection, or nil for the
// place of one that closed, which it fills with a new one.
func (c *podClient) handedOver(pc *podConn) (*podConn, error) {
	if pc != nil {
		return pc, nil
	}
	return c.connect()
}

// connect dials a connection whose place in open is already counted.
func (c *podClient) connect() (*podConn, error) {
	conn, err := c.dial()
	if err != nil {
		c.closed()
		return nil, err
	}
	return &podConn{Conn: conn, timeout: c.timeout}, nil
}

// release puts pc back for the next request.
func (c *podClient) release(pc *podConn) {
	pc.idleTicks = 0
	c.mu.Lock()
	if len(c.waiters) > 0 {
		w := c.waiters[0]
		c.waiters = slices.Delete(c.waiters, 0, 1)
		c.mu.Unlock()
		w <- pc
		return
	}
	c.idle = append(c.idle, pc)
	start := c.idleTimeout > 0 && !c.cleaning
	c.cleaning = c.cleaning || start
	c.mu.Unlock()
	if start {
		go c.clean()
	}
}

// discard closes pc, which cannot serve another request.
func (c *podClient) discard(pc *podConn) {
	pc.Close()
	c.closed()
}

// closed gives up the place of a connection that closed or was never
// opened: to the first waiter, or back to the cap.
func (c *podClient) closed() {
	c.mu.Lock()
	if len(c.waiters) > 0 {
		w := c.waiters[0]
		c.waiters = slices.Delete(c.waiters, 0, 1)
		c.mu.Unlock()
		w <- nil
		return
	}
	c.open--
	c.mu.Unlock()
}

// clean closes the connections idle for idleTimeout, every quarter of it,
// until none is idle.
func (c *podClient) clean() {
	t := time.NewTicker(c.idleTimeout / idleTicks)
	defer t.Stop()
	var stale []*podConn
	for {
		select {
		case <-t.C:
		case <-c.kick:
		}
		stale = stale[:0]
		c.mu.Lock()
		keep := c.idle[:0]
		for _, pc := range c.idle {
			if pc.idleTicks++; pc.idleTicks > idleTicks {
				stale = append(stale, pc)
			} else {
				keep = append(keep, pc)
			}
		}
		clear(c.idle[len(keep):])
		c.idle = keep
		c.open -= len(stale)
		done := len(c.idle) == 0
		if done {
			c.cleaning = false
		}
		c.mu.Unlock()
		for _, pc := range stale {
			pc.Close()
		}
		if done {
			return
		}
	}
}

// CloseIdleConnections closes the pool's idle connections; the cleaner
// then ends.
func (c *podClient) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.open -= len(idle)
	c.mu.Unlock()
	for _, pc := range idle {
		pc.Close()
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *podClient) reader(conn net.Conn) *bufio.Reader {
	if br, ok := c.readers.Get().(*bufio.Reader); ok {
		br.Reset(conn)
		return br
	}
	return bufio.NewReaderSize(conn, 4096)
}

func (c *podClient) putReader(br *bufio.Reader) {
	br.Reset(nil)
	c.readers.Put(br)
}

func (c *podClient) writer(conn net.Conn) *bufio.Writer {
	if bw, ok := c.writers.Get().(*bufio.Writer); ok {
		bw.Reset(conn)
		return bw
	}
	return bufio.NewWriterSize(conn, 4096)
}

func (c *podClient) putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	c.writers.Put(bw)
}

// podConn is a pod connection whose reads time out after a period without
// data, however long the whole response takes: an inactivity timeout, like
// HAProxy's "timeout server", so long streamed bodies are not cut while a
// silent pod still is. An exchange may also have a deadline of its own
// (until: a route's timeouts), past which reads and writes fail, however
// busy the pod.
//
// Moving a deadline re-arms a runtime timer, which costs more than the read
// itself on a small response, so the deadline moves only once a tenth of the
// timeout has passed: the timeout then fires after 0.9 to 1 times its length
// of silence. A connection is used by one goroutine at a time.
type podConn struct {
	net.Conn
	timeout  time.Duration
	deadline time.Time // the read deadline set last
	until    time.Time // the exchange's own deadline; zero: none
	// idleTicks counts the cleaner's ticks since the connection was
	// released; guarded by its client's mu while it is idle.
	idleTicks int
}

// setUntil gives the exchange about to use the connection its deadline
// (zero: none), for writes at once and for reads from the next one.
func (c *podConn) setUntil(until time.Time) error {
	if until.Equal(c.until) {
		return nil
	}
	c.until = until
	c.deadline = time.Time{}
	if until.IsZero() && c.timeout == 0 {
		if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
			return err
		}
	}
	return c.Conn.SetWriteDeadline(until)
}

func (c *podConn) Read(b []byte) (int, error) {
	if c.timeout > 0 || !c.until.IsZero() {
		now := time.Now()
		if c.deadline.IsZero() || !c.deadline.Equal(c.until) && c.deadline.Sub(now) < c.timeout-c.timeout/10 {
			d := c.until
			if next := now.Add(c.timeout); c.timeout > 0 && (d.IsZero() || next.Before(d)) {
				d = next
			}
			c.deadline = d
			if err := c.Conn.SetReadDeadline(d); err != nil {
				return 0, err
			}
		}
	}
	return c.Conn.Read(b)
}
