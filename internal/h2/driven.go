package h2

import (
	"bytes"
	"net"
	"time"

	"golang.org/x/net/http2"
)

// StreamPool keeps the streams that the owner of driven connections
// served and finished, for the next streams of any of them: at most
// maxPooledStreams. For the owner's goroutine only; the zero value is
// ready.
type StreamPool struct{ spare []*Stream }

// maxPooledStreams bounds a StreamPool.
const maxPooledStreams = 512

// Driven is a connection whose socket its owner reads and writes, as an
// event loop does: the owner passes on what it reads (Feed) and sends
// what the connection has for the client (Take). The protocol is the
// same as on a connection the server reads itself (frames, state, flow
// control, limits, timers); only the socket changes hands. Streams may
// be served by the owner itself (the fast function given to Drive), on
// its own thread, or by handlers in goroutines of their own as usual,
// whose frames the owner is told of (the note given to Drive) and sends.
//
// Feed, Take, Claim, Wrote, Finish and Close are for the owner, from one
// goroutine at a time.
type Driven struct{ c *conn }

// driven is a driven connection's part that serve has on its stack.
type driven struct {
	fast  func(*Stream) bool
	fresh []*Stream // streams opened by the frames being fed
	// pool keeps the streams the owner served and finished, for the
	// next ones (newStreamLocked); nil: none kept.
	pool *StreamPool
	in   []byte // read, not yet a whole frame
	feed bytes.Reader
	// started: the client's preface and first SETTINGS came.
	started bool
	// dropped: the connection is to close at once, what waits for the
	// client dropped (dropLocked).
	dropped bool
	closed  bool
}

// Drive serves nc in driven mode, and returns nil when the server is
// shut down or closed. nc is only asked for its addresses and state (it
// is what Stream.Conn returns, and what ConnContext gets), never read,
// written or closed. note is called, from any goroutine and with the
// connection's lock held, when frames wait to be taken, once until the
// next Take. fast, when not nil, is offered each stream as it opens, on
// the owner's goroutine (in Feed or Finish): when it returns true, the
// owner serves the stream and calls Finish once it is over; otherwise a
// handler serves it, in a goroutine. The streams the owner served are
// kept in pool (nil: none) for the next streams of its connections.
func (srv *Server) Drive(nc net.Conn, note func(), fast func(*Stream) bool, pool *StreamPool) *Driven {
	d := &driven{fast: fast, pool: pool}
	c := srv.add(func() *conn {
		c := newConnFrom(srv, nc, &d.feed)
		c.driven = d
		c.note = note
		return c
	})
	if c == nil {
		return nil
	}
	// The server's preface is waiting.
	c.mu.Lock()
	c.noteLocked()
	c.mu.Unlock()
	return &Driven{c: c}
}

// maxPendingBlock bounds the bytes of a header block held until its
// last CONTINUATION frame comes, for a side that takes header lists of
// up to headerList bytes: twice that, as x/net's frame reader bounds each
// of its fragments, and a frame. A flood of CONTINUATION frames
// (CVE-2023-45288) closes the connection when it goes past.
func maxPendingBlock(headerList uint32) int {
	return 2*int(headerList) + 16<<10 + 9
}

// Feed processes b, read from the client, and serves the streams it
// opens. It reports false when the connection is over: the owner closes
// it once it has sent what Take returns.
func (d *Driven) Feed(b []byte) bool {
	c := d.c
	dv := c.driven
	dv.in = append(dv.in, b...)
	c.mu.Lock()
	// What the feed writes is taken after it.
	c.noted = true
	c.mu.Unlock()
	c.activity.Store(true)
	off := 0
	ok := true
	if !dv.started {
		off, ok = d.start()
	}
	if ok && dv.started {
		n, goesOn, tooLarge := feedSpans(dv.in[off:], maxPendingBlock(c.set.MaxHeaderListSize), &dv.feed, c.fr, c)
		off += n
		ok = goesOn
		if tooLarge {
			c.debug("header block too large", nil)
			c.fail(http2.ErrCodeProtocol)
		}
	}
	dv.in = dv.in[:copy(dv.in, dv.in[off:])]
	d.dispatch()
	c.mu.Lock()
	over := c.closing
	c.mu.Unlock()
	return ok && !over
}

// start reads the client's preface and first SETTINGS frame, when they
// are in; off is how much of the input they took, ok false when the
// client opened with something else.
func (d *Driven) start() (off int, ok bool) {
	c := d.c
	dv := c.driven
	n := min(len(dv.in), len(http2.ClientPreface))
	if string(dv.in[:n]) != http2.ClientPreface[:n] {
		c.debug("bad connection preface", nil)
		c.fail(http2.ErrCodeProtocol)
		return 0, false
	}
	if n < len(http2.ClientPreface) {
		return 0, true
	}
	off = n
	span := frameSpan(dv.in[off:], maxPendingBlock(c.set.MaxHeaderListSize))
	if span == 0 {
		return 0, true // the preface stays until its SETTINGS come
	}
	if span < 0 {
		c.debug("the preface's SETTINGS missing", nil)
		c.fail(http2.ErrCodeProtocol)
		return off, false
	}
	dv.feed.Reset(dv.in[off : off+span])
	off += span
	f, err := c.fr.ReadFrame()
	if sf, isSettings := f.(*http2.SettingsFrame); err != nil || !isSettings || sf.IsAck() {
		c.debug("the preface's SETTINGS missing", err)
		c.fail(http2.ErrCodeProtocol)
		return off, false
	}
	dv.started = true
	if err := c.process(f); err != nil && !c.handle(err) {
		return off, false
	}
	if c.period > 0 {
		c.mu.Lock()
		c.timer = time.AfterFunc(c.period, c.tick)
		c.mu.Unlock()
	}
	return off, true
}

// frameSpan is the length of the frame at the start of b, with the
// CONTINUATION frames up to its header block's end for a HEADERS or
// PUSH_PROMISE frame (the frame reader reads them in one go); 0 when it is
// not all in yet, -1 when the header block goes past limit bytes. A frame
// longer than the reader takes spans its header alone: the reader fails
// it from that.
func frameSpan(b []byte, limit int) int {
	off := 0
	for {
		if len(b)-off < 9 {
			return 0
		}
		length := int(b[off])<<16 | int(b[off+1])<<8 | int(b[off+2])
		typ, flags := http2.FrameType(b[off+3]), http2.Flags(b[off+4])
		if length > maxReadFrame {
			return off + 9
		}
		if len(b)-off-9 < length {
			if off+9+length > limit {
				return -1
			}
			return 0
		}
		off += 9 + length
		block := typ == http2.FrameHeaders || typ == http2.FramePushPromise || typ == http2.FrameContinuation
		if !block || flags.Has(http2.FlagHeadersEndHeaders) {
			return off
		}
		if off > limit {
			return -1
		}
	}
}

// frameReader is a connection's side that acts on the frames it reads.
type frameReader interface {
	process(http2.Frame) error
	// handle acts on the error of reading or processing a frame, and
	// reports whether the connection goes on.
	handle(error) bool
}

// feedSpans reads the whole frames at the start of in through fr, whose
// input is feed, one span of frameSpan's (a frame, or a header block's)
// at a time, and has o act on them. It returns how much of in they took;
// ok is false when the connection ended, tooLarge true when a header
// block went past limit bytes (the caller ends the connection).
func feedSpans(in []byte, limit int, feed *bytes.Reader, fr *http2.Framer, o frameReader) (off int, ok, tooLarge bool) {
	for {
		n := frameSpan(in[off:], limit)
		switch {
		case n == 0:
			return off, true, false
		case n < 0:
			return off, false, true
		}
		feed.Reset(in[off : off+n])
		off += n
		for feed.Len() > 0 {
			f, err := fr.ReadFrame()
			if err == nil {
				err = o.process(f)
			}
			if err != nil && !o.handle(err) {
				return off, false, false
			}
		}
	}
}

// dispatch offers the streams just opened to the owner, and gives those
// it does not serve to handlers.
func (d *Driven) dispatch() {
	dv := d.c.driven
	for len(dv.fresh) > 0 {
		st := dv.fresh[0]
		dv.fresh[0] = nil
		dv.fresh = dv.fresh[1:]
		d.offer(st)
	}
	dv.fresh = dv.fresh[:0]
}

func (d *Driven) offer(st *Stream) {
	c := d.c
	if c.driven.fast != nil && c.driven.fast(st) {
		return
	}
	c.srv.workers.run(func() { c.run(st) })
}

// Started reports whether the client's preface and first SETTINGS came.
func (d *Driven) Started() bool { return d.c.driven.started }

// Take appends to dst the frames waiting for the client. It reports
// true when the connection is over once they are sent.
func (d *Driven) Take(dst []byte) ([]byte, bool) {
	c := d.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.driven.dropped {
		return dst, true
	}
	if len(c.out) > 0 {
		dst = append(dst, c.out...)
		c.out = c.out[:0]
		// Room for writes that wait for it.
		c.wakeWaitingLocked()
	}
	c.noted = false
	return dst, c.closing
}

// Dropped reports whether the connection is to be closed at once, what
// the client has not read of it dropped: it stopped reading, or
// answering PINGs, or the server closed.
func (d *Driven) Dropped() bool {
	c := d.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.driven.dropped
}

// Claim says that the owner takes the frames soon (it is about to write
// some itself, and takes them at the end of its turn): they need no note.
func (d *Driven) Claim() {
	c := d.c
	c.mu.Lock()
	c.noted = true
	c.mu.Unlock()
}

// Wrote tells what the owner's last write to the socket did: whether
// the socket took bytes, and whether bytes are left for it. The
// connection's WriteTimeout counts from that.
func (d *Driven) Wrote(progress, left bool) {
	c := d.c
	c.mu.Lock()
	if progress {
		c.writes++
	}
	c.writing = left
	c.mu.Unlock()
}

// Finish ends st, a stream the owner served, as a handler's return does,
// and serves the next stream waiting for its turn. The owner holds st no
// longer: it serves a later stream.
func (d *Driven) Finish(st *Stream) {
	c := d.c
	next := c.finish(st)
	c.mu.Lock()
	// Nothing outside holds st any more, unless it was asked for a
	// context or a channel of its own (Context, Done, AfterFunc), or its
	// body is read.
	if p := c.driven.pool; p != nil && st.ctx == nil && st.doneCh == nil && st.afterSeq == 0 && st.rwake == nil && st.wwake == nil && len(p.spare) < maxPooledStreams {
		p.spare = append(p.spare, st)
	}
	c.mu.Unlock()
	if next != nil {
		d.offer(next)
	}
}

// Close ends the connection, whose socket the owner closed: every stream
// fails.
func (d *Driven) Close() {
	c := d.c
	if c.driven.closed {
		return
	}
	c.driven.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Lock()
	c.closing = true
	c.abortAllLocked(errConnClosed)
	c.mu.Unlock()
	c.srv.remove(c)
}

// ReadAvailable is Read without waiting, for a stream its owner serves:
// 0 and a nil error while no more of the request's body has come.
func (s *Stream) ReadAvailable(p []byte) (int, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n, _, err := s.readLocked(p)
	return n, err
}
