package proxy

import (
	"bytes"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/config"
)

// sessionCookie is how a route hands a minted key to the client as a
// cookie (sticky.setCookie). Immutable.
type sessionCookie struct {
	name     string
	path     string
	maxAge   int   // seconds; 0: a session cookie
	secure   *bool // nil: when the client reached podpin over TLS
	httpOnly bool
	sameSite http.SameSite
}

// newSessionCookie is the cookie of s, nil without setCookie.
func newSessionCookie(s config.Sticky) *sessionCookie {
	c := s.SetCookie
	if c == nil {
		return nil
	}
	sc := &sessionCookie{name: s.Cookie, path: c.Path, maxAge: int(c.MaxAge.Seconds()), secure: c.Secure, httpOnly: c.HTTPOnly == nil || *c.HTTPOnly, sameSite: http.SameSiteLaxMode}
	if sc.path == "" {
		sc.path = "/"
	}
	switch c.SameSite {
	case "Strict":
		sc.sameSite = http.SameSiteStrictMode
	case "None":
		sc.sameSite = http.SameSiteNoneMode
	}
	return sc
}

// header is the Set-Cookie value carrying key; https says whether the
// client reached podpin over TLS.
func (c *sessionCookie) header(key []byte, https bool) string {
	hc := http.Cookie{Name: c.name, Value: string(key), Path: c.path, MaxAge: c.maxAge, HttpOnly: c.httpOnly, SameSite: c.sameSite, Secure: https}
	if c.secure != nil {
		hc.Secure = *c.secure
	}
	return hc.String()
}

// setFast adds the cookie carrying key to an HTTP/1.1 answer.
func (c *sessionCookie) setFast(ctx *fasthttp.RequestCtx, key []byte) {
	https := ctx.IsTLS() || fromTrustedProxy(ctx) && bytes.EqualFold(ctx.Request.Header.Peek(fasthttp.HeaderXForwardedProto), []byte("https"))
	ctx.Response.Header.Add(fasthttp.HeaderSetCookie, c.header(key, https))
}
