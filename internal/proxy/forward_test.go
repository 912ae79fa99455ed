package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestHopByHopHeadersStopAtTheProxy(t *testing.T) {
	pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Pod-Private")
		w.Header().Set("X-Pod-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Pod-Public", "yes")
		fmt.Fprint(w, "web-0")
	})
	h := startProxy(t, oneRoute(pod))
	resp, _ := h.get("/", "X-Session: a",
		"Connection: keep-alive, X-Client-Private",
		"X-Client-Private: secret",
		"Keep-Alive: timeout=5",
		"Proxy-Authorization: Basic Zm9vOmJhcg==",
		"TE: trailers",
		"X-Forwarded-For: 203.0.113.9",
		"X-Client-Public: yes")
	got := pod.last().Header
	for _, name := range []string{"X-Client-Private", "Keep-Alive", "Proxy-Authorization", "Te", "Connection"} {
		if v := got.Get(name); v != "" {
			t.Errorf("pod received %s: %q, want it removed", name, v)
		}
	}
	want := map[string]string{
		"X-Client-Public":   "yes",
		"X-Forwarded-For":   "203.0.113.9, 127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  h.addr,
		"X-Session":         "a",
	}
	for name, v := range want {
		if g := got.Get(name); g != v {
			t.Errorf("pod received %s: %q, want %q", name, g, v)
		}
	}
	for _, name := range []string{"X-Pod-Private", "Keep-Alive"} {
		if v := resp.Header.Get(name); v != "" {
			t.Errorf("client received %s: %q, want it removed", name, v)
		}
	}
	if v := resp.Header.Get("X-Pod-Public"); v != "yes" {
		t.Errorf("client received X-Pod-Public %q, want yes", v)
	}
}

func TestPlainRequestGainsOnlyTheForwardedHeaders(t *testing.T) {
	// No field to rewrite but a persistence-only Connection field, on
	// either side: the path that appends X-Forwarded-* without searching.
	pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "keep-alive")
		fmt.Fprint(w, "web-0")
	})
	h := startProxy(t, oneRoute(pod))
	resp, body := h.get("/", "X-Session: a", "Connection: keep-alive", "X-Client-Public: yes")
	if body != "web-0" {
		t.Fatalf("got body %q, want web-0", body)
	}
	got := pod.last().Header
	want := map[string][]string{
		"Connection":        nil,
		"X-Client-Public":   {"yes"},
		"X-Forwarded-For":   {"127.0.0.1"},
		"X-Forwarded-Proto": {"http"},
		"X-Forwarded-Host":  {h.addr},
		"X-Session":         {"a"},
	}
	for name, v := range want {
		if g := got.Values(name); strings.Join(g, "|") != strings.Join(v, "|") {
			t.Errorf("pod received %s: %q, want %q", name, g, v)
		}
	}
	if v := resp.Header.Values("Connection"); len(v) > 0 {
		t.Errorf("client received Connection %q, want it removed", v)
	}
}

func TestConnectionCloseAddedByClientCannotStripForwardedHeaders(t *testing.T) {
	pod := newTestPod(t, "web-0", nil)
	h := startProxy(t, oneRoute(pod))
	h.get("/", "X-Session: a", "Connection: close, X-Forwarded-For, X-Forwarded-Host")
	got := pod.last().Header
	if v := got.Get("X-Forwarded-For"); v != "127.0.0.1" {
		t.Errorf("pod received X-Forwarded-For %q, want 127.0.0.1", v)
	}
	if v := got.Get("X-Forwarded-Host"); v != h.addr {
		t.Errorf("pod received X-Forwarded-Host %q, want %q", v, h.addr)
	}
}

// heapPeak samples the heap while f runs and returns the largest value seen.
func heapPeak(f func()) uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	<-done
	return peak.Load()
}

// pattern is an endless reader of a repeating byte sequence.
type pattern struct{ n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.n % 251)
		p.n++
	}
	return len(b), nil
}

func TestLargeBodiesStreamWithBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB")
	}
	// Under the race detector every byte costs far more; the memory bound is
	// the same, so a smaller body still proves streaming.
	size := int64(1 << 30)
	if raceEnabled {
		size = 64 << 20
	}
	pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			hash := sha256.New()
			n, err := io.Copy(hash, r.Body)
			fmt.Fprintf(w, "%d %x %v", n, hash.Sum(nil), err)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.CopyN(w, &pattern{}, size)
	})
	h := startProxy(t, oneRoute(pod))
	runtime.GC()

	t.Run("a 1 GiB upload", func(t *testing.T) {
		want := sha256.New()
		io.CopyN(want, &pattern{}, size)
		var body string
		peak := heapPeak(func() {
			req, _ := http.NewRequest("POST", "http://"+h.addr+"/upload", io.LimitReader(&pattern{}, size))
			req.ContentLength = -1 // chunked, as a streaming client sends it
			req.Header.Set("X-Session", "uploader")
			_, body = h.do(req)
		})
		if wantBody := fmt.Sprintf("%d %x <nil>", size, want.Sum(nil)); body != wantBody {
			t.Errorf("pod got %q, want %q", body, wantBody)
		}
		if peak > 64<<20 {
			t.Errorf("heap peaked at %d MiB while streaming, want under 64 MiB", peak>>20)
		}
	})
	t.Run("a 1 GiB download", func(t *testing.T) {
		var n int64
		peak := heapPeak(func() {
			req, _ := http.NewRequest("GET", "http://"+h.addr+"/download", nil)
			req.Header.Set("X-Session", "downloader")
			resp, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			n, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
		if n != size {
			t.Errorf("client got %d bytes, want %d", n, size)
		}
		if peak > 64<<20 {
			t.Errorf("heap peaked at %d MiB while streaming, want under 64 MiB", peak>>20)
		}
	})
}

// echoWebSocket accepts a WebSocket handshake and answers each message
// with reply(message), until the connection ends.
func echoWebSocket(w http.ResponseWriter, r *http.Request, reply func(msg []byte) []byte) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		c.Write(r.Context(), typ, reply(msg))
	}
}

func TestWebSocketRoundTripReachesThePinnedPod(t *testing.T) {
	echo := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") == "" {
				fmt.Fprint(w, name)
				return
			}
			echoWebSocket(w, r, func(msg []byte) []byte { return []byte(name + ": " + string(msg)) })
		}
	}
	pods := []*testPod{newTestPod(t, "web-0", echo("web-0")), newTestPod(t, "web-1", echo("web-1"))}
	h := startProxy(t, oneRoute(pods...))
	pinned := h.podOf("chatter")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+h.addr+"/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Session": {"chatter"}},
	})
	if err != nil {
		t.Fatalf("dial through proxy: %v", err)
	}
	defer c.CloseNow()
	if got := resp.Header.Get("X-Podpin-Pod"); got != pinned {
		t.Errorf("101 came from %q, want the pinned pod %q", got, pinned)
	}
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := pinned + ": " + msg; string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestUpgradeRefusedByThePodIsAnOrdinaryResponse(t *testing.T) {
	pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no websockets here", http.StatusForbidden)
	})
	h := startProxy(t, oneRoute(pod))
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nX-Session: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || strings.TrimSpace(string(body)) != "no websockets here" {
		t.Errorf("got %d %q, want the pod's 403", resp.StatusCode, body)
	}
}

func TestResponseTimeoutIsAnInactivityTimeout(t *testing.T) {
	pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/silent":
			time.Sleep(1500 * time.Millisecond)
		case "/trickle":
			// Two seconds in all, never silent for more than 100ms.
			for range 20 {
				w.Write([]byte("."))
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	c := oneRoute(pod)
	c.Upstream.ResponseTimeout = 500 * time.Millisecond
	h := startProxy(t, c)

	start := time.Now()
	resp, body := h.get("/silent", "X-Session: a")
	if resp.StatusCode != 504 || !strings.Contains(body, "no response in time") {
		t.Errorf("silent pod: got %d %q, want 504", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 1200*time.Millisecond {
		t.Errorf("silent pod answered after %v, want about the 500ms timeout", d)
	}
	resp, body = h.get("/trickle", "X-Session: a")
	if resp.StatusCode != 200 || body != strings.Repeat(".", 20) {
		t.Errorf("trickling pod: got %d %q, want 200 and all 20 bytes over 2s", resp.StatusCode, body)
	}
}

func TestShutdownClosesUpgradedConnectionsAtTheDrainDeadline(t *testing.T) {
	pod := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			if _, _, err := c.Read(r.Context()); err != nil {
				return
			}
		}
	})
	c := oneRoute(pod)
	c.SetDefaults()
	p := New(Options{})
	if err := p.Apply(c); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, ln, 500*time.Millisecond) }()

	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	ws, _, err := websocket.Dial(dctx, "ws://"+ln.Addr().String()+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"X-Session": {"a"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	start := time.Now()
	cancel()
	if _, _, err := ws.Read(dctx); err == nil {
		t.Fatal("the tunnel stayed open after shutdown")
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Errorf("the tunnel closed %v after shutdown began, want at the 500ms drain deadline", d)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after the drain deadline")
	}
}
