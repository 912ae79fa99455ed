package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/h2"
	"github.com/podpin/podpin/internal/place"
)

// serveStream serves an HTTP/2 stream: the refusals at the edge and the
// route's match, then placement and forwarding. A stream to a route whose
// pods all speak HTTP/1.1 and that is not gRPC goes the short way
// (forwardStream): its fields become the pod's HTTP/1.1 request, sent
// through the pod's own pool as HTTP/1.1 clients' requests are, and the
// pod's answer becomes the stream's frames, with no net/http type in
// between. A stream to a route whose pods all speak h2c (gRPC above all)
// goes to its pod over the pod's own HTTP/2 connections, frame for frame
// (forwardH2). Every other stream (a gRPC call to HTTP/1.1 or https pods,
// a route whose pods mix protocols, a route that redirects or answers by
// itself) goes on through serveH2, in net/http's terms (serveStreamHTTP).
func (p *Proxy) serveStream(s *h2.Stream) {
	st := p.state.Load()
	cc, _ := connOf(s.Conn())
	tc, isTLS := s.Conn().(*tls.Conn)
	switch {
	case s.Truncated:
		streamReply(s, http.StatusRequestHeaderFieldsTooLarge, errHeaderSize.Error())
		return
	case s.Method == http.MethodConnect:
		// A tunnel (or an extended CONNECT: WebSocket over HTTP/2) would
		// bypass placement's view of the requests inside it.
		streamReply(s, http.StatusMethodNotAllowed, errConnect.Error())
		return
	case len(s.Header) > st.limits.maxHeaders:
		streamReply(s, http.StatusRequestHeaderFieldsTooLarge, errTooMany.Error())
		return
	case st.limits.maxBodyBytes > 0 && s.ContentLength > st.limits.maxBodyBytes:
		streamReply(s, http.StatusRequestEntityTooLarge, errBodyTooLarge.Error())
		return
	case !isTLS && p.certSource.Redirects([]byte(s.Authority)):
		s.WriteHeaders(http.StatusPermanentRedirect, []h2.HeaderField{{Name: "location", Value: httpsURL(s.Authority, s.Path)}}, true)
		return
	case isTLS && cc != nil && cc.conns.hostnames != nil && cc.conns.hostnames.misdirected(tc.ConnectionState().ServerName, s.Authority):
		streamReply(s, http.StatusMisdirectedRequest, errMisdirected.Error())
		return
	}
	q := &streamPlace{s: s, cc: cc}
	var r *route
	for _, c := range st.routes {
		if c.Match.Matches(q) {
			r = c
			break
		}
	}
	if r == nil {
		streamReply(s, http.StatusNotFound, place.ErrNoRoute.Error())
		return
	}
	pods := r.pods.Load()
	if r.respond != 0 || r.filters != nil && r.filters.redirect != nil || !pods.h2c && (!pods.http1 || isGRPCType(s.HeaderValue("content-type"))) {
		p.serveStreamHTTP(s, st, r, cc)
		return
	}
	buf := p.keyBufs.Get().(*[256]byte)
	defer p.keyBufs.Put(buf)
	d := r.Decide(q, pods, buf[:0])
	if d.Err != nil {
		code := placeStatus(d.Err)
		r.Metrics.Unrouted(code)
		var extra []h2.HeaderField
		if code == http.StatusTooManyRequests {
			extra = []h2.HeaderField{{Name: "retry-after", Value: "1"}}
		}
		streamReply(s, code, d.Err.Error(), extra...)
		return
	}
	if pods.h2c {
		p.forwardH2(s, st, r, &d, cc, isTLS)
		return
	}
	p.forwardStream(s, st, r, &d, cc, isTLS)
}

// forwardStream sends a stream to its pod, which speaks HTTP/1.1, and the
// answer back: forward's work for an HTTP/2 client, with the X-Forwarded
// fields, the key and the route's header edits of serveH2.
func (p *Proxy) forwardStream(s *h2.Stream, st *state, r *route, d *place.Decision, cc *clientConn, isTLS bool) {
	pd := d.Pod.(*pod)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	start := time.Now()
	status, failed, clientFault := 0, false, false
	defer func() {
		r.Done(r.pods.Load(), pd, place.Outcome{Status: status, Failed: failed, ClientFault: clientFault, Seconds: time.Since(start).Seconds()})
		p.streamEnded(cc, status, start)
	}()

	streamPodRequest(req, s, cc, isTLS)
	if d.Assigned {
		req.Header.SetBytesV(r.Key.Header, d.Raw)
	}
	setPodHost(req, pd)
	if r.filters != nil {
		r.filters.editRequestFast(req)
	}
	var body *clientBody
	if s.HasBody {
		body = &clientBody{ctx: s, r: s, timeout: st.limits.bodyTimeout, limit: st.limits.maxBodyBytes}
		req.SetBodyStream(body, int(s.ContentLength))
	}
	if s.Method == http.MethodHead {
		resp.SkipBody = true
	}
	// The stream itself is the exchange's context: lighter than
	// s.Context(), and the pod client watches it without a goroutine.
	var ctx context.Context = s
	if ctx.Err() != nil {
		// Reset before it could go (a rapid reset): the pod sees nothing.
		status, clientFault = statusClientClosed, true
		return
	}
	err := roundTripStream(ctx, r, pd, req, resp, start, start)
	if next := r.moveOn(d, pd, err, func() bool { return body != nil && body.n > 0 }); next != nil {
		first := start
		pd, start = next, time.Now()
		err = roundTripStream(ctx, r, pd, req, resp, first, start)
	}
	switch {
	case err != nil && body != nil && body.err != nil:
		status, clientFault = body.status(), true
		if h2.IsReset(body.cause) {
			status = statusClientClosed
			return
		}
		streamReply(s, status, body.err.Error())
		return
	case err != nil && ctx.Err() != nil:
		status, clientFault = statusClientClosed, true
		return
	case err != nil:
		status, failed = http.StatusBadGateway, true
		if answerTimedOut(err) {
			status = http.StatusGatewayTimeout
		}
		r.Log.Debug("pod failed", "pod", pd.name, "err", err)
		streamReply(s, status, "pod "+pd.name+" failed: "+upstreamReason(err))
		return
	}
	status = resp.StatusCode()

	h := &resp.Header
	stripHopByHop(h)
	if r.filters != nil {
		r.filters.response.applyFast(h)
	}
	if r.LearnKeys {
		r.Learn(d, pd.name, h.Peek(r.Key.Header))
	}
	if st.podHeader != nil {
		h.SetCanonical(st.podHeader, pd.nameV)
	}
	if d.Assigned {
		h.SetBytesV(r.Key.Header, d.Raw)
		if c := r.cookie; c != nil {
			// https as the pod's request says it (streamPodRequest).
			https := isTLS
			if xfp := s.HeaderValue("x-forwarded-proto"); xfp != "" && cc != nil && cc.trusted {
				https = xfp == "https"
			}
			h.Add(fasthttp.HeaderSetCookie, c.header(d.Raw, https))
		}
	}
	fields := make([]h2.HeaderField, 0, h.Len())
	var trailerNames []string
	for name, v := range h.All() {
		fields = append(fields, h2.HeaderField{Name: lowerName(name), Value: string(v)})
	}
	for name := range h.Trailers() {
		trailerNames = append(trailerNames, string(name))
	}
	if st.limits.bodyTimeout > 0 {
		s.SetWriteDeadline(time.Now().Add(st.limits.bodyTimeout))
	}
	if !resp.IsBodyStream() {
		b := resp.Body()
		if len(b) == 0 {
			err = s.WriteHeaders(status, fields, true)
		} else if err = s.WriteHeaders(status, fields, false); err == nil {
			err = s.WriteData(b, true)
		}
		if err != nil {
			status, clientFault = statusClientClosed, true
		}
		return
	}
	if err := s.WriteHeaders(status, fields, false); err != nil {
		status, clientFault = statusClientClosed, true
		return
	}
	// The header goes now: the body may be slow to come.
	s.Flush()
	buf := p.bufs.get()
	defer p.bufs.put(buf)
	bp := *buf
	bs := resp.BodyStream()
	for {
		n, rerr := bs.Read(bp)
		if n > 0 {
			if st.limits.bodyTimeout > 0 {
				s.SetWriteDeadline(time.Now().Add(st.limits.bodyTimeout))
			}
			if err := s.WriteData(bp[:n], false); err != nil {
				status, clientFault = statusClientClosed, true
				return
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// The pod failed mid-answer: the client must not take what
			// it got for the whole.
			failed = true
			r.Log.Debug("pod failed mid-answer", "pod", pd.name, "err", rerr)
			s.Reset(uint32(2)) // INTERNAL_ERROR
			return
		}
	}
	var trailers []h2.HeaderField
	for _, name := range trailerNames {
		for _, v := range h.PeekAll(name) {
			trailers = append(trailers, h2.HeaderField{Name: name, Value: string(v)})
		}
	}
	if len(trailers) > 0 {
		s.WriteTrailers(trailers)
	} else {
		s.WriteData(nil, true)
	}
}

// roundTripStream is roundTrip for a stream, whose reset (ctx) ends the
// exchange with the pod until the answer's header is in.
func roundTripStream(ctx context.Context, r *route, pd *pod, req *fasthttp.Request, resp *fasthttp.Response, start, now time.Time) error {
	pd.tally.Start()
	defer pd.tally.Stop()
	return pd.client.do(ctx, r.deadline(start, now), req, resp)
}

// streamPodRequest writes into req the HTTP/1.1 request a pod gets for the
// stream s: its method, target and fields, without the hop-by-hop ones,
// and X-Forwarded-For, -Proto and -Host as prepareRequest writes them
// (a trusted peer's X-Forwarded-Proto, -Host and -Port pass on).
func streamPodRequest(req *fasthttp.Request, s *h2.Stream, cc *clientConn, isTLS bool) {
	h := &req.Header
	h.SetMethod(s.Method)
	h.SetRequestURI(s.Path)
	h.SetHost(s.Authority)
	req.UseHostHeader = true
	for _, f := range s.Header {
		switch f.Name {
		case "host", "te", "content-length", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port":
			continue
		}
		h.Add(f.Name, f.Value)
	}
	forwardedFields(h, s, cc, isTLS)
}

// forwardedFields adds to h the X-Forwarded fields of the pod's request
// for the stream s, as prepareRequest writes them for HTTP/1.1:
// X-Forwarded-For with the client's address after those the stream came
// with, X-Forwarded-Proto and -Host; a trusted peer's X-Forwarded-Proto,
// -Host and -Port pass on instead.
func forwardedFields(h fastHeader, s *h2.Stream, cc *clientConn, isTLS bool) {
	trusted := cc != nil && cc.trusted
	var xff string
	var kept [3]bool // X-Forwarded-Proto, -Host, -Port
	for _, f := range s.Header {
		i := 0
		switch f.Name {
		case "x-forwarded-for":
			xff += f.Value + ", "
			continue
		case "x-forwarded-proto":
			i = 0
		case "x-forwarded-host":
			i = 1
		case "x-forwarded-port":
			i = 2
		default:
			continue
		}
		if trusted {
			h.Add(f.Name, f.Value)
			kept[i] = true
		}
	}
	h.Set(fasthttp.HeaderXForwardedFor, xff+addrText(remoteOf(cc)))
	if !kept[0] {
		proto := "http"
		if isTLS {
			proto = "https"
		}
		h.Set(fasthttp.HeaderXForwardedProto, proto)
	}
	if !kept[1] {
		h.Set(fasthttp.HeaderXForwardedHost, s.Authority)
	}
}

// streamReply answers a stream with podpin's one-line text, as reply does
// for HTTP/1.1, or a gRPC call with the status a gRPC client reads, as
// h2Reply does.
func streamReply(s *h2.Stream, code int, msg string, extra ...h2.HeaderField) {
	if ct := s.HeaderValue("content-type"); isGRPCType(ct) {
		s.WriteHeaders(http.StatusOK, grpcReply(ct, code, msg, extra), true)
		return
	}
	fields := append([]h2.HeaderField{
		{Name: "content-type", Value: "text/plain; charset=utf-8"},
		{Name: "x-podpin-error", Value: "1"},
	}, extra...)
	if s.WriteHeaders(code, fields, false) == nil {
		s.WriteData([]byte("podpin: "+msg+"\n"), true)
	}
}

// grpcReply is the header of a gRPC answer (content type ct) that ends
// the call with the status for code, and msg.
func grpcReply(ct string, code int, msg string, extra []h2.HeaderField) []h2.HeaderField {
	return append([]h2.HeaderField{
		{Name: "content-type", Value: ct},
		{Name: "x-podpin-error", Value: "1"},
		{Name: "grpc-status", Value: strconv.Itoa(grpcCode(code))},
		{Name: "grpc-message", Value: grpcMessage("podpin: " + msg)},
	}, extra...)
}

// streamPlace is placement's view of an HTTP/2 stream (place.Request).
type streamPlace struct {
	s     *h2.Stream
	cc    *clientConn
	host  []byte
	path  []byte
	query url.Values // parsed on first use
}

var _ place.Request = (*streamPlace)(nil)

func (q *streamPlace) Host() []byte {
	if q.host == nil {
		q.host = []byte(q.s.Authority)
	}
	return q.host
}

func (q *streamPlace) Method() []byte { return []byte(q.s.Method) }

// Path is the target's path, decoded, as net/http's URL.Path has it.
func (q *streamPlace) Path() []byte {
	if q.path == nil {
		p, _, _ := strings.Cut(q.s.Path, "?")
		if strings.IndexByte(p, '%') >= 0 {
			if u, err := url.PathUnescape(p); err == nil {
				p = u
			}
		}
		q.path = []byte(p)
	}
	return q.path
}

func (q *streamPlace) Header(name string) [][]byte {
	var out [][]byte
	for _, f := range q.s.Header {
		if strings.EqualFold(f.Name, name) {
			out = append(out, []byte(f.Value))
		}
	}
	return out
}

func (q *streamPlace) Cookie(name string) []byte {
	line := q.s.HeaderValue("cookie")
	if line == "" {
		return nil
	}
	cs, err := http.ParseCookie(line)
	if err != nil {
		return nil
	}
	for _, c := range cs {
		if c.Name == name {
			return []byte(c.Value)
		}
	}
	return nil
}

func (q *streamPlace) Query(name string) []byte {
	if q.query == nil {
		_, raw, _ := strings.Cut(q.s.Path, "?")
		q.query, _ = url.ParseQuery(raw)
	}
	if !q.query.Has(name) {
		return nil
	}
	return []byte(q.query.Get(name))
}

func (q *streamPlace) Listener() string {
	if q.cc == nil {
		return ""
	}
	return q.cc.conns.listener
}

func (q *streamPlace) ClientAddr() netip.Addr {
	if q.cc == nil || !q.cc.trusted {
		return remoteOf(q.cc)
	}
	return realClient(q.cc.addr, q.cc.conns.trusted, q.Header("X-Forwarded-For"))
}

// lowerName is a field name as HTTP/2 writes it, in lower case; the
// common ones cost no allocation.
func lowerName(b []byte) string {
	var buf [32]byte
	if len(b) > len(buf) {
		return strings.ToLower(string(b))
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(b)]) {
	case "content-type":
		return "content-type"
	case "content-length":
		return "content-length"
	case "date":
		return "date"
	case "server":
		return "server"
	case "last-modified":
		return "last-modified"
	case "etag":
		return "etag"
	case "cache-control":
		return "cache-control"
	case "set-cookie":
		return "set-cookie"
	case "x-podpin-pod":
		return "x-podpin-pod"
	}
	return string(buf[:len(b)])
}
