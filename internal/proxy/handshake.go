package proxy

import (
	"errors"
	"net"
	"sync"
	"time"
)

// handshakeListener hands on the connections of the listener it wraps once
// open has run on each: a PROXY protocol header read, a TLS handshake, a
// look at the first bytes for the HTTP/2 preface. A connection that open
// finds speaking HTTP/2 goes to the h2 queue instead (the HTTP/2 server's
// listener); the others to Accept.
// Each open runs in a goroutine of the connection's own under a deadline
// of timeout, so a slow or silent peer never holds up the accept loop or
// another peer. Connections for which skip reports true are handed on at
// once.
//
// Safe for concurrent use. Close stops the accept loop and every open
// under way, and waits for them.
type handshakeListener struct {
	net.Listener
	timeout time.Duration
	// open returns the connection to hand on and whether it speaks
	// HTTP/2, or nil when the peer failed (open has counted it; the
	// connection is then closed).
	open func(net.Conn) (net.Conn, bool)
	skip func(net.Conn) bool // nil: every connection is opened
	h2   *connQueue          // where HTTP/2 connections go; nil: to Accept with the others

	ready   chan net.Conn
	stopped chan struct{} // closed when the accept loop ends
	err     error         // why it ended; set before stopped is closed
	loop    sync.WaitGroup

	// guards pending and closed
	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections being opened
	closed  bool
}

func newHandshakeListener(ln net.Listener, timeout time.Duration, open func(net.Conn) (net.Conn, bool), skip func(net.Conn) bool, h2 *connQueue) *handshakeListener {
	l := &handshakeListener{
		Listener: ln,
		h2:       h2,
		timeout:  timeout,
		open:     open,
		skip:     skip,
		ready:    make(chan net.Conn),
		stopped:  make(chan struct{}),
		pending:  map[net.Conn]struct{}{},
	}
	l.loop.Go(l.acceptLoop)
	return l
}

// Accept returns the next connection that open handed on.
func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.stopped:
		return nil, l.err
	}
}

// Close closes the listener, ends the opens under way (their connections
// are closed) and waits for every goroutine it started.
func (l *handshakeListener) Close() error {
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

func (l *handshakeListener) acceptLoop() {
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
		if l.skip != nil && l.skip(c) {
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

func (l *handshakeListener) handshake(c net.Conn) {
	c.SetDeadline(time.Now().Add(l.timeout))
	oc, h2 := l.open(c)
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if oc == nil {
		c.Close()
		return
	}
	// The header timeout of the first request starts when the server takes
	// the connection.
	c.SetDeadline(time.Time{})
	if h2 && l.h2 != nil {
		l.h2.put(oc)
		return
	}
	l.handOn(oc)
}

// handOn passes a ready connection to Accept, or closes it when the
// listener stopped meanwhile.
func (l *handshakeListener) handOn(c net.Conn) {
	select {
	case l.ready <- c:
	case <-l.stopped:
		c.Close()
	}
}

// connQueue is the listener of connections that another listener hands
// over: the HTTP/2 server's, fed by the listener that found them speaking
// HTTP/2. Safe for concurrent use.
type connQueue struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept returns the next connection handed over.
func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept fail; connections handed over afterwards are closed.
func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// put hands c to Accept, or closes it when the queue is closed.
func (q *connQueue) put(c net.Conn) {
	select {
	case q.conns <- c:
	case <-q.done:
		c.Close()
	}
}
