package h2

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// conn is one client connection: its reader (serve, which runs the
// protocol: frames in, state, flow control), its writer (writeLoop, which
// sends what the streams and the reader wrote, all at once), and its
// streams' handlers.
type conn struct {
	wire
	srv *Server
	set Settings
	br  *bufio.Reader
	ctx context.Context
	// period is the tick of the connection's timer (pings, idleness).
	period time.Duration
	timer  *time.Timer
	// activity: a frame was read since the last tick.
	activity atomic.Bool

	// guarded by mu, as is everything of wire's
	streams map[uint32]*Stream
	// maxClientID is the highest stream the client opened.
	maxClientID uint32
	// recv is what the client may still send on the connection;
	// recvUnacked what handlers read and the client was not yet given
	// back.
	recv, recvUnacked int64
	running           int       // handlers running
	queue             []*Stream // streams waiting for a handler
	acked             bool      // the client acknowledged podpin's SETTINGS
	going             bool      // a GOAWAY was sent: no new streams
	// silent counts ticks without a frame read, idle ticks without a
	// stream, pinged the ticks since a PING went unanswered (0: none),
	// stalled the ticks the write under way has taken.
	silent, idle, pinged, stalled int
	lastWrites                    int
	// driven is the state of a connection whose socket its owner reads
	// and writes (Drive); nil for one that serve reads.
	driven *driven
}

func newConn(srv *Server, nc net.Conn) *conn {
	br := bufio.NewReaderSize(nc, 32<<10)
	c := newConnFrom(srv, nc, br)
	c.br = br
	return c
}

// newConnFrom returns the connection nc, whose frames are read from r.
func newConnFrom(srv *Server, nc net.Conn, r io.Reader) *conn {
	set := srv.Settings
	set.defaults()
	c := &conn{
		srv:     srv,
		set:     set,
		ctx:     context.Background(),
		streams: map[uint32]*Stream{},
		// The connection's window starts at 65535 whatever SETTINGS say;
		// newConn raises it to a larger ConnWindowSize, a smaller one
		// stays.
		recv: max(int64(set.ConnWindowSize), 65535),
	}
	if srv.ConnContext != nil {
		c.ctx = srv.ConnContext(nc)
	}
	c.wire.init(nc, r, c)
	c.block.init(set.MaxHeaderListSize)
	c.period = tickPeriod(set)
	// The server's preface goes out first, before whatever the server
	// may write to the connection (a GOAWAY at Shutdown) while serve
	// has not started.
	c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: set.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: set.MaxHeaderListSize},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: set.WindowSize},
	)
	if set.ConnWindowSize > 65535 {
		c.fr.WriteWindowUpdate(0, set.ConnWindowSize-65535)
	}
	return c
}

// tickPeriod is how often a connection checks its pings, idleness and
// writes: a quarter of the shortest of those timeouts, or zero when none
// is set and there is nothing to check.
func tickPeriod(s Settings) time.Duration {
	p := time.Duration(0)
	for _, d := range []time.Duration{s.IdleTimeout, s.PingInterval, s.PingTimeout, s.WriteTimeout} {
		if d > 0 && (p == 0 || d < p) {
			p = d
		}
	}
	if p == 0 {
		return 0
	}
	return max(p/4, 10*time.Millisecond)
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	go c.writeLoop()
	defer c.close()
	c.mu.Lock()
	c.flushLocked() // the server's preface, written by newConn
	c.mu.Unlock()

	c.nc.SetReadDeadline(time.Now().Add(c.set.PrefaceTimeout))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		c.debug("bad connection preface", err)
		c.fail(http2.ErrCodeProtocol)
		return
	}
	f, err := c.fr.ReadFrame()
	if sf, ok := f.(*http2.SettingsFrame); err != nil || !ok || sf.IsAck() {
		c.debug("the preface's SETTINGS missing", err)
		c.fail(http2.ErrCodeProtocol)
		return
	}
	c.nc.SetReadDeadline(time.Time{})
	if err := c.process(f); err != nil && !c.handle(err) {
		return
	}
	if c.period > 0 {
		c.mu.Lock()
		c.timer = time.AfterFunc(c.period, c.tick)
		c.mu.Unlock()
	}
	for {
		f, err := c.fr.ReadFrame()
		if err == nil {
			c.activity.Store(true)
			err = c.process(f)
		}
		if err != nil && !c.handle(err) {
			return
		}
	}
}

// handle deals with an error of reading or processing a frame, and
// reports whether the connection goes on.
func (c *conn) handle(err error) bool {
	var se http2.StreamError
	if errors.As(err, &se) {
		c.mu.Lock()
		if se.StreamID > c.maxClientID && se.StreamID%2 == 1 {
			// A stream refused as it opened is closed.
			c.maxClientID = se.StreamID
		}
		c.resetLocked(se.StreamID, se.Code)
		c.mu.Unlock()
		c.debug("stream error", err)
		return true
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		c.debug("connection error", fmt.Errorf("%w: %v", err, c.fr.ErrorDetail()))
		c.fail(http2.ErrCode(ce))
	}
	return false
}

func (c *conn) lostLocked(err error) {
	c.debug("write failed", err)
	c.abortAllLocked(errConnClosed)
}

func (c *conn) debug(msg string, err error) {
	if c.srv.Log != nil {
		c.srv.Log.Debug("http2: "+msg, "client", c.nc.RemoteAddr().String(), "err", err)
	}
}

// process acts on one frame of the client; a StreamError or
// ConnectionError it returns is the client's fault.
func (c *conn) process(f http2.Frame) error {
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
		if f.StreamID > c.maxClientID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
		}
		if st := c.streams[f.StreamID]; st != nil {
			c.abortLocked(st, errReset)
		}
	case *http2.PingFrame:
		if f.IsAck() {
			c.pinged = 0
			return nil
		}
		c.fr.WritePing(true, f.Data)
		c.flushLocked()
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
	case *http2.GoAwayFrame:
		// The client is leaving: those streams open finish, then the
		// connection closes, as after a Shutdown's GOAWAY.
		c.goAwayLocked()
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		c.acked = true
		return nil
	}
	return c.onSettingsLocked(f, c.senders, nil)
}

// senders are the sending sides of the open streams.
func (c *conn) senders(yield func(*sender) bool) {
	for _, st := range c.streams {
		if !yield(&st.sender) {
			return
		}
	}
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	st := c.streams[f.StreamID]
	if st == nil && f.StreamID > c.maxClientID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
	}
	var snd *sender
	if st != nil {
		snd = &st.sender
	}
	return c.onWindowUpdateLocked(f, snd)
}

// isConnectionField reports a connection-specific field, which HTTP/2
// forbids (RFC 9113, 8.2.2).
func isConnectionField(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// onBlock acts on a header block once it is read (f nil: not yet), or
// on the error of reading it.
func (c *conn) onBlock(f *http2.MetaHeadersFrame, err error) error {
	if err != nil || f == nil {
		return err
	}
	return c.onHeaders(f)
}

// onHeaders acts on a header block, read; its fields are the reader's,
// and what is kept of them is copied.
func (c *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if st := c.streams[id]; st != nil {
		// Trailers: they end the stream and carry no pseudo-header.
		if st.remoteDone && st.sentEnd {
			// Closed both ways, its handler not yet returned: as for a
			// stream already forgotten, a connection error.
			return http2.ConnectionError(http2.ErrCodeStreamClosed)
		}
		if st.remoteDone {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.trailer = slices.Clone(f.RegularFields())
		return c.endBodyLocked(st)
	}
	if id <= c.maxClientID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // a closed stream
	}
	c.maxClientID = id
	if c.going {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if uint32(len(c.streams)) >= c.set.MaxConcurrentStreams {
		if !c.acked {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	st := c.newStreamLocked()
	header := st.Header[:0]
	*st = Stream{
		c:             c,
		id:            id,
		Method:        f.PseudoValue("method"),
		Scheme:        f.PseudoValue("scheme"),
		Authority:     f.PseudoValue("authority"),
		Path:          f.PseudoValue("path"),
		Protocol:      f.PseudoValue("protocol"),
		Truncated:     f.Truncated,
		HasBody:       !f.StreamEnded(),
		ContentLength: -1,
		send:          c.initialSend,
		recv:          int64(c.set.WindowSize),
	}
	switch {
	case st.Method == "" || st.Protocol != "":
		// Extended CONNECT is not offered.
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	case st.Method == "CONNECT":
		if st.Scheme != "" || st.Path != "" || st.Authority == "" {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
	case st.Scheme == "" || st.Path == "":
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	fields := f.RegularFields()
	cookies := 0
	for _, hf := range fields {
		switch {
		case isConnectionField(hf.Name), hf.Name == "te" && hf.Value != "trailers":
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		case hf.Name == "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || st.ContentLength >= 0 && n != st.ContentLength {
				return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
			}
			st.ContentLength = n
		case hf.Name == "cookie":
			cookies++
		case hf.Name == "host" && st.Authority == "":
			st.Authority = hf.Value
		}
	}
	if cookies > 1 {
		fields = joinCookies(fields)
	}
	st.Header = append(header, fields...)
	c.streams[id] = st
	if f.StreamEnded() {
		if err := c.endBodyLocked(st); err != nil {
			return err
		}
	}
	if c.running < int(c.set.MaxConcurrentStreams) {
		c.running++
		if c.driven != nil {
			// Offered to the owner once the frames read are processed.
			c.driven.fresh = append(c.driven.fresh, st)
			return nil
		}
		c.srv.workers.run(func() { c.run(st) })
		return nil
	}
	// The handlers of streams the client reset may still run: this one
	// waits for one of them to end. A stream reset while it waits stays
	// in the queue, so a client that opens and resets streams faster
	// than handlers end fills it: past four times the streams it may
	// have open, the connection is closed (rapid reset, CVE-2023-44487).
	if len(c.queue) >= 4*int(c.set.MaxConcurrentStreams) {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	st.queued = true
	c.queue = append(c.queue, st)
	return nil
}

// newStreamLocked is a stream to fill in: one the owner of a driven
// connection served and finished (Driven.Finish), or a new one. It runs
// on the owner's goroutine when the connection is driven (in Feed).
func (c *conn) newStreamLocked() *Stream {
	if c.driven != nil && c.driven.pool != nil {
		p := c.driven.pool
		if n := len(p.spare); n > 0 {
			st := p.spare[n-1]
			p.spare[n-1] = nil
			p.spare = p.spare[:n-1]
			return st
		}
	}
	return new(Stream)
}

// joinCookies puts the cookie fields of a request into one, as HTTP/1.1
// has it (RFC 9113, 8.2.3).
func joinCookies(fields []HeaderField) []HeaderField {
	out := make([]HeaderField, 0, len(fields))
	var cookie []string
	at := -1
	for _, hf := range fields {
		if hf.Name != "cookie" {
			out = append(out, hf)
			continue
		}
		if at < 0 {
			at = len(out)
			out = append(out, hf)
		}
		cookie = append(cookie, hf.Value)
	}
	out[at].Value = strings.Join(cookie, "; ")
	return out
}

func (c *conn) onData(f *http2.DataFrame) error {
	id, n := f.StreamID, int64(f.Length)
	if n > c.recv {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recv -= n
	st := c.streams[id]
	if st == nil || st.remoteDone {
		c.giveBackLocked(nil, n)
		if id > c.maxClientID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if n > st.recv {
		c.giveBackLocked(nil, n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	st.recv -= n
	data := f.Data()
	st.received += int64(len(data))
	if st.ContentLength >= 0 && st.received > st.ContentLength {
		c.giveBackLocked(nil, n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	// Padding, and a body nobody reads any more, go back to the client's
	// window at once.
	kept := int64(len(data))
	if st.done {
		kept = 0
	} else if kept > 0 {
		st.buf = append(st.buf, data...)
		wake(st.rwake)
	}
	if n > kept {
		c.giveBackLocked(st, n-kept)
	}
	if f.StreamEnded() {
		return c.endBodyLocked(st)
	}
	return nil
}

// endBodyLocked marks the end of st's request body.
func (c *conn) endBodyLocked(st *Stream) error {
	st.remoteDone = true
	if st.ContentLength >= 0 && st.received != st.ContentLength {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	if st.bodyErr == nil {
		st.bodyErr = io.EOF
	}
	wake(st.rwake)
	if st.done {
		c.removeLocked(st)
	}
	return nil
}

// giveBackLocked returns n bytes to the client's windows (st's too, unless
// nil): a WINDOW_UPDATE once half a window has been used.
func (c *conn) giveBackLocked(st *Stream, n int64) {
	c.recvUnacked += n
	if c.recvUnacked >= int64(c.set.ConnWindowSize/2) && !c.closing {
		c.fr.WriteWindowUpdate(0, uint32(c.recvUnacked))
		c.recv += c.recvUnacked
		c.recvUnacked = 0
		c.flushLocked()
	}
	if st == nil || st.remoteDone {
		return
	}
	st.recvUnacked += n
	if st.recvUnacked >= int64(c.set.WindowSize/2) && !c.closing {
		c.fr.WriteWindowUpdate(st.id, uint32(st.recvUnacked))
		st.recv += st.recvUnacked
		st.recvUnacked = 0
		c.flushLocked()
	}
}

// resetLocked sends RST_STREAM for the stream id and forgets it.
func (c *conn) resetLocked(id uint32, code http2.ErrCode) {
	if c.closing {
		return
	}
	c.fr.WriteRSTStream(id, code)
	c.flushLocked()
	if st := c.streams[id]; st != nil {
		c.abortLocked(st, errReset)
	}
}

// abortLocked ends st for good: its body and writes fail with err, its
// context ends, and it is forgotten; its handler, if one runs, finds out.
func (c *conn) abortLocked(st *Stream, err error) {
	st.reset = true
	if !st.remoteDone || st.bodyErr == nil {
		st.bodyErr = err
	}
	st.remoteDone = true
	st.endLocked()
	wake(st.rwake)
	wake(st.wwake)
	c.giveBackLocked(nil, int64(len(st.buf)-st.off))
	st.buf, st.off = nil, 0
	c.removeLocked(st)
}

// removeLocked forgets st; a connection going away closes once it has no
// stream left.
func (c *conn) removeLocked(st *Stream) {
	if c.streams[st.id] == st {
		delete(c.streams, st.id)
	}
	if c.going && len(c.streams) == 0 && c.running == 0 {
		c.closing = true
		c.flushLocked()
	}
}

// run serves st, then the streams queued while it ran.
func (c *conn) run(st *Stream) {
	for st != nil {
		c.serveStream(st)
		st = c.finish(st)
	}
}

func (c *conn) serveStream(st *Stream) {
	defer func() {
		if v := recover(); v != nil {
			if c.srv.Log != nil {
				c.srv.Log.Error("http2: handler panicked", "panic", v, "stack", string(debug.Stack()))
			}
			c.mu.Lock()
			if !st.reset && !st.sentEnd {
				c.resetLocked(st.id, http2.ErrCodeInternal)
			}
			c.mu.Unlock()
		}
	}()
	c.srv.Handler.ServeStream(st)
}

// finish ends st once its handler returned, and returns the next stream
// for this handler's goroutine, or nil.
func (c *conn) finish(st *Stream) *Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	st.done = true
	if !st.reset && !c.closing {
		switch {
		case !st.wroteHeaders:
			c.fr.WriteRSTStream(st.id, http2.ErrCodeInternal)
		case !st.sentEnd:
			c.fr.WriteData(st.id, true, nil)
		}
		if !st.remoteDone {
			// The answer is complete; the rest of the body is not wanted.
			c.fr.WriteRSTStream(st.id, http2.ErrCodeNo)
			st.remoteDone = true
		}
		c.sendLocked()
	}
	st.endLocked()
	c.giveBackLocked(nil, int64(len(st.buf)-st.off))
	st.buf, st.off = nil, 0
	if st.bodyErr == nil || st.bodyErr == io.EOF {
		st.bodyErr = ErrStreamClosed
	}
	// A read of the body from another goroutine ends.
	wake(st.rwake)
	c.running--
	var next *Stream
	for len(c.queue) > 0 && !c.closing && next == nil {
		if q := c.queue[0]; !q.reset {
			next = q
			c.running++
		}
		c.queue[0].queued = false
		c.queue = c.queue[1:]
	}
	c.removeLocked(st)
	return next
}

// fail sends GOAWAY with code and closes the connection.
func (c *conn) fail(code http2.ErrCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.fr.WriteGoAway(c.maxClientID, code, nil)
	c.closing = true
	c.abortAllLocked(errConnClosed)
	c.flushLocked()
}

// goAway tells the client that no new stream will be served; the
// connection closes when those open have ended.
func (c *conn) goAway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.goAwayLocked()
}

func (c *conn) goAwayLocked() {
	if c.going || c.closing {
		return
	}
	c.going = true
	c.fr.WriteGoAway(c.maxClientID, http2.ErrCodeNo, nil)
	if len(c.streams) == 0 && c.running == 0 {
		c.closing = true
	}
	c.flushLocked()
}

func (c *conn) abortAllLocked(err error) {
	for _, st := range c.streams {
		c.abortLocked(st, err)
	}
	c.queue = nil
}

// close ends the connection once its reader stops: every stream fails,
// the writer sends what is left, and the socket closes.
func (c *conn) close() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Lock()
	c.closing = true
	c.abortAllLocked(errConnClosed)
	c.flushLocked()
	c.mu.Unlock()
	select {
	case <-c.wdone:
	case <-time.After(2 * time.Second):
	}
	c.nc.Close()
	// Reading on after the writer closed lets the socket drain: the
	// reader stops at the read deadline the writer set, or at EOF.
}

// dropLocked ends the connection at once: every stream fails, and the
// socket is closed (by a driven connection's owner, once told).
func (c *conn) dropLocked() {
	c.closing = true
	c.abortAllLocked(errConnClosed)
	if c.driven != nil {
		c.driven.dropped = true
		c.noteLocked()
		return
	}
	c.nc.Close()
}

// tick checks the connection's pings and idleness.
func (c *conn) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	if c.activity.Swap(false) {
		c.silent, c.pinged = 0, 0
	} else {
		c.silent++
		if c.pinged > 0 {
			c.pinged++
		}
	}
	if c.pinged > 0 && c.set.PingTimeout > 0 && time.Duration(c.pinged-1)*c.period >= c.set.PingTimeout {
		c.debug("no answer to a PING", nil)
		c.dropLocked()
		return
	}
	if c.writing && c.writes == c.lastWrites {
		c.stalled++
	} else {
		c.stalled = 0
	}
	c.lastWrites = c.writes
	if c.set.WriteTimeout > 0 && time.Duration(c.stalled)*c.period >= c.set.WriteTimeout {
		c.debug("the client reads nothing of what is sent", nil)
		c.dropLocked()
		return
	}
	if c.set.PingInterval > 0 && c.pinged == 0 && time.Duration(c.silent)*c.period >= c.set.PingInterval {
		c.fr.WritePing(false, [8]byte{'p', 'o', 'd', 'p', 'i', 'n'})
		c.pinged = 1
		c.flushLocked()
	}
	if len(c.streams) == 0 && c.running == 0 {
		c.idle++
	} else {
		c.idle = 0
	}
	if c.set.IdleTimeout > 0 && time.Duration(c.idle)*c.period >= c.set.IdleTimeout {
		c.going = true
		c.fr.WriteGoAway(c.maxClientID, http2.ErrCodeNo, nil)
		c.closing = true
		c.flushLocked()
		return
	}
	c.timer.Reset(c.period)
}
