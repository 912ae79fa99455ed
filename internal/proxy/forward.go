package proxy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/place"
)

var http11 = []byte("HTTP/1.1")

// serve is the request path.
func (p *Proxy) serve(ctx *fasthttp.RequestCtx) {
	handlerReached(ctx)
	st := p.state.Load()
	r, scan, answer := p.routeFor(ctx, st)
	if answer != nil {
		answer(ctx)
		return
	}
	buf := p.keyBufs.Get().(*[256]byte)
	defer p.keyBufs.Put(buf)
	d := r.Decide((*fastRequest)(ctx), r.pods.Load(), buf[:0])
	if d.Err != nil {
		r.refuseDecision(ctx, d.Err)
		return
	}
	if d.Assigned {
		// The minted key goes to the pod with the request, and to the
		// client on the answer, set after forwarding.
		ctx.Request.Header.SetBytesV(r.Key.Header, d.Raw)
		defer r.handOut(ctx, &d)
	}
	p.forward(ctx, st, r, scan, &d)
}

// refuseDecision answers a request that placement refused with err.
func (r *route) refuseDecision(ctx *fasthttp.RequestCtx, err error) {
	code := placeStatus(err)
	r.fail(ctx, code, err)
	if code == fasthttp.StatusTooManyRequests {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	}
}

// handOut gives the client the key minted for its request (d.Assigned):
// in the key header of the answer, and as a cookie where the route sets
// one.
func (r *route) handOut(ctx *fasthttp.RequestCtx, d *place.Decision) {
	if r.cookie != nil {
		r.cookie.setFast(ctx, d.Raw)
	}
	ctx.Response.Header.SetBytesV(r.Key.Header, d.Raw)
}

// routeFor is the route that forwards the request of ctx, with what the
// scan of its header found; or, for a request that podpin answers itself
// (refused by the edge policy, redirected, no route, a route that answers
// every request), nil and that answer, not yet given. It changes nothing
// but the request's header (h2c upgrade fields are removed).
func (p *Proxy) routeFor(ctx *fasthttp.RequestCtx, st *state) (*route, headerScan, func(*fasthttp.RequestCtx)) {
	scan, code, err := checkRequest(&ctx.Request.Header, &st.limits)
	if err != nil {
		return nil, scan, func(ctx *fasthttp.RequestCtx) { refuse(ctx, code, err) }
	}
	if n := ctx.Request.Header.ContentLength(); st.limits.maxBodyBytes > 0 && int64(n) > st.limits.maxBodyBytes {
		return nil, scan, func(ctx *fasthttp.RequestCtx) { refuse(ctx, fasthttp.StatusRequestEntityTooLarge, errBodyTooLarge) }
	}
	if !ctx.IsTLS() && p.certSource.Redirects(ctx.Host()) {
		return nil, scan, redirectHTTPS
	}
	if cc, ok := connOf(ctx.Conn()); ok && cc.conns.hostnames != nil && ctx.IsTLS() &&
		cc.conns.hostnames.misdirected(ctx.TLSConnectionState().ServerName, string(ctx.Host())) {
		return nil, scan, func(ctx *fasthttp.RequestCtx) { reply(ctx, fasthttp.StatusMisdirectedRequest, errMisdirected) }
	}
	stripH2C(&ctx.Request.Header, scan)
	req := (*fastRequest)(ctx)
	var r *route
	for _, c := range st.routes {
		if c.Match.Matches(req) {
			r = c
			break
		}
	}
	switch {
	case r == nil:
		return nil, scan, func(ctx *fasthttp.RequestCtx) { reply(ctx, fasthttp.StatusNotFound, place.ErrNoRoute) }
	case r.filters != nil && r.filters.redirect != nil:
		return nil, scan, func(ctx *fasthttp.RequestCtx) { redirectFast(ctx, r) }
	case r.respond != 0:
		return nil, scan, func(ctx *fasthttp.RequestCtx) { respondFast(ctx, r) }
	}
	return r, scan, nil
}

// forward sends the request to the pod of d and the answer back to the
// client. With a key (d.Raw != nil), a pod that refuses the connection is
// replaced by another candidate once, and the key rebound to it.
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, st *state, r *route, scan headerScan, d *place.Decision) {
	pd := d.Pod.(*pod)
	if pd.protocol == config.PodH2C {
		p.forwardH2C(ctx, st, r, scan, d)
		return
	}
	req := &ctx.Request
	if scan.connection && req.Header.ConnectionUpgrade() && len(req.Header.Peek(fasthttp.HeaderUpgrade)) > 0 {
		p.tunnel(ctx, st, r, scan, pd)
		return
	}
	clientClose := req.Header.ConnectionClose()
	r.preparePodRequest(ctx, scan, pd)
	body := wrapBody(ctx, st.limits)

	resp := &ctx.Response
	start := time.Now()
	err := p.roundTrip(r, pd, req, resp, start, start)
	if err != nil && body != nil && body.err != nil {
		// The client's body stopped, not the pod: answer for the client,
		// and count nothing against the pod.
		r.Done(r.pods.Load(), pd, place.Outcome{ClientFault: true, Status: body.status(), Seconds: time.Since(start).Seconds()})
		refuse(ctx, body.status(), body.err)
		return
	}
	if next := r.moveOn(d, pd, err, nil); next != nil {
		first := start
		pd, start = next, time.Now()
		err = p.roundTrip(r, pd, req, resp, first, start)
	}
	if err != nil {
		code := fasthttp.StatusBadGateway
		if answerTimedOut(err) {
			code = fasthttp.StatusGatewayTimeout
		}
		if _, ok := isTLSError(err); ok {
			r.Log.Debug("pod TLS handshake failed", "pod", pd.name, "err", err)
		}
		resp.Reset()
		r.Done(r.pods.Load(), pd, place.Outcome{Failed: true, Status: code, Seconds: time.Since(start).Seconds()})
		replyText(ctx, code, "pod "+pd.name+" failed: "+upstreamReason(err))
		return
	}
	r.answered(ctx, st, d, pd, start, clientClose)
}

// answered records the answer of pd to a request decided by d, sent at
// start, and turns it into the client's: hop-by-hop fields removed, the
// route's edits, the connection closed after it when the client asked
// (clientClose), the key learnt from it, the pod named.
func (r *route) answered(ctx *fasthttp.RequestCtx, st *state, d *place.Decision, pd *pod, start time.Time, clientClose bool) {
	resp := &ctx.Response
	r.Done(r.pods.Load(), pd, place.Outcome{Status: resp.StatusCode(), Seconds: time.Since(start).Seconds()})
	// podpin answers in its own version: an HTTP/1.0 pod's answer of
	// unknown length goes chunked, which only an HTTP/1.1 status line may
	// announce (RFC 9112, section 6.1).
	resp.Header.SetProtocol(http11)
	stripHopByHop(&resp.Header)
	if r.filters != nil {
		r.filters.response.applyFast(&resp.Header)
	}
	resp.Header.ResetConnectionClose()
	if clientClose {
		ctx.SetConnectionClose()
	}
	if r.LearnKeys {
		r.Learn(d, pd.name, resp.Header.Peek(r.Key.Header))
	}
	if st.podHeader != nil {
		resp.Header.SetCanonical(st.podHeader, pd.nameV)
	}
}

// moveOn is the pod a request goes to after pd refused its connection
// (err), with its key rebound there, or nil when it stays failed: it has
// no key, the route never rebinds, some of its body was read (bodyRead,
// nil for a request whose body is not streamed; asked only after a
// refused connection, when nothing else reads the body), or no other pod
// can take it. The refusal counts against pd's health, not in its answers.
func (r *route) moveOn(d *place.Decision, pd *pod, err error, bodyRead func() bool) *pod {
	if err == nil || !isDialError(err) || d.Raw == nil || r.Strict || bodyRead != nil && bodyRead() {
		return nil
	}
	r.Done(r.pods.Load(), pd, place.Outcome{Failed: true})
	r.Log.Debug("pod refused connection", "pod", pd.name, "err", err)
	if next := r.Rebind(r.pods.Load(), d, pd); next != nil {
		return next.(*pod)
	}
	return nil
}

// roundTrip forwards one request to pd, counting it in flight meanwhile:
// an attempt that starts at now, of a request that podpin had at start,
// bounded by the route's timeouts.
func (p *Proxy) roundTrip(r *route, pd *pod, req *fasthttp.Request, resp *fasthttp.Response, start, now time.Time) error {
	pd.tally.Start()
	defer pd.tally.Stop()
	if until := r.deadline(start, now); !until.IsZero() {
		return pd.client.DoUntil(until, req, resp)
	}
	return pd.client.Do(req, resp)
}

// preparePodRequest turns the client's request into the one pd gets:
// prepareRequest, the pod's address as Host when the client sent none
// (setPodHost), then the route's rewrite and header edits.
func (r *route) preparePodRequest(ctx *fasthttp.RequestCtx, scan headerScan, pd *pod) {
	prepareRequest(ctx, scan)
	setPodHost(&ctx.Request, pd)
	if r.filters != nil {
		r.filters.editRequestFast(&ctx.Request)
	}
}

// prepareRequest turns the client's request into the pod's: hop-by-hop
// headers removed (RFC 9110, section 7.6.1), X-Forwarded-* added. When the
// scan found no field to rewrite, only a Connection field is removed.
// X-Forwarded-For is appended to; X-Forwarded-Proto, -Host and -Port are
// podpin's own unless the peer is a trusted proxy, whose values pass on.
func prepareRequest(ctx *fasthttp.RequestCtx, scan headerScan) {
	h := &ctx.Request.Header
	var b [64]byte
	xff := b[:0]
	// Only a request with an X-Forwarded-* field has values to keep.
	keep := scan.rewrite && fromTrustedProxy(ctx)
	switch {
	case scan.rewrite:
		stripAllHopByHop(h)
		// podpin answered any "Expect: 100-continue" itself and holds the body.
		h.Del(fasthttp.HeaderExpect)
		if prior := h.Peek(fasthttp.HeaderXForwardedFor); len(prior) > 0 {
			xff = append(append(xff, prior...), ", "...)
		}
		if !keep {
			h.Del(fasthttp.HeaderXForwardedHost)
			h.Del(headerXForwardedPort)
		}
	case scan.connection:
		h.Del(fasthttp.HeaderConnection)
	}
	// The names are canonical, so setting them skips normalizing.
	h.SetCanonical(xForwardedFor, appendRemoteAddr(xff, ctx))
	if !keep || len(h.Peek(fasthttp.HeaderXForwardedProto)) == 0 {
		if ctx.IsTLS() {
			h.SetCanonical(xForwardedProto, []byte("https"))
		} else {
			h.SetCanonical(xForwardedProto, []byte("http"))
		}
	}
	if host := h.Host(); len(host) > 0 && (!keep || len(h.Peek(fasthttp.HeaderXForwardedHost)) == 0) {
		h.SetCanonical(xForwardedHost, host)
	}
}

// headerXForwardedPort is the port the client connected to, as a proxy in
// front of podpin tells it.
const headerXForwardedPort = "X-Forwarded-Port"

var (
	xForwardedFor   = []byte(fasthttp.HeaderXForwardedFor)
	xForwardedProto = []byte(fasthttp.HeaderXForwardedProto)
	xForwardedHost  = []byte(fasthttp.HeaderXForwardedHost)
)

// setPodHost gives a request without Host (HTTP/1.0 allows that) the pod's
// address as Host: podpin speaks HTTP/1.1 to pods, which requires one
// (RFC 9112, section 3.2).
// An HTTP/1.0 request goes on as HTTP/1.1: an intermediary sends its own
// version (RFC 9110, section 6.2).
func setPodHost(req *fasthttp.Request, pd *pod) {
	if len(req.Header.Host()) == 0 {
		req.SetHost(pd.addr)
		req.Header.SetHost(pd.addr)
	}
	if !req.Header.IsHTTP11() {
		req.Header.SetProtocol("HTTP/1.1")
	}
}

// remoteAddr is the peer's IP address: the client's, or a proxy's in
// front of podpin (for PROXY protocol connections, the client the header
// named); invalid when it has none.
func remoteAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if cc, ok := connOf(ctx.Conn()); ok {
		return cc.addr
	}
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// appendRemoteAddr appends the peer's IP address in text form, or
// "unknown".
func appendRemoteAddr(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	a := remoteAddr(ctx)
	if !a.IsValid() {
		return append(dst, "unknown"...)
	}
	return a.AppendTo(dst)
}

// fromTrustedProxy reports whether the peer is a trusted proxy.
func fromTrustedProxy(ctx *fasthttp.RequestCtx) bool {
	cc, ok := connOf(ctx.Conn())
	return ok && cc.trusted
}

// clientAddr is the client's IP address, for client-IP keys and caps: the
// peer's, or behind a trusted proxy the one realClient finds.
func clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	cc, ok := connOf(ctx.Conn())
	if !ok || !cc.trusted {
		return remoteAddr(ctx)
	}
	return realClient(cc.addr, cc.conns.trusted, ctx.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor))
}

// realClient finds the client behind trusted proxies, from the trusted
// peer's address and the X-Forwarded-For fields in the order received: the
// rightmost entry that is not a trusted proxy itself (the nearest address
// no trusted proxy vouches for, as nginx's real_ip_recursive takes it), or
// the leftmost when every entry is trusted. An entry that is not an IP ends
// the search: the last trusted hop stands.
func realClient(peer netip.Addr, trusted []netip.Prefix, xff [][]byte) netip.Addr {
	client := peer
	for _, v := range slices.Backward(xff) {
		for len(v) > 0 {
			i := bytes.LastIndexByte(v, ',')
			a, err := netip.ParseAddr(string(bytes.TrimSpace(v[i+1:])))
			if err != nil {
				return client
			}
			client = a.Unmap()
			if !isTrusted(trusted, client) {
				return client
			}
			v = v[:max(i, 0)]
		}
	}
	return client
}

// isTrusted reports whether a is in one of trusted.
func isTrusted(trusted []netip.Prefix, a netip.Addr) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// appendClientAddr appends clientAddr in text form, or "unknown".
func appendClientAddr(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	a := clientAddr(ctx)
	if !a.IsValid() {
		return append(dst, "unknown"...)
	}
	return a.AppendTo(dst)
}

// hopByHop are the fields that describe one connection and never pass a
// proxy (RFC 9110, section 7.6.1; RFC 9112, section 9.6). Transfer-Encoding
// and Content-Length are framing that fasthttp rewrites itself.
var hopByHop = []string{
	fasthttp.HeaderConnection, "Keep-Alive", "Proxy-Connection",
	fasthttp.HeaderTE, fasthttp.HeaderUpgrade, "Proxy-Authenticate", "Proxy-Authorization",
	"HTTP2-Settings",
}

// isHopByHop reports whether name is one of hopByHop, in any case.
func isHopByHop(name []byte) bool {
	return oneOf(name, hopByHop, hopByHopLens)
}

// isRewritten reports the request fields, other than hop-by-hop ones, that
// prepareRequest removes or replaces.
func isRewritten(name []byte) bool {
	return oneOf(name, rewritten, rewrittenLens)
}

var rewritten = []string{
	fasthttp.HeaderExpect, fasthttp.HeaderXForwardedFor, fasthttp.HeaderXForwardedProto, fasthttp.HeaderXForwardedHost,
	headerXForwardedPort,
}

// hopByHopLens and rewrittenLens have bit n set when a name of length n is
// in the list, so that most names are ruled out by their length alone.
var hopByHopLens, rewrittenLens = lengths(hopByHop), lengths(rewritten)

func lengths(names []string) (set uint64) {
	for _, n := range names {
		set |= 1 << len(n)
	}
	return set
}

// oneOf reports whether name equals one of names, ignoring case; lens is
// lengths(names).
func oneOf(name []byte, names []string, lens uint64) bool {
	if len(name) >= 64 || lens&(1<<len(name)) == 0 {
		return false
	}
	for _, n := range names {
		if equalName(name, n) {
			return true
		}
	}
	return false
}

// equalName compares a field name with a canonical one, ignoring case.
func equalName(name []byte, canonical string) bool {
	return len(name) == len(canonical) && bytes.EqualFold(name, []byte(canonical))
}

// fieldHeader is what removing hop-by-hop fields needs of a request's or a
// response's header.
type fieldHeader interface {
	Peek(key string) []byte
	Del(key string)
	DelBytes(key []byte)
}

// stripAllHopByHop removes the hop-by-hop fields and the fields the
// Connection field names.
func stripAllHopByHop(h fieldHeader) {
	if c := h.Peek(fasthttp.HeaderConnection); len(c) > 0 {
		forEachToken(c, func(name []byte) {
			if !isFramingHeader(name) {
				h.DelBytes(name)
			}
		})
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// hopByHopField classifies one field for the one-pass scans: whether it is
// a Connection field, and whether removing it takes more than deleting the
// Connection field (a hop-by-hop field, or a Connection value that names
// another field).
func hopByHopField(name, value []byte) (connection, more bool) {
	if equalName(name, fasthttp.HeaderConnection) {
		return true, !isPersistenceToken(value)
	}
	return false, isHopByHop(name)
}

// stripHopByHop removes a response's hop-by-hop fields. One pass over the
// fields finds them; the common answer, whose only such field is
// "Connection: keep-alive" or "close", costs one removal.
func stripHopByHop(h *fasthttp.ResponseHeader) {
	var conn, more bool
	for name, value := range h.All() {
		c, m := hopByHopField(name, value)
		conn, more = conn || c, more || m
	}
	switch {
	case more:
		stripAllHopByHop(h)
	case conn:
		h.Del(fasthttp.HeaderConnection)
	}
}

// isPersistenceToken reports a Connection value that names no other field.
func isPersistenceToken(v []byte) bool {
	v = bytes.Trim(v, " \t")
	return bytes.EqualFold(v, []byte("keep-alive")) || bytes.EqualFold(v, []byte("close"))
}

// isFramingHeader reports fields that a Connection header must not remove:
// message framing, which fasthttp owns, and the Host.
func isFramingHeader(name []byte) bool {
	return bytes.EqualFold(name, []byte(fasthttp.HeaderContentLength)) ||
		bytes.EqualFold(name, []byte(fasthttp.HeaderTransferEncoding)) ||
		bytes.EqualFold(name, []byte(fasthttp.HeaderHost))
}

// forEachToken calls fn for each comma-separated token of a field value.
func forEachToken(v []byte, fn func([]byte)) {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) > 0 {
			fn(tok)
		}
	}
}

func upstreamReason(err error) string {
	if te, ok := isTLSError(err); ok {
		return "TLS: " + te.reason()
	}
	switch {
	case isDialError(err):
		return "connection refused"
	case isTimeout(err):
		return "no response in time"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "connection closed before a response"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "every connection to it busy (upstream.maxConnsPerPod)"
	}
	return "bad response"
}

// answerTimedOut reports a pod whose answer did not come in time, which is
// a 504: upstream.responseTimeout, or the route's timeouts running out. A
// connection or TLS handshake that took too long is a 502.
func answerTimedOut(err error) bool {
	if _, ok := isTLSError(err); ok || isDialError(err) {
		return false
	}
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// isTimeout reports a pod that did not answer in time: fasthttp's
// ErrTimeout, a deadline, or net/http's wait for a response header.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() ||
		strings.Contains(err.Error(), "timeout awaiting response headers")
}

// redirectFast answers a request of a route that redirects.
func redirectFast(ctx *fasthttp.RequestCtx, r *route) {
	scheme := "http"
	if ctx.IsTLS() {
		scheme = "https"
	}
	u := ctx.URI()
	loc := r.filters.redirectURL(scheme, string(ctx.Host()), portOf(ctx.LocalAddr()), string(u.PathOriginal()), string(u.QueryString()))
	code := r.filters.redirectStatus()
	r.Metrics.Unrouted(code)
	ctx.Response.Header.Set(fasthttp.HeaderLocation, loc)
	ctx.SetStatusCode(code)
}

// respondFast answers a request of a route that responds by itself.
func respondFast(ctx *fasthttp.RequestCtx, r *route) {
	r.Metrics.Unrouted(r.respond)
	replyText(ctx, r.respond, r.respondText())
	if r.filters != nil {
		r.filters.response.applyFast(&ctx.Response.Header)
	}
}

// fail answers a request podpin could not forward and counts it.
func (r *route) fail(ctx *fasthttp.RequestCtx, code int, err error) {
	r.Metrics.Unrouted(code)
	reply(ctx, code, err)
}

// redirectHTTPS answers 308 with the same URL over https: the host without
// its port (https's own, 443), the path and the query.
func redirectHTTPS(ctx *fasthttp.RequestCtx) {
	ctx.Response.Reset()
	ctx.Response.Header.Set(fasthttp.HeaderLocation, httpsURL(string(ctx.Host()), string(ctx.URI().RequestURI())))
	ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
}

// httpsURL is the https URL of a request for host and target: the host
// without its port (https's own, 443).
func httpsURL(host, target string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return "https://" + host + target
}

// refuse answers a request podpin will not read further and closes the
// connection: what follows it on the wire cannot be trusted to start a
// request.
func refuse(ctx *fasthttp.RequestCtx, code int, err error) {
	reply(ctx, code, err)
	ctx.SetConnectionClose()
}

func reply(ctx *fasthttp.RequestCtx, code int, err error) {
	replyText(ctx, code, err.Error())
}

// replyText writes podpin's own one-line answer.
func replyText(ctx *fasthttp.RequestCtx, code int, msg string) {
	ctx.Response.Reset()
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("X-Podpin-Error", "1")
	ctx.SetBodyString("podpin: " + msg + "\n")
}
