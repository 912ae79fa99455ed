package proxy

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/valyala/fasthttp"
)

// keySource reads a request's session key: the header, then the optional
// cookie, query parameter and client address, in that order.
type keySource struct {
	header   string
	cookie   string
	query    string
	clientIP bool
	maxBytes int
}

// read returns the request's session key appended to buf, nil when it has
// none, or a client error. The key is copied because forwarding rewrites the
// request headers it was read from.
func (ks *keySource) read(ctx *fasthttp.RequestCtx, buf []byte) ([]byte, error) {
	v, err := ks.find(ctx, buf)
	if v == nil || err != nil {
		return nil, err
	}
	return append(buf, v...), nil
}

func (ks *keySource) find(ctx *fasthttp.RequestCtx, buf []byte) ([]byte, error) {
	vals := ctx.Request.Header.PeekAll(ks.header)
	switch {
	case len(vals) > 1:
		return nil, errDupKey
	case len(vals) == 1 && len(vals[0]) > 0:
		return ks.check(vals[0])
	}
	if ks.cookie != "" {
		if v := ctx.Request.Header.Cookie(ks.cookie); len(v) > 0 {
			return ks.check(v)
		}
	}
	if ks.query != "" {
		if v := ctx.QueryArgs().Peek(ks.query); len(v) > 0 {
			return ks.check(v)
		}
	}
	if ks.clientIP {
		return appendClientAddr(buf, ctx), nil
	}
	return nil, nil
}

// check applies the key rules: at most maxBytes, visible ASCII only (RFC 9110
// VCHAR), so a key is always safe to echo in a header.
func (ks *keySource) check(v []byte) ([]byte, error) {
	if len(v) > ks.maxBytes {
		return nil, errKeyTooLong
	}
	for _, c := range v {
		if c < 0x21 || c > 0x7e {
			return nil, errKeyBytes
		}
	}
	return v, nil
}

// newKey mints a random session key: 128 bits from the system's
// cryptographic generator, as 32 hex digits.
func newKey(buf []byte) []byte {
	var b [16]byte
	rand.Read(b[:])
	return hex.AppendEncode(buf, b[:])
}
