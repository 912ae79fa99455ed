package h2

import (
	"errors"
	"net"
	"slices"
	"sync"
	"time"
)

// poolTicks is how many ticks of a pool make its timeouts.
const poolTicks = 4

// settingsTimeout bounds the wait for a new connection's first SETTINGS,
// which say how many streams the server takes.
const settingsTimeout = 10 * time.Second

// errPoolClosed: the pool was closed.
var errPoolClosed = errors.New("h2: client pool closed")

// Pool keeps the client connections to one server and opens streams on
// them: on the first connection with room for one more (the server's
// SETTINGS_MAX_CONCURRENT_STREAMS), or on a new one. One connection is
// dialed at a time; those who need it meanwhile wait for it, and for its
// server's first SETTINGS, before streams are opened on it. A goroutine
// of the pool's own closes the connections left idle and those whose
// socket takes nothing, and ends once none is open. Safe for concurrent
// use.
type Pool struct {
	// Dial opens a connection to the server, its TLS handshake done.
	Dial     func() (net.Conn, error)
	Settings ClientSettings
	// IdleTimeout closes a connection without a stream for this long;
	// 0: never.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection whose socket takes nothing of
	// what is written for this long; 0: never.
	WriteTimeout time.Duration

	// guards everything below
	mu      sync.Mutex
	conns   []*ClientConn
	dialing *poolDial // the dial under way, or nil
	ticking bool      // the pool's goroutine runs
	closed  bool
}

// poolDial is a dial under way: done is closed when it ends, with conn
// or err.
type poolDial struct {
	done chan struct{}
	conn *ClientConn
	err  error
}

// NewStream opens a stream with fields, as ClientConn.NewStream does. A
// stream refused before it was sent (its connection found gone away)
// is tried again on another connection.
func (p *Pool) NewStream(fields []HeaderField, end bool) (*ClientStream, error) {
	for tries := 1; ; tries++ {
		c, err := p.conn()
		var s *ClientStream
		if err == nil {
			s, err = c.NewStream(fields, end)
		}
		if err != ErrNotProcessed || tries == 3 {
			return s, err
		}
	}
}

// conn is a connection with a stream reserved on it.
func (p *Pool) conn() (*ClientConn, error) {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
		// Those that ended are forgotten here too: the pool's
		// goroutine runs only with a timeout.
		p.conns = slices.DeleteFunc(p.conns, func(c *ClientConn) bool { return c.Err() != nil })
		for _, c := range p.conns {
			if c.reserve() {
				p.mu.Unlock()
				return c, nil
			}
		}
		d := p.dialing
		if d == nil {
			break
		}
		p.mu.Unlock()
		<-d.done
		if d.err != nil {
			return nil, d.err
		}
		p.mu.Lock()
	}
	d := &poolDial{done: make(chan struct{})}
	p.dialing = d
	p.mu.Unlock()

	nc, err := p.Dial()
	var c *ClientConn
	if err == nil {
		// The server's SETTINGS say how many streams it takes: those
		// waiting for this dial are not given more.
		c = NewClientConn(nc, p.Settings)
		t := time.NewTimer(settingsTimeout)
		select {
		case <-c.settled:
		case <-t.C:
			c.mu.Lock()
			c.failLocked(errors.New("no SETTINGS from the server"))
			c.mu.Unlock()
		}
		t.Stop()
		err = c.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing = nil
	defer close(d.done)
	if err == nil && p.closed {
		err = errPoolClosed
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		d.err = err
		return nil, err
	}
	p.conns = append(p.conns, c)
	if !p.ticking && p.period() > 0 {
		p.ticking = true
		go p.tick()
	}
	if !c.reserve() {
		// Its server takes no stream, or went away at once.
		return nil, ErrNotProcessed
	}
	return c, nil
}

// period is the pool's tick: a quarter of its shortest timeout.
func (p *Pool) period() time.Duration {
	d := p.IdleTimeout
	if p.WriteTimeout > 0 && (d == 0 || p.WriteTimeout < d) {
		d = p.WriteTimeout
	}
	return d / poolTicks
}

// tick closes idle and stalled connections, and forgets those that ended,
// until none is left.
func (p *Pool) tick() {
	period := p.period()
	t := time.NewTicker(period)
	defer t.Stop()
	for range t.C {
		p.mu.Lock()
		p.conns = slices.DeleteFunc(p.conns, func(c *ClientConn) bool {
			return c.check(p.IdleTimeout, p.WriteTimeout, period)
		})
		done := len(p.conns) == 0
		if done {
			p.ticking = false
		}
		p.mu.Unlock()
		if done {
			return
		}
	}
}

// check closes c when it was idle for idle or its socket took nothing for
// stall (each 0: never), at a tick of period, and reports whether c is
// over.
func (c *ClientConn) check(idle, stall, period time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return true
	}
	if len(c.streams) == 0 && c.reserved == 0 {
		c.idleTicks++
	} else {
		c.idleTicks = 0
	}
	if c.writing && c.writes == c.lastWrites {
		c.stalled++
	} else {
		c.stalled = 0
	}
	c.lastWrites = c.writes
	switch {
	case idle > 0 && time.Duration(c.idleTicks)*period >= idle:
		c.goingAway = true
		c.closeIfDoneLocked()
	case stall > 0 && time.Duration(c.stalled)*period >= stall:
		c.failLocked(errors.New("the server reads nothing of what is sent"))
	}
	return c.err != nil
}

// Close closes the pool's connections and fails their streams; streams
// opened afterwards fail.
func (p *Pool) Close() {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
