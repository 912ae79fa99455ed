package place

import (
	"crypto/rand"
	"encoding/hex"
)

// KeySource reads a request's session key: the header, then the optional
// cookie, query parameter and client address, in that order.
type KeySource struct {
	Header   string // canonical field name
	Cookie   string // "": none
	Query    string // "": none
	ClientIP bool
	MaxBytes int
}

// Read returns the request's session key appended to buf, nil when it has
// none, or a client error (ErrDupKey, ErrKeyTooLong, ErrKeyBytes). The key
// is copied because forwarding rewrites the request headers it was read
// from.
func (ks *KeySource) Read(req Request, buf []byte) ([]byte, error) {
	v, err := ks.find(req, buf)
	if v == nil || err != nil {
		return nil, err
	}
	return append(buf, v...), nil
}

func (ks *KeySource) find(req Request, buf []byte) ([]byte, error) {
	vals := req.Header(ks.Header)
	switch {
	case len(vals) > 1:
		return nil, ErrDupKey
	case len(vals) == 1 && len(vals[0]) > 0:
		return ks.Check(vals[0])
	}
	if ks.Cookie != "" {
		if v := req.Cookie(ks.Cookie); len(v) > 0 {
			return ks.Check(v)
		}
	}
	if ks.Query != "" {
		if v := req.Query(ks.Query); len(v) > 0 {
			return ks.Check(v)
		}
	}
	if ks.ClientIP {
		a := req.ClientAddr()
		if !a.IsValid() {
			return append(buf, "unknown"...), nil
		}
		return a.AppendTo(buf), nil
	}
	return nil, nil
}

// Check applies the key rules: at most MaxBytes, visible ASCII only (RFC
// 9110 VCHAR), so a key is always safe to echo in a header.
func (ks *KeySource) Check(v []byte) ([]byte, error) {
	if len(v) > ks.MaxBytes {
		return nil, ErrKeyTooLong
	}
	for _, c := range v {
		if c < 0x21 || c > 0x7e {
			return nil, ErrKeyBytes
		}
	}
	return v, nil
}

// NewKey mints a random session key, appended to buf: 128 bits from the
// system's cryptographic generator, as 32 hex digits.
func NewKey(buf []byte) []byte {
	var b [16]byte
	rand.Read(b[:])
	return hex.AppendEncode(buf, b[:])
}
