package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/podpin/podpin/internal/h2"
	"github.com/podpin/podpin/internal/place"
)

// Event loops serve a listener's HTTP/1.1 connections as HAProxy serves
// them: each loop is one thread that waits in epoll for its client
// connections and for the pod connections it opened itself, reads what is
// ready, forwards it, and writes what it gathered for each client once per
// wake. A request passes between two system calls on one thread, with no
// goroutine to wake and no run queue to wait in: when other work shares
// the processors, the kernel gives a sleeping loop the CPU back as soon as
// its socket is ready, as it does HAProxy's threads.
//
// The loops serve what most traffic is: keep-alive requests without a
// body or with a short one that came with the header, on routes that
// forward to cleartext HTTP/1.1 pods and edit nothing. Anything else
// leaves with its connection, before any of it is answered or sent on,
// for the goroutine front end (fasthttp and the HTTP/2 server), which
// answers it as on a listener without loops: a longer or chunked body,
// an upgrade, HTTP/1.0, a request the edge policy refuses, a route with
// filters, cookies, learnt keys or its table in Redis, pods that speak
// h2c or TLS or are capped. The decision of placement, its counters and
// the pod's health are the same placement core's either way.
//
// On a TLS listener a connection's handshake runs in a goroutine of its
// own, as without loops; then it moves to a loop with its session (one
// that chose h2 only when the loops serve HTTP/2, eventloop_h2_linux.go).
// crypto/tls goes on running the session over the
// tracked connection, whose socket the loop has taken (takenConn): the
// loop puts the records it reads where crypto/tls reads them, and sends
// the records crypto/tls writes.

// loopWriteMax is how much of an answer a loop holds for a client that
// reads slowly before it stops reading the pod's connection.
const loopWriteMax = 256 << 10

// eventLoops are the proxy's loops, one per processor, which every
// listener served by loops shares: a loop's pod connections serve the
// clients of all of them.
type eventLoops struct {
	loops []*eventLoop
	next  atomic.Uint32 // the loop the next connection goes to, in turn
	wg    sync.WaitGroup
}

// loopFront is one listener's side of the loops.
type loopFront struct {
	loops *eventLoops
	p     *Proxy
	// fast takes the connections the loops hand over to fasthttp; h2
	// the HTTP/2 connections the loops do not serve (nil: HTTP/2 not
	// offered); h2srv serves those they do, driven (eventloop_h2_linux.go).
	fast, h2 *connQueue
	h2srv    *h2.Server
	http1    interface{ Inc() }
	// stopping is set when the listener shuts down: idle connections
	// close, busy ones after their answer.
	stopping atomic.Bool
	// clients counts the listener's connections the loops hold.
	clients atomic.Int64
}

// newLoopFront starts the proxy's loops if none run yet and returns
// the front of the listener at addr on them; close releases it.
func (p *Proxy) newLoopFront(addr net.Addr, h2q *connQueue, h2srv *h2.Server, http1 interface{ Inc() }) (*loopFront, error) {
	p.loopMu.Lock()
	defer p.loopMu.Unlock()
	if p.loops == nil {
		ls := &eventLoops{}
		for range processors.acquire() {
			l, err := newEventLoop(p)
			if err != nil {
				for _, l := range ls.loops {
					unix.Close(l.ep)
					unix.Close(l.wakeFD)
				}
				processors.release()
				return nil, err
			}
			ls.loops = append(ls.loops, l)
		}
		for _, l := range ls.loops {
			ls.wg.Go(l.run)
		}
		p.loops = ls
	}
	p.loopFronts++
	return &loopFront{loops: p.loops, p: p, fast: newConnQueue(addr), h2: h2q, h2srv: h2srv, http1: http1}, nil
}

// serve accepts ln's connections until it fails and gives each to a loop.
// The tracked listener counts and caps them as it does for fasthttp. On
// a TLS listener, ln hands on the connections once their handshake is
// done, each a session over a tracked connection whose socket the loop
// then takes; an h2 one goes to the HTTP/2 server's goroutines instead
// when the loops do not serve HTTP/2 (streamsOnLoops).
func (f *loopFront) serve(ln net.Listener) error {
	loops := f.loops.loops
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		cc, _ := connOf(c)
		sec, _ := c.(*tls.Conn)
		h2 := sec != nil && sec.ConnectionState().NegotiatedProtocol == "h2"
		if h2 && !streamsOnLoops(f.p.state.Load()) {
			go f.h2.put(c)
			continue
		}
		if sec != nil {
			t, err := takeFD(cc.Conn)
			if err != nil {
				cc.Close()
				continue
			}
			t.sealed = true
			cc.moveTo(t)
		}
		l := loops[f.loops.next.Add(1)%uint32(len(loops))]
		l.post(func() { l.adopt(f, cc, sec, h2) })
	}
}

// shutdown closes idle connections and lets busy ones finish their answer.
func (f *loopFront) shutdown() {
	f.stopping.Store(true)
	for _, l := range f.loops.loops {
		l.post(func() { l.closeIdle(f) })
	}
}

// drain waits until the loops hold no connection of f, or ctx ends.
func (f *loopFront) drain(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for f.clients.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// close closes the connections of f the loops still hold, and ends the
// loops when no other listener uses them.
func (f *loopFront) close() {
	var closed sync.WaitGroup
	for _, l := range f.loops.loops {
		closed.Add(1)
		l.post(func() {
			l.closeFront(f)
			closed.Done()
		})
	}
	closed.Wait()
	f.fast.Close()
	p := f.p
	p.loopMu.Lock()
	defer p.loopMu.Unlock()
	if p.loopFronts--; p.loopFronts == 0 {
		p.loops.close()
		p.loops = nil
		processors.release()
	}
}

// processors gives goroutines one processor of their own for every two
// loops while loops run: GOMAXPROCS is the loops' number and half of it
// again, rounded down. A loop's thread holds one of the runtime's
// processors even while it waits in epoll_wait: the runtime takes that
// processor back for goroutines only when its monitor next looks, 20 µs
// to 10 ms later, and then wakes a thread to look for work. With a loop on every processor,
// each wake of a goroutine (the accept loops, timers, the connections
// handed to fasthttp, HTTP/2, the admin API, the garbage collector)
// waits for that, and the monitor and those threads run thousands of
// times a second for nothing. Processors beyond the loops let
// goroutines run at once, and the loops' processors stay theirs. They are
// also threads that may run Go code beyond the CPUs the runtime was
// given, so there are at most half as many as loops.
//
// Measured with wrk (64 connections, hot keys) against the same binary
// with and without it, interleaved, three runs each, on a 2-CPU machine:
// at GOMAXPROCS=2 (two loops, nothing pinned) CPU per request fell from
// 20.0-23.8 µs to 17.2-18.8 µs, context switches per request from 0.41
// to 0.22, and HTTP/2 and gRPC on goroutines kept their p99 (bench/run's
// TLS suite beside a podpin without loops). At GOMAXPROCS=1 the extra
// processor is a second thread running goroutines on the one CPU: the
// loop's CPU per request fell a little (16.8-20.8 µs to 16.0-17.6 µs),
// but with HTTP/2 and gRPC connections busy while the loop waited, the
// two threads took turns on the CPU and their p99 went from 0.8-0.9× to
// 2.9-3.8× HAProxy's on gRPC streams and from 2.0-2.5× to 4-5× on h2:
// with one loop, half a processor rounds down to none.
//
// The loops' number is GOMAXPROCS as the first loops start: the
// processors the runtime was given (the container's CPU limit, or
// GOMAXPROCS in the environment). Setting GOMAXPROCS stops the runtime
// from following later changes of the CPU limit.
var processors loopProcessors

type loopProcessors struct {
	mu    sync.Mutex
	users int // proxies whose loops run
	loops int // GOMAXPROCS before the first of them started
}

// acquire returns how many loops a proxy runs; for the first, it raises
// GOMAXPROCS by half of that.
func (lp *loopProcessors) acquire() int {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.users == 0 {
		lp.loops = runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(lp.loops + lp.loops/2)
	}
	lp.users++
	return lp.loops
}

// release undoes acquire; the last sets GOMAXPROCS back.
func (lp *loopProcessors) release() {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.users--; lp.users == 0 {
		runtime.GOMAXPROCS(lp.loops)
	}
}

// close ends the loops and closes every connection they hold.
func (ls *eventLoops) close() {
	for _, l := range ls.loops {
		l.post(func() { l.quit = true })
	}
	ls.wg.Wait()
}

// takeConn is what the tracked listener wraps in place of an accepted TCP
// connection: the socket moves to a loop, and fd is its descriptor, no
// longer Go's. The clientConns sweeper ends a wait through
// SetReadDeadline, which the loop is told of.
type takenConn struct {
	fd            int
	local, remote net.Addr
	loop          *eventLoop
	closed        atomic.Bool
	// On a TLS connection (sealed), the session's records pass through
	// in and out: the loop appends what the socket brings to in, where
	// crypto/tls (over the tracked connection) reads it, and puts on the
	// socket what crypto/tls wrote to out.
	sealed  bool
	in, out []byte
}

// takeFD moves c's socket out of Go's network poller.
func takeFD(c net.Conn) (*takenConn, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, errors.New("not a TCP connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) { fd, derr = unix.Dup(int(s)) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	t := &takenConn{fd: fd, local: tc.LocalAddr(), remote: tc.RemoteAddr()}
	tc.Close()
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return t, nil
}

// Read gives crypto/tls the records the loop read. With none left it
// fails as a read past its deadline does, which crypto/tls takes as "try
// again later", keeping any part of a record it holds.
func (t *takenConn) Read(b []byte) (int, error) {
	if !t.sealed {
		return 0, errors.New("read from an event loop's connection")
	}
	if len(t.in) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(b, t.in)
	t.in = t.in[:copy(t.in, t.in[n:])]
	return n, nil
}

// Write takes crypto/tls's records for the loop to send; on a cleartext
// connection it is for podpin's one-line refusals before the loop adopts
// it.
func (t *takenConn) Write(b []byte) (int, error) {
	if t.sealed {
		t.out = append(t.out, b...)
		return len(b), nil
	}
	return unix.Write(t.fd, b)
}

func (t *takenConn) Close() error {
	if t.loop == nil && t.closed.CompareAndSwap(false, true) {
		return unix.Close(t.fd)
	}
	return nil
}

func (t *takenConn) LocalAddr() net.Addr  { return t.local }
func (t *takenConn) RemoteAddr() net.Addr { return t.remote }

func (t *takenConn) SetDeadline(d time.Time) error { return t.SetReadDeadline(d) }

func (t *takenConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadDeadline in the past is the sweeper's: the connection waited too
// long.
func (t *takenConn) SetReadDeadline(d time.Time) error {
	if l := t.loop; l != nil && !d.IsZero() && d.Before(time.Now()) {
		l.post(func() {
			if c := l.clients[t.fd]; c != nil && c.taken == t {
				l.timedOut(c)
			}
		})
	}
	return nil
}

// loopListener accepts TCP connections and takes their sockets for the
// loops: what it returns is the tracked listener's to count.
type loopListener struct{ net.Listener }

func (l loopListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		t, err := takeFD(c)
		if err != nil {
			c.Close()
			continue
		}
		return t, nil
	}
}

// eventLoop is one loop: its epoll, its clients and its pod connections.
type eventLoop struct {
	p      *Proxy
	ep     int
	wakeFD int
	// guards inbox
	mu    sync.Mutex
	inbox []func()

	clients map[int]*loopClient
	pods    map[int]*loopPod
	idle    map[*backend]*podPool
	dirty   []*loopClient
	busy    []*loopExchange // the exchanges at their pods
	buf     []byte
	br      *bufio.Reader
	rd      bytes.Reader
	bw      *bufio.Writer
	out     appendWriter
	quit    bool
	h2n     int // HTTP/2 clients
	// spare are the exchanges of ended streams, for the next ones, and
	// streams the streams themselves.
	spare   []*loopExchange
	streams h2.StreamPool
	// h2pods are the loop's HTTP/2 connections to h2c pods (a pod
	// without any has no entry), dirtyPods those with frames to write at the end of the
	// turn; callBuf is what the request bodies to them and their
	// answers pass through (one at a time: what is not sent on at once
	// is copied to wait).
	h2pods    map[*backend][]*loopPod
	dirtyPods []*loopPod
	callBuf   []byte
	// now is when the loop last woke: the clock of pod inactivity.
	now       time.Time
	lastSweep time.Time
}

// podPool is a loop's idle connections to one pod.
type podPool struct {
	sa   unix.Sockaddr
	idle []*loopPod
}

// appendWriter appends to the slice it points at.
type appendWriter struct{ dst *[]byte }

func (w appendWriter) Write(b []byte) (int, error) {
	*w.dst = append(*w.dst, b...)
	return len(b), nil
}

func newEventLoop(p *Proxy) (*eventLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wfd)}); err != nil {
		unix.Close(ep)
		unix.Close(wfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	l := &eventLoop{
		p: p, ep: ep, wakeFD: wfd,
		clients: map[int]*loopClient{},
		pods:    map[int]*loopPod{},
		idle:    map[*backend]*podPool{},
		buf:     make([]byte, 64<<10),
		h2pods:  map[*backend][]*loopPod{},
		callBuf: make([]byte, 16<<10),
	}
	l.br = bufio.NewReaderSize(&l.rd, 4096)
	l.bw = bufio.NewWriterSize(appendWriter{}, 4096)
	return l, nil
}

// post runs fn on the loop.
func (l *eventLoop) post(fn func()) {
	l.mu.Lock()
	l.inbox = append(l.inbox, fn)
	first := len(l.inbox) == 1
	l.mu.Unlock()
	if first {
		var one = [8]byte{1}
		unix.Write(l.wakeFD, one[:])
	}
}

func (l *eventLoop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	events := make([]unix.EpollEvent, 256)
	var inbox []func()
	for !l.quit {
		timeout := -1
		if len(l.busy) > 0 || len(l.idle) > 0 || l.h2n > 0 || len(l.h2pods) > 0 {
			timeout = int(sweepInterval / time.Millisecond)
		}
		n, err := unix.EpollWait(l.ep, events, timeout)
		l.now = time.Now()
		if err != nil && err != unix.EINTR {
			l.p.log.Error("event loop stopped", "err", os.NewSyscallError("epoll_wait", err))
			break
		}
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			switch {
			case fd == l.wakeFD:
				var b [8]byte
				unix.Read(l.wakeFD, b[:])
				l.mu.Lock()
				inbox, l.inbox = l.inbox, inbox[:0]
				l.mu.Unlock()
				for _, fn := range inbox {
					fn()
				}
				clear(inbox)
			case l.clients[fd] != nil:
				l.clientReady(l.clients[fd], ev.Events)
			case l.pods[fd] != nil:
				l.podReady(l.pods[fd], ev.Events)
			}
		}
		l.flush()
		if l.now.Sub(l.lastSweep) >= sweepInterval {
			l.lastSweep = l.now
			l.sweep(l.now)
			l.flush()
		}
	}
	for _, c := range l.clients {
		l.closeClient(c)
	}
	for _, pc := range l.pods {
		l.closePod(pc)
	}
	unix.Close(l.ep)
	unix.Close(l.wakeFD)
}

// loopClient is a client connection served by a loop.
type loopClient struct {
	front *loopFront
	taken *takenConn
	// sec is the TLS session over cc on a TLS listener; nil in
	// cleartext. c.out holds what is still to be sealed, taken.out the
	// sealed records.
	sec *tls.Conn
	cc  *clientConn
	fd  int
	in  []byte // read, not yet served
	out []byte // to write
	// ctx holds the request being served and then its answer.
	ctx *fasthttp.RequestCtx
	ex  *loopExchange // the request at its pod; nil: none
	// exchange is what ex points at while a request is at its pod.
	exchange loopExchange
	// h2 is the client's HTTP/2 connection, when it speaks HTTP/2 on
	// the loop, and streams the exchanges the loop serves on it, at
	// their pods or sending the last of their answer; lingering: the
	// connection ended, and what the client still sends is dropped.
	h2        *h2.Driven
	streams   []*loopExchange
	lingering bool
	counted   bool   // counted as an HTTP/1.1 connection, or as HTTP/2
	eof       bool   // the client closed its side
	closing   bool   // close once out is written
	dirty     bool   // in l.dirty
	watching  uint32 // epoll events asked for
}

// waitIdle and waitHeader start the idle and the header timeout of c,
// which the clientConns sweeper enforces.
func (c *loopClient) waitIdle() { c.cc.deadline.Store(c.cc.conns.deadlineIn(c.cc.conns.idleTimeout)) }
func (c *loopClient) waitHeader() {
	c.cc.deadline.Store(c.cc.conns.deadlineIn(c.cc.conns.headerTimeout))
}

// requestCtx is c's request context, emptied for the next request.
func (c *loopClient) requestCtx() *fasthttp.RequestCtx {
	if c.ctx == nil {
		c.ctx = new(fasthttp.RequestCtx)
		if c.sec != nil {
			c.ctx.Init2(c.sec, nil, false)
		} else {
			c.ctx.Init2(c.cc, nil, false)
		}
	}
	c.ctx.Request.Reset()
	c.ctx.Response.Reset()
	return c.ctx
}

// loopExchange is one request at its pod: an HTTP/1.1 client's (its
// request and answer in c.ctx) or an HTTP/2 stream's (s).
type loopExchange struct {
	c      *loopClient
	s      *h2.Stream
	req    *fasthttp.Request
	resp   *fasthttp.Response
	r      *route
	st     *state
	d      place.Decision
	key    [256]byte
	pd     *pod
	pc     *loopPod
	start  time.Time // when the current attempt began
	first  time.Time // when the first attempt began
	until  time.Time // zero: no deadline
	heard  time.Time // when the pod was last written to or heard from
	parsed bool      // the answer's header is in resp
	tries  int       // connections tried for this request
	got    bool      // the pod's answer began
	head   bool      // the answer's header went to the client
	close  bool      // the client asked to close after the answer
	// The answer's body as it passes: remaining bytes of a known length,
	// or the chunked framing's state.
	left     int64
	chunked  chunkState
	untilEOF bool
	// For a stream: the answer's status, the body the client's flow
	// control holds back (held; heldEnd: the answer ends after it), the
	// last bytes of a chunked body without their framing, and its
	// trailer fields.
	status    int
	held      []byte
	heldEnd   bool
	heldSince time.Time // when the held bytes last moved
	unchunked []byte
	trailers  []h2.HeaderField
	place     streamPlace // placement's view of the stream
	// For a stream to an h2c pod (a call): the pod's stream on hc; the
	// client's body read and not yet taken by the pod (reqHeld), how
	// much of it was read (sentBody) and when it last came (bodyHeard),
	// whether it ended (bodyEOF) and its end went to the pod (reqEnd);
	// what went, kept while the call may go again (kept; replayOff: it
	// may not); the answer's header; and what came of it.
	cs           *h2.ClientStream
	hc           *loopPod
	grpc         bool
	reqHeld      []byte
	sentBody     int64
	bodyHeard    time.Time
	bodyEOF      bool
	reqEnd       bool
	kept         []byte
	replayOff    bool
	answerHeader []h2.HeaderField
	timedOut     bool
	settled      bool
	clientFault  bool
}

// loopPod is a connection to a pod.
type loopPod struct {
	fd         int
	b          *backend
	in         []byte
	ex         *loopExchange
	connecting bool
	idleSince  time.Time
	watching   uint32
	// An HTTP/2 connection to an h2c pod: its protocol, the calls on
	// it, what waits for the socket; dirty: in l.dirtyPods; closing: it
	// closes once out is written.
	h2      *h2.ClientConn
	calls   []*loopExchange
	out     []byte
	blocked time.Time // since when out waits for the socket
	dirty   bool
	closing bool
}

func (l *eventLoop) adopt(f *loopFront, cc *clientConn, sec *tls.Conn, h2 bool) {
	t := cc.Conn.(*takenConn)
	c := &loopClient{front: f, taken: t, sec: sec, cc: cc, fd: t.fd}
	if f.stopping.Load() {
		cc.Close() // and t's descriptor: the loop never had it
		return
	}
	t.loop = l
	l.clients[t.fd] = c
	f.clients.Add(1)
	if err := l.watch(t.fd, &c.watching, unix.EPOLLIN|unix.EPOLLRDHUP, true); err != nil {
		l.closeClient(c)
		return
	}
	if h2 && !l.driveH2(c) {
		l.closeClient(c)
		return
	}
	if sec != nil {
		// The first request may have come with the end of the handshake,
		// into the session's buffer: the socket will not report it.
		c.waitHeader()
		if !l.unseal(c, nil) {
			l.closeClient(c)
			return
		}
		if c.h2 != nil {
			l.feed(c, c.in)
			c.in = c.in[:0]
			return
		}
		l.serveNext(c)
	}
}

func (l *eventLoop) watch(fd int, watching *uint32, events uint32, add bool) error {
	op := unix.EPOLL_CTL_MOD
	if add {
		op = unix.EPOLL_CTL_ADD
	} else if *watching == events {
		return nil
	}
	*watching = events
	return unix.EpollCtl(l.ep, op, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)})
}

func (l *eventLoop) clientReady(c *loopClient, events uint32) {
	if events&unix.EPOLLOUT != 0 {
		l.write(c)
		if c.fd < 0 {
			return
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	if c.closing && c.h2 == nil {
		// Nothing more is read from a connection that closes once its
		// answer is written; a hang-up ends it now.
		if events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			l.closeClient(c)
			return
		}
		l.watch(c.fd, &c.watching, c.watching&^(unix.EPOLLIN|unix.EPOLLRDHUP), false)
		return
	}
	if c.eof {
		return
	}
	n, err := unix.Read(c.fd, l.buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if c.h2 != nil {
		l.readH2(c, n)
		return
	}
	if n > 0 && len(c.in) == 0 && c.ex == nil {
		c.waitHeader()
	}
	switch {
	case n <= 0:
	case c.sec == nil:
		c.in = append(c.in, l.buf[:n]...)
	case !l.unseal(c, l.buf[:n]):
		// The client closed the session (close_notify) or broke it.
		n = 0
	}
	if n <= 0 {
		c.eof = true
		if c.ex == nil {
			l.closeClient(c)
			return
		}
		// The answer under way is dropped when it comes. The socket
		// leaves epoll, which would report its hang-up until then.
		unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
		c.watching = 0
		return
	}
	if c.ex != nil {
		if len(c.in) >= l.p.state.Load().limits.maxHeaderBytes {
			// Pipelined requests wait for the answer under way.
			l.watch(c.fd, &c.watching, c.watching&^unix.EPOLLIN, false)
		}
		return
	}
	l.serveNext(c)
}

// unseal passes b, read from c's socket, through c's TLS session into
// c.in. It reports false when the session ended (close_notify) or failed.
func (l *eventLoop) unseal(c *loopClient, b []byte) bool {
	c.taken.in = append(c.taken.in, b...)
	for {
		c.in = slices.Grow(c.in, 4096)
		n, err := c.sec.Read(c.in[len(c.in):cap(c.in)])
		c.in = c.in[:len(c.in)+n]
		if err == nil {
			continue
		}
		if len(c.taken.out) > 0 {
			l.markDirty(c) // an alert, or an answer to a key update
		}
		return errors.Is(err, os.ErrDeadlineExceeded)
	}
}

// h2Preface is what an HTTP/2 connection with prior knowledge opens with.
// serveNext serves the request at the start of c.in, if it is complete.
func (l *eventLoop) serveNext(c *loopClient) {
	if len(c.in) == 0 || c.ex != nil || c.fd < 0 {
		return
	}
	if !c.counted {
		n := min(len(c.in), len(h2Preface))
		if c.front.h2 != nil && c.sec == nil && string(c.in[:n]) == h2Preface[:n] {
			switch {
			case n < len(h2Preface):
			case !streamsOnLoops(l.p.state.Load()):
				l.handOver(c, c.front.h2)
			case !l.driveH2(c):
				l.closeClient(c)
			default:
				in := c.in
				c.in = nil
				l.feed(c, in)
			}
			return
		}
		c.counted = true
		c.front.http1.Inc()
	}
	st := l.p.state.Load()
	end := bytes.Index(c.in, []byte("\r\n\r\n"))
	if end < 0 {
		if len(c.in) >= st.limits.maxHeaderBytes || bytes.IndexByte(c.in, '\n') >= 0 && bytes.Contains(c.in, []byte("\n\n")) {
			l.handOver(c, c.front.fast)
		}
		return
	}
	if end+4 > st.limits.maxHeaderBytes {
		l.handOver(c, c.front.fast)
		return
	}
	ctx := c.requestCtx()
	l.rd.Reset(c.in[:end+4])
	l.br.Reset(&l.rd)
	h := &ctx.Request.Header
	if err := h.Read(l.br); err != nil || l.br.Buffered() != 0 || l.rd.Len() != 0 {
		l.handOver(c, c.front.fast)
		return
	}
	// A body the loop takes has a length, fits bufferedBody and is all
	// here; without Content-Length or Transfer-Encoding (-2) there is
	// none. Others are read as they come by the goroutine front end,
	// under its body timeout.
	body := 0
	switch n := h.ContentLength(); {
	case n == 0 || n == -2:
	case n > 0 && n <= bufferedBody && len(c.in) >= end+4+n:
		body = n
	default:
		l.handOver(c, c.front.fast)
		return
	}
	if !h.IsHTTP11() || len(h.Peek(fasthttp.HeaderTransferEncoding)) > 0 ||
		len(h.Peek(fasthttp.HeaderExpect)) > 0 || len(h.Peek(fasthttp.HeaderUpgrade)) > 0 || h.IsConnect() {
		l.handOver(c, c.front.fast)
		return
	}
	r, scan, answer := l.p.routeFor(ctx, st)
	if answer != nil || !loopServes(r) {
		l.handOver(c, c.front.fast)
		return
	}
	c.cc.deadline.Store(0)
	ex := &c.exchange
	*ex = loopExchange{c: c, req: &ctx.Request, resp: &ctx.Response, r: r, st: st, close: h.ConnectionClose()}
	ex.d = r.Decide((*fastRequest)(ctx), r.pods.Load(), ex.key[:0])
	if ex.d.Err == nil {
		ex.pd = ex.d.Pod.(*pod)
		if !podServed(ex.pd) {
			// The route's pods changed since loopServes: the goroutine
			// front end decides again.
			l.handOver(c, c.front.fast)
			return
		}
	}
	if body > 0 {
		ctx.Request.SetBody(c.in[end+4 : end+4+body])
	}
	c.in = c.in[:copy(c.in, c.in[end+4+body:])]
	if ex.d.Err != nil {
		r.refuseDecision(ctx, ex.d.Err)
		l.answer(c, ex.close)
		if !c.closing {
			c.waitIdle()
			l.serveNext(c)
		}
		return
	}
	if ex.d.Assigned {
		h.SetBytesV(r.Key.Header, ex.d.Raw)
	}
	r.preparePodRequest(ctx, scan, ex.pd)
	c.ex = ex
	l.start(ex)
}

// start sends ex, decided, to its pod.
func (l *eventLoop) start(ex *loopExchange) {
	ex.start = time.Now()
	ex.first = ex.start
	ex.until = ex.r.deadline(ex.start, ex.start)
	ex.pd.tally.Start()
	l.busy = append(l.busy, ex)
	l.send(ex)
}

// loopServes reports whether the loops forward r's requests themselves.
func loopServes(r *route) bool { return loopRoute(r) && r.pods.Load().loop }

// loopRoute reports whether r asks nothing of a request that the loops
// leave to the goroutine front end: no filters, cookie or learnt keys,
// and its table in memory. A route whose table is in Redis is not
// theirs: a lookup that misses the local table, a claim and a rebind ask
// Redis and wait for its answer, which would hold every connection of
// the loop.
func loopRoute(r *route) bool {
	return r.filters == nil && r.cookie == nil && !r.LearnKeys && r.shared == nil
}

// send writes ex's request on a connection to its pod.
func (l *eventLoop) send(ex *loopExchange) {
	pool := l.pool(ex.pd.backend)
	var pc *loopPod
	if n := len(pool.idle); n > 0 {
		pc = pool.idle[n-1]
		pool.idle = pool.idle[:n-1]
	} else {
		var err error
		if pc, err = l.dial(ex.pd.backend, pool.sa); err != nil {
			l.podFailed(ex, err)
			return
		}
	}
	ex.pc, ex.got = pc, false
	ex.heard = l.now
	ex.tries++
	pc.ex = ex
	pc.in = pc.in[:0]
	if pc.connecting {
		return // sent when connected
	}
	l.writeRequest(ex)
}

func (l *eventLoop) writeRequest(ex *loopExchange) {
	pc := ex.pc
	ex.heard = l.now
	buf := l.p.bufs.get()
	*buf = (*buf)[:0]
	// As the goroutine front end writes it: an absolute-form target in
	// origin-form, the path as the client sent it.
	ex.req.URI().DisablePathNormalizing = true
	l.bw.Reset(appendWriter{buf})
	err := ex.req.Write(l.bw)
	if err == nil {
		err = l.bw.Flush()
	}
	n := 0
	if err == nil {
		n, err = unix.Write(pc.fd, *buf)
	}
	short := err == nil && n < len(*buf)
	l.p.bufs.put(buf)
	if err != nil || short {
		// A request header that does not fit an empty socket buffer is
		// not one the loops take (limits.maxHeaderBytes is far smaller).
		if err == nil {
			err = errors.New("short write")
		}
		l.podLost(ex, err)
	}
}

func (l *eventLoop) pool(b *backend) *podPool {
	p := l.idle[b]
	if p == nil {
		ap := b.ip
		p = &podPool{}
		if ap.Addr().Is4() {
			p.sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
		} else {
			p.sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
		}
		l.idle[b] = p
	}
	return p
}

// dial opens a connection to b, counted under its cap
// (upstream.maxConnsPerPod). At the cap it fails at once, where a
// goroutine would wait for a connection to be released: a loop cannot.
func (l *eventLoop) dial(b *backend, sa unix.Sockaddr) (*loopPod, error) {
	if !b.client.reserve() {
		return nil, fasthttp.ErrNoFreeConns
	}
	pc, err := l.connect(sa)
	if err != nil {
		b.client.closed()
		return nil, err
	}
	pc.b = b
	return pc, nil
}

func (l *eventLoop) connect(sa unix.Sockaddr) (*loopPod, error) {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &dialError{os.NewSyscallError("socket", err)}
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	pc := &loopPod{fd: fd}
	err = unix.Connect(fd, sa)
	switch err {
	case nil:
	case unix.EINPROGRESS:
		pc.connecting = true
	default:
		unix.Close(fd)
		return nil, &dialError{os.NewSyscallError("connect", err)}
	}
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if pc.connecting {
		events = unix.EPOLLOUT
	}
	if err := l.watch(fd, &pc.watching, events, true); err != nil {
		unix.Close(fd)
		return nil, &dialError{os.NewSyscallError("epoll_ctl", err)}
	}
	l.pods[fd] = pc
	return pc, nil
}

// connected reports, for pc whose connection was under way, whether
// events say how it went (done), and if it failed, why.
func connected(pc *loopPod, events uint32) (done bool, err error) {
	if events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		return false, nil
	}
	pc.connecting = false
	e, err := unix.GetsockoptInt(pc.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && e != 0 {
		err = syscall.Errno(e)
	}
	if err != nil {
		return true, &dialError{os.NewSyscallError("connect", err)}
	}
	return true, nil
}

func (l *eventLoop) podReady(pc *loopPod, events uint32) {
	if pc.h2 != nil {
		l.h2PodReady(pc, events)
		return
	}
	ex := pc.ex
	if pc.connecting {
		done, err := connected(pc, events)
		if !done {
			return
		}
		if err != nil {
			l.closePod(pc)
			if ex != nil {
				l.podFailed(ex, err)
			}
			return
		}
		l.watch(pc.fd, &pc.watching, unix.EPOLLIN|unix.EPOLLRDHUP, false)
		if ex != nil {
			l.writeRequest(ex)
		}
		return
	}
	n, err := unix.Read(pc.fd, l.buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if ex == nil {
		// An idle connection the pod closed, or spoke on unasked.
		l.closePod(pc)
		return
	}
	if n <= 0 {
		if err == nil && ex.untilEOF {
			l.bodyEnd(ex)
			return
		}
		switch {
		case err == nil && !ex.got:
			err = fasthttp.ErrConnectionClosed
		case err == nil:
			err = io.ErrUnexpectedEOF // a bad response
		}
		l.podLost(ex, err)
		return
	}
	ex.got = true
	ex.heard = l.now
	if ex.head {
		l.body(ex, l.buf[:n])
		return
	}
	pc.in = append(pc.in, l.buf[:n]...)
	if !ex.parsed {
		l.answerHead(ex)
		return
	}
	l.answerBody(ex)
}

// answerHead reads the pod's answer header once it is complete.
func (l *eventLoop) answerHead(ex *loopExchange) {
	pc := ex.pc
	for {
		end := bytes.Index(pc.in, []byte("\r\n\r\n"))
		if end < 0 {
			if len(pc.in) > 64<<10 {
				l.podLost(ex, errors.New("answer header too large"))
			}
			return
		}
		resp := ex.resp
		resp.Reset()
		l.rd.Reset(pc.in[:end+4])
		l.br.Reset(&l.rd)
		if err := resp.Header.Read(l.br); err != nil || l.br.Buffered() != 0 || l.rd.Len() != 0 {
			if err == nil {
				err = errors.New("malformed answer header")
			}
			l.podLost(ex, err)
			return
		}
		pc.in = pc.in[:copy(pc.in, pc.in[end+4:])]
		code := resp.StatusCode()
		if code >= 100 && code < 200 && code != fasthttp.StatusSwitchingProtocols {
			continue // an interim answer
		}
		break
	}
	resp, req := ex.resp, ex.req
	if req.Header.IsHead() || hasNoBody(resp.StatusCode()) {
		resp.SkipBody = true
		ex.left = 0
	} else {
		switch n := resp.Header.ContentLength(); {
		case n >= 0:
			ex.left = int64(n)
		case n == -1:
			ex.chunked = chunkState{plain: ex.s != nil}
			ex.left = -1
		default:
			// Ended by the pod closing: chunked to the client
			// (writeHead).
			ex.untilEOF = true
			ex.left = -1
		}
	}
	ex.parsed = true
	l.answerBody(ex)
}

// answerBody forwards the answer once its header is read: whole when its
// body is all here; at once and then as it comes when it is longer than
// bufferedBody or of unknown length; else once the rest comes, as the
// goroutine front end does, so that a pod failing before the end of a
// short body is still a 502.
func (l *eventLoop) answerBody(ex *loopExchange) {
	pc, c := ex.pc, ex.c
	resp := ex.resp
	body := pc.in
	if ex.left >= 0 && int64(len(body)) < ex.left && ex.left <= bufferedBody {
		return
	}
	if ex.s != nil {
		l.streamAnswer(ex, body)
		return
	}
	ex.r.answered(c.ctx, ex.st, &ex.d, ex.pd, ex.start, ex.close)
	if ex.d.Assigned {
		ex.r.handOut(c.ctx, &ex.d)
	}
	if ex.left >= 0 && int64(len(body)) >= ex.left {
		if !resp.SkipBody {
			resp.SetBodyRaw(body[:ex.left])
		}
		extra := len(body) > int(ex.left)
		l.answer(c, ex.close)
		// After a 101 to a request that asked for no upgrade, the pod's
		// connection speaks something else: it is not pooled.
		l.finish(ex, !extra && resp.StatusCode() != fasthttp.StatusSwitchingProtocols)
		return
	}
	if ex.untilEOF {
		resp.Header.SetContentLength(-1)
	}
	l.writeHead(c, ex.close)
	ex.head = true
	pc.in = pc.in[:0]
	if len(body) > 0 {
		l.body(ex, body)
	}
}

// body passes b, the next bytes of the answer's body, to the client.
func (l *eventLoop) body(ex *loopExchange, b []byte) {
	if ex.s != nil {
		l.streamBody(ex, b)
		return
	}
	c := ex.c
	switch {
	case ex.untilEOF:
		c.out = appendChunk(c.out, b)
	case ex.left >= 0:
		// Bytes past the length are the pod's error: they are dropped,
		// with the connection.
		extra := int64(len(b)) > ex.left
		b = b[:min(int64(len(b)), ex.left)]
		ex.left -= int64(len(b))
		l.pass(c, b)
		if ex.left == 0 {
			l.markDirty(c)
			l.finish(ex, !extra)
			return
		}
	default:
		out, n, done, err := ex.chunked.reframe(c.out, b)
		c.out = out
		if err != nil {
			l.podLost(ex, err)
			return
		}
		if done {
			l.markDirty(c)
			l.finish(ex, n == len(b))
			return
		}
	}
	l.markDirty(c)
	if len(c.out) >= loopWriteMax {
		l.write(c)
	}
}

// pass sends b on to the client: straight to its socket when nothing
// waits to be written before it, what the socket does not take after.
func (l *eventLoop) pass(c *loopClient, b []byte) {
	if c.sec != nil {
		c.out = append(c.out, b...)
		l.markDirty(c)
		return
	}
	if len(c.out) == 0 && c.fd >= 0 {
		if n, err := unix.Write(c.fd, b); err == nil {
			b = b[n:]
		}
		// A failed write is found again, and handled, by write.
	}
	c.out = append(c.out, b...)
}

func (l *eventLoop) bodyEnd(ex *loopExchange) {
	if ex.s != nil {
		l.finish(ex, false)
		l.streamSend(ex, nil, true)
		return
	}
	if ex.untilEOF {
		ex.c.out = append(ex.c.out, "0\r\n\r\n"...)
		l.markDirty(ex.c)
		l.finish(ex, false)
		return
	}
	l.markDirty(ex.c)
	l.finish(ex, true)
}

// finish ends ex: its pod connection goes back to the loop's pool
// (reuse) or is closed, and the client's next request is served.
func (l *eventLoop) finish(ex *loopExchange, reuse bool) {
	c, pc := ex.c, ex.pc
	ex.pd.tally.Stop()
	l.done(ex)
	if pc != nil {
		pc.ex = nil
		ex.pc = nil
		if reuse && pc.fd >= 0 {
			pc.idleSince = l.now
			pool := l.pool(pc.b)
			pool.idle = append(pool.idle, pc)
		} else {
			l.closePod(pc)
		}
	}
	if ex.s != nil {
		return // the stream ends once the last of its answer is sent
	}
	if c.eof {
		l.closeClient(c)
		return
	}
	if ex.close || c.front.stopping.Load() {
		c.closing = true
		l.markDirty(c)
		return
	}
	c.waitIdle()
	if c.fd >= 0 && c.watching&unix.EPOLLIN == 0 {
		l.watch(c.fd, &c.watching, c.watching|unix.EPOLLIN|unix.EPOLLRDHUP, false)
	}
	l.serveNext(c)
}

// leavePod ends ex's exchange with its pod if one is under way, and
// reports whether one was: the pod's connection, mid-exchange, is closed.
func (l *eventLoop) leavePod(ex *loopExchange) bool {
	if ex.hc != nil {
		return l.leaveCall(ex)
	}
	if ex.pc == nil && !slices.Contains(l.busy, ex) {
		return false
	}
	ex.pd.tally.Stop()
	l.done(ex)
	if pc := ex.pc; pc != nil {
		pc.ex = nil
		ex.pc = nil
		l.closePod(pc)
	}
	return true
}

// done takes ex off the list of exchanges at their pods.
func (l *eventLoop) done(ex *loopExchange) {
	if ex.s == nil {
		ex.c.ex = nil
	}
	for i, b := range l.busy {
		if b == ex {
			l.busy[i] = l.busy[len(l.busy)-1]
			l.busy[len(l.busy)-1] = nil
			l.busy = l.busy[:len(l.busy)-1]
			break
		}
	}
}

// podLost handles a pod connection that failed before the answer ended.
// Before any of the answer, a request that is safe to send again
// (resendable: a pooled connection the pod had closed while idle) goes
// again, three tries in all, as from the goroutine front end; after the
// header went to the client, the client connection is closed, the only
// way left to tell it.
func (l *eventLoop) podLost(ex *loopExchange, err error) {
	pc := ex.pc
	ex.pc = nil
	if pc != nil {
		pc.ex = nil
		l.closePod(pc)
	}
	switch {
	case ex.head:
		ex.pd.tally.Stop()
		ex.r.Done(ex.r.pods.Load(), ex.pd, place.Outcome{Failed: true, Seconds: time.Since(ex.start).Seconds()})
		l.done(ex)
		if ex.s != nil {
			l.streamBroke(ex)
			return
		}
		l.closeClient(ex.c)
	case !ex.got && ex.tries < 3 && resendable(ex.req, err):
		l.send(ex)
	default:
		l.podFailed(ex, err)
	}
}

// podFailed answers for a pod that failed ex with err before answering:
// another pod when the key may move (moveOn), or 502 or 504.
func (l *eventLoop) podFailed(ex *loopExchange, err error) {
	c := ex.c
	if next := ex.r.moveOn(&ex.d, ex.pd, err, nil); next != nil && podServed(next) {
		ex.pd.tally.Stop()
		ex.pd = next
		ex.pd.tally.Start()
		setPodHost(ex.req, next)
		// The route's request timeout runs from the first attempt, its
		// backend timeout from this one.
		ex.start, ex.tries = time.Now(), 0
		ex.until = ex.r.deadline(ex.first, ex.start)
		l.send(ex)
		return
	}
	code := fasthttp.StatusBadGateway
	if answerTimedOut(err) {
		code = fasthttp.StatusGatewayTimeout
	}
	ex.pd.tally.Stop()
	l.done(ex)
	ex.r.Done(ex.r.pods.Load(), ex.pd, place.Outcome{Failed: true, Status: code, Seconds: time.Since(ex.start).Seconds()})
	if ex.s != nil {
		l.streamReply(ex, code, "pod "+ex.pd.name+" failed: "+upstreamReason(err))
		return
	}
	c.ctx.Response.Reset()
	replyText(c.ctx, code, "pod "+ex.pd.name+" failed: "+upstreamReason(err))
	if ex.d.Assigned {
		ex.r.handOut(c.ctx, &ex.d)
	}
	if c.eof {
		l.closeClient(c)
		return
	}
	l.answer(c, ex.close)
	if !c.closing {
		c.waitIdle()
		l.serveNext(c)
	}
}

// answer appends the whole answer in c.ctx to c's output, as fasthttp's
// server writes it, closing the connection after it when asked.
func (l *eventLoop) answer(c *loopClient, close bool) {
	resp := &c.ctx.Response
	serverName(&resp.Header)
	if close || c.front.stopping.Load() || resp.ConnectionClose() {
		resp.SetConnectionClose()
		c.closing = true
	}
	if c.ctx.IsHead() {
		resp.SkipBody = true
	}
	resp.Header.SetNoDefaultContentType(true)
	l.bw.Reset(appendWriter{&c.out})
	resp.Write(l.bw)
	l.bw.Flush()
	l.markDirty(c)
}

// writeHead appends the answer's header alone; its body follows.
func (l *eventLoop) writeHead(c *loopClient, close bool) {
	resp := &c.ctx.Response
	if close || c.front.stopping.Load() {
		resp.SetConnectionClose()
	}
	resp.Header.SetNoDefaultContentType(true)
	serverName(&resp.Header)
	c.out = resp.Header.AppendBytes(c.out)
	l.markDirty(c)
}

func (l *eventLoop) markDirty(c *loopClient) {
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
		if c.h2 != nil {
			// What the loop writes to the connection before its turn
			// ends is taken then.
			c.h2.Claim()
		}
	}
}

// flush writes what each client's answers gathered in this wake.
func (l *eventLoop) flush() {
	// A write may mark its client again (retryHeld), or a pod (a call
	// that reads on): they are written again in the same turn.
	for len(l.dirty) > 0 || len(l.dirtyPods) > 0 {
		for i := 0; i < len(l.dirty); i++ {
			c := l.dirty[i]
			c.dirty = false
			l.dirty[i] = nil
			if c.fd >= 0 {
				l.write(c)
			}
		}
		l.dirty = l.dirty[:0]
		for i := 0; i < len(l.dirtyPods); i++ {
			pc := l.dirtyPods[i]
			pc.dirty = false
			l.dirtyPods[i] = nil
			l.writePod(pc)
		}
		l.dirtyPods = l.dirtyPods[:0]
	}
}

func (l *eventLoop) write(c *loopClient) {
	if c.h2 != nil && !c.lingering && len(*c.wire()) < loopWriteMax {
		var over bool
		c.out, over = c.h2.Take(c.out)
		if over && c.h2.Dropped() {
			l.closeClient(c)
			return
		}
		c.closing = c.closing || over
	}
	if !l.seal(c) {
		l.closeClient(c)
		return
	}
	out := c.wire()
	before := len(*out)
	for len(*out) > 0 {
		n, err := unix.Write(c.fd, *out)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			l.closeClient(c)
			return
		}
		*out = (*out)[:copy(*out, (*out)[n:])]
	}
	if !c.eof {
		want := c.watching &^ unix.EPOLLOUT
		if len(*out) > 0 {
			want |= unix.EPOLLOUT
		}
		l.watch(c.fd, &c.watching, want, false)
	}
	// A slow reader holds back its pod.
	if ex := c.ex; ex != nil && ex.pc != nil && !ex.pc.connecting {
		podWant := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
		if len(*out) >= loopWriteMax {
			podWant = 0
		}
		l.watch(ex.pc.fd, &ex.pc.watching, podWant, false)
	}
	if c.h2 != nil && !c.lingering {
		c.h2.Wrote(len(*out) < before, len(*out) > 0)
		switch {
		case len(*out) == 0 && c.closing:
			l.linger(c)
		case len(*out) < loopWriteMax && l.retryHeld(c):
			// The socket took what waited: the streams it held back
			// go on, in this turn (flush).
			l.markDirty(c)
		}
		return
	}
	if len(*out) == 0 && c.closing && c.ex == nil {
		l.closeClient(c)
	}
}

// seal moves what c.out holds through c's TLS session, into records on
// c.wire(); in cleartext it does nothing. It reports false when the
// session failed.
func (l *eventLoop) seal(c *loopClient) bool {
	if c.sec == nil || len(c.out) == 0 {
		return true
	}
	_, err := c.sec.Write(c.out)
	c.out = c.out[:0]
	return err == nil
}

// unsent reports whether anything waits to be written to c.
func (c *loopClient) unsent() bool { return len(c.out) > 0 || len(*c.wire()) > 0 }

// wire is what is to go on c's socket: the answers, or in TLS their
// sealed records.
func (c *loopClient) wire() *[]byte {
	if c.sec != nil {
		return &c.taken.out
	}
	return &c.out
}

// handOver moves c to the goroutine front end q, with what it read and
// did not serve.
func (l *eventLoop) handOver(c *loopClient, q *connQueue) {
	if q == nil {
		l.closeClient(c)
		return
	}
	delete(l.clients, c.fd)
	c.front.clients.Add(-1)
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	f := os.NewFile(uintptr(c.fd), "client")
	nc, err := net.FileConn(f)
	f.Close()
	c.fd = -1
	if err != nil || !l.seal(c) {
		c.cc.Close()
		return
	}
	// Answers to the requests before go first.
	pending := *c.wire()
	var moved *clientConn
	var next net.Conn // what q gets
	if c.sec != nil {
		// The TLS session goes on over the same tracked connection, now
		// over nc; what it already opened of the next requests is read
		// first.
		moved = c.cc
		moved.moveTo(nc)
		next = &tlsReadAhead{Conn: c.sec, unread: c.in}
	} else {
		moved = c.cc.conns.replace(c.cc, nc)
		moved.unread = c.in
		next = moved
	}
	if q == c.front.fast && c.counted {
		moved.counted = true
	}
	go func() {
		if len(pending) > 0 {
			nc.SetWriteDeadline(time.Now().Add(time.Duration(moved.conns.idleTimeout) * time.Millisecond))
			if _, err := nc.Write(pending); err != nil {
				moved.Close()
				return
			}
			nc.SetWriteDeadline(time.Time{})
		}
		q.put(next)
	}()
}

// tlsReadAhead is a TLS connection that a loop handed over with the
// start of its next requests already read out of the session: Read
// returns that first.
type tlsReadAhead struct {
	*tls.Conn
	unread []byte
}

func (c *tlsReadAhead) Read(b []byte) (int, error) {
	if len(c.unread) > 0 {
		n := copy(b, c.unread)
		c.unread = c.unread[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// timedOut ends a wait of c that the sweeper found too long: a request
// whose header is late is answered 408, an idle connection closed.
func (l *eventLoop) timedOut(c *loopClient) {
	if c.h2 != nil {
		// No preface within the header timeout, or the end of a
		// lingering connection.
		l.closeClient(c)
		return
	}
	if c.ex != nil {
		return
	}
	if c.unsent() {
		return // closed once written, if the client reads it
	}
	if len(c.in) == 0 {
		l.closeClient(c)
		return
	}
	l.p.onParseError(c.requestCtx(), os.ErrDeadlineExceeded)
	c.in = c.in[:0]
	l.answer(c, true)
}

// closeIdle closes the clients of f with nothing under way.
func (l *eventLoop) closeIdle(f *loopFront) {
	for _, c := range l.clients {
		if c.front == f && c.ex == nil && c.h2 == nil && !c.unsent() {
			l.closeClient(c)
		}
	}
}

// closeFront closes the clients of f.
func (l *eventLoop) closeFront(f *loopFront) {
	for _, c := range l.clients {
		if c.front == f {
			l.closeClient(c)
		}
	}
}

// sweep ends the exchanges past their deadline and closes pod connections
// idle too long.
func (l *eventLoop) sweep(now time.Time) {
	for i := 0; i < len(l.busy); i++ {
		ex := l.busy[i]
		if ex.hc != nil {
			before := len(l.busy)
			l.sweepCall(ex, now)
			if len(l.busy) < before {
				i--
			}
			continue
		}
		if ex.pc == nil {
			continue
		}
		timeout := ex.pd.client.timeout
		late := !ex.until.IsZero() && now.After(ex.until) ||
			timeout > 0 && now.Sub(ex.heard) > timeout
		if late {
			before := len(l.busy)
			ex.got = true // not to be sent again
			l.podLost(ex, fasthttp.ErrTimeout)
			if len(l.busy) < before {
				i--
			}
		}
	}
	if l.h2n > 0 {
		for _, c := range l.clients {
			if len(c.streams) > 0 {
				l.sweepStreams(c, now)
			}
		}
	}
	l.sweepH2Pods(now)
	for b, p := range l.idle {
		kept := p.idle[:0]
		for _, pc := range p.idle {
			if t := b.client.idleTimeout; t > 0 && now.Sub(pc.idleSince) > t {
				l.closePod(pc)
				continue
			}
			kept = append(kept, pc)
		}
		clear(p.idle[len(kept):])
		p.idle = kept
		if len(kept) == 0 {
			delete(l.idle, b)
		}
	}
}

func (l *eventLoop) closeClient(c *loopClient) {
	if c.fd < 0 {
		return
	}
	if c.ex != nil {
		l.leavePod(c.ex)
	}
	if c.h2 != nil {
		l.closeStreams(c)
	}
	if c.sec != nil && !c.eof && !c.lingering {
		// The session ends with close_notify, as HAProxy ends it; what
		// the socket does not take at once is dropped.
		c.sec.CloseWrite()
		unix.Write(c.fd, c.taken.out)
	}
	delete(l.clients, c.fd)
	c.front.clients.Add(-1)
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
	c.fd = -1
	c.cc.Close()
}

func (l *eventLoop) closePod(pc *loopPod) {
	if pc.fd < 0 {
		return
	}
	delete(l.pods, pc.fd)
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, pc.fd, nil)
	unix.Close(pc.fd)
	pc.fd = -1
	pc.b.client.closed()
	if p := l.idle[pc.b]; p != nil {
		for i, q := range p.idle {
			if q == pc {
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				break
			}
		}
	}
}

// serverName names podpin in an answer that names no server, as the
// goroutine front end's server does.
func serverName(h *fasthttp.ResponseHeader) {
	if len(h.Server()) == 0 {
		h.SetServer(serverTitle)
	}
}
