package proxy

import (
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/place"
)

// fastRequest is placement's view of a fasthttp request (place.Request). It
// is the request context itself under another type, so handing it to
// placement costs no allocation.
type fastRequest fasthttp.RequestCtx

var _ place.Request = (*fastRequest)(nil)

func (q *fastRequest) ctx() *fasthttp.RequestCtx { return (*fasthttp.RequestCtx)(q) }

func (q *fastRequest) Host() []byte                { return q.ctx().Request.Header.Host() }
func (q *fastRequest) Method() []byte              { return q.ctx().Method() }
func (q *fastRequest) Path() []byte                { return q.ctx().Path() }
func (q *fastRequest) Header(name string) [][]byte { return q.ctx().Request.Header.PeekAll(name) }
func (q *fastRequest) Cookie(name string) []byte   { return q.ctx().Request.Header.Cookie(name) }
func (q *fastRequest) Query(name string) []byte    { return q.ctx().QueryArgs().Peek(name) }
func (q *fastRequest) ClientAddr() netip.Addr      { return clientAddr(q.ctx()) }

func (q *fastRequest) Listener() string {
	if cc, ok := connOf(q.ctx().Conn()); ok {
		return cc.conns.listener
	}
	return ""
}

// placeStatus is the HTTP status that answers a placement refusal.
func placeStatus(err error) int {
	switch place.Class(err) {
	case place.ClassNotFound:
		return fasthttp.StatusNotFound
	case place.ClassBadRequest:
		return fasthttp.StatusBadRequest
	case place.ClassTooMany:
		return fasthttp.StatusTooManyRequests
	}
	return fasthttp.StatusServiceUnavailable
}
