package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// rawPod is a pod made of a bare TCP listener: it records the exact bytes
// of every request it receives and answers each with 200 "ok". It frames
// requests strictly by their Content-Length or chunked encoding, as a pod
// would; the test then checks that podpin sent it exactly one reading.
type rawPod struct {
	*tcpPod

	// guards reqs
	mu   sync.Mutex
	reqs []string
}

func newRawPod(t *testing.T) *rawPod {
	t.Helper()
	p := &rawPod{}
	p.tcpPod = startTCPPod(t, p.serveConn)
	return p
}

// tcpPod accepts connections on a loopback port and serves each with its
// own goroutine until the test ends, when it closes them all.
type tcpPod struct {
	ln net.Listener

	// guards conns
	mu    sync.Mutex
	conns []net.Conn
}

func startTCPPod(t *testing.T, serve func(net.Conn)) *tcpPod {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpPod{ln: ln}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

// accepted is the number of connections the pod accepted.
func (p *tcpPod) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *tcpPod) url() string { return "http://" + p.ln.Addr().String() }

// requests returns what the pod received, one string per request.
func (p *rawPod) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reqs...)
}

func (p *rawPod) serveConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var raw bytes.Buffer
		te, cl := false, 0
		for first := true; ; first = false {
			line, err := br.ReadString('\n')
			raw.WriteString(line)
			if err != nil {
				p.record(raw.String())
				return
			}
			if line == "\r\n" {
				break
			}
			if first {
				continue
			}
			name, value, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
			value = strings.TrimSpace(value)
			switch strings.ToLower(name) {
			case "transfer-encoding":
				te = true
			case "content-length":
				cl, _ = strconv.Atoi(value)
			}
		}
		var err error
		switch {
		case te:
			err = readChunked(br, &raw)
		case cl > 0:
			_, err = io.CopyN(&raw, br, int64(cl))
		}
		p.record(raw.String())
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			return
		}
	}
}

// readChunked copies a chunked body with its trailer section from br to w,
// strictly: sizes in hexadecimal, CRLF after every line and chunk.
func readChunked(br *bufio.Reader, w *bytes.Buffer) error {
	for {
		line, err := br.ReadString('\n')
		w.WriteString(line)
		if err != nil {
			return err
		}
		size, _, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), ";")
		n, err := strconv.ParseUint(size, 16, 32)
		if err != nil {
			return err
		}
		if n == 0 {
			for {
				line, err := br.ReadString('\n')
				w.WriteString(line)
				if err != nil || line == "\r\n" {
					return err
				}
			}
		}
		if _, err := io.CopyN(w, br, int64(n)+2); err != nil {
			return err
		}
	}
}

func (p *rawPod) record(s string) {
	if s == "" {
		return
	}
	p.mu.Lock()
	p.reqs = append(p.reqs, s)
	p.mu.Unlock()
}

// rawExchange sends raw to addr and returns every response podpin wrote
// (status and body) and whether it closed the connection afterwards.
func rawExchange(t *testing.T, addr, raw string, want int) (codes []int, bodies []string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return rawExchangeOn(t, c, raw, want)
}

// rawExchangeOn is rawExchange on a connection of the caller's, which it
// closes.
func rawExchangeOn(t *testing.T, c net.Conn, raw string, want int) (codes []int, bodies []string, closed bool) {
	t.Helper()
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			timedOut := errors.As(err, &ne) && ne.Timeout()
			return codes, bodies, !timedOut
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		bodies = append(bodies, string(b))
		if resp.Close {
			// podpin said it closes: make sure it did.
			_, err := br.ReadByte()
			return codes, bodies, err != nil
		}
		if len(codes) >= want && resp.StatusCode >= 200 {
			// Anything more, even a close, would show within this time.
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		}
	}
}

// edgeProxy is a proxy with one route over a raw pod.
func edgeProxy(t *testing.T, limits config.Limits) (*harness, *rawPod) {
	t.Helper()
	pod := newRawPod(t)
	cfg := &config.Config{
		Limits: limits,
		Routes: []config.Route{{Name: "default", Backends: []config.Backend{{Name: "pod-0", URL: pod.url()}}}},
	}
	return startProxy(t, cfg), pod
}

// edgeCase is one raw request and what must come of it. A refused request
// has want >= 400 and the pod receives nothing; an accepted one lists the
// exact lines the pod must receive (podRecv) and lines it must not.
type edgeCase struct {
	name    string
	raw     string
	want    []int    // statuses, one per response
	reason  string   // substring of the first body, for refusals
	closed  bool     // podpin must close the connection
	podRecv []string // substrings, in order, of what the pod receives in all
	podNot  []string // substrings the pod must never receive
	pod     int      // requests the pod must receive; -1: do not check
}

const hdr = "Host: example.com\r\n"

var edgeCases = []edgeCase{
	// Framing: RFC 9112, section 6.3.
	{name: "Content-Length beside Transfer-Encoding is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + hdr + "\r\n",
		want: []int{400}, reason: "both Content-Length and Transfer-Encoding", closed: true},
	{name: "Transfer-Encoding before Content-Length is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "two Content-Length fields are refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
		want: []int{400}, reason: "Content-Length sent more than once", closed: true},
	{name: "two equal Content-Length fields are refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
		want: []int{400}, closed: true},
	{name: "a Content-Length list is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Content-Length: 4, 4\r\n\r\nabcd",
		want: []int{400}, closed: true},
	{name: "a signed Content-Length is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Content-Length: +4\r\n\r\nabcd",
		want: []int{400}, closed: true},
	{name: "a negative Content-Length is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Content-Length: -1\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a hexadecimal Content-Length is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Content-Length: 0x4\r\n\r\nabcd",
		want: []int{400}, closed: true},
	{name: "an overflowing Content-Length is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Content-Length: 99999999999999999999999\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a Transfer-Encoding other than chunked is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "Transfer-Encoding identity is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: identity\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "chunked sent twice is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "an obfuscated Transfer-Encoding is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "Transfer-Encoding in HTTP/1.0 is refused",
		raw:  "POST / HTTP/1.0\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a chunked body is re-framed for the pod",
		raw:     "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: Chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
		want:    []int{200},
		podRecv: []string{"Transfer-Encoding: chunked\r\n", "abcd\r\n0\r\n\r\n"}, pod: 1},
	{name: "chunk extensions are dropped",
		raw:     "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n4;ext=\"v\"\r\nabcd\r\n0\r\n\r\n",
		want:    []int{200},
		podRecv: []string{"abcd\r\n0\r\n\r\n"}, podNot: []string{"ext"}, pod: 1},
	{name: "a chunk size that is not hexadecimal is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n",
		want: []int{400}, reason: "request body framing is invalid", closed: true, podNot: []string{"abcd"}, pod: -1},
	{name: "a negative chunk size is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n-4\r\nabcd\r\n0\r\n\r\n",
		want: []int{400}, closed: true, podNot: []string{"abcd"}, pod: -1},
	{name: "an overflowing chunk size is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n10000000000000004\r\nabcd\r\n0\r\n\r\n",
		want: []int{400}, closed: true, podNot: []string{"abcd"}, pod: -1},
	{name: "a chunk longer than its size is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
		want: []int{400}, closed: true, podNot: []string{"cd"}, pod: -1},
	{name: "trailer fields pass as trailers, after the last chunk",
		raw:     "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nX-Trailer: t\r\n\r\n",
		want:    []int{200},
		podRecv: []string{"abcd\r\n0\r\nX-Trailer: t\r\n\r\n"}, pod: 1},
	{name: "a trailer that smuggles framing is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nContent-Length: 5\r\n\r\n",
		want: []int{400}, closed: true, pod: -1},

	// Header syntax: RFC 9112, sections 2.2 and 5; RFC 9110, section 5.5.
	{name: "obsolete line folding is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "X-A: one\r\n two\r\n\r\n",
		want: []int{400}, reason: "obs-fold", closed: true},
	{name: "folding a Transfer-Encoding is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a bare LF ending a header line is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "X-A: one\nX-B: two\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a bare CR inside a value is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "X-A: one\rX-B: two\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a space before the colon is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a space inside a field name is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "X A: one\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a non-token byte in a field name is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "X@A: one\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a field name with a high byte is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "X-\xc3\xa9: one\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a NUL in a value is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "X-A: o\x00ne\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a control byte in a value is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "X-A: o\x01ne\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "DEL in a value is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "X-A: o\x7fne\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a tab and high bytes in a value pass",
		raw:     "GET / HTTP/1.1\r\n" + hdr + "X-A: a\tcaf\xc3\xa9\r\n\r\n",
		want:    []int{200},
		podRecv: []string{"X-A: a\tcaf\xc3\xa9\r\n"}, pod: 1},
	{name: "a header block starting with white space is refused",
		raw:  "GET / HTTP/1.1\r\n Host: example.com\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a line without a colon is refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "no colon here\r\n\r\n",
		want: []int{400}, closed: true},

	// Request line and target: RFC 9112, sections 3 and 3.2.
	{name: "a target with a space is refused",
		raw:  "GET /a b HTTP/1.1\r\n" + hdr + "\r\n",
		want: []int{400}, closed: true},
	{name: "a target with a control byte is refused",
		raw:  "GET /a\x01b HTTP/1.1\r\n" + hdr + "\r\n",
		want: []int{400}, closed: true},
	{name: "an unknown protocol version is refused",
		raw:  "GET / HTTP/2.0\r\n" + hdr + "\r\n",
		want: []int{400}, closed: true, pod: -1},
	{name: "an absolute-form target equal to Host reaches the pod in origin-form",
		raw:     "GET http://example.com/a?b=1 HTTP/1.1\r\n" + hdr + "\r\n",
		want:    []int{200},
		podRecv: []string{"GET /a?b=1 HTTP/1.1\r\n", "Host: example.com\r\n"}, pod: 1},
	{name: "an absolute-form target naming another host is refused",
		raw:  "GET http://internal.example/admin HTTP/1.1\r\n" + hdr + "\r\n",
		want: []int{400}, reason: "absolute-form target disagrees with Host", closed: true},
	{name: "an absolute-form target with user info is refused",
		raw:  "GET http://user@example.com/ HTTP/1.1\r\n" + hdr + "\r\n",
		want: []int{400}, closed: true},
	{name: "HTTP/1.1 without Host is refused",
		raw:  "GET / HTTP/1.1\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "two Host fields are refused",
		raw:  "GET / HTTP/1.1\r\n" + hdr + "Host: other.example\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a Host with a path is refused",
		raw:  "GET / HTTP/1.1\r\nHost: example.com/x\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "a Host with a space is refused",
		raw:  "GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n",
		want: []int{400}, closed: true},
	{name: "HTTP/1.0 without Host passes",
		raw:     "GET / HTTP/1.0\r\n\r\n",
		want:    []int{200},
		podRecv: []string{"GET / HTTP/1.1\r\nHost: 127.0.0.1:"}, podNot: []string{"X-Forwarded-Host"}, closed: true, pod: 1},

	// Expect: RFC 9110, section 10.1.1.
	{name: "Expect 100-continue is answered by podpin",
		raw:     "POST / HTTP/1.1\r\n" + hdr + "Expect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd",
		want:    []int{100, 200},
		podRecv: []string{"Content-Length: 4\r\n", "\r\n\r\nabcd"}, podNot: []string{"Expect"}, pod: 1},
	{name: "another expectation is refused",
		raw:  "POST / HTTP/1.1\r\n" + hdr + "Expect: 200-ok\r\nContent-Length: 0\r\n\r\n",
		want: []int{417}, closed: true},

	// Pipelining and connection handling.
	{name: "pipelined requests are answered in order",
		raw: "POST /1 HTTP/1.1\r\n" + hdr + "Content-Length: 3\r\n\r\nabc" +
			"GET /2 HTTP/1.1\r\n" + hdr + "\r\n" +
			"POST /3 HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
		want:    []int{200, 200, 200},
		podRecv: []string{"POST /1 HTTP/1.1\r\n", "abc", "GET /2 HTTP/1.1\r\n", "POST /3 HTTP/1.1\r\n", "1\r\nx\r\n0\r\n\r\n"}, pod: 3},
	{name: "a body cannot hide a second request",
		raw: "POST / HTTP/1.1\r\n" + hdr + "Content-Length: 30\r\n\r\n" +
			"GET /hidden HTTP/1.1\r\nX: y\r\n\r\n",
		want:    []int{200},
		podRecv: []string{"Content-Length: 30\r\n", "\r\n\r\nGET /hidden HTTP/1.1\r\nX: y\r\n\r\n"}, pod: 1},
	{name: "Connection cannot strip the forwarding headers",
		raw:     "GET / HTTP/1.1\r\n" + hdr + "Connection: close, X-Forwarded-For, X-Forwarded-Proto, Host, Content-Length\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
		want:    []int{200},
		podRecv: []string{"Host: example.com\r\n", "X-Forwarded-For: 127.0.0.1\r\n", "X-Forwarded-Proto: http\r\n", "X-Forwarded-Host: example.com\r\n"},
		podNot:  []string{"203.0.113.9", "Connection"}, closed: true, pod: 1},
	{name: "Connection strips the fields it names",
		raw:    "GET / HTTP/1.1\r\n" + hdr + "Connection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\n\r\n",
		want:   []int{200},
		podNot: []string{"X-Secret", "Keep-Alive"}, pod: 1},
	{name: "an h2c upgrade goes on as HTTP/1.1",
		raw:     "GET / HTTP/1.1\r\n" + hdr + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
		want:    []int{200},
		podRecv: []string{"GET / HTTP/1.1\r\n"}, podNot: []string{"h2c", "HTTP2-Settings", "Upgrade"}, pod: 1},
}

func TestEdgeRequests(t *testing.T) {
	for _, c := range edgeCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h, pod := edgeProxy(t, config.Limits{})
			c.check(t, pod, func() net.Conn { return h.dial(t) })
		})
	}
}

// check sends the case's bytes on a connection from dial, and checks the
// answers and what the pod received.
func (c edgeCase) check(t *testing.T, pod *rawPod, dial func() net.Conn) {
	t.Helper()
	before := len(pod.requests())
	codes, bodies, closed := rawExchangeOn(t, dial(), c.raw, len(c.want))
	settle(pod, before, c.pod)
	if !equalInts(codes, c.want) {
		t.Fatalf("got statuses %v (%q), want %v", codes, bodies, c.want)
	}
	if c.want[0] >= 400 {
		if len(bodies) == 0 || !strings.HasPrefix(bodies[0], "podpin: ") || strings.Count(bodies[0], "\n") != 1 {
			t.Errorf("got body %q, want one line starting with \"podpin: \"", bodies)
		} else if !strings.Contains(bodies[0], c.reason) {
			t.Errorf("got body %q, want it to contain %q", bodies[0], c.reason)
		}
	}
	if closed != c.closed {
		t.Errorf("connection closed: got %v, want %v", closed, c.closed)
	}
	got := strings.Join(pod.requests()[before:], "")
	n := len(pod.requests()) - before
	wantPod := c.pod
	if c.want[0] >= 400 && wantPod == 0 {
		wantPod = 0
	}
	if wantPod >= 0 && n != wantPod {
		t.Errorf("pod received %d requests, want %d:\n%s", n, wantPod, got)
	}
	rest := got
	for _, s := range c.podRecv {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Errorf("pod did not receive %q (in order) in:\n%q", s, got)
			break
		}
		rest = rest[i+len(s):]
	}
	for _, s := range c.podNot {
		if strings.Contains(got, s) {
			t.Errorf("pod received %q in:\n%q", s, got)
		}
	}
}

// sizeLimits are the limits sizeLimitCases run under.
var sizeLimits = config.Limits{MaxHeaderBytes: 4096, MaxHeaders: 20, MaxBodyBytes: 100}

// sizeLimitCases are raw requests at and over sizeLimits.
var sizeLimitCases = func() []edgeCase {
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("X-H" + strconv.Itoa(i) + ": v\r\n")
		}
		return b.String()
	}
	return []edgeCase{
		{name: "an oversize request line gets 431",
			raw:  "GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\n" + hdr + "\r\n",
			want: []int{431}, reason: "too large", closed: true},
		{name: "oversize headers get 431",
			raw:  "GET / HTTP/1.1\r\n" + hdr + "X-Big: " + strings.Repeat("b", 5000) + "\r\n\r\n",
			want: []int{431}, reason: "too large", closed: true},
		{name: "too many header fields get 431",
			raw:  "GET / HTTP/1.1\r\n" + hdr + many(20) + "\r\n",
			want: []int{431}, reason: "too many header fields", closed: true},
		{name: "as many header fields as allowed pass",
			raw:  "GET / HTTP/1.1\r\n" + hdr + many(19) + "\r\n",
			want: []int{200}, pod: 1},
		{name: "a declared body over maxBodyBytes gets 413",
			raw:  "POST / HTTP/1.1\r\n" + hdr + "Content-Length: 101\r\n\r\n" + strings.Repeat("x", 101),
			want: []int{413}, reason: "request body is too large", closed: true},
		{name: "a declared body over maxBodyBytes gets 413 before 100-continue",
			raw:  "POST / HTTP/1.1\r\n" + hdr + "Expect: 100-continue\r\nContent-Length: 101\r\n\r\n",
			want: []int{413}, closed: true},
		{name: "a chunked body over maxBodyBytes gets 413",
			raw:  "POST / HTTP/1.1\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n65\r\n" + strings.Repeat("x", 101) + "\r\n0\r\n\r\n",
			want: []int{413}, closed: true, pod: -1, podNot: []string{"\r\n0\r\n\r\n"}},
		{name: "a body of maxBodyBytes passes",
			raw:  "POST / HTTP/1.1\r\n" + hdr + "Content-Length: 100\r\n\r\n" + strings.Repeat("x", 100),
			want: []int{200}, pod: 1},
	}
}()

func TestEdgeSizeLimits(t *testing.T) {
	lim, cases := sizeLimits, sizeLimitCases
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h, pod := edgeProxy(t, lim)
			before := 0
			codes, bodies, closed := rawExchange(t, h.addr, c.raw, len(c.want))
			settle(pod, before, c.pod)
			if !equalInts(codes, c.want) {
				t.Fatalf("got statuses %v (%q), want %v", codes, bodies, c.want)
			}
			if c.reason != "" && !strings.Contains(bodies[0], c.reason) {
				t.Errorf("got body %q, want it to contain %q", bodies[0], c.reason)
			}
			if closed != c.closed {
				t.Errorf("connection closed: got %v, want %v", closed, c.closed)
			}
			got := strings.Join(pod.requests()[before:], "")
			if n := len(pod.requests()) - before; c.pod >= 0 && n != c.pod {
				t.Errorf("pod received %d requests, want %d", n, c.pod)
			}
			for _, s := range c.podNot {
				if strings.Contains(got, s) {
					t.Errorf("pod received %q", s)
				}
			}
		})
	}
}

// settle waits until the pod has recorded n requests more than before, or
// briefly when n is unknown (-1) or 0: what a pod records is written by its
// own goroutine.
func settle(p *rawPod, before, n int) {
	deadline := time.Now().Add(time.Second)
	if n <= 0 {
		deadline = time.Now().Add(100 * time.Millisecond)
	}
	for time.Now().Before(deadline) && (n <= 0 || len(p.requests()) < before+n) {
		time.Sleep(5 * time.Millisecond)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
