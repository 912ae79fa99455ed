package proxy

import (
	"bufio"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// bufferedBody is the longest response body read whole before it is
// forwarded; HAProxy's default buffer is the same size. A longer body, or
// one without a Content-Length (chunked, or ended by closing), streams.
const bufferedBody = 16 << 10

// roundTrip writes req to a connection of the pod and reads the answer in
// one of two ways. A body of known length up to bufferedBody is read whole
// and the connection goes back to the pool at once: no allocation. A
// longer, chunked or close-delimited body streams to the client, and the
// connection goes back when the stream is closed. retry tells Do that the
// request may go again on another connection: true when the exchange failed
// before the response header was complete. until (zero: none) bounds
// the whole exchange, the streamed body included.
func (c *podClient) roundTrip(ctx context.Context, until time.Time, req *fasthttp.Request, resp *fasthttp.Response) (retry bool, err error) {
	pc, err := c.acquire()
	if err != nil {
		return false, err
	}
	if err := pc.setUntil(until); err != nil {
		c.discard(pc)
		return true, err
	}
	// Until the header is in, the end of ctx closes the connection. The
	// watch stops before the connection can go back to the pool.
	stopWatch := func() bool { return true }
	if a, ok := ctx.(afterFuncer); ok {
		// An HTTP/2 stream: its own AfterFunc costs less than
		// context.AfterFunc's.
		stopWatch = a.AfterFunc(func() { pc.Conn.Close() })
	} else if ctx.Done() != nil {
		stopWatch = context.AfterFunc(ctx, func() { pc.Conn.Close() })
	}
	bw := c.writer(pc)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	c.putWriter(bw)
	if err != nil {
		stopWatch()
		c.discard(pc)
		return true, asTimeout(err)
	}

	// The header first (fasthttp skips interim 1xx answers); the body is
	// read below, once its length is known.
	head := req.Header.IsHead()
	resp.SkipBody = true
	br := c.reader(pc)
	err = resp.ReadLimitBody(br, 0)
	resp.SkipBody = head
	if !stopWatch() && err == nil {
		err = ctx.Err() // the watch closed the connection
	}
	if err != nil {
		c.putReader(br)
		c.discard(pc)
		return true, err
	}
	// After a 101 the connection speaks another protocol: never reused.
	reuse := !req.ConnectionClose() && !resp.ConnectionClose() &&
		resp.StatusCode() != fasthttp.StatusSwitchingProtocols
	n := resp.Header.ContentLength()
	switch {
	case head || hasNoBody(resp.Header.StatusCode()):
		c.putReader(br)
	case n >= 0 && n <= bufferedBody:
		resp.StreamBody = false
		err = resp.ReadBody(br, 0)
		c.putReader(br)
		if err != nil {
			// The pod answered: the request is not sent again.
			c.discard(pc)
			return false, asTimeout(err)
		}
	default:
		s := c.streams.Get().(*podStream)
		s.start(pc, br, resp, reuse)
		return false, nil
	}
	if reuse {
		c.release(pc)
	} else {
		c.discard(pc)
	}
	return false, nil
}

// asTimeout turns any timeout into fasthttp.ErrTimeout, as fasthttp does
// when it reads a header.
func asTimeout(err error) error {
	if te, ok := err.(interface{ Timeout() bool }); ok && te.Timeout() {
		return fasthttp.ErrTimeout
	}
	return err
}

// hasNoBody reports the statuses whose responses end with the header
// (RFC 9110, section 6.4.1).
func hasNoBody(status int) bool {
	return status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified
}

// podStream is a response body streaming from a pod connection, which it
// holds until it is closed. Reads come from one goroutine at a time; a
// close may come from another while a read waits, and then interrupts it.
type podStream struct {
	c     *podClient
	pc    *podConn
	br    *bufio.Reader
	owner *fasthttp.Response // the response the body belongs to
	reuse bool               // the connection may serve another request after the body

	// frame decodes the body from br: its header is a copy of the owner's,
	// for the length and the announced trailer names, and receives the
	// trailer fields, which are then copied to the owner.
	frame fasthttp.Response
	body  io.Reader

	mu     sync.Mutex // held while reading
	ended  bool       // the body was read to its end
	closed atomic.Bool
}

func (s *podStream) start(pc *podConn, br *bufio.Reader, resp *fasthttp.Response, reuse bool) {
	s.pc, s.br, s.owner, s.reuse = pc, br, resp, reuse
	s.ended = false
	s.closed.Store(false)
	resp.Header.CopyTo(&s.frame.Header)
	s.frame.StreamBody = true
	s.frame.ReadBody(br, 0) // only sets up the stream: it cannot fail
	s.body = s.frame.BodyStream()
	resp.SetBodyStream(s, resp.Header.ContentLength())
}

func (s *podStream) Read(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	n, err := s.body.Read(p)
	if err == io.EOF && !s.ended {
		s.ended = true
		s.copyTrailers()
	}
	return n, err
}

// copyTrailers gives the owner the trailer fields that came after the last
// chunk, before the server writes its trailer section.
func (s *podStream) copyTrailers() {
	h := &s.frame.Header
	for name := range h.Trailers() {
		for _, v := range h.PeekAll(string(name)) {
			s.owner.Header.AddBytesV(string(name), v)
		}
	}
}

// CloseWithError ends the stream. The connection returns to the pool only
// when the body was read to its end, nothing failed and both sides keep it
// alive; otherwise it is closed, which also ends a read in flight.
func (s *podStream) CloseWithError(err error) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	locked := s.mu.TryLock()
	keep := err == nil && locked && s.ended && s.reuse
	if !locked {
		s.pc.Close() // ends the read in flight
		s.mu.Lock()
	}
	s.c.putReader(s.br)
	s.frame.Reset() // returns the body decoder to fasthttp
	if keep {
		s.c.release(s.pc)
	} else {
		s.c.discard(s.pc)
	}
	s.pc, s.br, s.owner, s.body = nil, nil, nil, nil
	s.mu.Unlock()
	s.c.streams.Put(s)
	return nil
}

// afterFuncer is a context that runs functions once it ends (h2.Stream).
type afterFuncer interface {
	AfterFunc(func()) (stop func() bool)
}
