package proxy

import (
	"bytes"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/sys/unix"

	"github.com/podpin/podpin/internal/h2"
	"github.com/podpin/podpin/internal/place"
)

// HTTP/2 on the event loops. A connection that opens with the HTTP/2
// preface, or whose TLS handshake chose h2, stays on its loop when every
// route's streams are the loop's to forward (streamsOnLoops): the HTTP/2
// server's protocol runs in driven mode (h2.Driven), the loop feeding it
// what the socket brings and sending what it has, once per wake for all
// the connection's streams together, as HAProxy's multiplexer does. A
// stream without a body to a route of HTTP/1.1 pods the loops serve is
// forwarded by the loop itself, through its own pod connections, as an
// HTTP/1.1 client's request is (openStream); a stream to a route of h2c
// pods (gRPC), over the loop's own HTTP/2 connections to them
// (eventloop_h2c_linux.go); any other stream (refused at the edge, with a
// body or gRPC to HTTP/1.1 pods, or to a route that answers itself) is
// served by the HTTP/2 server's handler in a goroutine, its frames still
// sent by the loop. With a route the loops do not serve, the connections
// go to the HTTP/2 server's goroutines, as without loops: their streams
// would each wait for the loop's processor.

// streamsOnLoops reports whether the loops serve HTTP/2 connections
// under st themselves: whether every route's plain streams are theirs.
func streamsOnLoops(st *state) bool {
	for _, r := range st.routes {
		if !streamServes(r) {
			return false
		}
	}
	return len(st.routes) > 0
}

// streamServes reports whether the loops forward r's HTTP/2 streams
// themselves: as loopServes, or with every pod an h2c one at an IP
// address (gRPC), whose streams go over the loop's own connections to
// them (eventloop_h2c_linux.go).
func streamServes(r *route) bool {
	pods := r.pods.Load()
	return loopRoute(r) && (pods.loop || pods.h2cLoop)
}

// driveH2 makes c, whose client speaks HTTP/2, the HTTP/2 server's
// driven connection. It reports false when the server is shutting down.
func (l *eventLoop) driveH2(c *loopClient) bool {
	var nc net.Conn = c.cc
	if c.sec != nil {
		nc = c.sec
	}
	note := func() {
		l.post(func() {
			if c.fd >= 0 {
				l.markDirty(c)
			}
		})
	}
	d := c.front.h2srv.Drive(nc, note, func(s *h2.Stream) bool { return l.openStream(c, s) }, &l.streams)
	if d == nil {
		return false
	}
	c.h2 = d
	c.counted = true
	l.h2n++
	return true
}

// feed passes b, read from c, to its HTTP/2 connection; what that
// writes is sent at the end of the loop's turn.
func (l *eventLoop) feed(c *loopClient, b []byte) {
	l.markDirty(c)
	if !c.h2.Feed(b) {
		c.closing = true
	}
	if c.cc.deadline.Load() != 0 && c.h2.Started() {
		// The preface came within the header timeout; the connection's
		// own timers (idle, PING) take over.
		c.cc.deadline.Store(0)
	}
	// A WINDOW_UPDATE lets held answers go on; a reset ends its
	// exchange; a call's body goes on.
	for i := 0; i < len(c.streams); i++ {
		ex := c.streams[i]
		before := len(c.streams)
		switch {
		case ex.cs != nil:
			l.pump(ex)
		case ex.s.Err() != nil:
			l.abortStream(ex)
		}
		if len(c.streams) < before {
			i--
		}
	}
	l.retryHeld(c)
}

// readH2 handles n bytes read from c (n <= 0: the client closed).
func (l *eventLoop) readH2(c *loopClient, n int) {
	if n <= 0 {
		l.closeClient(c)
		return
	}
	if c.lingering {
		return // what comes after the connection's end is dropped
	}
	if c.sec == nil {
		l.feed(c, l.buf[:n])
		return
	}
	if !l.unseal(c, l.buf[:n]) {
		l.closeClient(c)
		return
	}
	l.feed(c, c.in)
	c.in = c.in[:0]
}

// linger ends c, an HTTP/2 connection whose last frames (a GOAWAY) are
// written: its writing side closes, and what the client still sends is
// read and dropped for a moment, so that the socket is not reset under
// the frames the client has yet to read. The client's end of the
// connection closes it, or a second later the sweeper (timedOut).
func (l *eventLoop) linger(c *loopClient) {
	if c.lingering {
		return
	}
	c.lingering = true
	if c.sec != nil {
		c.sec.CloseWrite()
		unix.Write(c.fd, c.taken.out)
		c.taken.out = c.taken.out[:0]
	}
	unix.Shutdown(c.fd, unix.SHUT_WR)
	c.cc.deadline.Store(c.cc.conns.deadlineIn(1000))
}

// openStream forwards s, opened on c, when it is a request to a route
// the loop serves that the edge policy does not refuse: to HTTP/1.1 pods
// with no body and not gRPC, to h2c pods any (startCall). It reports false
// for the others, which the HTTP/2 server's handler serves (serveStream).
func (l *eventLoop) openStream(c *loopClient, s *h2.Stream) bool {
	st := l.p.state.Load()
	cc := c.cc
	isTLS := c.sec != nil
	switch {
	case s.Truncated, s.Method == http.MethodConnect,
		len(s.Header) > st.limits.maxHeaders,
		st.limits.maxBodyBytes > 0 && s.ContentLength > st.limits.maxBodyBytes,
		!isTLS && l.p.certSource.Redirects([]byte(s.Authority)),
		isTLS && cc.conns.hostnames != nil:
		return false
	}
	ex := l.newStreamExchange()
	ex.place = streamPlace{s: s, cc: cc}
	q := &ex.place
	var r *route
	for _, rt := range st.routes {
		if rt.Match.Matches(q) {
			r = rt
			break
		}
	}
	if r == nil || r.respond != 0 || !streamServes(r) {
		l.recycle(ex)
		return false
	}
	pods := r.pods.Load()
	calls := pods.h2cLoop
	if !calls && (s.HasBody || isGRPCType(s.HeaderValue("content-type"))) {
		// A body, or gRPC, to HTTP/1.1 pods: the handler's.
		l.recycle(ex)
		return false
	}
	ex.c, ex.s, ex.r, ex.st = c, s, r, st
	ex.d = r.Decide(q, pods, ex.key[:0])
	if ex.d.Err == nil {
		ex.pd = ex.d.Pod.(*pod)
		if calls && !h2cServed(ex.pd) || !calls && !podServed(ex.pd) {
			// The route's pods changed since streamsOnLoops: the
			// handler decides again.
			l.recycle(ex)
			return false
		}
	}
	c.streams = append(c.streams, ex)
	ex.start = time.Now()
	if ex.d.Err != nil {
		code := placeStatus(ex.d.Err)
		r.Metrics.Unrouted(code)
		var extra []h2.HeaderField
		if code == http.StatusTooManyRequests {
			extra = []h2.HeaderField{{Name: "retry-after", Value: "1"}}
		}
		l.streamReply(ex, code, ex.d.Err.Error(), extra...)
		return true
	}
	if calls {
		l.startCall(ex)
		return true
	}
	streamPodRequest(ex.req, s, cc, isTLS)
	if ex.d.Assigned {
		ex.req.Header.SetBytesV(r.Key.Header, ex.d.Raw)
	}
	setPodHost(ex.req, ex.pd)
	l.start(ex)
	return true
}

// streamAnswer forwards the answer of ex, whose header is in ex.resp and
// whose body so far is body: whole when it is all in, else its header
// now and its body as it comes.
func (l *eventLoop) streamAnswer(ex *loopExchange, body []byte) {
	resp, r, pd := ex.resp, ex.r, ex.pd
	status := resp.StatusCode()
	r.Done(r.pods.Load(), pd, place.Outcome{Status: status, Seconds: time.Since(ex.start).Seconds()})
	ex.status = status
	h := &resp.Header
	stripHopByHop(h)
	if ex.st.podHeader != nil {
		h.SetCanonical(ex.st.podHeader, pd.nameV)
	}
	if ex.d.Assigned {
		h.SetBytesV(r.Key.Header, ex.d.Raw)
	}
	whole := ex.left >= 0 && int64(len(body)) >= ex.left
	l.markDirty(ex.c)
	if err := ex.s.WriteHeaderBytes(status, h.All(), whole && (ex.left == 0 || resp.SkipBody)); err != nil {
		l.finish(ex, false)
		l.abortStream(ex)
		return
	}
	if whole {
		extra := len(body) > int(ex.left)
		b := body[:ex.left]
		if resp.SkipBody {
			b = nil
		}
		l.finish(ex, !extra)
		if len(b) > 0 {
			l.streamSend(ex, b, true)
		} else {
			l.streamOver(ex, status)
		}
		return
	}
	ex.head = true
	ex.pc.in = ex.pc.in[:0]
	if len(body) > 0 {
		l.streamBody(ex, body)
	}
}

// streamBody passes b, the next bytes of an answer's body, to its
// stream.
func (l *eventLoop) streamBody(ex *loopExchange, b []byte) {
	switch {
	case ex.untilEOF:
		l.streamSend(ex, b, false)
	case ex.left >= 0:
		// Bytes past the length are the pod's error: they are dropped,
		// with the connection.
		extra := int64(len(b)) > ex.left
		b = b[:min(int64(len(b)), ex.left)]
		ex.left -= int64(len(b))
		if ex.left == 0 {
			l.finish(ex, !extra)
			l.streamSend(ex, b, true)
			return
		}
		l.streamSend(ex, b, false)
	default:
		ex.unchunked = ex.unchunked[:0]
		out, n, done, err := ex.chunked.reframe(ex.unchunked, b)
		ex.unchunked = out
		if err != nil {
			l.podLost(ex, err)
			return
		}
		if done {
			ex.trailers = trailerFields(ex.chunked.trailer)
			l.finish(ex, n == len(b))
			l.streamSend(ex, out, true)
			return
		}
		l.streamSend(ex, out, false)
	}
}

// streamSend writes b to ex's stream, and ends it after b when end is
// set, as far as the client's flow control and the frames waiting for the
// socket let it (sendOn).
func (l *eventLoop) streamSend(ex *loopExchange, b []byte, end bool) {
	l.markDirty(ex.c)
	if len(ex.held) > 0 {
		b = append(ex.held, b...)
	}
	l.sendOn(ex, b, end)
}

// sendOn writes what it can of b, the rest of ex's answer so far, and
// reports whether any went. What does not go is held until a
// WINDOW_UPDATE comes or the socket takes what waits (retryHeld); while
// loopWriteMax bytes are held, the pod's connection is not read.
func (l *eventLoop) sendOn(ex *loopExchange, b []byte, end bool) bool {
	n, err := ex.s.WriteAvailable(b, end && ex.trailers == nil)
	if err != nil {
		l.abortStream(ex)
		return false
	}
	rest := b[n:]
	if len(rest) == 0 && end {
		ex.held = ex.held[:0]
		if ex.trailers != nil && ex.s.WriteTrailers(ex.trailers) != nil {
			l.abortStream(ex)
			return true
		}
		if ex.pc == nil {
			l.streamOver(ex, ex.status)
		}
		return true
	}
	if n > 0 || len(ex.held) == 0 {
		ex.heldSince = l.now
	}
	ex.held = append(ex.held[:0], rest...)
	ex.heldEnd = end
	if pc := ex.pc; pc != nil && !pc.connecting {
		want := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
		if len(ex.held) >= loopWriteMax {
			want = 0
		}
		l.watch(pc.fd, &pc.watching, want, false)
	}
	return n > 0
}

// retryHeld sends on what c's streams hold, and reports whether any
// went.
func (l *eventLoop) retryHeld(c *loopClient) bool {
	progress := false
	for i := 0; i < len(c.streams); i++ {
		ex := c.streams[i]
		before := len(c.streams)
		if len(ex.held) > 0 && l.sendOn(ex, ex.held, ex.heldEnd) {
			progress = true
			if len(c.streams) == before && ex.cs != nil && len(ex.held) == 0 {
				// Room again: the pod's answer is read on.
				l.pumpAnswer(ex)
			}
		}
		if len(c.streams) < before {
			i--
		}
	}
	return progress
}

// sweepStreams resets the streams of c whose answer the client's flow
// control held back for longer than the body timeout, as a handler's
// write past its deadline does.
func (l *eventLoop) sweepStreams(c *loopClient, now time.Time) {
	for i := 0; i < len(c.streams); i++ {
		ex := c.streams[i]
		timeout := ex.st.limits.bodyTimeout
		if len(ex.held) == 0 || timeout <= 0 || now.Sub(ex.heldSince) <= timeout {
			continue
		}
		l.markDirty(c)
		ex.s.Reset(uint32(http2.ErrCodeInternal))
		l.abortStream(ex)
		i--
	}
}

// trailerFields are the fields of a chunked body's trailer section, as
// it came ("name: value" lines, each ended by CRLF, and an empty line),
// or nil when it has none.
func trailerFields(section []byte) []h2.HeaderField {
	var fields []h2.HeaderField
	for line := range bytes.Lines(section) {
		name, value, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(":"))
		if !ok || len(name) == 0 {
			continue
		}
		fields = append(fields, h2.HeaderField{Name: lowerName(name), Value: string(bytes.TrimSpace(value))})
	}
	return fields
}

// streamReply answers ex's stream with podpin's one-line text.
func (l *eventLoop) streamReply(ex *loopExchange, code int, msg string, extra ...h2.HeaderField) {
	ex.status = code
	if ct := ex.s.HeaderValue("content-type"); isGRPCType(ct) {
		// A status a gRPC client reads, as the handler's streamReply
		// writes it.
		l.markDirty(ex.c)
		if ex.s.WriteHeaders(http.StatusOK, grpcReply(ct, code, msg, extra), true) != nil {
			l.abortStream(ex)
			return
		}
		l.streamOver(ex, code)
		return
	}
	fields := append([]h2.HeaderField{
		{Name: "content-type", Value: "text/plain; charset=utf-8"},
		{Name: "x-podpin-error", Value: "1"},
	}, extra...)
	l.markDirty(ex.c)
	if ex.s.WriteHeaders(code, fields, false) != nil {
		l.abortStream(ex)
		return
	}
	l.streamSend(ex, []byte("podpin: "+msg+"\n"), true)
}

// abortStream ends ex, whose stream the client reset (or whose
// connection closed): its pod connection, mid-exchange, is closed.
func (l *eventLoop) abortStream(ex *loopExchange) {
	if l.leavePod(ex) {
		ex.r.Done(ex.r.pods.Load(), ex.pd, place.Outcome{Status: statusClientClosed, ClientFault: true, Seconds: time.Since(ex.start).Seconds()})
		ex.status = statusClientClosed
	}
	l.streamOver(ex, ex.status)
}

// streamOver ends ex's stream, its answer sent or the stream reset.
func (l *eventLoop) streamOver(ex *loopExchange, status int) {
	c := ex.c
	for i, o := range c.streams {
		if o == ex {
			c.streams = append(c.streams[:i], c.streams[i+1:]...)
			break
		}
	}
	l.markDirty(c)
	l.p.streamEnded(c.cc, status, ex.start)
	c.h2.Finish(ex.s)
	l.recycle(ex)
}

// recycle keeps ex, whose stream ended, for the next stream: a few
// hundred of them, and without a large buffer.
func (l *eventLoop) recycle(ex *loopExchange) {
	if len(l.spare) >= 512 {
		return
	}
	if cap(ex.held) > bufferedBody || cap(ex.unchunked) > bufferedBody || cap(ex.reqHeld) > bufferedBody || cap(ex.kept) > bufferedBody {
		ex.held, ex.unchunked, ex.reqHeld, ex.kept = nil, nil, nil, nil
	}
	ex.s, ex.c, ex.trailers, ex.place = nil, nil, nil, streamPlace{}
	ex.cs, ex.hc, ex.answerHeader = nil, nil, nil
	l.spare = append(l.spare, ex)
}

// newStreamExchange is an exchange for a stream, from those of ended
// streams when there are: with its request and answer, emptied.
func (l *eventLoop) newStreamExchange() *loopExchange {
	n := len(l.spare)
	if n == 0 {
		return &loopExchange{req: new(fasthttp.Request), resp: new(fasthttp.Response)}
	}
	ex := l.spare[n-1]
	l.spare[n-1] = nil
	l.spare = l.spare[:n-1]
	req, resp := ex.req, ex.resp
	held, unchunked, reqHeld, kept := ex.held[:0], ex.unchunked[:0], ex.reqHeld[:0], ex.kept[:0]
	*ex = loopExchange{req: req, resp: resp, held: held, unchunked: unchunked, reqHeld: reqHeld, kept: kept}
	req.Reset()
	resp.Reset()
	return ex
}

// closeStreams ends the exchanges of c, an HTTP/2 connection that
// closes, and the connection.
func (l *eventLoop) closeStreams(c *loopClient) {
	for len(c.streams) > 0 {
		ex := c.streams[0]
		l.leavePod(ex)
		c.streams = c.streams[1:]
		l.recycle(ex)
	}
	c.h2.Close()
	l.h2n--
}

// streamBroke resets the stream of ex, whose pod failed mid-answer: the
// client must not take what it got for the whole.
func (l *eventLoop) streamBroke(ex *loopExchange) {
	l.markDirty(ex.c)
	ex.s.Reset(uint32(http2.ErrCodeInternal))
	l.streamOver(ex, http.StatusBadGateway)
}
