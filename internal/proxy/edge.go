package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// The edge policy: checks on a request as it arrived, before podpin acts on
// it, so that podpin and the pod behind it can never read one request two
// ways (RFC 9112, sections 6.3 and 11.2). fasthttp reads leniently in places
// (folded lines, bare LF, names with spaces, Content-Length beside
// Transfer-Encoding); those are refused here, from the raw header bytes.
// docs/http-policy.md lists every case.

// checkRequest applies the edge policy. It returns what the scan of the
// raw header block found, and the status and the reason to refuse the
// request with, or 0 and nil to let it through. A refusal always closes the
// connection: after a request whose framing is in doubt, the next bytes
// cannot be trusted to start a request.
func checkRequest(h *fasthttp.RequestHeader, lim *limitSettings) (headerScan, int, error) {
	scan, err := checkRawHeaders(h.RawHeaders())
	if err != nil {
		return scan, fasthttp.StatusBadRequest, err
	}
	if scan.fields > lim.maxHeaders {
		return scan, fasthttp.StatusRequestHeaderFieldsTooLarge, errTooMany
	}
	if !isToken(h.Method()) {
		return scan, fasthttp.StatusBadRequest, errBadMethod
	}
	if p := h.Protocol(); !bytes.Equal(p, []byte("HTTP/1.1")) && !bytes.Equal(p, []byte("HTTP/1.0")) {
		return scan, fasthttp.StatusBadRequest, errVersion
	}
	if err := checkTarget(h); err != nil {
		return scan, fasthttp.StatusBadRequest, err
	}
	host := h.Host()
	if len(host) == 0 && h.IsHTTP11() {
		return scan, fasthttp.StatusBadRequest, errNoHost
	}
	if !validHost(host) {
		return scan, fasthttp.StatusBadRequest, errBadHost
	}
	if scan.rewrite {
		if e := h.Peek(fasthttp.HeaderExpect); len(e) > 0 && !bytes.EqualFold(e, []byte("100-continue")) {
			return scan, fasthttp.StatusExpectationFailed, errExpect
		}
	}
	return scan, 0, nil
}

// headerScan is what one pass over a request's raw header block found.
type headerScan struct {
	fields int // header fields in the block
	// connection is set when the block holds a Connection field.
	connection bool
	// rewrite is set when the block holds a field that forwarding removes
	// or rewrites, other than a Connection field that names no other
	// field ("keep-alive", "close"): a hop-by-hop field, Expect, or an
	// X-Forwarded-* field. Without one, forwarding removes at most the
	// Connection field and adds the X-Forwarded-* fields, with no search
	// of the others.
	rewrite bool
}

// checkRawHeaders checks the header block as received (without the request
// line) and reports its number of fields and whether forwarding must
// rewrite any. Every line must end in CRLF, with no CR or LF elsewhere; no
// line may start with white space (obs-fold, RFC 9112, section 5.2); names
// are tokens with the colon right after them (section 5.1); values hold no
// control byte but HTAB (RFC 9110, section 5.5). Content-Length and
// Transfer-Encoding may not both appear (RFC 9112, section 6.3: such a
// request may be smuggling).
func checkRawHeaders(raw []byte) (headerScan, error) {
	var scan headerScan
	var cl, te bool
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 1 || raw[i-1] != '\r' {
			return scan, errLineEnd
		}
		line := raw[:i-1]
		raw = raw[i+1:]
		if len(line) == 0 {
			break // the blank line ending the block
		}
		if line[0] == ' ' || line[0] == '\t' {
			return scan, errFolded
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return scan, errFieldName
		}
		for _, c := range line[colon+1:] {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return scan, errFieldValue
			}
		}
		name := line[:colon]
		cl = cl || equalName(name, fasthttp.HeaderContentLength)
		if equalName(name, fasthttp.HeaderTransferEncoding) {
			// chunked is the one coding podpin decodes; a pod that knew
			// another (or "identity") would frame the body its own way.
			if te || !bytes.EqualFold(bytes.Trim(line[colon+1:], " \t"), []byte("chunked")) {
				return scan, errTE
			}
			te = true
		}
		conn, more := hopByHopField(name, line[colon+1:])
		scan.connection = scan.connection || conn
		scan.rewrite = scan.rewrite || more || isRewritten(name)
		scan.fields++
	}
	if cl && te {
		return scan, errBothFraming
	}
	return scan, nil
}

// checkTarget accepts origin-form ("/path?query"), asterisk-form for
// OPTIONS, and absolute-form whose authority equals the Host header (RFC
// 9112, section 3.2): what podpin routes on is then what the pod reads. The
// pod always receives origin-form.
func checkTarget(h *fasthttp.RequestHeader) error {
	t := h.RequestURI()
	if len(t) == 0 {
		return errBadTarget
	}
	for _, c := range t {
		if c <= 0x20 || c >= 0x7f {
			return errBadTarget
		}
	}
	switch {
	case t[0] == '/':
		return nil
	case len(t) == 1 && t[0] == '*' && h.IsOptions():
		return nil
	}
	rest, ok := bytes.CutPrefix(t, []byte("http://"))
	if !ok {
		if len(t) > 8 && bytes.EqualFold(t[:8], []byte("https://")) {
			rest = t[8:]
		} else if len(t) > 7 && bytes.EqualFold(t[:7], []byte("http://")) {
			rest = t[7:]
		} else {
			return errBadTarget
		}
	}
	end := bytes.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	if bytes.IndexByte(authority, '@') >= 0 || !bytes.EqualFold(authority, h.Host()) {
		return errAbsoluteHost
	}
	return nil
}

// validHost accepts an empty Host (HTTP/1.0) or uri-host[:port] made of the
// bytes a reg-name, an IPv4 address or a bracketed IPv6 literal may hold
// (RFC 3986, section 3.2.2), with no user part.
func validHost(h []byte) bool {
	for _, c := range h {
		if !hostByte[c] {
			return false
		}
	}
	return true
}

// hostByte holds the bytes a Host may contain.
var hostByte = alnumAnd("-._~!$&'()*+,;=:[]%")

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenByte[c] {
			return false
		}
	}
	return true
}

// tokenByte holds the bytes of an RFC 9110 token.
var tokenByte = alnumAnd("!#$%&'*+-.^_`|~")

// alnumAnd returns the set of ASCII letters and digits plus the bytes of
// extra.
func alnumAnd(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}

// stripH2C removes an Upgrade to h2c and its HTTP2-Settings: podpin speaks
// HTTP/1.1 to pods and must not let a client switch a pod connection to a
// protocol podpin does not read (h2c smuggling). The request goes on as
// plain HTTP/1.1, which is how a server that ignores the upgrade answers
// (RFC 9110, section 7.8).
func stripH2C(h *fasthttp.RequestHeader, scan headerScan) {
	if !scan.rewrite {
		return // no Upgrade field
	}
	up := h.Peek(fasthttp.HeaderUpgrade)
	if len(up) == 0 {
		return
	}
	h2c := false
	forEachToken(up, func(tok []byte) {
		if bytes.EqualFold(tok, []byte("h2c")) || bytes.HasPrefix(bytes.ToLower(tok), []byte("h2c/")) {
			h2c = true
		}
	})
	if h2c {
		h.Del(fasthttp.HeaderUpgrade)
		h.Del("HTTP2-Settings")
	}
}
