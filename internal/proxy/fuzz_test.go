package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

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
