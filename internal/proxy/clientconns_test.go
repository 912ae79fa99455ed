package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawClient is one keep-alive client connection to the proxy.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
}

// do sends raw and reads one response; it returns the status and body.
func (c *rawClient) do(raw string) (int, string) {
	c.t.Helper()
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatalf("sending: %v", err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.t.Fatalf("reading the answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// closedAfter waits for the proxy to close the connection and returns how
// long that took from now; it fails when bytes come instead.
func (c *rawClient) closedAfter() time.Duration {
	c.t.Helper()
	start := time.Now()
	c.conn.SetReadDeadline(start.Add(5 * time.Second))
	n, err := c.r.Read(make([]byte, 1))
	if n > 0 || err == nil {
		c.t.Fatalf("got %d bytes, want the connection closed", n)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatal("the connection was still open after 5s")
	}
	return time.Since(start)
}

const getKeyed = "GET / HTTP/1.1\r\nHost: app\r\nX-Session: k\r\n\r\n"

func TestIdleClientConnectionIsClosedAtIdleTimeout(t *testing.T) {
	c := oneRoute(newTestPod(t, "web-0", nil))
	c.Limits.IdleTimeout = 300 * time.Millisecond
	h := startProxy(t, c)

	cl := dialRaw(t, h.addr)
	// Requests closer together than the idle timeout keep it open.
	for range 6 {
		if code, _ := cl.do(getKeyed); code != 200 {
			t.Fatalf("got %d, want 200", code)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if d := cl.closedAfter(); d < 100*time.Millisecond || d > time.Second {
		t.Errorf("idle connection closed %v after the last wait began, want about 300ms less the 150ms slept", d)
	}
}

func TestLateHeadersGet408(t *testing.T) {
	c := oneRoute(newTestPod(t, "web-0", nil))
	c.Limits.HeaderTimeout = 300 * time.Millisecond
	h := startProxy(t, c)

	for _, name := range []string{"first request", "keep-alive request"} {
		t.Run(name, func(t *testing.T) {
			cl := dialRaw(t, h.addr)
			if name == "keep-alive request" {
				if code, _ := cl.do(getKeyed); code != 200 {
					t.Fatalf("got %d, want 200", code)
				}
			}
			start := time.Now()
			io.WriteString(cl.conn, "GET / HTTP/1.1\r\nHost: app\r\n")
			cl.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(cl.r, nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 408 || !strings.Contains(string(body), errHeaderTime.Error()) {
				t.Errorf("got %d %q, want 408 %q", resp.StatusCode, body, errHeaderTime)
			}
			if d := time.Since(start); d < 250*time.Millisecond || d > 1500*time.Millisecond {
				t.Errorf("answered after %v, want about 300ms", d)
			}
		})
	}
}

// A request body's read deadline ends with its request: the connection
// then waits for the next request as long as the idle timeout allows,
// whether the body went to a pod or the request was refused.
func TestBodyDeadlineEndsWithItsRequest(t *testing.T) {
	c := oneRoute(newTestPod(t, "web-0", nil))
	c.Routes[0].Match.PathPrefix = "/app"
	c.Limits.BodyTimeout = 200 * time.Millisecond
	c.Limits.IdleTimeout = 2 * time.Second
	h := startProxy(t, c)

	for _, tc := range []struct {
		path string
		want int
	}{{"/app", 200}, {"/elsewhere", 404}} {
		cl := dialRaw(t, h.addr)
		if code, _ := cl.do("POST " + tc.path + " HTTP/1.1\r\nHost: app\r\nX-Session: k\r\nContent-Length: 5\r\n\r\nhello"); code != tc.want {
			t.Fatalf("POST %s: got %d, want %d", tc.path, code, tc.want)
		}
		time.Sleep(600 * time.Millisecond)
		if code, _ := cl.do("GET /app HTTP/1.1\r\nHost: app\r\nX-Session: k\r\n\r\n"); code != 200 {
			t.Fatalf("GET after POST %s and a pause longer than the body timeout: got %d, want 200", tc.path, code)
		}
	}
}

// A request that takes longer than the header timeout at the pod is not
// cut: the header timeout ends when the handler is reached.
func TestSlowPodOutlastsTheHeaderTimeout(t *testing.T) {
	pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(700 * time.Millisecond)
		io.WriteString(w, "late")
	})
	c := oneRoute(pod)
	c.Limits.HeaderTimeout = 200 * time.Millisecond
	h := startProxy(t, c)

	cl := dialRaw(t, h.addr)
	for range 2 {
		if code, body := cl.do(getKeyed); code != 200 || body != "late" {
			t.Fatalf("got %d %q, want 200 \"late\"", code, body)
		}
	}
}

func TestConnectionsOverTheAddressCapAreRefused(t *testing.T) {
	c := oneRoute(newTestPod(t, "web-0", nil))
	c.Limits.MaxConnsPerIP = 2
	h := startProxy(t, c)

	a, b := dialRaw(t, h.addr), dialRaw(t, h.addr)
	for _, cl := range []*rawClient{a, b} {
		if code, _ := cl.do(getKeyed); code != 200 {
			t.Fatalf("got %d, want 200", code)
		}
	}
	over := dialRaw(t, h.addr)
	over.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(over.r, nil)
	if err != nil {
		t.Fatalf("reading the refusal: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || string(body) != "podpin: "+errTooManyConns.Error()+"\n" || resp.Header.Get("X-Podpin-Error") != "1" {
		t.Errorf("got %d %q, want 429 %q", resp.StatusCode, body, errTooManyConns)
	}
	// A closed connection frees its place.
	a.conn.Close()
	time.Sleep(100 * time.Millisecond)
	if code, _ := dialRaw(t, h.addr).do(getKeyed); code != 200 {
		t.Errorf("after one closed: got %d, want 200", code)
	}
}
