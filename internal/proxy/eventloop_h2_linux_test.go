package proxy

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
)

// loopH2Clients counts the HTTP/2 connections p's loops serve themselves,
// asking each loop on its own thread.
func loopH2Clients(t *testing.T, p *Proxy) int {
	t.Helper()
	p.loopMu.Lock()
	ls := p.loops
	p.loopMu.Unlock()
	if ls == nil {
		return 0
	}
	n := 0
	for _, l := range ls.loops {
		got := make(chan int, 1)
		l.post(func() {
			k := 0
			for _, c := range l.clients {
				if c.h2 != nil {
					k++
				}
			}
			got <- k
		})
		select {
		case k := <-got:
			n += k
		case <-time.After(10 * time.Second):
			t.Fatal("a loop did not answer")
		}
	}
	return n
}

// HTTP/2 connections, over TLS and in cleartext, stay on the loops when
// every route forwards to HTTP/1.1 or h2c pods the loops reach
// themselves: one connection carries many sessions, each on its pod.
// With a route the loops do not serve (one that edits headers), they go
// to the HTTP/2 server's goroutines, and are served all the same.
func TestHTTP2ConnectionsStayOnTheLoops(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "h2c", true: "tls"}[tlsOn], func(t *testing.T) {
			l := config.Listener{EventLoop: ptr(true)}
			start := func(cfg *config.Config) *harness {
				if tlsOn {
					return startTLSProxy(t, cfg, l, Options{})
				}
				l.Address = "127.0.0.1:0"
				cfg.Listeners = []config.Listener{l}
				return startProxy(t, cfg)
			}
			h := start(oneRoute(threePods(t)...))
			h.useHTTP2()
			pinned := map[string]string{}
			for round := range 3 {
				for i := range 30 {
					key := fmt.Sprint("loop-h2-", i)
					resp, body := h.get("/", "X-Session: "+key)
					if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
						t.Fatalf("key %s: %s %d %q", key, resp.Proto, resp.StatusCode, body)
					}
					if round > 0 && pinned[key] != body {
						t.Fatalf("key %s moved from %s to %s", key, pinned[key], body)
					}
					pinned[key] = body
				}
			}
			if n := loopH2Clients(t, h.p); n != 1 {
				t.Errorf("the loops serve %d HTTP/2 connections, want the client's one", n)
			}

			g := start(h2cRoute(newH2CPod(t, "g-0")))
			g.useHTTP2()
			if resp, body := g.get("/", "X-Session: k"); resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.Header.Get("X-Pod-Proto") != "HTTP/2.0" {
				t.Fatalf("h2c pods: %s %d %q", resp.Proto, resp.StatusCode, body)
			}
			if n := loopH2Clients(t, g.p); n != 1 {
				t.Errorf("the loops serve %d HTTP/2 connections of a proxy with h2c pods, want the client's one", n)
			}

			// A route that edits headers is the handler's: the
			// connections go to the HTTP/2 server's goroutines.
			cfg := h2cRoute(newH2CPod(t, "g-1"))
			cfg.Routes[0].RequestHeaders = config.HeaderEdits{Set: map[string]string{"X-Edited": "1"}}
			e := start(cfg)
			e.useHTTP2()
			if resp, body := e.get("/", "X-Session: k"); resp.StatusCode != 200 || resp.ProtoMajor != 2 {
				t.Fatalf("h2c pods behind a filter: %s %d %q", resp.Proto, resp.StatusCode, body)
			}
			if n := loopH2Clients(t, e.p); n != 0 {
				t.Errorf("the loops serve %d HTTP/2 connections of a proxy whose route edits headers, want none", n)
			}
		})
	}
}

// answerPod answers by path as the cases of
// TestHTTP2OnTheLoopsAnswersAsTheHandler want.
func answerPod(big []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h := w.Header()
		switch r.URL.Path {
		case "/small":
			h.Set("X-Custom", "a")
			h.Add("Set-Cookie", "a=1")
			h.Add("Set-Cookie", "b=2")
			h.Set("X-Seen", r.Header.Get("X-Forwarded-Proto")+" "+r.Header.Get("X-Session")+" "+r.Host)
			io.WriteString(w, "hello")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/big":
			h.Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		case "/chunked":
			h.Set("Trailer", "X-Sum")
			for i := 0; i < len(big); i += 100 << 10 {
				w.Write(big[i:min(i+100<<10, len(big))])
				w.(http.Flusher).Flush()
			}
			h.Set("X-Sum", fmt.Sprintf("%x", sha256.Sum256(big)))
		case "/eof":
			// An answer whose end is the pod closing its connection.
			conn, buf, _ := w.(http.Hijacker).Hijack()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
			buf.Write(big[:300<<10])
			buf.Flush()
			conn.Close()
		case "/short":
			// Ten bytes of the hundred it announces.
			conn, buf, _ := w.(http.Hijacker).Hijack()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			buf.Flush()
			conn.Close()
		case "/cut":
			// 100 KiB of the 1 MiB it announces: the client must see
			// the stream fail, not take the part for the whole.
			conn, buf, _ := w.(http.Hijacker).Hijack()
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(big))
			buf.Write(big[:100<<10])
			buf.Flush()
			conn.Close()
		case "/status":
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "short and stout")
		}
	}
}

// An HTTP/2 stream served by the loop gets the answer the HTTP/2
// server's handler gives it (a proxy without loops, on the same pod):
// status, fields, body, trailers, over a client whose flow-control
// windows are small enough that the loop must hold answers back.
func TestHTTP2OnTheLoopsAnswersAsTheHandler(t *testing.T) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(rand.IntN(256))
	}
	pod := newTestPod(t, "web-0", answerPod(big))
	ca := certstest.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), "podpin", "podpin.test")
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "h2c", true: "tls"}[tlsOn], func(t *testing.T) {
			both := loopAndHandler(t, func() *config.Config { return oneRoute(pod) }, ca, certFile, keyFile, tlsOn)
			if n := loopH2Clients(t, both[1].p); n != 0 {
				t.Fatalf("the proxy without loops has %d HTTP/2 connections on loops", n)
			}
			for _, c := range []struct{ method, path string }{
				{"GET", "/small"}, {"HEAD", "/small"}, {"GET", "/empty"}, {"GET", "/big"},
				{"HEAD", "/big"}, {"GET", "/chunked"}, {"GET", "/eof"}, {"GET", "/short"}, {"GET", "/cut"},
				{"GET", "/status"}, {"DELETE", "/small"},
			} {
				var got [2]string
				for i, h := range both {
					got[i] = exchangeText(t, h, c.method, c.path, nil)
				}
				if got[0] != got[1] {
					t.Errorf("%s %s:\non the loop:\n%s\nby the handler:\n%s", c.method, c.path, got[0], got[1])
				}
			}
			if n := loopH2Clients(t, both[0].p); n != 1 {
				t.Errorf("the loops serve %d HTTP/2 connections, want the client's one", n)
			}
		})
	}
}

// loopAndHandler starts two proxies on cfg(), one whose loops serve
// HTTP/2 and one without loops, whose clients speak HTTP/2 over TLS
// (tlsOn, with the certificate in certFile and keyFile, from ca) or in
// cleartext, with flow-control windows small enough (16 KiB a stream,
// 64 KiB the connection) that answers are held back.
func loopAndHandler(t *testing.T, cfg func() *config.Config, ca *certstest.CA, certFile, keyFile string, tlsOn bool) [2]*harness {
	var both [2]*harness
	for i, loop := range []bool{true, false} {
		c := cfg()
		l := config.Listener{Address: "127.0.0.1:0", EventLoop: ptr(loop)}
		if tlsOn {
			l.TLS = &config.ListenerTLS{Certificates: []config.Certificate{{CertFile: certFile, KeyFile: keyFile}}}
		}
		c.Listeners = []config.Listener{l}
		h := startProxy(t, c)
		var protos http.Protocols
		if tlsOn {
			h.tls = ca.Client("podpin.test")
			protos.SetHTTP2(true)
		} else {
			protos.SetUnencryptedHTTP2(true)
		}
		h.client = &http.Client{Transport: &http.Transport{
			TLSClientConfig: h.tls,
			Protocols:       &protos,
			HTTP2: &http.HTTP2Config{
				MaxReceiveBufferPerStream:     16 << 10,
				MaxReceiveBufferPerConnection: 64 << 10,
			},
		}}
		both[i] = h
	}
	return both
}

// exchangeText is what the client gets for method and path through h, in
// text to compare: status, the fields that do not change from one answer
// to the next, the body's length and hash, trailers, or the error.
func exchangeText(t *testing.T, h *harness, method, path string, reqBody io.Reader) string {
	t.Helper()
	scheme := "http://"
	if h.tls != nil {
		scheme = "https://"
	}
	req, _ := http.NewRequest(method, scheme+h.addr+path, reqBody)
	req.Header.Set("X-Session", "same-key")
	resp, err := h.client.Do(req)
	if err != nil {
		return "error: " + strings.ReplaceAll(err.Error(), h.addr, "ADDR")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d\n", resp.Proto, resp.StatusCode)
	for _, name := range []string{"Content-Type", "Content-Length", "X-Custom", "Set-Cookie", "X-Seen", "X-Podpin-Pod", "X-Podpin-Error", "Server", "X-Got"} {
		fmt.Fprintf(&b, "%s: %q\n", name, resp.Header.Values(name))
	}
	if err != nil {
		// How much of the body came before the stream's reset depends on
		// where the reset met the client's reads: the reset is what
		// counts.
		fmt.Fprintf(&b, "body: cut short by a stream error")
	} else {
		fmt.Fprintf(&b, "body: %d bytes %x", len(body), sha256.Sum256(body))
	}
	if bytes.HasPrefix(body, []byte("podpin: ")) {
		fmt.Fprintf(&b, " %q", body)
	}
	fmt.Fprintf(&b, "\ntrailers: %v\n", resp.Trailer)
	// Each proxy names its own address (the pod's Host).
	return strings.ReplaceAll(b.String(), h.addr, "ADDR")
}

// answerH2CPod is an h2c pod that answers by path as the cases of
// TestCallsOnTheLoopsAnswerAsTheHandler want. Its flow-control windows
// are small, so that a request's body waits for the pod to read it.
func answerH2CPod(t *testing.T, big []byte) *testPod {
	p := &testPod{name: "g-0"}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/small":
			io.Copy(io.Discard, r.Body)
			h.Set("X-Custom", "a")
			h.Add("Set-Cookie", "a=1")
			h.Add("Set-Cookie", "b=2")
			h.Set("X-Seen", r.Header.Get("X-Forwarded-Proto")+" "+r.Header.Get("X-Session")+" "+r.Host)
			io.WriteString(w, "hello")
		case "/echo":
			// The body read slowly: it waits in the proxy meanwhile.
			sum := sha256.New()
			buf := make([]byte, 32<<10)
			n := 0
			for {
				m, err := r.Body.Read(buf)
				sum.Write(buf[:m])
				n += m
				if err != nil {
					break
				}
				time.Sleep(time.Millisecond)
			}
			h.Set("X-Got", fmt.Sprintf("%d %x", n, sum.Sum(nil)))
		case "/early":
			// An answer before the body, which is not read.
			io.WriteString(w, "early")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/big":
			h.Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		case "/trailers":
			h.Set("Trailer", "X-Sum")
			for i := 0; i < len(big); i += 100 << 10 {
				w.Write(big[i:min(i+100<<10, len(big))])
				w.(http.Flusher).Flush()
			}
			h.Set("X-Sum", fmt.Sprintf("%x", sha256.Sum256(big)))
		case "/cut":
			// 100 KiB, then the stream is reset: the client must see it
			// fail, not take the part for the whole.
			w.Write(big[:100<<10])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case "/status":
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "short and stout")
		}
	}))
	p.srv.Config.Protocols = &protos
	p.srv.Config.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 16 << 10, MaxReceiveBufferPerConnection: 64 << 10}
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

// A stream to an h2c pod forwarded by the loop gets the answer the
// HTTP/2 server's handler gives it (a proxy without loops, on the same
// pod): status, fields, body, trailers, a request body larger than the
// pod's window, an answer larger than the client's, a pod that answers
// before reading, one that resets mid-answer, a body over the limit.
func TestCallsOnTheLoopsAnswerAsTheHandler(t *testing.T) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(rand.IntN(256))
	}
	pod := answerH2CPod(t, big)
	ca := certstest.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), "podpin", "podpin.test")
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "h2c", true: "tls"}[tlsOn], func(t *testing.T) {
			both := loopAndHandler(t, func() *config.Config {
				cfg := h2cRoute(pod)
				cfg.Limits.MaxBodyBytes = 2 << 20
				return cfg
			}, ca, certFile, keyFile, tlsOn)
			tooBig := make([]byte, 3<<20)
			for _, c := range []struct {
				method, path string
				body         func() io.Reader
			}{
				{"GET", "/small", nil}, {"HEAD", "/small", nil}, {"GET", "/empty", nil}, {"GET", "/big", nil},
				{"GET", "/trailers", nil}, {"GET", "/status", nil}, {"DELETE", "/small", nil},
				{"POST", "/echo", func() io.Reader { return bytes.NewReader(big) }},
				{"POST", "/early", func() io.Reader { return bytes.NewReader(big) }},
				{"GET", "/cut", nil},
				// Over the limit: announced, and found out as it comes.
				{"POST", "/small", func() io.Reader { return bytes.NewReader(tooBig) }},
				{"POST", "/echo", func() io.Reader { return io.MultiReader(bytes.NewReader(tooBig)) }},
			} {
				var got [2]string
				for i, h := range both {
					var body io.Reader
					if c.body != nil {
						body = c.body()
					}
					got[i] = exchangeText(t, h, c.method, c.path, body)
				}
				if got[0] != got[1] {
					t.Errorf("%s %s:\non the loop:\n%s\nby the handler:\n%s", c.method, c.path, got[0], got[1])
				}
			}
			if n := loopH2Clients(t, both[0].p); n != 1 {
				t.Errorf("the loops serve %d HTTP/2 connections, want the client's one", n)
			}
			if n := loopH2Clients(t, both[1].p); n != 0 {
				t.Errorf("the proxy without loops has %d HTTP/2 connections on loops", n)
			}
		})
	}
}

// A loop's HTTP/2 connection to an h2c pod closes once it has carried no
// stream for upstream.idleConnTimeout, as the goroutines' pool closes
// its own, and the next stream opens a new one.
func TestLoopConnectionsToH2CPodsIdleOut(t *testing.T) {
	var opened, closed atomic.Int32
	pod := &testPod{name: "g-0"}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	pod.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "g-0")
	}))
	pod.srv.Config.Protocols = &protos
	pod.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	}
	pod.srv.Start()
	t.Cleanup(pod.srv.Close)

	cfg := h2cRoute(pod)
	cfg.Upstream.IdleConnTimeout = 300 * time.Millisecond
	cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0", EventLoop: ptr(true)}}
	h := startProxy(t, cfg)
	h.useHTTP2()
	for i := range 3 {
		if resp, body := h.get("/", "X-Session: k"); resp.StatusCode != 200 || body != "g-0" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := loopH2Clients(t, h.p); n != 1 {
		t.Fatalf("the loops serve %d HTTP/2 connections, want the client's one", n)
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("the pod saw %d connections for three requests, want one", n)
	}
	waitUntil(t, "the idle pod connection to close", func() bool { return closed.Load() == 1 })
	if resp, body := h.get("/", "X-Session: k"); resp.StatusCode != 200 || body != "g-0" {
		t.Fatalf("after the pod connection closed: %d %q", resp.StatusCode, body)
	}
	if n := opened.Load(); n != 2 {
		t.Errorf("the pod saw %d connections, want a second one after the first closed", n)
	}
}
