package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/place"
)

// forwardH2C forwards an HTTP/1.1 client's request to a pod that speaks
// h2c, through the route's HTTP/2 client: the request as prepareRequest
// makes it for any pod, the answer's body streamed back. With a key, a pod
// that refuses the connection is replaced by another candidate once, as in
// forward. An upgrade (WebSocket) has no HTTP/2 form here and is refused;
// the pod's trailers do not cross to HTTP/1.1.
func (p *Proxy) forwardH2C(ctx *fasthttp.RequestCtx, st *state, r *route, scan headerScan, d *place.Decision) {
	pd := d.Pod.(*pod)
	req := &ctx.Request
	if scan.connection && req.Header.ConnectionUpgrade() && len(req.Header.Peek(fasthttp.HeaderUpgrade)) > 0 {
		r.Metrics.Unrouted(fasthttp.StatusBadGateway)
		replyText(ctx, fasthttp.StatusBadGateway, "pod "+pd.name+" speaks h2c: upgrades are not forwarded to it")
		return
	}
	clientClose := req.Header.ConnectionClose()
	prepareRequest(ctx, scan)
	if r.filters != nil {
		r.filters.editRequestFast(req)
	}
	out := h2cRequest(ctx, pd.addr, st.limits)
	body, _ := out.Body.(*h1Body)

	start := time.Now()
	resp, err := p.roundTripH2C(r, pd, out, start, start)
	if next := r.moveOn(d, pd, err, func() bool { return body != nil && body.n > 0 }); next != nil {
		first := start
		pd, start = next, time.Now()
		out.URL.Host = pd.addr
		resp, err = p.roundTripH2C(r, pd, out, first, start)
	}
	if err != nil && body != nil && body.err != nil {
		r.Done(r.pods.Load(), pd, place.Outcome{ClientFault: true, Status: body.status(), Seconds: time.Since(start).Seconds()})
		refuse(ctx, body.status(), body.err)
		return
	}
	if err != nil {
		code := fasthttp.StatusBadGateway
		if isTimeout(err) {
			code = fasthttp.StatusGatewayTimeout
		}
		r.Done(r.pods.Load(), pd, place.Outcome{Failed: true, Status: code, Seconds: time.Since(start).Seconds()})
		replyText(ctx, code, "pod "+pd.name+" failed: "+upstreamReason(err))
		return
	}
	r.Done(r.pods.Load(), pd, place.Outcome{Status: resp.StatusCode, Seconds: time.Since(start).Seconds()})

	ctx.SetStatusCode(resp.StatusCode)
	h := &ctx.Response.Header
	for name, values := range resp.Header {
		if isFramingHeader([]byte(name)) {
			continue
		}
		for _, v := range values {
			h.Add(name, v)
		}
	}
	stripHopByHop(h)
	if r.filters != nil {
		r.filters.response.applyFast(h)
	}
	ctx.Response.SetBodyStream(resp.Body, int(resp.ContentLength))
	if clientClose {
		ctx.SetConnectionClose()
	}
	if r.LearnKeys {
		r.Learn(d, pd.name, h.Peek(r.Key.Header))
	}
	if st.podHeader != nil {
		h.SetCanonical(st.podHeader, pd.nameV)
	}
}

// roundTripH2C sends out to pd, counting it in flight until the answer's
// header is in: an attempt that starts at now, of a request that podpin
// had at start, bounded by the route's timeouts until the answer's body
// is closed.
func (p *Proxy) roundTripH2C(r *route, pd *pod, out *http.Request, start, now time.Time) (*http.Response, error) {
	pd.tally.Start()
	defer pd.tally.Stop()
	until := r.deadline(start, now)
	if until.IsZero() {
		return r.transports.h2c.RoundTrip(out)
	}
	ctx, cancel := context.WithDeadline(out.Context(), until)
	resp, err := r.transports.h2c.RoundTrip(out.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// h2cRequest is the net/http form of a prepared HTTP/1.1 request to the
// pod at addr, with the
// body as it streams from the client (bounded as wrapBody bounds it).
func h2cRequest(ctx *fasthttp.RequestCtx, addr string, lim limitSettings) *http.Request {
	req := &ctx.Request
	out := &http.Request{
		Method:     string(req.Header.Method()),
		URL:        &url.URL{Scheme: "http", Host: addr, Opaque: string(ctx.URI().RequestURI())},
		Host:       string(req.Header.Host()),
		Header:     make(http.Header),
		Body:       http.NoBody,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
	}
	for name, value := range req.Header.All() {
		if equalName(name, fasthttp.HeaderHost) || isFramingHeader(name) {
			continue
		}
		out.Header.Add(string(name), string(value))
	}
	switch n := req.Header.ContentLength(); {
	case req.IsBodyStream():
		out.ContentLength = max(int64(n), -1)
		out.Body = &h1Body{clientBody: clientBody{ctx: ctx, r: req.BodyStream(), timeout: lim.bodyTimeout, limit: lim.maxBodyBytes}}
	case len(req.Body()) > 0:
		out.ContentLength = int64(len(req.Body()))
		out.Body = io.NopCloser(bytes.NewReader(req.Body()))
	}
	return out
}

// h1Body is an HTTP/1.1 client's body on its way to an h2c pod. Close does
// nothing: a body the first pod never read may go to another.
type h1Body struct{ clientBody }

func (b *h1Body) Close() error { return nil }
