package h2

import (
	"bytes"
	"errors"
	"io"
	"net"

	"golang.org/x/net/http2"
)

// A driven client connection is one whose socket its owner reads and
// writes, as an event loop does: the owner passes on what it reads (Feed)
// and sends what the connection has for the server (Take). The protocol
// is the same as on a connection with its own reader and writer; only the
// socket changes hands, and the streams are served without waiting:
// Answer, ReadAvailable and WriteAvailable do what they can at once, and
// the owner tries again after the next Feed.

// errHeaderBlockSize: a header block went past twice the header list
// size the client takes, before its end.
var errHeaderBlockSize = errors.New("h2: header block too large")

// clientDriven is a driven client connection's input.
type clientDriven struct {
	in   []byte // read, not yet a whole frame
	feed bytes.Reader
	// closed: the owner closed the socket.
	closed bool
}

// DriveClient starts HTTP/2 on nc in driven mode: nc is only asked for
// its addresses, never read, written or closed. note is called, from
// any goroutine and with the connection's lock held, when frames wait
// to be taken, once until the next Take; the client's preface waits at
// once.
func DriveClient(nc net.Conn, set ClientSettings, note func()) *ClientConn {
	c := newClientConn(nc, set)
	c.driven = &clientDriven{}
	c.wire.init(nc, &c.driven.feed, c)
	c.note = note
	c.preface()
	c.mu.Lock()
	c.noteLocked()
	c.mu.Unlock()
	return c
}

// Feed processes b, read from the server, on a driven connection. It
// reports false when the connection is over: the owner closes it once it
// has sent what Take returns.
func (c *ClientConn) Feed(b []byte) bool {
	dv := c.driven
	dv.in = append(dv.in, b...)
	off, ok, tooLarge := feedSpans(dv.in, maxPendingBlock(c.set.MaxHeaderListSize), &dv.feed, c.fr, c)
	if tooLarge {
		c.mu.Lock()
		if !c.closing {
			c.fr.WriteGoAway(0, http2.ErrCodeProtocol, nil)
		}
		c.failLocked(errHeaderBlockSize)
		c.mu.Unlock()
	}
	dv.in = dv.in[:copy(dv.in, dv.in[off:])]
	c.mu.Lock()
	over := c.closing
	c.mu.Unlock()
	return ok && !over
}

// Take appends to dst the frames waiting for the server, on a driven
// connection. It reports true when the connection is over once they are
// sent.
func (c *ClientConn) Take(dst []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out) > 0 {
		dst = append(dst, c.out...)
		c.out = c.out[:0]
	}
	c.noted = false
	return dst, c.closing
}

// Lost ends a driven connection whose socket failed or closed with err
// (io.EOF: the server closed it), or that its owner closed: every stream
// fails, save those whose answer came complete.
func (c *ClientConn) Lost(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.driven.closed {
		return
	}
	c.driven.closed = true
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	c.failLocked(err)
	c.out = c.out[:0]
	close(c.gone)
}

// Settled reports whether the server's first SETTINGS came, or the
// connection ended: its limits are known.
func (c *ClientConn) Settled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isSettled
}

// Streams is how many streams are open on the connection.
func (c *ClientConn) Streams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}

// Full reports whether c takes no new stream: the server's limit of
// concurrent streams is reached, or it is going away.
func (c *ClientConn) Full() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fullLocked()
}

// Answer is Response without waiting: status 0 and a nil error while
// the answer's header has not come.
func (s *ClientStream) Answer() (status int, header []HeaderField, err error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.status == 0 {
		return 0, nil, s.err
	}
	return s.status, s.header, nil
}

// ReadAvailable is Read without waiting: 0 and a nil error while no
// more of the answer's body has come.
func (s *ClientStream) ReadAvailable(p []byte) (int, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n, _, err := s.readLocked(p)
	return n, err
}

// WriteAvailable is WriteData without waiting: it sends what the
// server's flow control allows of p (nothing before its SETTINGS came),
// ending the request after p when end is set and all of p went, and
// reports how much went. With p empty and end set, the request ends.
func (s *ClientStream) WriteAvailable(p []byte, end bool) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	if s.sentEnd || c.closing {
		return 0, ErrStreamClosed
	}
	sent := 0
	// Before the server's SETTINGS, its windows are not known; an empty
	// DATA frame that ends the request needs none.
	for (c.isSettled || len(p) == 0) && (len(p) > 0 || end) {
		// An end with no bytes is not flow-controlled: it goes whatever
		// the windows, a stream's that the server's SETTINGS made
		// negative too.
		n := int64(0)
		if len(p) > 0 {
			n = min(int64(len(p)), s.send, c.send, int64(c.peerMaxFrame))
			if n <= 0 {
				break
			}
		}
		var last bool
		p, last = s.dataLocked(p, n, end)
		sent += int(n)
		if last {
			break
		}
	}
	c.sendLocked()
	return sent, nil
}
