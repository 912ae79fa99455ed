package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// scriptedPod answers every request with the raw response its path names
// (responses["/small"] for GET /small), then keeps the connection open
// unless the answer ends it.
type scriptedPod struct {
	*tcpPod
	responses map[string]podAnswer
}

// podAnswer is what a scripted pod writes back: raw bytes, an optional pause
// before the rest (a slow body), and whether the connection then ends, by a
// close or by a reset (RST).
type podAnswer struct {
	raw   string
	pause time.Duration
	rest  string
	close bool
	reset bool
}

func newScriptedPod(t *testing.T, responses map[string]podAnswer) *scriptedPod {
	t.Helper()
	p := &scriptedPod{responses: responses}
	p.tcpPod = startTCPPod(t, p.serveConn)
	return p
}

func (p *scriptedPod) serveConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		a, ok := p.responses[req.URL.Path]
		if !ok {
			a = podAnswer{raw: "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"}
		}
		if _, err := io.WriteString(c, a.raw); err != nil {
			return
		}
		if a.pause > 0 {
			time.Sleep(a.pause)
			if _, err := io.WriteString(c, a.rest); err != nil {
				return
			}
		}
		if a.reset {
			c.(*net.TCPConn).SetLinger(0)
			return
		}
		if a.close {
			return
		}
	}
}

// TestResponsesReachTheClientWhole sends each kind of pod response through
// podpin, twice over one client connection, and checks what the client
// receives: status, body, framing fields and trailers. The second round
// shows that neither the client's connection nor the pod's was left in the
// middle of a message.
func TestResponsesReachTheClientWhole(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 4096) // 64 KiB: streams
	cases := []struct {
		name     string
		method   string
		answer   podAnswer
		status   int
		body     string
		length   int64             // the Content-Length the client sees; -1 for none
		header   map[string]string // fields the client must see
		trailer  map[string]string
		podConns int // connections the pod sees over both rounds
	}{
		{name: "small", answer: podAnswer{raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"},
			status: 200, body: "hello", length: 5, header: map[string]string{"X-A": "1"}, podConns: 1},
		{name: "empty", answer: podAnswer{raw: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
			status: 200, body: "", length: 0, podConns: 1},
		{name: "small-slow", answer: podAnswer{raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", pause: 50 * time.Millisecond, rest: "world"},
			status: 200, body: "helloworld", length: 10, podConns: 1},
		{name: "large", answer: podAnswer{raw: "HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n" + big},
			status: 200, body: big, length: int64(len(big)), podConns: 1},
		{name: "chunked", answer: podAnswer{raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"},
			status: 200, body: "abcdef", length: -1, podConns: 1},
		{name: "trailer", answer: podAnswer{raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\n\r\n"},
			status: 200, body: "abc", length: -1, trailer: map[string]string{"X-Checksum": "900150983cd24fb0"}, podConns: 1},
		{name: "close-delimited", answer: podAnswer{raw: "HTTP/1.1 200 OK\r\n\r\nuntil the end", close: true},
			status: 200, body: "until the end", length: -1, podConns: 2},
		{name: "head", method: http.MethodHead, answer: podAnswer{raw: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
			status: 200, body: "", length: 1234, podConns: 1},
		{name: "no-content", answer: podAnswer{raw: "HTTP/1.1 204 No Content\r\n\r\n"},
			status: 204, body: "", length: 0, podConns: 1},
		{name: "not-modified", answer: podAnswer{raw: "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"},
			status: 304, body: "", length: 0, header: map[string]string{"Etag": `"x"`}, podConns: 1},
		{name: "interim", answer: podAnswer{raw: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
			status: 200, body: "ok", length: 2, podConns: 1},
		{name: "pod-closes", answer: podAnswer{raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", close: true},
			status: 200, body: "ok", length: 2, podConns: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := newScriptedPod(t, map[string]podAnswer{"/r": tc.answer})
			h := startProxy(t, &config.Config{Routes: []config.Route{{Name: "default",
				Backends: []config.Backend{{Name: "pod-0", URL: pod.url()}}}}})
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			for round := range 2 {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(c, method+" /r HTTP/1.1\r\nHost: app\r\nX-Session: s1\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, &http.Request{Method: method})
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("round %d: body: %v", round, err)
				}
				if resp.StatusCode != tc.status || string(body) != tc.body {
					t.Fatalf("round %d: got %d %.40q, want %d %.40q", round, resp.StatusCode, body, tc.status, tc.body)
				}
				if resp.ContentLength != tc.length {
					t.Errorf("round %d: Content-Length %d, want %d", round, resp.ContentLength, tc.length)
				}
				for k, v := range tc.header {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("round %d: %s = %q, want %q", round, k, got, v)
					}
				}
				for k, v := range tc.trailer {
					if got := resp.Trailer.Get(k); got != v {
						t.Errorf("round %d: trailer %s = %q, want %q (trailers %v)", round, k, got, v, resp.Trailer)
					}
				}
				if resp.Close {
					t.Fatalf("round %d: podpin closed the client's connection", round)
				}
			}
			if got := pod.accepted(); got != tc.podConns {
				t.Errorf("pod saw %d connections, want %d", got, tc.podConns)
			}
		})
	}
}

// TestAPodThatDiesMidBody checks the ways a pod can leave a response
// unfinished. A short body, read whole before forwarding, cut short becomes
// a 502 (a 504 if the pod goes silent) and is not sent to the pod again; a
// pod's connection after a 101 is not reused; a long body, already
// streaming, ends the client's connection early so the client cannot take
// it for complete.
func TestAPodThatDiesMidBody(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	pod := newScriptedPod(t, map[string]podAnswer{
		"/short":  {raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhell", close: true},
		"/long":   {raw: "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + big, close: true},
		"/ok":     {raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		"/switch": {raw: "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: other\r\n\r\n"},
		"/stall":  {raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhell", pause: time.Second, rest: "o, world"},
	})
	cfg := &config.Config{Routes: []config.Route{{Name: "default",
		Backends: []config.Backend{{Name: "pod-0", URL: pod.url()}}}}}
	cfg.Upstream.ResponseTimeout = 300 * time.Millisecond
	h := startProxy(t, cfg)

	resp, body := h.get("/short", "X-Session: s1")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "pod pod-0 failed") {
		t.Errorf("short body cut: got %d %q, want 502 naming the pod", resp.StatusCode, body)
	}
	if got := pod.accepted(); got != 1 {
		t.Errorf("pod saw %d connections, want 1: an answered request is not sent again", got)
	}

	// A pod that switches protocols on an ordinary request leaves a
	// connection that no longer speaks HTTP/1.1: it is not pooled.
	before := pod.accepted()
	h.get("/switch", "X-Session: s1")
	if resp, body := h.get("/ok", "X-Session: s1"); resp.StatusCode != 200 || body != "ok" || pod.accepted() != before+2 {
		t.Errorf("after a 101: got %d %q over %d new pod connections, want 200 ok over 2", resp.StatusCode, body, pod.accepted()-before)
	}

	resp, body = h.get("/stall", "X-Session: s1")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("short body stalled past the response timeout: got %d %q, want 504", resp.StatusCode, body)
	}

	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /long HTTP/1.1\r\nHost: app\r\nX-Session: s1\r\n\r\n")
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r.Body)
	if err == nil || n != int64(len(big)) {
		t.Errorf("long body cut: read %d bytes, err %v; want the %d sent, then an error", n, err, len(big))
	}

	if resp, body := h.get("/ok", "X-Session: s1"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("after the cuts: got %d %q, want 200 ok", resp.StatusCode, body)
	}
}
