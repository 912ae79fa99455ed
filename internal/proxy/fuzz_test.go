package proxy

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/place"
)

// Fuzz targets of the request path's parsers. Seed corpora live in
// testdata/fuzz/<target>; testdata/fuzz/README.md says what each seed is.

// FuzzKeySource reads a session key from a request whose key header
// values, cookie and query come from the fuzzer. A key read is never longer
// than maxBytes and holds visible ASCII only; check agrees with read.
func FuzzKeySource(f *testing.F) {
	f.Add("abc", "", "", false)
	f.Fuzz(func(t *testing.T, header, cookie, query string, clientIP bool) {
		ks := place.KeySource{Header: "X-Session", Cookie: "sid", Query: "session", ClientIP: clientIP, MaxBytes: 64}
		var ctx fasthttp.RequestCtx
		var req fasthttp.Request
		req.SetRequestURI("/?session=" + query)
		for _, v := range strings.Split(header, "\n") {
			if v != "" {
				req.Header.Add("X-Session", v)
			}
		}
		if cookie != "" {
			req.Header.Set("Cookie", "sid="+cookie)
		}
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, nil)
		var buf [256]byte
		key, err := ks.Read((*fastRequest)(&ctx), buf[:0])
		if err != nil {
			if key != nil {
				t.Fatalf("read returned key %q with error %v", key, err)
			}
			return
		}
		if key == nil {
			return
		}
		if len(key) > ks.MaxBytes {
			t.Fatalf("key of %d bytes, over maxBytes %d", len(key), ks.MaxBytes)
		}
		for _, c := range key {
			if c < 0x21 || c > 0x7e {
				t.Fatalf("key %q holds byte %#x", key, c)
			}
		}
		if v, err := ks.Check(key); err != nil || !bytes.Equal(v, key) {
			t.Fatalf("check(%q) = %q, %v after read accepted it", key, v, err)
		}
	})
}

// FuzzPathHasPrefix checks the element-wise prefix match against its
// definition: prefix equals path, or is followed in path by '/', or ends
// in '/'.
func FuzzPathHasPrefix(f *testing.F) {
	f.Add("/api/v1", "/api")
	f.Fuzz(func(t *testing.T, path, prefix string) {
		if prefix == "" {
			return // routes never hold an empty prefix: empty means any
		}
		got := place.PathHasPrefix([]byte(path), []byte(prefix))
		want := path == prefix ||
			strings.HasPrefix(path, prefix) && (strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/')
		if got != want {
			t.Fatalf("place.PathHasPrefix(%q, %q) = %v, want %v", path, prefix, got, want)
		}
	})
}

// FuzzHostEqual checks that a host matches itself whatever its case and
// port, and never matches a name it does not spell (or, for a "*."
// wildcard, whose suffix it does not spell).
func FuzzHostEqual(f *testing.F) {
	f.Add("Example.COM:8080", "example.com")
	f.Fuzz(func(t *testing.T, host, want string) {
		got := place.HostEqual([]byte(host), []byte(want))
		if got {
			name := host
			if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
				name = host[:i]
			}
			match := bytes.EqualFold([]byte(name), []byte(want))
			if suffix, ok := strings.CutPrefix(want, "*"); ok {
				// A wildcard matches one or more labels before suffix.
				i := strings.IndexByte(name, '.')
				match = i > 0 && bytes.EqualFold([]byte(name[i:]), []byte(suffix))
			}
			if !match {
				t.Fatalf("place.HostEqual(%q, %q) matched a different name", host, want)
			}
		}
		if want != "" && !strings.ContainsAny(want, ":]") && !strings.HasPrefix(want, "*") {
			upper := strings.Map(func(r rune) rune {
				if r >= 'a' && r <= 'z' {
					return r - 'a' + 'A'
				}
				return r
			}, want)
			if !place.HostEqual([]byte(upper+":80"), []byte(want)) {
				t.Fatalf("%q with a port and another case does not match %q", upper+":80", want)
			}
		}
	})
}

// FuzzForEachToken checks the comma-list splitter: every token is
// non-empty, holds no comma and no surrounding white space, and the tokens
// are the list's elements in order.
func FuzzForEachToken(f *testing.F) {
	f.Add("close, X-Forwarded-For")
	f.Fuzz(func(t *testing.T, v string) {
		var got []string
		forEachToken([]byte(v), func(tok []byte) {
			if len(tok) == 0 || bytes.IndexByte(tok, ',') >= 0 {
				t.Fatalf("token %q of %q", tok, v)
			}
			if tr := bytes.TrimSpace(tok); len(tr) != len(tok) {
				t.Fatalf("token %q of %q keeps white space", tok, v)
			}
			got = append(got, string(tok))
		})
		var want []string
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				want = append(want, e)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") || len(got) != len(want) {
			t.Fatalf("tokens of %q: got %q, want %q", v, got, want)
		}
	})
}

// FuzzCheckRawHeaders checks the edge policy's header scan: it never
// panics, and a block it accepts has only CRLF line ends, no folded line,
// token names, and at most one of Content-Length and Transfer-Encoding.
func FuzzCheckRawHeaders(f *testing.F) {
	f.Add([]byte("Host: a\r\nX: y\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		scan, err := checkRawHeaders(raw)
		if err != nil {
			return
		}
		block := raw
		if bytes.HasPrefix(raw, []byte("\r\n")) {
			block = nil
		} else if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
			block = raw[:i+2]
		}
		lines := 0
		var cl, te bool
		for line := range bytes.SplitSeq(bytes.TrimSuffix(block, []byte("\r\n")), []byte("\r\n")) {
			if len(block) == 0 {
				break
			}
			if bytes.ContainsAny(line, "\r\n") {
				t.Fatalf("accepted a bare CR or LF in %q", raw)
			}
			name, _, ok := bytes.Cut(line, []byte(":"))
			if !ok || !isToken(name) {
				t.Fatalf("accepted line %q", line)
			}
			cl = cl || bytes.EqualFold(name, []byte("Content-Length"))
			te = te || bytes.EqualFold(name, []byte("Transfer-Encoding"))
			lines++
		}
		if lines != scan.fields {
			t.Fatalf("counted %d fields in %q, want %d", scan.fields, raw, lines)
		}
		if cl && te {
			t.Fatalf("accepted both framings in %q", raw)
		}
	})
}

// FuzzRealClient finds the client behind trusted proxies (10.0.0.0/8 and
// the peer 127.0.0.1) in X-Forwarded-For fields split on "\n". The answer
// is always the peer or an address written in a field, never one made up.
func FuzzRealClient(f *testing.F) {
	f.Add("192.0.2.1, 198.51.100.1, 10.1.2.3")
	f.Fuzz(func(t *testing.T, fields string) {
		peer := netip.MustParseAddr("127.0.0.1")
		trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
		var xff [][]byte
		for v := range strings.SplitSeq(fields, "\n") {
			xff = append(xff, []byte(v))
		}
		got := realClient(peer, trusted, xff)
		if got == peer {
			return
		}
		var entries []netip.Addr
		for _, v := range xff {
			for e := range strings.SplitSeq(string(v), ",") {
				if a, err := netip.ParseAddr(strings.TrimSpace(e)); err == nil {
					entries = append(entries, a.Unmap())
				}
			}
		}
		if !slices.Contains(entries, got) {
			t.Fatalf("realClient(%q) = %v: neither the peer nor an entry", fields, got)
		}
	})
}

// FuzzHostHasSuffix checks Gateway API's wildcard hostnames: a host
// matches a suffix only when, without its port and in any case, it ends
// with the suffix and is longer; and a name with labels in front of the
// suffix always matches it, whatever its case and port.
func FuzzHostHasSuffix(f *testing.F) {
	f.Add("a.b.Example.com:8443", ".example.com")
	f.Fuzz(func(t *testing.T, host, suffix string) {
		if !strings.HasPrefix(suffix, ".") || len(suffix) < 2 {
			return // config.Validate refuses such suffixes
		}
		lower := strings.ToLower(suffix)
		got := place.HostHasSuffix([]byte(host), []byte(lower))
		name := host
		if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
			name = host[:i]
		}
		want := len(name) > len(lower) && bytes.EqualFold([]byte(name[len(name)-len(lower):]), []byte(lower))
		if got != want {
			t.Fatalf("place.HostHasSuffix(%q, %q) = %v, want %v", host, lower, got, want)
		}
		// Host names are ASCII: the names in front are checked for ASCII
		// suffixes only (a Unicode letter's other case may differ in
		// length, as 'ɱ' and 'Ɱ' do).
		upper := []byte(suffix)
		for i, c := range upper {
			if 'a' <= c && c <= 'z' {
				upper[i] = c - 'a' + 'A'
			}
		}
		ascii := !strings.ContainsFunc(suffix, func(r rune) bool { return r >= 0x80 })
		if ascii && !strings.ContainsAny(suffix, ":]") && !place.HostHasSuffix([]byte("X"+string(upper)+":80"), []byte(lower)) {
			t.Fatalf("%q does not match under %q", "X"+string(upper)+":80", lower)
		}
	})
}

// FuzzRedirectURL checks a redirect's Location whatever the request's
// Host, listener port and path: it parses as an absolute URL of the
// redirect's scheme (else the request's), with the redirect's host (else
// the Host's name), the redirect's port (else with no scheme the
// listener's, or the Host's when that is unknown), never a scheme's
// well-known port, and the path and query.
func FuzzRedirectURL(f *testing.F) {
	f.Add("gw.example:8080", "8080", "/a/b", "x=1", "", "", 0, "")
	f.Fuzz(func(t *testing.T, host, listener, path, query, scheme, toHost string, port int, prefix string) {
		bad := "?#% \t\r\n\x00\\"
		valid := host != "" && validHost([]byte(host)) && !strings.Contains(host, "%") &&
			strings.HasPrefix(path, "/") && !strings.ContainsAny(path, bad) &&
			!strings.ContainsAny(query, bad[1:]) &&
			(scheme == "" || scheme == "http" || scheme == "https") &&
			!strings.ContainsFunc(toHost, func(r rune) bool { return !isDNSByte(r) }) &&
			port >= 0 && port <= 65535 &&
			(prefix == "" || strings.HasPrefix(prefix, "/") && !strings.ContainsAny(prefix, bad))
		// The edge lets only visible ASCII through in the target and the
		// Host; a configuration's values are checked likewise.
		for _, v := range []string{host, path, query, toHost, prefix} {
			if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
				valid = false
			}
		}
		if n, err := strconv.Atoi(listener); listener != "" && (err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != listener) {
			valid = false
		}
		if !valid {
			return // what config.Validate and the edge let through
		}
		name, hostPort, err := net.SplitHostPort(host)
		if err != nil {
			name, hostPort = host, ""
		}
		// A well-formed Host: a DNS name, or a bracketed IPv6 literal, and
		// a decimal port.
		if strings.ContainsFunc(hostPort, func(r rune) bool { return r < '0' || r > '9' }) {
			return
		}
		if literal, ok := strings.CutPrefix(name, "["); ok {
			if a, err := netip.ParseAddr(strings.TrimSuffix(literal, "]")); err != nil || !a.Is6() || !strings.HasSuffix(literal, "]") {
				return
			}
		} else if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isDNSByte(r) }) {
			return
		}
		rd := config.Redirect{Scheme: scheme, Host: toHost, Port: port, PathPrefix: prefix}
		f := &filters{redirect: &rd, matched: "/"}
		loc := f.redirectURL("http", host, listener, path, query)
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("%q does not parse: %v", loc, err)
		}
		wantScheme := cmp.Or(scheme, "http")
		wantHost := cmp.Or(toHost, name)
		wantPort := ""
		switch {
		case port != 0:
			wantPort = fmt.Sprint(port)
		case scheme == "":
			wantPort = cmp.Or(listener, hostPort)
		}
		if wantScheme == "http" && wantPort == "80" || wantScheme == "https" && wantPort == "443" {
			wantPort = ""
		}
		if u.Scheme != wantScheme || !strings.EqualFold(u.Hostname(), strings.Trim(wantHost, "[]")) || u.Port() != wantPort {
			t.Fatalf("%q: scheme %q, host %q, port %q; want %q, %q, %q", loc, u.Scheme, u.Hostname(), u.Port(), wantScheme, wantHost, wantPort)
		}
		if u.RawQuery != query || !strings.HasPrefix(u.EscapedPath(), "/") {
			t.Fatalf("%q: path %q, query %q; want a path and the query %q", loc, u.EscapedPath(), u.RawQuery, query)
		}
	})
}

// isDNSByte reports the runes of a DNS name: ASCII letters, digits, '-'
// and '.'.
func isDNSByte(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.'
}
