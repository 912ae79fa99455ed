package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podpin/podpin/internal/h2"
	"github.com/podpin/podpin/internal/place"
)

// newPodPool returns the HTTP/2 connections to an h2c pod at addr, under
// us: a connection left without a stream for the idle timeout closes, and
// so does one whose socket takes nothing for the read timeout.
func newPodPool(addr string, us upstreamSettings) *h2.Pool {
	d := &net.Dialer{Timeout: us.connectTimeout, KeepAlive: 30 * time.Second}
	return &h2.Pool{
		Dial: func() (net.Conn, error) {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		},
		Settings:     h2.ClientSettings{WindowSize: 1 << 20},
		IdleTimeout:  us.idleConnTimeout,
		WriteTimeout: us.readTimeout,
	}
}

// podCall is an HTTP/2 stream on its way to an h2c pod and back.
type podCall struct {
	p    *Proxy
	s    *h2.Stream
	cs   atomic.Pointer[h2.ClientStream] // the pod's stream, once open
	r    *route
	pd   *pod
	cc   *clientConn
	grpc bool
	// timedOut: the route's timeouts ended the exchange.
	timedOut atomic.Bool
	// badBody is the client's body once it failed for the client's fault
	// (too large, too slow, malformed, reset).
	badBody atomic.Pointer[clientBody]

	// bodyMu orders the body's writes to the pod's stream against a
	// switch to a fresh stream (open), and guards what follows.
	bodyMu sync.Mutex
	// pumping: the client's body is being read (sendBody started).
	pumping bool
	// kept is the body read so far, up to maxReplay bytes, while the
	// request may go again; replayOff: it cannot (more was read, or the
	// answer began).
	kept      []byte
	replayOff bool
	// bodyEnded: the client's body ended, all of it read.
	bodyEnded bool

	// What came of it, as settle records it.
	start               time.Time
	status              int
	failed, clientFault bool
	settled             bool
}

// forwardH2 sends a stream to its pod, which speaks h2c, over the pod's own
// HTTP/2 connections (h2.Pool), and the answer back, frame for frame: the
// request's header and a body already in go to the pod in one write, the
// answer's header, body and trailers to the client in one when they came
// together (a unary gRPC call), and each message of a stream as it comes.
// A gRPC call that fails ends with a status a gRPC client reads.
func (p *Proxy) forwardH2(s *h2.Stream, st *state, r *route, d *place.Decision, cc *clientConn, isTLS bool) {
	x := &podCall{p: p, s: s, r: r, pd: d.Pod.(*pod), cc: cc, grpc: isGRPCType(s.HeaderValue("content-type")), start: time.Now()}
	defer x.settle()
	if s.Err() != nil {
		// Reset before it could go (a rapid reset): the pod sees nothing.
		x.status, x.clientFault = statusClientClosed, true
		return
	}
	stop := s.AfterFunc(x.resetPod)
	defer stop()
	until := r.deadline(x.start, x.start)
	var timer *time.Timer
	if wait := r.upstream.readTimeout; wait > 0 || !until.IsZero() {
		if wait == 0 || !until.IsZero() && until.Before(x.start.Add(wait)) {
			wait = until.Sub(x.start)
		}
		timer = time.AfterFunc(wait, x.expire)
		defer timer.Stop()
	}
	var body *clientBody
	if s.HasBody {
		body = &clientBody{ctx: s, r: s, timeout: st.limits.bodyTimeout, limit: st.limits.maxBodyBytes}
	}
	defer func() {
		if cs := x.cs.Load(); cs != nil {
			cs.Close()
		}
	}()

	fields := podFields(s, r, d, x.pd, cc, isTLS)
	var code int
	var header []h2.HeaderField
	var err error
	for try := 0; ; try++ {
		x.pd.tally.Start()
		if err = x.open(fields, body); err == nil {
			code, header, err = x.cs.Load().Response()
		}
		x.pd.tally.Stop()
		if err == nil || try == 2 || s.Err() != nil || x.timedOut.Load() || x.badBody.Load() != nil {
			break
		}
		if next := r.moveOn(d, x.pd, err, func() bool { return !x.replayable() }); next != nil && next.h2 != nil {
			// The pod refused the connection: another takes the key.
			x.pd, x.start = next, time.Now()
			fields = podFields(s, r, d, x.pd, cc, isTLS)
			continue
		}
		if try > 0 || !lostEarly(err) || !x.replayable() {
			break
		}
		// The pod's connection was gone before any answer (a pooled
		// connection to a pod that just stopped): once more, on a fresh
		// connection, which a stopped pod refuses.
	}
	// The answer began, or no pod will have the request: what was kept
	// of its body is not needed any more.
	x.forget()
	if err != nil {
		switch b := x.badBody.Load(); {
		case b != nil:
			x.clientFault = true
			if h2.IsReset(b.cause) {
				x.status = statusClientClosed
				return
			}
			x.reply(b.status(), b.err.Error())
		case s.Err() != nil:
			x.status, x.clientFault = statusClientClosed, true
		case x.timedOut.Load():
			x.failed = true
			x.reply(http.StatusGatewayTimeout, "pod "+x.pd.name+" failed: no response in time")
		default:
			x.failed = true
			r.Log.Debug("pod failed", "pod", x.pd.name, "err", err)
			x.reply(http.StatusBadGateway, "pod "+x.pd.name+" failed: "+podStreamReason(err))
		}
		return
	}
	if timer != nil {
		// Past the answer's header, only the route's own timeouts bound
		// the exchange.
		if until.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(until))
		}
	}
	x.status = code
	if !x.relay(st, p.answerFields(s, st, r, d, x.pd, cc, isTLS, header), code, header) {
		x.failure()
	}
}

// open opens the stream to the pod with fields, and sends the body: the
// client's (sendBody) on a first attempt, what was kept of it on another,
// before the rest follows.
func (x *podCall) open(fields []h2.HeaderField, body *clientBody) error {
	if old := x.cs.Load(); old != nil {
		old.Close()
	}
	x.bodyMu.Lock()
	pumping := x.pumping
	end := body == nil || pumping && x.bodyEnded && len(x.kept) == 0
	cs, err := x.pd.h2.NewStream(fields, end)
	if err != nil {
		x.bodyMu.Unlock()
		return err
	}
	x.cs.Store(cs)
	if x.s.Err() != nil || x.timedOut.Load() {
		// Reset or timed out meanwhile, before the stream was there
		// to be reset.
		cs.Reset()
	}
	switch {
	case end:
	case pumping && len(x.kept) > 0:
		cs.WriteData(x.kept, x.bodyEnded)
	case pumping:
		cs.Flush()
	}
	x.pumping = true
	x.bodyMu.Unlock()
	if body != nil && !pumping {
		x.sendBody(body)
	}
	return nil
}

// replayable reports whether the request can go again: it has no body,
// none of it was read, or what was read is kept.
func (x *podCall) replayable() bool {
	if !x.s.HasBody {
		return true
	}
	x.bodyMu.Lock()
	defer x.bodyMu.Unlock()
	return !x.pumping || !x.replayOff
}

// forget stops keeping the body: the answer began.
func (x *podCall) forget() {
	x.bodyMu.Lock()
	x.kept, x.replayOff = nil, true
	x.bodyMu.Unlock()
}

// forward sends p of the client's body to the pod's stream, keeping it
// while the request may go again; end ends the body. An error is the
// pod's stream's.
func (x *podCall) forward(p []byte, end bool) error {
	x.bodyMu.Lock()
	defer x.bodyMu.Unlock()
	if !x.replayOff {
		if len(x.kept)+len(p) > maxReplay {
			x.kept, x.replayOff = nil, true
		} else {
			x.kept = append(x.kept, p...)
		}
	}
	x.bodyEnded = end
	return x.cs.Load().WriteData(p, end)
}

// replaying reports whether a body write that failed may still reach the
// pod: the request may go again, on a fresh stream, with what was kept.
func (x *podCall) replaying() bool {
	x.bodyMu.Lock()
	defer x.bodyMu.Unlock()
	return !x.replayOff
}

// lostEarly reports a pod connection that failed under a stream before
// its answer began: the pod closed or reset it.
func lostEarly(err error) bool {
	var ce *h2.ConnError
	return errors.As(err, &ce) && (errors.Is(err, io.ErrUnexpectedEOF) || connLost(err))
}

// resetPod resets the pod's stream: the client reset its own.
func (x *podCall) resetPod() {
	if cs := x.cs.Load(); cs != nil {
		cs.Reset()
	}
}

// settle records what came of the exchange, once: in the route's and the
// pod's counters and health, before the end of the answer goes to the
// client, and in the client connection's count of reset streams
// (streamEnded).
func (x *podCall) settle() {
	if x.settled {
		return
	}
	x.settled = true
	r := x.r
	r.Done(r.pods.Load(), x.pd, place.Outcome{Status: x.status, Failed: x.failed, ClientFault: x.clientFault, Seconds: time.Since(x.start).Seconds()})
	x.p.streamEnded(x.cc, x.status, x.start)
}

// reply settles the exchange with status and answers it with podpin's own
// text (streamReply).
func (x *podCall) reply(status int, msg string) {
	x.status = status
	x.settle()
	streamReply(x.s, status, msg)
}

// expire ends the exchange at the route's timeouts.
func (x *podCall) expire() {
	x.timedOut.Store(true)
	x.resetPod()
}

// relay writes the pod's answer to the client: its header as out, then
// body and trailers as they come, settling the exchange before its end
// (answered). It reports false when either side failed mid-way (failure
// says which).
func (x *podCall) relay(st *state, out []h2.HeaderField, code int, header []h2.HeaderField) bool {
	s, cs := x.s, x.cs.Load()
	buf := x.p.bufs.get()
	defer x.p.bufs.put(buf)
	bp := *buf
	setDeadline := func() {
		if st.limits.bodyTimeout > 0 {
			s.SetWriteDeadline(time.Now().Add(st.limits.bodyTimeout))
		}
	}
	n, err := 0, error(nil)
	if cs.Buffered() {
		n, err = cs.Read(bp)
	}
	if err == io.EOF && n == 0 && len(cs.Trailer()) == 0 {
		// The header is the whole answer (a gRPC trailers-only one).
		x.answered(header, nil)
		return s.WriteHeaders(code, out, true) == nil
	}
	if s.WriteHeaders(code, out, false) != nil {
		return false
	}
	for {
		if n > 0 {
			setDeadline()
			var werr error
			if cs.Buffered() {
				// More is in: this goes out with it.
				_, werr = s.WriteMore(bp[:n])
			} else {
				_, werr = s.Write(bp[:n])
			}
			if werr != nil {
				return false
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return false
		}
		if n == 0 && !cs.Buffered() {
			// The header goes now: the body may be slow to come.
			s.Flush()
		}
		n, err = cs.Read(bp)
	}
	trailers := cs.Trailer()
	x.answered(header, trailers)
	if len(trailers) > 0 {
		return s.WriteTrailers(trailers) == nil
	}
	return s.WriteData(nil, true) == nil
}

// answered settles an exchange whose answer came whole: a gRPC answer
// counts as its grpc-status says (grpcStatusOutcome), from its trailers or
// else its header.
func (x *podCall) answered(header, trailers []h2.HeaderField) {
	x.status = answeredStatus(x.status, header, trailers)
	x.settle()
}

// answeredStatus is what an answer with status, header and trailers
// counts as: a gRPC answer as its grpc-status says (grpcStatusOutcome),
// from its trailers or else its header.
func answeredStatus(status int, header, trailers []h2.HeaderField) int {
	if isGRPCType(fieldValue(header, "content-type")) {
		v := fieldValue(trailers, "grpc-status")
		if v == "" {
			v = fieldValue(header, "grpc-status")
		}
		if n, ok := grpcStatusOutcome(v); ok {
			return n
		}
	}
	return status
}

// failure ends an answer that failed mid-way, and settles what came of
// it: the client went away, or the pod failed it (or the route's timeouts
// did). A gRPC call ends with trailers saying UNAVAILABLE (which a client
// may try again) or DEADLINE_EXCEEDED; any other answer is reset, so that
// the client does not take what it got for the whole.
func (x *podCall) failure() {
	s := x.s
	if bb := x.badBody.Load(); bb != nil && !h2.IsReset(bb.cause) {
		// The client's body failed after the answer began (too large,
		// too slow): the call ends with the status for it.
		x.clientFault = true
		x.status = bb.status()
		x.settle()
		bodyBroken(bb.err).end(s, x.grpc)
		return
	}
	if s.Err() != nil {
		x.status, x.clientFault = statusClientClosed, true
		return
	}
	b := brokenAnswer(s, x.pd.name, x.timedOut.Load(), x.start)
	x.status, x.failed = b.status, b.failed
	x.r.Log.Debug("pod failed mid-answer", "pod", x.pd.name)
	x.settle()
	b.end(s, x.grpc)
}

// broken is how an answer that a pod failed mid-way ends: a gRPC call
// with code and msg, and what it counts as (status; failed: the pod is
// to blame).
type broken struct {
	code   int
	msg    string
	status int
	failed bool
}

// brokenAnswer is how the answer on s, from the pod named name since
// start, ends: UNAVAILABLE (which a client may try again), or
// DEADLINE_EXCEEDED when the route's timeouts ran out (timedOut) or the
// call's own deadline passed.
func brokenAnswer(s *h2.Stream, name string, timedOut bool, start time.Time) broken {
	b := broken{code: grpcUnavailable, msg: "podpin: pod " + name + " failed mid-stream", status: http.StatusBadGateway, failed: true}
	switch t, ok := grpcTimeout(s.HeaderValue("grpc-timeout")); {
	case timedOut:
		// The route's timeouts ran out: the pod is not to blame.
		b = broken{code: grpcDeadlineExceeded, msg: "podpin: pod " + name + " did not finish within the route's timeouts", status: http.StatusGatewayTimeout}
	case ok && time.Since(start) >= t:
		// The call's own deadline passed, and the pod ended the call
		// for it, before the client's reset came.
		b = broken{code: grpcDeadlineExceeded, msg: "podpin: the call's deadline passed", status: http.StatusGatewayTimeout}
	}
	return b
}

// bodyBroken is how an answer ends whose request's body failed for the
// client's fault (err from clientBody): a gRPC call with the status for
// it (RESOURCE_EXHAUSTED over the size limit, DEADLINE_EXCEEDED when it
// stalled), counted as the 4xx it would have got before the answer.
func bodyBroken(err error) broken {
	status := bodyStatus(err)
	return broken{code: grpcCode(status), msg: "podpin: " + err.Error(), status: status}
}

// end ends s: a gRPC call with trailers saying b's status; any other
// answer is reset, so that the client does not take what it got for the
// whole.
func (b broken) end(s *h2.Stream, grpc bool) {
	if !grpc || s.WriteTrailers([]h2.HeaderField{
		{Name: "grpc-status", Value: strconv.Itoa(b.code)},
		{Name: "grpc-message", Value: grpcMessage(b.msg)},
	}) != nil {
		s.Reset(uint32(2)) // INTERNAL_ERROR
	}
}

// sendBody sends the client's body to the pod: what is in already at
// once, in one write with the request's header; the rest from a goroutine
// of its own while the client sends it, so that the answer may come
// meanwhile (a gRPC stream both ways). Until the answer begins, what was
// sent is kept (forward), for a fresh stream should the pod's connection
// be lost. A body that fails for the client's fault resets the pod's
// stream.
func (x *podCall) sendBody(body *clientBody) {
	pool := &x.p.bufs
	bp := pool.get()
	buf := *bp
	n := 0
	for x.s.Buffered() {
		m, err := body.Read(buf[n:])
		n += m
		switch {
		case err == io.EOF:
			x.forward(buf[:n], true)
			pool.put(bp)
			return
		case err != nil:
			pool.put(bp)
			x.bodyFailed(body)
			return
		case n == len(buf):
			if x.forward(buf, false) != nil && !x.replaying() {
				pool.put(bp)
				return
			}
			n = 0
		}
	}
	if n > 0 {
		if x.forward(buf[:n], false) != nil && !x.replaying() {
			pool.put(bp)
			return
		}
	} else {
		x.cs.Load().Flush()
	}
	go func() {
		defer pool.put(bp)
		for {
			m, err := body.Read(buf)
			switch {
			case err == io.EOF:
				x.forward(buf[:m], true)
				return
			case err != nil:
				if body.cause != h2.ErrStreamClosed {
					x.bodyFailed(body)
				}
				return
			}
			if x.forward(buf[:m], false) != nil && !x.replaying() {
				return
			}
		}
	}()
}

// bodyFailed ends the exchange for the client's body.
func (x *podCall) bodyFailed(body *clientBody) {
	if body.err == nil {
		return
	}
	x.badBody.Store(body)
	x.forget()
	x.resetPod()
}

// podFields are the fields of the request an h2c pod gets for the stream
// s: its pseudo-header fields, the client's fields without the host and
// connection-specific ones (but "te: trailers", which gRPC asks for),
// X-Forwarded-* as streamPodRequest writes them, the minted key, then the
// route's rewrite and header edits.
func podFields(s *h2.Stream, r *route, d *place.Decision, pd *pod, cc *clientConn, isTLS bool) []h2.HeaderField {
	out := make(fieldList, 4, len(s.Header)+10)
	for _, f := range s.Header {
		switch f.Name {
		case "te":
			if f.Value == "trailers" {
				out = append(out, f)
			}
			continue
		case "host", "content-length", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port":
			continue
		}
		out = append(out, f)
	}
	forwardedFields(&out, s, cc, isTLS)
	if d.Assigned {
		out.Set(r.keyField, string(d.Raw))
	}
	authority, path := s.Authority, s.Path
	if authority == "" {
		authority = pd.addr
	}
	if f := r.filters; f != nil {
		if rw := f.rewrite; rw != nil {
			if rw.Host != "" {
				authority = rw.Host
			}
			if rw.Path != "" || rw.PathPrefix != "" {
				p, q, hasQuery := strings.Cut(path, "?")
				path = f.newPath(p, rw.Path, rw.PathPrefix)
				if hasQuery {
					path += "?" + q
				}
			}
		}
		f.request.applyFast(&out)
	}
	out[0] = h2.HeaderField{Name: ":method", Value: s.Method}
	out[1] = h2.HeaderField{Name: ":scheme", Value: "http"}
	out[2] = h2.HeaderField{Name: ":authority", Value: authority}
	out[3] = h2.HeaderField{Name: ":path", Value: path}
	return out
}

// answerFields are the fields of the pod's answer as the client gets them:
// with the route's response edits, the pod header, and the minted key (and
// its cookie); a key in the answer is learnt.
func (p *Proxy) answerFields(s *h2.Stream, st *state, r *route, d *place.Decision, pd *pod, cc *clientConn, isTLS bool, header []h2.HeaderField) []h2.HeaderField {
	out := make(fieldList, len(header), len(header)+4)
	copy(out, header)
	if r.filters != nil {
		r.filters.response.applyFast(&out)
	}
	if r.LearnKeys {
		r.Learn(d, pd.name, []byte(fieldValue(out, r.keyField)))
	}
	if st.podHeader != nil {
		out.Set(st.podField, pd.name)
	}
	if d.Assigned {
		out.Set(r.keyField, string(d.Raw))
		if c := r.cookie; c != nil {
			// https as the pod's request says it (forwardedFields).
			https := isTLS
			if xfp := s.HeaderValue("x-forwarded-proto"); xfp != "" && cc != nil && cc.trusted {
				https = xfp == "https"
			}
			out.Add("set-cookie", c.header(d.Raw, https))
		}
	}
	return out
}

// podStreamReason is why an h2c pod gave no answer, in a few words.
func podStreamReason(err error) string {
	var re *h2.ResetError
	var ce *h2.ConnError
	switch {
	case isDialError(err):
		return "connection refused"
	case err == h2.ErrNotProcessed:
		return "stream refused"
	case errors.As(err, &re):
		return "stream reset (" + re.Code.String() + ")"
	case errors.As(err, &ce):
		return "connection lost before a response"
	}
	return upstreamReason(err)
}

// fieldValue is the value of the first field named name (in any case), or
// "".
func fieldValue(fields []h2.HeaderField, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// fieldList is an HTTP/2 header as the route's edits change it (fastHeader):
// names in lower case.
type fieldList []h2.HeaderField

func (l *fieldList) Del(key string) {
	*l = slices.DeleteFunc(*l, func(f h2.HeaderField) bool { return strings.EqualFold(f.Name, key) })
}

func (l *fieldList) Set(key, value string) {
	l.Del(key)
	l.Add(key, value)
}

func (l *fieldList) Add(key, value string) {
	*l = append(*l, h2.HeaderField{Name: lowerKey(key), Value: value})
}

// lowerKey is a field name in lower case: the names podpin writes on every
// request, and a name already in lower case, cost no allocation.
func lowerKey(key string) string {
	lower := true
	for i := 0; i < len(key); i++ {
		if 'A' <= key[i] && key[i] <= 'Z' {
			lower = false
			break
		}
	}
	if lower {
		return key
	}
	for _, name := range [...]string{"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "set-cookie"} {
		if strings.EqualFold(key, name) {
			return name
		}
	}
	return strings.ToLower(key)
}
