package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/h2"
	"github.com/podpin/podpin/internal/place"
)

// The HTTP/2 front end. HTTP/2 connections (ALPN "h2" on a TLS listener,
// the HTTP/2 preface on a cleartext one) are served by package h2, which
// reads the frames, enforces the protocol and hands each stream to
// serveStream (h2fast.go) as a request of its own: each stream is placed
// on its own, so one client connection may carry many sessions. A stream
// to pods that speak HTTP/1.1 goes straight to the pod's pool
// (forwardStream). The others, gRPC calls first, come here, to serveH2, in
// net/http's terms (h2stream.go), and are forwarded with
// httputil.ReverseProxy over net/http's client, which speaks HTTP/2 to a
// pod that speaks h2c and passes trailers, cancellation and streamed bodies
// in both directions, as gRPC needs. Placement, health, learning and the
// counters are the same as for HTTP/1.1 (package place).

// clientConnKey keys a stream's *clientConn in its request's context.
type clientConnKey struct{}

// exchange is one HTTP/2 stream on its way through podpin: where it goes
// and what came of it, shared by serveH2 and the ReverseProxy hooks
// through the request's context.
type exchange struct {
	st *state
	r  *route
	d  *place.Decision
	pd *pod // the pod now serving it
	// client ends when the client resets the stream or goes away; the
	// request's own context also ends at the route's request timeout.
	client context.Context
	cc     *clientConn
	body   *h2Body // nil without a request body

	start  time.Time
	resp   *http.Response // the pod's answer; nil when it gave none
	status int            // the pod's answer, or podpin's own
	failed bool           // the pod failed it
	// clientFault: the client's body or cancellation ended it.
	clientFault bool
	// callDeadline is when a gRPC call's own deadline (grpc-timeout)
	// passes; zero without one.
	callDeadline time.Time
	// cutShort: the pod's answer failed mid-body.
	cutShort bool
}

type exchangeKey struct{}

// serveH2 is the rest of the request path of an HTTP/2 stream s, as req,
// once serveStream has checked it and found its route r: a redirect or a
// fixed answer of the route, or placement and forwarding through
// ReverseProxy.
func (p *Proxy) serveH2(w http.ResponseWriter, req *http.Request, s *h2.Stream, st *state, r *route, cc *clientConn) {
	q := &streamPlace{s: s, cc: cc}
	if f := r.filters; f != nil && f.redirect != nil {
		scheme := "http"
		if req.TLS != nil {
			scheme = "https"
		}
		code := f.redirectStatus()
		r.Metrics.Unrouted(code)
		local, _ := req.Context().Value(http.LocalAddrContextKey).(net.Addr)
		w.Header().Set("Location", f.redirectURL(scheme, req.Host, portOf(local), req.URL.EscapedPath(), req.URL.RawQuery))
		w.WriteHeader(code)
		return
	}
	if r.respond != 0 {
		r.Metrics.Unrouted(r.respond)
		if r.filters != nil {
			r.filters.response.apply(w.Header())
		}
		h2Reply(w, req, r.respond, r.respondText())
		return
	}
	buf := p.keyBufs.Get().(*[256]byte)
	defer p.keyBufs.Put(buf)
	d := r.Decide(q, r.pods.Load(), buf[:0])
	if d.Err != nil {
		code := placeStatus(d.Err)
		r.Metrics.Unrouted(code)
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		h2Reply(w, req, code, d.Err.Error())
		return
	}
	x := &exchange{st: st, r: r, d: &d, pd: d.Pod.(*pod), cc: cc, client: req.Context(), start: time.Now()}
	if t, ok := grpcTimeout(req.Header.Get("Grpc-Timeout")); ok {
		x.callDeadline = x.start.Add(t)
	}
	if req.Body != nil && req.Body != http.NoBody {
		x.body = &h2Body{rc: req.Body, rw: http.NewResponseController(w), timeout: st.limits.bodyTimeout, limit: st.limits.maxBodyBytes, sent: []byte{}}
	}
	sw := newStreamWriter(w, req.Context(), st.limits.bodyTimeout)
	x.pd.tally.Start()
	// Deferred: ReverseProxy ends a stream whose response could not be
	// copied by panicking with http.ErrAbortHandler.
	defer func() {
		sw.finish()
		if x.body != nil {
			x.body.detach()
		}
		x.pd.tally.Stop()
		if code, ok := grpcOutcome(x.resp); ok {
			x.status = code
		}
		r.Done(r.pods.Load(), x.pd, place.Outcome{
			Status:      x.status,
			Failed:      x.failed,
			ClientFault: x.clientFault,
			Seconds:     time.Since(x.start).Seconds(),
		})
		p.streamEnded(cc, x.status, x.start)
	}()
	ctx := context.WithValue(req.Context(), exchangeKey{}, x)
	if r.requestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, x.start.Add(r.requestTimeout))
		defer cancel()
	}
	p.h2.ServeHTTP(sw, req.WithContext(ctx))
	if x.cutShort {
		// The client must not take what it got for the whole answer:
		// the stream is reset, as net/http's server resets it.
		panic(http.ErrAbortHandler)
	}
}

// streamWriter is the response writer of a stream on its way to the
// client: a write or flush that makes no progress for timeout resets the
// stream, and the pod's response stops being read. net/http's
// WriteByteTimeout watches only the connection's socket; a client that
// keeps its socket read but opens no flow-control window for the stream
// (SETTINGS_INITIAL_WINDOW_SIZE 0, no WINDOW_UPDATE) would otherwise hold
// the stream, its handler and a pod connection for as long as it likes.
// The timer runs only while a write waits, so a stream that is silent
// between messages (a gRPC stream) is never cut.
type streamWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	stream  context.Context // ends with the stream
	timeout time.Duration
	timer   *time.Timer // nil when timeout is 0

	// guards done, so the timer cannot touch the stream once its handler
	// has returned
	mu   sync.Mutex
	done bool
}

func newStreamWriter(w http.ResponseWriter, stream context.Context, timeout time.Duration) *streamWriter {
	sw := &streamWriter{ResponseWriter: w, rc: http.NewResponseController(w), stream: stream, timeout: timeout}
	if timeout > 0 {
		sw.timer = time.AfterFunc(timeout, sw.expire)
		sw.timer.Stop()
	}
	return sw
}

// expire resets the stream: a deadline in the past does so at once.
func (sw *streamWriter) expire() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if !sw.done {
		sw.rc.SetWriteDeadline(time.Unix(1, 0))
	}
}

func (sw *streamWriter) Write(b []byte) (int, error) {
	if sw.timer == nil {
		return sw.ResponseWriter.Write(b)
	}
	sw.timer.Reset(sw.timeout)
	n, err := sw.ResponseWriter.Write(b)
	sw.timer.Stop()
	return n, err
}

func (sw *streamWriter) FlushError() error {
	if sw.timer == nil {
		return sw.rc.Flush()
	}
	sw.timer.Reset(sw.timeout)
	err := sw.rc.Flush()
	sw.timer.Stop()
	return err
}

func (sw *streamWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// finish stops the timer before the handler returns. What the response
// still holds is written by net/http after the handler returns, under the
// stream's own write deadline, which net/http stops when the stream
// closes; a stream already closed (reset) gets none.
func (sw *streamWriter) finish() {
	if sw.timer == nil {
		return
	}
	sw.mu.Lock()
	sw.done = true
	sw.mu.Unlock()
	sw.timer.Stop()
	if sw.stream.Err() == nil {
		sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
	}
}

// resetWindow, resetsTooMany and earlyReset bound the streams an HTTP/2
// client may reset early (rapid reset, CVE-2023-44487): a connection on
// which more than resetsTooMany of resetWindow forwarded streams in a row
// were reset by the client before their answer, within earlyReset of
// their start, is closed. net/http's server already runs at most
// limits.maxConcurrentStreams handlers of a connection at once; without
// this bound, a client that opens and resets streams as fast as it can
// would still send a steady share of them to the pods. Clients cancel
// streams in normal use (a browser leaving a page, a hedged gRPC call),
// but seldom three in four for a hundred streams, and a gRPC deadline
// that expires while a pod is slow comes later than earlyReset (Envoy
// calls these resets premature, with the same one second).
const (
	resetWindow   = 128
	resetsTooMany = resetWindow * 3 / 4
	earlyReset    = time.Second
)

// streamEnded counts a forwarded HTTP/2 stream of cc (nil: untracked)
// that ended with status after starting at start, and closes cc when its
// client resets most of its streams early (resetFlood).
func (p *Proxy) streamEnded(cc *clientConn, status int, start time.Time) {
	early := status == statusClientClosed && time.Since(start) < earlyReset
	if cc != nil && cc.resetFlood(early) {
		p.log.Info("closing an HTTP/2 connection that resets most of its streams", "client", addrText(cc.addr))
		cc.Close()
	}
}

// resetFlood counts one forwarded HTTP/2 stream of the connection, reset
// early by the client or not, and reports whether the connection is to be
// closed for resetting too many.
func (c *clientConn) resetFlood(reset bool) bool {
	c.h2Mu.Lock()
	defer c.h2Mu.Unlock()
	c.h2Ended++
	if reset {
		c.h2Resets++
	}
	if c.h2Ended < resetWindow {
		return false
	}
	flood := c.h2Resets > resetsTooMany
	c.h2Ended, c.h2Resets = 0, 0
	return flood
}

// newH2Forwarder returns the ReverseProxy that forwards HTTP/2 streams.
func (p *Proxy) newH2Forwarder() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:        rewriteH2,
		Transport:      roundTripFunc(p.roundTripH2),
		ModifyResponse: p.answerH2,
		ErrorHandler:   p.failH2,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		BufferPool:     &p.bufs,
	}
}

// rewriteH2 turns the client's request into the pod's: the pod's address,
// X-Forwarded-* as prepareRequest writes them for HTTP/1.1, the minted key.
// ReverseProxy has removed the hop-by-hop fields (keeping "TE: trailers")
// and the inbound X-Forwarded-* fields.
func rewriteH2(pr *httputil.ProxyRequest) {
	x := pr.In.Context().Value(exchangeKey{}).(*exchange)
	out, in := pr.Out, pr.In
	out.URL.Scheme = scheme(x.pd)
	out.URL.Host = x.pd.addr
	if x.body != nil {
		out.Body = x.body
		// A pod connection lost before the request went out: the
		// transport sends it again on a fresh connection, the body too
		// while none of it was read.
		out.GetBody = func() (io.ReadCloser, error) {
			if !x.body.replayable() {
				return nil, errBodyStarted
			}
			x.body = x.body.again()
			return x.body, nil
		}
	}
	keep := x.cc != nil && x.cc.trusted
	xff := ""
	if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", "
	}
	out.Header.Set("X-Forwarded-For", xff+addrText(remoteOf(x.cc)))
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	for _, f := range [...]struct{ name, value string }{
		{"X-Forwarded-Proto", proto},
		{"X-Forwarded-Host", in.Host},
		{headerXForwardedPort, ""},
	} {
		if v := in.Header.Values(f.name); keep && len(v) > 0 {
			out.Header[f.name] = v
		} else if f.value != "" {
			out.Header.Set(f.name, f.value)
		}
	}
	if x.d.Assigned {
		out.Header.Set(x.r.Key.Header, string(x.d.Raw))
	}
	if x.r.filters != nil {
		x.r.filters.editRequest(out)
	}
}

// roundTripH2 sends the pod's request. With a key, a pod that refuses the
// connection before any of the body was read is replaced by another
// candidate once, and the key rebound to it, as for HTTP/1.1.
func (p *Proxy) roundTripH2(req *http.Request) (*http.Response, error) {
	x := req.Context().Value(exchangeKey{}).(*exchange)
	resp, err := x.r.roundTripTimed(x.pd, req)
	if err != nil && connLost(err) && x.client.Err() == nil && x.body.replayable() {
		// The pod's connection was gone before any answer (a pooled
		// connection to a pod that just stopped): once more, on a fresh
		// connection, which a stopped pod refuses.
		req = x.again(req)
		resp, err = x.r.roundTripTimed(x.pd, req)
	}
	next := x.r.moveOn(x.d, x.pd, err, func() bool { return !x.body.replayable() })
	if next == nil {
		return resp, err
	}
	x.pd.tally.Stop()
	x.pd, x.start = next, time.Now()
	x.pd.tally.Start()
	return x.r.roundTripTimed(x.pd, x.again(req))
}

// again is req once more, to x.pd, with the body from its start (the
// first transport closed the body it was given).
func (x *exchange) again(req *http.Request) *http.Request {
	req = req.WithContext(req.Context())
	req.URL.Scheme = scheme(x.pd)
	req.URL.Host = x.pd.addr
	if x.body != nil {
		x.body = x.body.again()
		req.Body = x.body
	}
	return req
}

// connLost reports a pod connection that failed under a request: reset
// or closed by the pod while the request was written.
func connLost(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// roundTripTimed is roundTrip under the route's bound on one attempt
// (timeouts.backendRequest), which holds until the answer's body is
// closed.
func (r *route) roundTripTimed(pd *pod, req *http.Request) (*http.Response, error) {
	if r.backendTimeout == 0 {
		return r.roundTrip(pd, req)
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.backendTimeout)
	resp, err := r.roundTrip(pd, req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody is a pod's answer's body whose exchange has a context of its
// own, released when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// roundTrip sends a request to pd: to an h2c pod over the route's HTTP/2
// client; a gRPC request to an https pod over its client that speaks
// HTTP/2 by ALPN (gRPC needs HTTP/2); any other through the pod's own
// HTTP/1.1 pool.
func (r *route) roundTrip(pd *pod, req *http.Request) (*http.Response, error) {
	switch {
	case pd.protocol == config.PodH2C:
		return r.transports.h2c.RoundTrip(req)
	case pd.protocol == config.PodHTTPS && isGRPC(req):
		return r.transports.https.RoundTrip(req)
	}
	return roundTripPod(pd, req)
}

// answerH2 learns from the pod's answer and marks it as podpin marks
// HTTP/1.1 answers: the pod header, the minted key.
func (p *Proxy) answerH2(resp *http.Response) error {
	x := resp.Request.Context().Value(exchangeKey{}).(*exchange)
	x.resp, x.status = resp, resp.StatusCode
	if x.body != nil {
		x.body.forget()
	}
	if x.r.LearnKeys {
		x.r.Learn(x.d, x.pd.name, []byte(resp.Header.Get(x.r.Key.Header)))
	}
	if x.r.filters != nil {
		x.r.filters.response.apply(resp.Header)
	}
	if x.st.podHeader != nil {
		resp.Header.Set(string(x.st.podHeader), x.pd.name)
	}
	if x.d.Assigned {
		resp.Header.Set(x.r.Key.Header, string(x.d.Raw))
		if c := x.r.cookie; c != nil {
			// The pod's request says https when the client reached podpin
			// over TLS, or a trusted proxy said it did (rewriteH2).
			https := resp.Request.Header.Get("X-Forwarded-Proto") == "https"
			resp.Header.Add("Set-Cookie", c.header(x.d.Raw, https))
		}
	}
	if isGRPC(resp.Request) {
		resp.Body = &grpcBody{ReadCloser: resp.Body, resp: resp, x: x}
	} else {
		resp.Body = &answerBody{ReadCloser: resp.Body, x: x}
	}
	return nil
}

// answerBody is the body of a pod's answer that is not gRPC: it notes a
// failure mid-body, after which serveH2 resets the stream.
type answerBody struct {
	io.ReadCloser
	x *exchange
}

func (b *answerBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.x.client.Err() == nil {
		b.x.cutShort = true
		if !isTimeout(err) {
			b.x.failed = true
		}
	}
	return n, err
}

// grpcTimeout parses a grpc-timeout value: at most eight digits and a
// unit (H, M, S, m, u, n), as gRPC's HTTP/2 protocol defines it.
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	unit, ok := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[v[len(v)-1]]
	return time.Duration(n) * unit, ok
}

// grpcBody is the body of a pod's answer to a gRPC call. A pod that fails
// mid-stream (its connection lost, its stream reset) would leave the
// client a reset stream, which gRPC reads as INTERNAL; instead the answer
// ends with trailers saying UNAVAILABLE, which gRPC clients may retry.
type grpcBody struct {
	io.ReadCloser
	resp *http.Response
	x    *exchange
}

func (b *grpcBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == nil || err == io.EOF || b.x.client.Err() != nil {
		return n, err
	}
	code, msg := grpcUnavailable, "podpin: pod "+b.x.pd.name+" failed mid-stream"
	switch {
	case isTimeout(err):
		// The route's timeouts ran out: the pod is not to blame.
		code, msg = grpcDeadlineExceeded, "podpin: pod "+b.x.pd.name+" did not finish within the route's timeouts"
	case !b.x.callDeadline.IsZero() && time.Now().After(b.x.callDeadline):
		// The call's own deadline (grpc-timeout) passed, and the pod
		// ended the call for it, before the client's reset came.
		code, msg = grpcDeadlineExceeded, "podpin: the call's deadline passed"
	default:
		b.x.failed = true
	}
	b.x.r.Log.Debug("pod failed mid-stream", "pod", b.x.pd.name, "err", err)
	// ReverseProxy sends the answer's trailers once its body ends.
	b.resp.Trailer = http.Header{
		"Grpc-Status":  {strconv.Itoa(code)},
		"Grpc-Message": {grpcMessage(msg)},
	}
	return n, io.EOF
}

// failH2 answers a stream that got no answer from its pod: the client's
// fault (its body, its cancellation) or the pod's (502, or 504 when it
// answered too late).
func (p *Proxy) failH2(w http.ResponseWriter, req *http.Request, err error) {
	x := req.Context().Value(exchangeKey{}).(*exchange)
	if x.body != nil && x.body.err != nil {
		x.status, x.clientFault = x.body.status(), true
		h2Reply(w, req, x.status, x.body.err.Error())
		return
	}
	if x.client.Err() != nil {
		// The client reset the stream or went away: nobody reads an
		// answer, and the pod is not to blame.
		x.status, x.clientFault = statusClientClosed, true
		return
	}
	x.status, x.failed = http.StatusBadGateway, true
	reason := upstreamReason(err)
	if isTimeout(err) {
		x.status = http.StatusGatewayTimeout
	}
	x.r.Log.Debug("pod failed", "pod", x.pd.name, "err", err)
	h2Reply(w, req, x.status, "pod "+x.pd.name+" failed: "+reason)
}

// statusClientClosed counts a request its client abandoned (nginx's 499).
const statusClientClosed = 499

// h2Reply writes podpin's own answer to an HTTP/2 request: for gRPC, a
// response with only trailers carrying the status a gRPC client reads
// (grpc-status, grpc-message); for anything else, the one-line text answer
// of HTTP/1.1.
func h2Reply(w http.ResponseWriter, req *http.Request, code int, msg string) {
	h := w.Header()
	h.Set("X-Podpin-Error", "1")
	if isGRPC(req) {
		h.Set("Content-Type", req.Header.Get("Content-Type"))
		h.Set("Grpc-Status", strconv.Itoa(grpcCode(code)))
		h.Set("Grpc-Message", grpcMessage("podpin: "+msg))
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, "podpin: "+msg+"\n")
}

// isGRPC reports a gRPC request (its content type, as gRPC's HTTP/2
// protocol defines it).
func isGRPC(req *http.Request) bool { return isGRPCType(req.Header.Get("Content-Type")) }

// isGRPCType reports a gRPC content type.
func isGRPCType(ct string) bool {
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") || strings.HasPrefix(ct, "application/grpc;")
}

// gRPC status codes podpin answers with (grpc/codes).
const (
	grpcInvalidArgument   = 3
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcUnavailable       = 14
)

// grpcCode is the gRPC status of podpin's refusal with HTTP status code:
// what the client did wrong, what is over a limit, what is not there, what
// may work when tried again.
func grpcCode(code int) int {
	switch code {
	case http.StatusBadRequest:
		return grpcInvalidArgument
	case http.StatusTooManyRequests, http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return grpcResourceExhausted
	case http.StatusNotFound:
		return grpcUnimplemented
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return grpcDeadlineExceeded
	}
	return grpcUnavailable
}

// grpcOutcome is the HTTP status a pod's gRPC answer counts as, in the
// pod's metrics and its passive health, from its grpc-status (in the
// trailers, or the header of a trailers-only answer), as Envoy maps them:
// a pod that fails every call with UNAVAILABLE fails like one answering
// 503. ok is false for an answer that is not gRPC or carries no status.
func grpcOutcome(resp *http.Response) (code int, ok bool) {
	if resp == nil || !isGRPC(&http.Request{Header: resp.Header}) {
		return 0, false
	}
	v := resp.Trailer.Get("Grpc-Status")
	if v == "" {
		v = resp.Header.Get("Grpc-Status")
	}
	return grpcStatusOutcome(v)
}

// grpcStatusOutcome is the HTTP status a grpc-status value counts as
// (grpcOutcome); ok is false for "" and a value that is no number.
func grpcStatusOutcome(v string) (code int, ok bool) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	switch n {
	case 0: // OK
		return http.StatusOK, true
	case 3, 9, 11: // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
		return http.StatusBadRequest, true
	case 4: // DEADLINE_EXCEEDED
		return http.StatusGatewayTimeout, true
	case 5: // NOT_FOUND
		return http.StatusNotFound, true
	case 6, 10: // ALREADY_EXISTS, ABORTED
		return http.StatusConflict, true
	case 7: // PERMISSION_DENIED
		return http.StatusForbidden, true
	case 8: // RESOURCE_EXHAUSTED
		return http.StatusTooManyRequests, true
	case 12: // UNIMPLEMENTED
		return http.StatusNotImplemented, true
	case 14: // UNAVAILABLE
		return http.StatusServiceUnavailable, true
	case 16: // UNAUTHENTICATED
		return http.StatusUnauthorized, true
	case 1: // CANCELLED
		return statusClientClosed, true
	}
	return http.StatusInternalServerError, true // UNKNOWN, INTERNAL, DATA_LOSS
}

// grpcMessage percent-encodes a grpc-message value: bytes outside printable
// ASCII, and '%' itself.
func grpcMessage(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '%' {
			b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// h2Body is a stream's request body on its way to a pod: each read gets a
// fresh deadline of timeout, at most limit bytes pass when limit > 0, and
// it remembers why it stopped, as clientBody does for HTTP/1.1.
//
// Close ends a read under way, and every later one, but leaves the
// client's stream open: the pod may have ended its answer while the client
// still sends (a gRPC call the pod finished early), and the transport's
// Close must not wait for the client's next message. A body the first pod
// never read goes to another through a fresh h2Body (again); the server
// closes the stream's body when the stream ends.
type h2Body struct {
	rc      io.ReadCloser
	rw      *http.ResponseController
	timeout time.Duration
	limit   int64
	n       int64
	err     error
	// sent keeps what was read, up to maxReplay bytes, until the pod's
	// answer begins, so that a request whose pod connection was lost may
	// go again (replayable); nil once it cannot. pending is what a body
	// made by again gives before it reads on.
	sent, pending []byte

	// guards sent, closed, reading, detached, deadline and the
	// stream's read deadline
	mu       sync.Mutex
	closed   bool
	reading  bool      // a Read waits for the client
	detached bool      // the handler returned: rw must not be used
	deadline time.Time // the stream's read deadline, as last set
}

// maxReplay is how much of a request body is kept to send again.
const maxReplay = 64 << 10

func (b *h2Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(b.pending) > 0 {
		n := copy(p, b.pending)
		b.pending = b.pending[n:]
		return n, nil
	}
	n, err := b.read(p)
	b.mu.Lock()
	if b.sent != nil {
		if len(b.sent)+n > maxReplay {
			b.sent = nil
		} else {
			b.sent = append(b.sent, p[:n]...)
		}
	}
	b.mu.Unlock()
	return n, err
}

// replayable reports whether the body can go again from its start (b nil:
// there is none). Called once the transport that had b is done with it.
func (b *h2Body) replayable() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n == 0 || b.sent != nil && int64(len(b.sent)) == b.n
}

// forget stops keeping what was read: the pod's answer began. The
// transport may still be reading b.
func (b *h2Body) forget() {
	b.mu.Lock()
	b.sent = nil
	b.mu.Unlock()
}

func (b *h2Body) read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	// The deadline moves when half of it is spent, not on every read: a
	// gRPC stream reads once per message, and each move is a message to
	// the connection's serving goroutine.
	if b.timeout > 0 {
		if now := time.Now(); b.deadline.Sub(now) < b.timeout/2 {
			b.deadline = now.Add(b.timeout)
			b.rw.SetReadDeadline(b.deadline)
		}
	}
	b.reading = true
	b.mu.Unlock()
	n, err := b.rc.Read(p)
	b.mu.Lock()
	b.reading = false
	closed := b.closed
	b.mu.Unlock()
	b.n += int64(n)
	if b.limit > 0 && b.n > b.limit {
		b.err = errBodyTooLarge
		return 0, b.err
	}
	if err != nil && err != io.EOF {
		if closed {
			// Close ended the read: nothing the client did.
			return n, http.ErrBodyReadAfterClose
		}
		b.err = bodyFault(err)
		return n, b.err
	}
	return n, err
}

func (b *h2Body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.reading && !b.detached {
		// An expired deadline ends the stream's body for good, so only
		// a read under way is ended this way: a body closed before it
		// was read may still go to another pod (again).
		b.rw.SetReadDeadline(aLongTimeAgo)
		b.reading = false
	}
	return nil
}

// detach closes b without touching the stream. serveH2 calls it before it
// returns, after which the stream's ResponseController must not be used,
// though the transport may still close b.
func (b *h2Body) detach() {
	b.mu.Lock()
	b.closed, b.detached = true, true
	b.mu.Unlock()
}

// again is a fresh h2Body over the same stream, for another pod. b is
// closed without touching the stream: the transport that had it may close
// it late, when the fresh one is reading.
func (b *h2Body) again() *h2Body {
	b.detach()
	nb := &h2Body{rc: b.rc, rw: b.rw, timeout: b.timeout, limit: b.limit, n: b.n, err: b.err}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sent != nil {
		nb.pending = b.sent
		nb.sent = append(make([]byte, 0, len(b.sent)), b.sent...)
	}
	return nb
}

func (b *h2Body) status() int { return bodyStatus(b.err) }

// remoteOf is the peer's address of a tracked connection; invalid for nil.
func remoteOf(cc *clientConn) netip.Addr {
	if cc == nil {
		return netip.Addr{}
	}
	return cc.addr
}

// addrText is a in text form, or "unknown".
func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}

// roundTripFunc is a function as an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// bufferPool holds the 32 KiB buffers that bodies are copied through:
// as *[]byte (get and put), and for ReverseProxy as []byte.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) get() *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return v
	}
	v := make([]byte, 32<<10)
	return &v
}

func (b *bufferPool) put(v *[]byte) { b.p.Put(v) }

func (b *bufferPool) Get() []byte  { return *b.get() }
func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }

// podTransports are a route's net/http clients to its pods that speak
// HTTP/2, which both front ends forward through: HTTP/2 with prior
// knowledge (h2c), and TLS with HTTP/2 by ALPN (https, for gRPC); every
// other request goes through the pod's own HTTP/1.1 pool. Each keeps its
// connections per pod address. A reload that keeps a route's upstream and
// pod TLS settings keeps them.
type podTransports struct {
	h2c, https *http.Transport
}

// newPodTransports returns the clients of pods under us; podTLS verifies
// https pods (nil: the route has none).
func newPodTransports(us upstreamSettings, podTLS *tls.Config) *podTransports {
	t := &podTransports{h2c: newPodTransport(us)}
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	t.h2c.Protocols = &h2c
	t.h2c.HTTP2 = podHTTP2
	if podTLS != nil {
		t.https = newPodTransport(us)
		t.https.TLSClientConfig = podTLS.Clone()
		t.https.TLSHandshakeTimeout = us.connectTimeout
		var h2 http.Protocols
		h2.SetHTTP2(true)
		t.https.Protocols = &h2
		t.https.HTTP2 = podHTTP2
	}
	return t
}

// podHTTP2 is how podpin speaks HTTP/2 to pods: it indexes no header in
// its HPACK table (a table of one byte holds no field), as HAProxy does not:
// the fields that change from call to call (the session key,
// X-Forwarded-For) would only be inserted and evicted again.
var podHTTP2 = &http.HTTP2Config{MaxEncoderHeaderTableSize: 1}

// newPodTransport returns a client to pods under us: no proxy from the
// environment, no compression of its own, bodies passed as they are.
func newPodTransport(us upstreamSettings) *http.Transport {
	d := &net.Dialer{Timeout: us.connectTimeout}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		},
		MaxConnsPerHost:       us.maxConns,
		MaxIdleConnsPerHost:   us.maxConns,
		IdleConnTimeout:       us.idleConnTimeout,
		ResponseHeaderTimeout: us.readTimeout,
		DisableCompression:    true,
	}
}

// scheme is the scheme of pd's URLs.
func scheme(pd *pod) string {
	if pd.protocol == config.PodHTTPS {
		return "https"
	}
	return "http"
}
