package proxy

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/config"
)

// limitSettings bound what one client connection may cost, from config's
// limits with every zero replaced by its default.
type limitSettings struct {
	headerTimeout  time.Duration
	idleTimeout    time.Duration
	bodyTimeout    time.Duration
	maxHeaderBytes int
	maxHeaders     int
	maxConnections int
	maxConnsPerIP  int   // 0: no cap
	maxStreams     int   // HTTP/2 streams open at once on a connection
	maxBodyBytes   int64 // 0: no bound
}

func newLimitSettings(l config.Limits) limitSettings {
	or := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	ori := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	return limitSettings{
		headerTimeout:  or(l.HeaderTimeout, config.DefaultHeaderTimeout),
		idleTimeout:    or(l.IdleTimeout, config.DefaultClientIdle),
		bodyTimeout:    or(l.BodyTimeout, config.DefaultBodyTimeout),
		maxHeaderBytes: ori(l.MaxHeaderBytes, config.DefaultMaxHeaderBytes),
		maxHeaders:     ori(l.MaxHeaders, config.DefaultMaxHeaders),
		maxConnections: ori(l.MaxConnections, config.DefaultMaxConnections),
		maxConnsPerIP:  max(l.MaxConnsPerIP, 0),
		maxStreams:     ori(l.MaxConcurrentStreams, config.DefaultMaxStreams),
		maxBodyBytes:   max(l.MaxBodyBytes, 0),
	}
}

// onHeaders runs once a request's headers are in: a body gets its own
// deadline (bodyTimeout), replacing the header deadline, so a long upload is
// bounded by inactivity rather than by headerTimeout. A request without a
// body reads nothing more until the next request, whose wait sets the idle
// deadline, so it keeps the header deadline and costs no timer change.
func (p *Proxy) onHeaders(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if n := h.ContentLength(); n == 0 || n == -2 {
		return fasthttp.RequestConfig{}
	}
	return fasthttp.RequestConfig{ReadTimeout: p.state.Load().limits.bodyTimeout}
}

// onExpect answers a request carrying Expect: 100-continue before its body
// is read: 100 unless the declared body is over maxBodyBytes (413). podpin
// sends the 100 itself and the pod never sees the expectation.
func (p *Proxy) onExpect(ctx *fasthttp.RequestCtx) int {
	lim := p.state.Load().limits
	if n := ctx.Request.Header.ContentLength(); lim.maxBodyBytes > 0 && int64(n) > lim.maxBodyBytes {
		replyText(ctx, fasthttp.StatusRequestEntityTooLarge, errBodyTooLarge.Error())
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// onParseError answers a request fasthttp could not read, with podpin's
// one-line form. fasthttp closes the connection afterwards. The reason
// never echoes the client's bytes.
func (p *Proxy) onParseError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		replyText(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, errHeaderSize.Error())
	case errors.As(err, &ne) && ne.Timeout():
		replyText(ctx, fasthttp.StatusRequestTimeout, errHeaderTime.Error())
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		replyText(ctx, fasthttp.StatusRequestEntityTooLarge, errBodyTooLarge.Error())
	case errors.Is(err, fasthttp.ErrDuplicateContentLength):
		replyText(ctx, fasthttp.StatusBadRequest, "Content-Length sent more than once")
	case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding):
		replyText(ctx, fasthttp.StatusBadRequest, "Transfer-Encoding other than chunked")
	default:
		replyText(ctx, fasthttp.StatusBadRequest, errMalformed.Error())
	}
	ctx.SetConnectionClose()
	p.log.Debug("request refused while reading", "err", err)
}

// clientBody is a request body on its way to a pod, read from r: an
// HTTP/1.1 connection's (whose deadlines ctx sets: a *fasthttp.RequestCtx)
// or an HTTP/2 stream (its own deadlines). Each read gets a fresh deadline
// of timeout (an inactivity timeout), and at most limit bytes pass when
// limit > 0. It remembers why it stopped, so the edge can answer 408, 413
// or 400 instead of blaming the pod, and what the reader said (cause).
type clientBody struct {
	ctx     readDeadliner
	r       io.Reader
	timeout time.Duration
	limit   int64 // 0: none
	n       int64
	err     error // the client's fault, once seen
	cause   error // what r failed with
}

// readDeadliner sets the deadline of the reads of a request's body.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.timeout > 0 {
		b.ctx.SetReadDeadline(time.Now().Add(b.timeout))
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.limit > 0 && b.n > b.limit {
		b.err = errBodyTooLarge
		return 0, b.err
	}
	if err != nil && err != io.EOF {
		b.cause, b.err = err, bodyFault(err)
		return n, b.err
	}
	return n, err
}

// status is the answer for a body that stopped for the client's fault.
func (b *clientBody) status() int { return bodyStatus(b.err) }

// bodyFault is what a client's request body failed with, as podpin
// answers it: it stalled (a read timed out), or it was badly framed.
func bodyFault(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errBodyTimeout
	}
	return errBodyFraming
}

// bodyStatus is the answer for a request body that stopped for the
// client's fault (err from bodyFault, or errBodyTooLarge).
func bodyStatus(err error) int {
	switch err {
	case errBodyTooLarge:
		return fasthttp.StatusRequestEntityTooLarge
	case errBodyTimeout:
		return fasthttp.StatusRequestTimeout
	}
	return fasthttp.StatusBadRequest
}

// wrapBody puts a streamed request body behind a clientBody. It returns nil
// when the request has no streamed body.
func wrapBody(ctx *fasthttp.RequestCtx, lim limitSettings) *clientBody {
	req := &ctx.Request
	if !req.IsBodyStream() {
		return nil
	}
	b := &clientBody{ctx: ctx, r: req.BodyStream(), timeout: lim.bodyTimeout, limit: lim.maxBodyBytes}
	req.SetBodyStream(b, req.Header.ContentLength())
	return b
}
