package proxy

import (
	"bufio"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// bufferedBody is the longest response body read whole before it is
// forwarded; HAProxy's default buffer is the same size. A longer body, or
// one without a Content-Length (chunked, or ended by closing), streams.
const bufferedBody = 16 << 10

// podTransport is the fasthttp.RoundTripper of a pod's client. It sends a
// request as fasthttp's own transport does and reads the answer in one of
// two ways. A body of known length up to bufferedBody is read whole and
// the connection goes back to the pool at once: no allocation. A longer,
// chunked or close-delimited body streams to the client, and the connection
// goes back when the stream is closed. (fasthttp's transport streams every
// body once streaming is on, at four allocations per response, and most
// answers are short.)
//
// It supports the client settings newClient uses: no request, read or
// write timeouts (idleConn keeps the read timeout) and no connection
// lifetime.
//
// C is fasthttp's connection handle, a type the package does not export;
// it is inferred from the client's methods.
type podTransport[C interface{ Conn() net.Conn }] struct {
	acquire func(timeout time.Duration, connectionClose bool) (C, error)
	release func(C) // back to the pool
	discard func(C) // closed
	streams sync.Pool
}

// setPodTransport gives hc a podTransport.
func setPodTransport(hc *fasthttp.HostClient) {
	hc.Transport = newPodTransport(hc.AcquireConn, hc.ReleaseConn, hc.CloseConn)
}

func newPodTransport[C interface{ Conn() net.Conn }](acquire func(time.Duration, bool) (C, error), release, discard func(C)) *podTransport[C] {
	t := &podTransport[C]{acquire: acquire, release: release, discard: discard}
	t.streams.New = func() any { return &podStream[C]{t: t} }
	return t
}

// RoundTrip writes req and reads the pod's answer into resp. retry tells
// the client that the request may go again on another connection (its
// RetryIfErr decides): true when the exchange failed before the response
// header was complete, as with fasthttp's transport.
func (t *podTransport[C]) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (retry bool, err error) {
	cc, err := t.acquire(0, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	conn := cc.Conn()

	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		t.discard(cc)
		return true, asTimeout(err)
	}

	// The header first (fasthttp skips interim 1xx answers); the body is
	// read below, once its length is known.
	head := req.Header.IsHead()
	resp.SkipBody = true
	br := hc.AcquireReader(conn)
	err = resp.ReadLimitBody(br, 0)
	resp.SkipBody = head
	if err != nil {
		hc.ReleaseReader(br)
		t.discard(cc)
		return true, err
	}
	// After a 101 the connection speaks another protocol: never reused.
	reuse := !req.ConnectionClose() && !resp.ConnectionClose() &&
		resp.StatusCode() != fasthttp.StatusSwitchingProtocols
	n := resp.Header.ContentLength()
	switch {
	case head || hasNoBody(resp.Header.StatusCode()):
		hc.ReleaseReader(br)
	case n >= 0 && n <= bufferedBody:
		resp.StreamBody = false
		err = resp.ReadBody(br, 0)
		hc.ReleaseReader(br)
		if err != nil {
			// The pod answered: the request is not sent again.
			t.discard(cc)
			return false, asTimeout(err)
		}
	default:
		s := t.streams.Get().(*podStream[C])
		s.start(hc, cc, br, resp, reuse)
		return false, nil
	}
	if reuse {
		t.release(cc)
	} else {
		t.discard(cc)
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
type podStream[C interface{ Conn() net.Conn }] struct {
	t     *podTransport[C]
	hc    *fasthttp.HostClient
	cc    C
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

func (s *podStream[C]) start(hc *fasthttp.HostClient, cc C, br *bufio.Reader, resp *fasthttp.Response, reuse bool) {
	s.hc, s.cc, s.br, s.owner, s.reuse = hc, cc, br, resp, reuse
	s.ended = false
	s.closed.Store(false)
	resp.Header.CopyTo(&s.frame.Header)
	s.frame.StreamBody = true
	s.frame.ReadBody(br, 0) // only sets up the stream: it cannot fail
	s.body = s.frame.BodyStream()
	resp.SetBodyStream(s, resp.Header.ContentLength())
}

func (s *podStream[C]) Read(p []byte) (int, error) {
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
func (s *podStream[C]) copyTrailers() {
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
func (s *podStream[C]) CloseWithError(err error) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	locked := s.mu.TryLock()
	keep := err == nil && locked && s.ended && s.reuse
	if !locked {
		s.cc.Conn().Close() // ends the read in flight
		s.mu.Lock()
	}
	s.hc.ReleaseReader(s.br)
	s.frame.Reset() // returns the body decoder to fasthttp
	if keep {
		s.t.release(s.cc)
	} else {
		s.t.discard(s.cc)
	}
	var zero C
	s.hc, s.cc, s.br, s.owner, s.body = nil, zero, nil, nil, nil
	s.mu.Unlock()
	s.t.streams.Put(s)
	return nil
}
