package h2

import (
	"context"
	"errors"
	"io"
	"iter"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HeaderField is a header field as HPACK carries it: names in lower case.
type HeaderField = hpack.HeaderField

var (
	// ErrStreamClosed: the stream ended (its handler returned, or it was
	// reset, or its connection closed).
	ErrStreamClosed = errors.New("h2: stream closed")
	errReset        = errors.New("h2: stream reset by the client")
	errConnClosed   = errors.New("h2: connection closed")
)

// IsReset reports whether err says that the client reset the stream or
// closed its connection.
func IsReset(err error) bool { return err == errReset || err == errConnClosed }

// Stream is one request and its response. Its exported fields are set
// before the handler runs and not changed afterwards. Read and the write
// methods may be called from different goroutines, each of them from one
// at a time.
type Stream struct {
	c  *conn
	id uint32

	// The request's pseudo-header fields. Authority is the Host field
	// when the client sent no :authority.
	Method, Scheme, Authority, Path, Protocol string
	// Header is the request's header fields in the order they came,
	// names in lower case, cookie fields joined into one.
	Header []HeaderField
	// Truncated: the header list was longer than the server's
	// MaxHeaderListSize, and Header holds only its beginning.
	Truncated bool
	// ContentLength is the request's content-length, or -1.
	ContentLength int64
	// HasBody: the request's HEADERS did not end the stream.
	HasBody bool

	// The fields below are guarded by c.mu.
	// the stream as a context: ended once it is over; doneCh, made on
	// demand, is closed then, and the after funcs run
	ended    bool
	doneCh   chan struct{}
	ctx      context.Context // Context, once made
	cancel   context.CancelFunc
	after    []afterFunc
	afterSeq int
	buf      []byte // request body received, not yet read from off
	off      int
	// bodyErr is what Read returns once buf is empty: io.EOF after the
	// body's end.
	bodyErr                     error
	trailer                     []HeaderField
	received                    int64 // request body bytes received
	recv                        int64 // what the client may still send on the stream
	remoteDone                  bool  // the client sent END_STREAM, or the stream was reset
	recvUnacked                 int64
	wroteHeaders, sentEnd       bool
	reset                       bool // reset by either side, or the connection closed
	done                        bool // the handler returned
	queued                      bool // waits for a handler
	readDeadline, writeDeadline time.Time
	rwake                       chan struct{}
	sender                      // the stream's window towards the client
	// the timers of a read's and a write's wait, kept by their goroutine
	rtimer, wtimer *time.Timer
}

// ID is the stream's identifier on its connection.
func (s *Stream) ID() uint32 { return s.id }

// Conn is the client connection the stream came on.
func (s *Stream) Conn() net.Conn { return s.c.nc }

// Context is the stream's context for code that derives contexts of its
// own from it (context.WithValue, WithCancel): it ends when the stream
// does (below), and is made on first use.
func (s *Stream) Context() context.Context {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(c.ctx)
		if s.ended {
			s.cancel()
		}
	}
	return s.ctx
}

// The stream is itself a context.Context, a lighter one than Context: it
// ends when the client resets the stream or its connection closes, and
// when the handler returns; its values are the connection's
// (Server.ConnContext). It has no deadline. Its AfterFunc, which
// context.AfterFunc and contexts derived straight from it use, costs no
// goroutine; but a context.WithValue in between hides it, and Go's
// contexts derived after that would watch the stream from a goroutine of
// their own each: for those, Context.
var _ context.Context = (*Stream)(nil)

func (s *Stream) Deadline() (time.Time, bool) { return time.Time{}, false }

func (s *Stream) Done() <-chan struct{} {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.doneCh == nil {
		s.doneCh = make(chan struct{})
		if s.ended {
			close(s.doneCh)
		}
	}
	return s.doneCh
}

func (s *Stream) Err() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.ended {
		return context.Canceled
	}
	return nil
}

func (s *Stream) Value(key any) any { return s.c.ctx.Value(key) }

// AfterFunc arranges for f to run in a goroutine of its own once the
// stream ends (at once if it has); stop cancels that, and reports whether
// it did.
func (s *Stream) AfterFunc(f func()) (stop func() bool) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.ended {
		go f()
		return func() bool { return false }
	}
	s.afterSeq++
	a := afterFunc{f: f, id: s.afterSeq}
	s.after = append(s.after, a)
	return func() bool {
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		for i, b := range s.after {
			if b.id == a.id {
				s.after = append(s.after[:i], s.after[i+1:]...)
				return true
			}
		}
		return false
	}
}

type afterFunc struct {
	f  func()
	id int
}

// endLocked ends the stream as a context.
func (s *Stream) endLocked() {
	if s.ended {
		return
	}
	s.ended = true
	if s.doneCh != nil {
		close(s.doneCh)
	}
	if s.cancel != nil {
		s.cancel()
	}
	for _, a := range s.after {
		go a.f()
	}
	s.after = nil
}

// HeaderValue is the value of the first field named name (lower case), or
// "".
func (s *Stream) HeaderValue(name string) string {
	for _, f := range s.Header {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Buffered reports whether Read would return without waiting: body bytes
// or the body's end are in.
func (s *Stream) Buffered() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return len(s.buf) > s.off || s.bodyErr != nil
}

// Trailer is the request's trailer fields, once Read returned io.EOF.
func (s *Stream) Trailer() []HeaderField {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.trailer
}

// Read reads the request's body. It returns io.EOF at the body's end, an
// error for which IsReset is true when the client reset the stream, and
// os.ErrDeadlineExceeded past the read deadline.
func (s *Stream) Read(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	for {
		if n, ready, err := s.readLocked(p); ready {
			c.mu.Unlock()
			return n, err
		}
		if s.rwake == nil {
			s.rwake = make(chan struct{}, 1)
		}
		deadline := s.readDeadline
		c.mu.Unlock()
		if err := waitSignal(s.rwake, deadline, &s.rtimer); err != nil {
			return 0, err
		}
		c.mu.Lock()
	}
}

// readLocked reads into p what came of the body, giving it back to the
// client's windows, or says why nothing more will come (err); ready is
// false while nothing came.
func (s *Stream) readLocked(p []byte) (n int, ready bool, err error) {
	if len(s.buf) > s.off {
		n = copyOut(p, &s.buf, &s.off)
		s.c.giveBackLocked(s, int64(n))
		return n, true, nil
	}
	return 0, s.bodyErr != nil, s.bodyErr
}

// copyOut copies into p what buf holds from off on, and empties buf
// once all of it is out.
func copyOut(p []byte, buf *[]byte, off *int) int {
	n := copy(p, (*buf)[*off:])
	*off += n
	if *off == len(*buf) {
		*buf, *off = (*buf)[:0], 0
	}
	return n
}

// waitSignal waits for a signal on ch, or until deadline (zero: none), on the
// timer in t (made on first use, and kept for the next wait).
func waitSignal(ch chan struct{}, deadline time.Time, t **time.Timer) error {
	if deadline.IsZero() {
		<-ch
		return nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	if *t == nil {
		*t = time.NewTimer(d)
	} else {
		(*t).Reset(d)
	}
	defer (*t).Stop()
	select {
	case <-ch:
		return nil
	case <-(*t).C:
		return os.ErrDeadlineExceeded
	}
}

// SetReadDeadline bounds Read: a read waiting past t fails with
// os.ErrDeadlineExceeded; a time in the past ends a read under way.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.c.mu.Lock()
	s.readDeadline = t
	wake(s.rwake)
	s.c.mu.Unlock()
	return nil
}

// SetWriteDeadline bounds the writes: a write that waits for the client's
// flow-control window past t resets the stream; a time in the past does so
// at once.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.writeDeadline = t
	if !t.IsZero() && !t.After(time.Now()) && !s.reset && !s.sentEnd {
		c.resetLocked(s.id, http2.ErrCodeInternal)
		s.reset = true
		wake(s.wwake)
	}
	return nil
}

// WriteHeaders writes the response's header fields (names in any case;
// connection-specific ones are left out) under status: an informational
// status (1xx) may come before the final one. end ends the response. They
// go out with what is written next, or at Flush, so that a header and the
// body after it cost one write to the socket; a header that ends the
// response, or an informational one, goes out at once.
func (s *Stream) WriteHeaders(status int, fields []HeaderField, end bool) error {
	return s.writeHeaders(status, func(w *wire) { w.encodeLocked(fields) }, end)
}

// WriteHeaderBytes is WriteHeaders for fields given as bytes, each name and
// value pair that fields yields: they are encoded as they come, and not
// kept.
func (s *Stream) WriteHeaderBytes(status int, fields iter.Seq2[[]byte, []byte], end bool) error {
	return s.writeHeaders(status, func(w *wire) { w.encodeBytesLocked(fields) }, end)
}

func (s *Stream) writeHeaders(status int, encode func(*wire), end bool) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.reset || s.sentEnd || c.closing {
		return ErrStreamClosed
	}
	c.blockStartLocked()
	appendField(&c.wire, ":status", statusText(status))
	encode(&c.wire)
	c.writeBlockLocked(s.id, end)
	if status >= 200 {
		s.wroteHeaders = true
	}
	s.sentEnd = end
	if end || status < 200 {
		c.sendLocked()
	}
	return nil
}

// Flush sends what was written (a header that waits for its body), as
// Write sends its bytes.
func (s *Stream) Flush() {
	c := s.c
	c.mu.Lock()
	c.sendLocked()
	c.mu.Unlock()
}

// WriteTrailers ends the response with trailer fields.
func (s *Stream) WriteTrailers(fields []HeaderField) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.reset || s.sentEnd || c.closing {
		return ErrStreamClosed
	}
	c.blockStartLocked()
	c.encodeLocked(fields)
	c.writeBlockLocked(s.id, true)
	s.sentEnd = true
	c.sendLocked()
	return nil
}

// statusTexts are the common statuses in text, made once.
var statusTexts = func() map[int]string {
	m := map[int]string{}
	for _, code := range []int{100, 103, 200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 413, 421, 429, 431, 500, 502, 503, 504} {
		m[code] = strconv.Itoa(code)
	}
	return m
}()

func statusText(code int) string {
	if s, ok := statusTexts[code]; ok {
		return s
	}
	return strconv.Itoa(code)
}

// Write sends response body bytes, as the client's flow control allows:
// it waits for window when there is none. The bytes go to the socket at
// once, from the calling goroutine, unless another goroutine is writing
// to it: that one takes them along (WriteMore holds them for what
// follows). On an error, n counts the bytes that went into frames before
// it.
func (s *Stream) Write(p []byte) (n int, err error) {
	return s.writeData(p, false, true, true)
}

// WriteMore is Write for bytes that more will follow at once (the rest
// of an answer already in): they wait for what comes next, and the end
// of the response takes them all to the socket in one write.
func (s *Stream) WriteMore(p []byte) (int, error) {
	return s.writeData(p, false, false, true)
}

// WriteData sends p as response body; end ends the response with it.
func (s *Stream) WriteData(p []byte, end bool) error {
	_, err := s.writeData(p, end, true, true)
	return err
}

// WriteAvailable writes what the client's flow control and the frames
// waiting for the socket let through of p now, without waiting, and
// returns how much that was; end ends the response with the last byte of
// p (or at once, for an empty p). It is for a connection's owner serving
// a stream itself (Driven): it tries again when the client gives more
// window (after a Feed) or it took the frames waiting (Take).
func (s *Stream) WriteAvailable(p []byte, end bool) (int, error) {
	return s.writeData(p, end, true, false)
}

// writeData is WriteData, and returns how many bytes of p went into
// frames; flush wakes the writer for them; without wait, it writes what
// the windows let through and returns.
func (s *Stream) writeData(p []byte, end, flush, wait bool) (int, error) {
	c := s.c
	c.mu.Lock()
	written := 0
	for {
		if s.reset || s.sentEnd || c.closing {
			c.mu.Unlock()
			return written, ErrStreamClosed
		}
		if len(p) == 0 {
			if end {
				c.fr.WriteData(s.id, true, nil)
				s.sentEnd = true
				c.sendLocked()
			}
			c.mu.Unlock()
			return written, nil
		}
		n := min(int64(len(p)), s.send, c.send, int64(c.peerMaxFrame))
		if !wait && (n <= 0 || len(c.out) >= maxPending) {
			c.mu.Unlock()
			return written, nil
		}
		if wait && (n <= 0 || len(c.out) >= maxPending) {
			if s.wwake == nil {
				s.wwake = make(chan struct{}, 1)
			}
			if s.send > 0 {
				// The connection's window, or the socket: wait with
				// the others.
				c.waiting = append(c.waiting, s.wwake)
			}
			c.flushLocked()
			c.waits++
			deadline := s.writeDeadline
			c.mu.Unlock()
			if err := waitSignal(s.wwake, deadline, &s.wtimer); err != nil {
				c.mu.Lock()
				if !s.reset {
					c.resetLocked(s.id, http2.ErrCodeInternal)
					s.reset = true
				}
				c.mu.Unlock()
				return written, err
			}
			c.mu.Lock()
			continue
		}
		last := end && n == int64(len(p))
		c.fr.WriteData(s.id, last, p[:n])
		s.send -= n
		c.send -= n
		p = p[n:]
		written += int(n)
		if last {
			s.sentEnd = true
		}
		if len(p) == 0 {
			if last || flush {
				c.sendLocked()
			}
			c.mu.Unlock()
			return written, nil
		}
	}
}

// Reset resets the stream with code (http2.ErrCode).
func (s *Stream) Reset(code uint32) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !s.reset {
		c.resetLocked(s.id, http2.ErrCode(code))
		s.reset = true
	}
}

var _ io.ReadWriter = (*Stream)(nil)
