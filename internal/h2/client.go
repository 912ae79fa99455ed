package h2

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"time"

	"golang.org/x/net/http2"
)

// ClientSettings are what a client connection announces and keeps to.
type ClientSettings struct {
	// WindowSize is how much of an answer's body podpin takes from the
	// server before it is read, per stream. The connection's window is
	// kept at least as large as those of its streams together (and 65535
	// at least): an answer nobody reads holds back no other.
	WindowSize uint32
	// MaxHeaderListSize bounds an answer's header fields (HTTP/2 counts
	// 32 bytes per field on top of its name and value).
	MaxHeaderListSize uint32
}

func (s *ClientSettings) defaults() {
	if s.WindowSize == 0 {
		s.WindowSize = 1 << 20
	}
	// The largest window HTTP/2 has.
	s.WindowSize = min(s.WindowSize, 1<<31-1)
	if s.MaxHeaderListSize == 0 {
		s.MaxHeaderListSize = 1 << 20
	}
}

var (
	// ErrNotProcessed: the server will never process the stream (it
	// refused it, or went away before it): it may be sent again, on
	// another connection.
	ErrNotProcessed = errors.New("h2: stream not processed by the server")
	// errCanceled: the stream was reset by its own side.
	errCanceled = errors.New("h2: stream canceled")
)

// ResetError is a stream reset with Code: by the server, or by podpin for
// the server's protocol error on it.
type ResetError struct{ Code http2.ErrCode }

func (e *ResetError) Error() string { return "h2: stream reset by the server: " + e.Code.String() }

// ConnError is a client connection that failed under its streams.
type ConnError struct{ Err error }

func (e *ConnError) Error() string { return "h2: connection lost: " + e.Err.Error() }
func (e *ConnError) Unwrap() error { return e.Err }

// ClientConn is one HTTP/2 connection to a server (HTTP/2 with prior
// knowledge, or over TLS with "h2" negotiated), carrying many streams. Its
// reader goroutine runs the protocol; a stream's own goroutine writes its
// frames to the socket, and the header, body and end of a request written
// together go out in one write.
type ClientConn struct {
	wire
	set ClientSettings
	br  *bufio.Reader

	// guarded by mu, as is everything of wire's
	streams map[uint32]*ClientStream
	nextID  uint32
	// maxStreams is the server's SETTINGS_MAX_CONCURRENT_STREAMS;
	// reserved counts the streams promised by reserve, not yet opened.
	maxStreams uint32
	reserved   int
	// recv is what the server may still send on the connection;
	// recvUnacked what was read and not yet given back; streamRecv the
	// windows of the streams whose answer goes on, together, which recv
	// is kept at least at (grow).
	recv, recvUnacked, streamRecv int64
	// window is recv and what was received and not yet given back: the
	// connection's window as granted, which only growLocked changes
	// (2^31-1 at most).
	window int64
	// goingAway: no new stream (the server sent GOAWAY, or the
	// connection failed); err is why the connection ended.
	goingAway bool
	err       error
	// idleTicks counts a pool's ticks without a stream; stalled those
	// a write under way has taken; lastWrites the writes at the last
	// tick.
	idleTicks, stalled, lastWrites int
	// gone is closed when the reader has stopped; settled when the
	// server's first SETTINGS came (its limits are known) or the
	// connection ended.
	gone, settled chan struct{}
	isSettled     bool
	// driven: the owner reads and writes the socket (DriveClient).
	driven *clientDriven
}

// NewClientConn starts HTTP/2 on nc, whose TLS handshake (if any) is done:
// the client's preface goes out, and the reader starts.
func NewClientConn(nc net.Conn, set ClientSettings) *ClientConn {
	c := newClientConn(nc, set)
	c.br = bufio.NewReaderSize(nc, 32<<10)
	c.wire.init(nc, c.br, c)
	c.preface()
	go c.writeLoop()
	c.flushLocked()
	go c.readLoop()
	return c
}

// newClientConn is a client connection on nc, before its preface.
func newClientConn(nc net.Conn, set ClientSettings) *ClientConn {
	set.defaults()
	return &ClientConn{
		set:        set,
		streams:    map[uint32]*ClientStream{},
		nextID:     1,
		maxStreams: 100, // until the server's SETTINGS say otherwise
		// The connection's window starts at 65535 whatever SETTINGS
		// say; a larger WindowSize raises it, a smaller one stays.
		recv:    max(int64(set.WindowSize), 65535),
		window:  max(int64(set.WindowSize), 65535),
		gone:    make(chan struct{}),
		settled: make(chan struct{}),
	}
}

// preface writes the client's preface and SETTINGS, for the writer.
func (c *ClientConn) preface() {
	c.block.init(c.set.MaxHeaderListSize)
	c.out = append(c.out, http2.ClientPreface...)
	c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: c.set.WindowSize},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.set.MaxHeaderListSize},
	)
	if c.set.WindowSize > 65535 {
		c.fr.WriteWindowUpdate(0, c.set.WindowSize-65535)
	}
}

// reserve promises the caller a stream on c (its next NewStream), and
// reports false when c takes no more.
func (c *ClientConn) reserve() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fullLocked() {
		return false
	}
	c.reserved++
	return true
}

// fullLocked reports whether c takes no new stream: the server's limit
// of concurrent streams is reached (with the streams promised), the
// identifiers are used up, or it is going away.
func (c *ClientConn) fullLocked() bool {
	return c.goingAway || c.closing || uint32(len(c.streams)+c.reserved) >= c.maxStreams || c.nextID >= 1<<31-1
}

// Err is why the connection ended, or nil while it runs.
func (c *ClientConn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection: its streams fail, save those whose answer
// came complete, which are still read.
func (c *ClientConn) Close() error {
	c.mu.Lock()
	if !c.closing {
		c.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}
	c.failLocked(net.ErrClosed)
	c.mu.Unlock()
	return nil
}

// NewStream opens a stream with a request's fields: its pseudo-header
// fields first (":method", ":scheme", ":authority", ":path"), then the
// others, whose names may be in any case (connection-specific ones are
// left out). end ends the request with them. Otherwise they go out with
// the body's first bytes (ClientStream.WriteData), or at Flush.
func (c *ClientConn) NewStream(fields []HeaderField, end bool) (*ClientStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reserved > 0 {
		c.reserved--
	}
	if c.err != nil || c.goingAway || c.closing {
		return nil, ErrNotProcessed
	}
	if c.nextID > 1<<31-1 {
		// The stream identifiers are used up: a new connection.
		c.goingAway = true
		c.closeIfDoneLocked()
		return nil, ErrNotProcessed
	}
	s := &ClientStream{c: c, id: c.nextID, send: c.initialSend, recv: int64(c.set.WindowSize), sentEnd: end, counted: true}
	c.nextID += 2
	c.streams[s.id] = s
	c.streamRecv += s.recv
	c.growLocked()
	c.blockStartLocked()
	for _, f := range fields {
		if len(f.Name) > 0 && f.Name[0] == ':' {
			appendField(&c.wire, f.Name, f.Value)
		}
	}
	c.encodeLocked(fields)
	c.writeBlockLocked(s.id, end)
	if end {
		c.sendLocked()
	}
	return s, nil
}

// readLoop reads the server's frames until the connection ends.
func (c *ClientConn) readLoop() {
	defer close(c.gone)
	for {
		f, err := c.fr.ReadFrame()
		if err == nil {
			err = c.process(f)
		}
		if err != nil && !c.handle(err) {
			return
		}
	}
}

// handle acts on err, from reading or processing a frame: a stream's
// error resets the stream; any other ends the connection, and handle
// reports false.
func (c *ClientConn) handle(err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var se http2.StreamError
	if errors.As(err, &se) {
		if s := c.streams[se.StreamID]; s != nil {
			c.resetLocked(s, se.Code, &ResetError{se.Code})
		} else if !c.closing {
			c.fr.WriteRSTStream(se.StreamID, se.Code)
			c.flushLocked()
		}
		return true
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) && !c.closing {
		c.fr.WriteGoAway(0, http2.ErrCode(ce), nil)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	c.failLocked(err)
	return false
}

// failLocked ends the connection for err: every stream fails, and the
// writer closes the socket once what is pending is sent.
func (c *ClientConn) failLocked(err error) {
	if c.err == nil {
		c.err = &ConnError{err}
	}
	c.goingAway, c.closing = true, true
	c.settleLocked()
	c.abortAllLocked(c.err)
	c.flushLocked()
	if c.driven != nil {
		// The owner closes the socket once it took the last frames.
		return
	}
	go func() {
		// The writer gets a moment for the last frames (a GOAWAY).
		select {
		case <-c.wdone:
		case <-time.After(2 * time.Second):
		}
		c.nc.Close()
	}()
}

func (c *ClientConn) lostLocked(err error) {
	if c.err == nil {
		c.err = &ConnError{err}
	}
	c.goingAway = true
	c.abortAllLocked(c.err)
}

func (c *ClientConn) abortAllLocked(err error) {
	for _, s := range c.streams {
		if s.remoteDone && s.err == nil {
			// Its answer came complete: it is still read.
			c.stopRequestLocked(s)
			continue
		}
		c.abortLocked(s, err)
	}
}

// settleLocked closes settled once.
func (c *ClientConn) settleLocked() {
	if !c.isSettled {
		c.isSettled = true
		close(c.settled)
	}
}

// process acts on one frame of the server.
func (c *ClientConn) process(f http2.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil
	}
	switch f := f.(type) {
	case *http2.HeadersFrame:
		c.block.start(f)
		return c.onBlock(c.block.read(f.HeaderBlockFragment(), f.HeadersEnded()))
	case *http2.ContinuationFrame:
		return c.onBlock(c.block.read(f.HeaderBlockFragment(), f.HeadersEnded()))
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		if f.StreamID%2 == 0 || f.StreamID >= c.nextID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
		}
		if s := c.streams[f.StreamID]; s != nil {
			if s.remoteDone {
				// After a complete answer, the server wants no more of
				// the request (NO_ERROR, RFC 9113, 8.1): the answer is
				// still read.
				c.stopRequestLocked(s)
				return nil
			}
			err := error(&ResetError{f.ErrCode})
			if f.ErrCode == http2.ErrCodeRefusedStream {
				err = ErrNotProcessed
			}
			c.abortLocked(s, err)
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			c.fr.WritePing(true, f.Data)
			c.flushLocked()
		}
	case *http2.GoAwayFrame:
		// The streams the server never saw fail as not processed; the
		// others finish, then the connection closes.
		c.goingAway = true
		for id, s := range c.streams {
			if id > f.LastStreamID {
				c.abortLocked(s, ErrNotProcessed)
			}
		}
		if f.ErrCode != http2.ErrCodeNo {
			return fmt.Errorf("GOAWAY: %v %q", f.ErrCode, f.DebugData())
		}
		c.closeIfDoneLocked()
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil
}

func (c *ClientConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	err := c.onSettingsLocked(f, c.senders, func(s http2.Setting) {
		if s.ID == http2.SettingMaxConcurrentStreams {
			c.maxStreams = s.Val
		}
	})
	if err == nil {
		c.settleLocked()
	}
	return err
}

// senders are the sending sides of the open streams.
func (c *ClientConn) senders(yield func(*sender) bool) {
	for _, s := range c.streams {
		if !yield(&s.sender) {
			return
		}
	}
}

func (c *ClientConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	var snd *sender
	if s := c.streams[f.StreamID]; s != nil {
		snd = &s.sender
	}
	return c.onWindowUpdateLocked(f, snd)
}

// onBlock acts on a header block once it is read (f nil: not yet), or
// on the error of reading it.
func (c *ClientConn) onBlock(f *http2.MetaHeadersFrame, err error) error {
	if err != nil || f == nil {
		return err
	}
	return c.onHeaders(f)
}

// onHeaders acts on a header block, read; its fields are the reader's,
// and what is kept of them is copied.
func (c *ClientConn) onHeaders(f *http2.MetaHeadersFrame) error {
	s := c.streams[f.StreamID]
	if s == nil {
		if f.StreamID%2 == 0 || f.StreamID >= c.nextID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
		}
		return nil // a stream reset meanwhile
	}
	if s.remoteDone {
		// The answer ended already.
		return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeStreamClosed}
	}
	if f.Truncated {
		// Longer than MaxHeaderListSize: the fields are not all there.
		return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeCancel}
	}
	switch {
	case s.status != 0:
		// Trailers: they end the stream and carry no pseudo-header.
		if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
			return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol}
		}
		s.trailer = slices.Clone(f.RegularFields())
	default:
		status, err := strconv.Atoi(f.PseudoValue("status"))
		if err != nil || status < 100 || status > 999 {
			return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol}
		}
		if status < 200 {
			// Informational: the final answer follows.
			if f.StreamEnded() {
				return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol}
			}
			return nil
		}
		s.status, s.header = status, slices.Clone(f.RegularFields())
	}
	if f.StreamEnded() {
		s.endLocked()
	}
	wake(s.rwake)
	return nil
}

func (c *ClientConn) onData(f *http2.DataFrame) error {
	n := int64(f.Length)
	if n > c.recv {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recv -= n
	s := c.streams[f.StreamID]
	if s == nil || s.remoteDone {
		c.giveBackLocked(nil, n)
		if f.StreamID%2 == 0 || f.StreamID >= c.nextID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
		}
		if s != nil {
			// DATA after the answer's end.
			return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeStreamClosed}
		}
		return nil
	}
	if s.status == 0 {
		c.giveBackLocked(nil, n)
		return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol}
	}
	if n > s.recv {
		c.giveBackLocked(nil, n)
		return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeFlowControl}
	}
	s.recv -= n
	c.streamRecv -= n
	data := f.Data()
	s.buf = append(s.buf, data...)
	if pad := n - int64(len(data)); pad > 0 {
		c.giveBackLocked(s, pad)
	}
	if f.StreamEnded() {
		s.endLocked()
	}
	wake(s.rwake)
	return nil
}

// giveBackLocked returns n bytes to the server's windows (s's too, unless
// nil): a WINDOW_UPDATE once half a window has been used. It goes out
// with the next write, or at once when the writer is woken.
func (c *ClientConn) giveBackLocked(s *ClientStream, n int64) {
	half := int64(c.set.WindowSize / 2)
	c.recvUnacked += n
	if c.recvUnacked >= half && !c.closing {
		c.fr.WriteWindowUpdate(0, uint32(c.recvUnacked))
		c.recv += c.recvUnacked
		c.recvUnacked = 0
		c.flushLocked()
	}
	if s == nil || s.remoteDone {
		return
	}
	s.recvUnacked += n
	if s.recvUnacked >= half && !c.closing {
		c.fr.WriteWindowUpdate(s.id, uint32(s.recvUnacked))
		s.recv += s.recvUnacked
		c.streamRecv += s.recvUnacked
		s.recvUnacked = 0
		c.flushLocked()
		c.growLocked()
	}
}

// growLocked raises the connection's window to what its streams' windows
// allow together, so that the answers left unread in them cannot use up
// the window another stream waits for.
func (c *ClientConn) growLocked() {
	need := c.streamRecv - c.recv
	if need <= 0 || c.closing {
		return
	}
	// What was read and not yet given back goes first; the rest grows
	// the window as granted.
	back := min(need, c.recvUnacked)
	grow := min(need-back, 1<<31-1-c.window)
	if back+grow <= 0 {
		return
	}
	c.fr.WriteWindowUpdate(0, uint32(back+grow))
	c.recv += back + grow
	c.recvUnacked -= back
	c.window += grow
	c.flushLocked()
}

// uncountLocked takes s's window out of streamRecv: its answer is over.
func (c *ClientConn) uncountLocked(s *ClientStream) {
	if s.counted {
		s.counted = false
		c.streamRecv -= s.recv
	}
}

// resetLocked sends RST_STREAM with code for s, which fails with err.
func (c *ClientConn) resetLocked(s *ClientStream, code http2.ErrCode, err error) {
	if !c.closing {
		c.fr.WriteRSTStream(s.id, code)
		c.flushLocked()
	}
	c.abortLocked(s, err)
}

// abortLocked ends s for good with err, and forgets it.
func (c *ClientConn) abortLocked(s *ClientStream, err error) {
	if s.err == nil {
		s.err = err
	}
	s.remoteDone, s.sentEnd = true, true
	c.uncountLocked(s)
	wake(s.rwake)
	wake(s.wwake)
	c.giveBackLocked(nil, int64(len(s.buf)-s.off))
	s.buf, s.off = nil, 0
	c.removeLocked(s)
}

// stopRequestLocked ends the request of s, whose answer came complete:
// its writes fail, and it is forgotten.
func (c *ClientConn) stopRequestLocked(s *ClientStream) {
	s.sentEnd = true
	wake(s.wwake)
	c.removeLocked(s)
}

// removeLocked forgets s; a connection going away closes once it has no
// stream left.
func (c *ClientConn) removeLocked(s *ClientStream) {
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
	}
	c.closeIfDoneLocked()
}

func (c *ClientConn) closeIfDoneLocked() {
	if c.goingAway && len(c.streams) == 0 && !c.closing {
		c.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		c.failLocked(errors.New("gone away"))
	}
}

// ClientStream is one request sent and its answer. Its writes (WriteData,
// Flush) may come from one goroutine while another reads the answer
// (Response, Read); Reset and Close from any.
type ClientStream struct {
	c  *ClientConn
	id uint32

	// guarded by c.mu
	status      int // the answer's, once its header came
	header      []HeaderField
	trailer     []HeaderField
	buf         []byte // the answer's body received, not yet read from off
	off         int
	err         error // why the stream failed
	sender            // the stream's window towards the server
	recv        int64 // the stream's window from the server
	recvUnacked int64
	sentEnd     bool // the request ended, or the stream failed
	remoteDone  bool // the answer ended, or the stream failed
	counted     bool // recv is in the connection's streamRecv
	rwake       chan struct{}
}

// endLocked marks the end of the answer.
func (s *ClientStream) endLocked() {
	s.remoteDone = true
	s.c.uncountLocked(s)
	if s.sentEnd {
		s.c.removeLocked(s)
	}
}

// wait waits for a signal on ch (made on first use), with c.mu held on
// entry and return.
func (s *ClientStream) wait(ch *chan struct{}) {
	if *ch == nil {
		*ch = make(chan struct{}, 1)
	}
	c := *ch
	s.c.mu.Unlock()
	<-c
	s.c.mu.Lock()
}

// Response waits for the answer's final header: its status and fields
// (names in lower case, no pseudo-header fields). It fails with the
// stream: ErrNotProcessed when the server never took it, a *ResetError
// when the server reset it, a *ConnError when the connection failed.
func (s *ClientStream) Response() (status int, header []HeaderField, err error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for s.status == 0 && s.err == nil {
		s.wait(&s.rwake)
	}
	if s.status == 0 {
		return 0, nil, s.err
	}
	return s.status, s.header, nil
}

// Read reads the answer's body: io.EOF at its end, after which Trailer
// holds its trailers; the stream's error if it failed.
func (s *ClientStream) Read(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if n, ready, err := s.readLocked(p); ready {
			return n, err
		}
		s.wait(&s.rwake)
	}
}

// readLocked reads into p what came of the answer's body, giving it back
// to the server's windows, or says why nothing more will come (err);
// ready is false while nothing came.
func (s *ClientStream) readLocked(p []byte) (n int, ready bool, err error) {
	switch {
	case len(s.buf) > s.off:
		n = copyOut(p, &s.buf, &s.off)
		s.c.giveBackLocked(s, int64(n))
		return n, true, nil
	case s.err != nil:
		return 0, true, s.err
	case s.remoteDone:
		return 0, true, io.EOF
	}
	return 0, false, nil
}

// Buffered reports whether Read would return without waiting.
func (s *ClientStream) Buffered() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return len(s.buf) > s.off || s.remoteDone || s.err != nil
}

// Trailer is the answer's trailers, once Read returned io.EOF.
func (s *ClientStream) Trailer() []HeaderField {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.trailer
}

// WriteData sends p as request body, as the server's flow control allows
// (and once its SETTINGS came); end ends the request with it. The frames go out at once, together with
// the request's header when it is still waiting.
func (s *ClientStream) WriteData(p []byte, end bool) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if s.err != nil {
			return s.err
		}
		if s.sentEnd || c.closing {
			return ErrStreamClosed
		}
		if len(p) == 0 {
			if end {
				s.dataLocked(nil, 0, true)
			}
			c.sendLocked()
			return s.sendErrLocked()
		}
		n := min(int64(len(p)), s.send, c.send, int64(c.peerMaxFrame))
		// Before the server's SETTINGS, its windows are not known: it
		// may have made them smaller than the 65535 they start at.
		if n <= 0 || len(c.out) >= maxPending || !c.isSettled {
			if s.wwake == nil {
				s.wwake = make(chan struct{}, 1)
			}
			if s.send > 0 {
				// The connection's window, or the socket: wait with
				// the others.
				c.waiting = append(c.waiting, s.wwake)
			}
			c.sendLocked()
			c.waits++
			s.wait(&s.wwake)
			continue
		}
		p, _ = s.dataLocked(p, n, end)
		if len(p) == 0 {
			c.sendLocked()
			return s.sendErrLocked()
		}
	}
}

// dataLocked writes the first n bytes of p as a DATA frame, out of the
// windows, ending the request when end is set and they are all of p
// (last); rest is what is left of p.
func (s *ClientStream) dataLocked(p []byte, n int64, end bool) (rest []byte, last bool) {
	c := s.c
	last = end && n == int64(len(p))
	c.fr.WriteData(s.id, last, p[:n])
	s.send -= n
	c.send -= n
	if last {
		s.sentEnd = true
		if s.remoteDone {
			c.removeLocked(s)
		}
	}
	return p[n:], last
}

// sendErrLocked is why what a write gave the socket did not go: the
// connection failed meanwhile.
func (s *ClientStream) sendErrLocked() error {
	if s.c.broken && s.err != nil {
		return s.err
	}
	return nil
}

// Flush sends the request's header if it is still waiting for its body.
func (s *ClientStream) Flush() {
	s.c.mu.Lock()
	s.c.sendLocked()
	s.c.mu.Unlock()
}

// Reset resets the stream (CANCEL) unless it is over: the server stops
// working on it, and Response, Read and WriteData fail.
func (s *ClientStream) Reset() {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.err == nil && !(s.sentEnd && s.remoteDone) {
		c.resetLocked(s, http2.ErrCodeCancel, errCanceled)
	}
}

// Close ends the caller's use of the stream: one whose request or answer
// is not over is reset, and what is left of its answer is given back to
// the connection's window.
func (s *ClientStream) Close() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case s.err != nil:
	case s.sentEnd && s.remoteDone:
		c.giveBackLocked(nil, int64(len(s.buf)-s.off))
		s.buf, s.off = nil, 0
	default:
		c.resetLocked(s, http2.ErrCodeCancel, errCanceled)
	}
	return nil
}
