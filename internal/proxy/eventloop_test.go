package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/place"
)

// A listener with EventLoop serves plain keep-alive HTTP/1.1 from its event
// loops and moves every other connection to the goroutine front end, which
// answers as on a listener without EventLoop. The tests here serve one
// proxy on two listeners, one with EventLoop and one without, send both the
// same bytes, and require the same answers, down to the order of the header
// fields. What may differ: the Date field's value, where a chunked body's
// chunks end (the bytes are the same), and, for a request without a key,
// which pod the balancer's turn fell on and the key minted for it. Each
// answer is also held to what it should be, so that both front ends cannot
// be wrong alike.

// withEventLoop is a harness on a second listener of h's proxy, one with
// EventLoop set and h's other settings (TLS, with the same certificate):
// it shares h's routes, pods and stick tables.
func (h *harness) withEventLoop(t *testing.T) *harness {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("event loops need epoll (Linux)")
	}
	l := h.listener
	l.Address, l.EventLoop = "", ptr(true)
	return &harness{
		t: t, p: h.p, addr: serveLoopback(t, h.p, l), listener: l, tls: h.tls,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: h.tls, MaxIdleConnsPerHost: 64}},
	}
}

// loopEnv is one proxy serving its routes on two listeners, plain (the
// goroutine front end) and loop (EventLoop set), over real pods:
//
//	/app     web-0, web-1, web-2: loop pods, round-robin
//	/assign  the same pods, with a key minted for a request without one
//	/f       frame-0: a scripted pod answering in every framing (framePod)
//	/slow    slow-0: a delay pod, behind a 300ms request timeout
//	/refuse  gone-0, a port nothing listens on, and live-0, a loop pod
//
// Nothing else has a route. Its header block limit is 4096 bytes.
//
// Before the listeners are handed over, a request without a key has moved
// the balancer's turn on /app and /assign through plain alone: the turn is
// then where a listener with tables of its own would not have it, so the
// two listeners agree on a new key's pod only by sharing one table.
type loopEnv struct {
	plain, loop *harness
	// pins is the pod each route and key went to, over every answer
	// checked (either listener's).
	pins map[string]string
}

func startLoopEnv(t *testing.T) *loopEnv {
	t.Helper()
	return startLoopEnvOver(t, false)
}

// startLoopEnvOver is startLoopEnv with both listeners on TLS when tls
// is set.
func startLoopEnvOver(t *testing.T, tls bool) *loopEnv {
	t.Helper()
	web := []*testPod{newLoopPod(t, "web-0"), newLoopPod(t, "web-1"), newLoopPod(t, "web-2")}
	var backends []config.Backend
	for _, p := range web {
		backends = append(backends, config.Backend{Name: p.name, URL: p.url()})
	}
	frame := newScriptedPod(t, framePod)
	cfg := &config.Config{
		// plain is the goroutine front end alone.
		Listeners: []config.Listener{{Address: "127.0.0.1:0", EventLoop: ptr(false)}},
		Limits:    config.Limits{MaxHeaderBytes: 4096},
		Routes: []config.Route{
			{Name: "app", Match: config.Match{PathPrefix: "/app"}, Backends: backends},
			{Name: "assign", Match: config.Match{PathPrefix: "/assign"}, Backends: backends,
				Sticky: config.Sticky{Missing: config.MissingAssign}},
			{Name: "frame", Match: config.Match{PathPrefix: "/f"}, Backends: []config.Backend{{Name: "frame-0", URL: frame.url()}}},
			timedRoute("slow", "/slow", newDelayPod(t, "slow-0", false), false, ptr(300*time.Millisecond), nil),
			{Name: "refuse", Match: config.Match{PathPrefix: "/refuse"}, Backends: []config.Backend{
				{Name: "gone-0", URL: "http://" + freeAddr(t)},
				{Name: "live-0", URL: newLoopPod(t, "live-0").url()},
			}},
		},
	}
	var plain *harness
	if tls {
		plain = startTLSProxy(t, cfg, config.Listener{EventLoop: ptr(false)}, Options{})
	} else {
		plain = startProxy(t, cfg)
	}
	for _, path := range []string{"/app/a", "/assign/a"} {
		if resp, body := plain.get(path); resp.StatusCode != 200 {
			t.Fatalf("%s: got %d %q, want 200", path, resp.StatusCode, body)
		}
	}
	return &loopEnv{plain: plain, loop: plain.withEventLoop(t), pins: map[string]string{}}
}

// loopProbe is a request for the frame pod's "hello".
const loopProbe = "GET /f/cl HTTP/1.1\r\nHost: app.test\r\n\r\n"

// newLoopPod is a pod that answers every request with one line naming
// itself, the request's method, path and key (X-Session) and the body it
// received: `web-0 POST /app/a key=alice body="abcd"`. It accepts a
// WebSocket handshake, and answers each message alike, with WS for the
// method: `web-0 WS /app/ws key=alice body="hi"`.
func newLoopPod(t *testing.T, name string) *testPod {
	return newTestPod(t, name, func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Session")
		if r.Header.Get("Upgrade") == "websocket" {
			echoWebSocket(w, r, func(msg []byte) []byte {
				return fmt.Appendf(nil, "%s WS %s key=%s body=%q", name, r.URL.Path, key, msg)
			})
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s key=%s body=%q", name, r.Method, r.URL.Path, key, body)
	})
}

// bigBody is the frame pod's 1 MiB body.
var bigBody = strings.Repeat("0123456789abcdef", 1<<16)

// framePod answers by path in each way a pod may frame, or fail to finish,
// its answer.
var framePod = map[string]podAnswer{
	"/f/cl":      {raw: "HTTP/1.1 200 OK\r\nX-B: 2\r\nContent-Length: 5\r\nX-A: 1\r\nX-B: 3\r\n\r\nhello"},
	"/f/chunked": {raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\nX-Sum: 6\r\n\r\n"},
	"/f/ext":     {raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0\r\n\r\n"},
	"/f/204":     {raw: "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"},
	"/f/304":     {raw: "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"},
	"/f/head":    {raw: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
	"/f/http10":  {raw: "HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nuntil the end", close: true},
	"/f/big":     {raw: "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + bigBody},
	"/f/cut":     {raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhell", close: true},
	"/f/reset":   {raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhell", pause: 50 * time.Millisecond, reset: true},
	"/f/longcut": {raw: "HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n" + bigBody, close: true},
}

// rawRequest is a request for target on app.test, with the session key
// key (none when empty) and more header lines, ended: a body, if any,
// follows.
func rawRequest(method, target, key string, fields ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: app.test\r\n")
	if key != "" {
		b.WriteString("X-Session: " + key + "\r\n")
	}
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// loopPodSaw is the loop pods' answer to a request with that method, path,
// key and body, for the pod the answer names.
func loopPodSaw(method, path, key, body string) string {
	return fmt.Sprintf("$pod %s %s key=%s body=%q", method, path, key, body)
}

// loopCase is one conversation on one client connection.
type loopCase struct {
	name string
	// send is written part after part, each once the answers to the part
	// before it have come.
	send []string
	// want are the statuses of the answers to each part.
	want [][]int
	// body is each answer's body, $pod standing for the pod the answer
	// names (X-Podpin-Pod) and $key for the key it hands out (X-Session).
	// Nil: the bodies are not checked.
	body []string
	// head lists the answers, counted from 0, to HEAD requests.
	head []int
	// closed: podpin closes the connection after the last answer.
	// Otherwise the connection goes on, and must answer the probe next.
	closed bool
	// balanced: a request without a key, placed by the balancer, whose
	// turn the same request on the other listener moved on.
	balanced bool
	// tunnel is a WebSocket message sent after the last answer, a 101;
	// echo ($pod as in body) is the text of the message that must come
	// back.
	tunnel, echo string
	// short: the pod ends its answer before its Content-Length, and the
	// client gets what came and a closed connection. Over TLS the
	// goroutine front end drops the end of what it had buffered for the
	// session (up to a few KiB) when it closes: its body need only be
	// the start of the one wanted, and the listeners' answers are not
	// compared.
	short bool
}

var (
	appAlice  = rawRequest("GET", "/app/a", "alice")
	aliceSaw  = loopPodSaw("GET", "/app/a", "alice", "")
	bigUpload = strings.Repeat("u", 100<<10)
)

// loopCases is the conversations both listeners must hold alike. The pods
// are loopEnv's.
var loopCases = []loopCase{
	// Keys and methods.
	{name: "a keyed GET, three times on one keep-alive connection",
		send: []string{appAlice, appAlice, appAlice}, want: [][]int{{200}, {200}, {200}},
		body: []string{aliceSaw, aliceSaw, aliceSaw}},
	{name: "the same key on a new connection",
		send: []string{appAlice}, want: [][]int{{200}}, body: []string{aliceSaw}},
	{name: "HEAD, then GET on the same connection",
		send: []string{rawRequest("HEAD", "/app/a", "alice"), appAlice}, want: [][]int{{200}, {200}},
		head: []int{0}, body: []string{"", aliceSaw}},
	{name: "OPTIONS",
		send: []string{rawRequest("OPTIONS", "/app/a", "alice")}, want: [][]int{{200}},
		body: []string{loopPodSaw("OPTIONS", "/app/a", "alice", "")}},
	{name: "the path reaches the pod as the client sent it",
		send: []string{rawRequest("GET", "/app/x/../y//z", "alice")}, want: [][]int{{200}},
		body: []string{loopPodSaw("GET", "/app/x/../y//z", "alice", "")}},
	{name: "a request without a key is balanced",
		send: []string{rawRequest("GET", "/app/a", "")}, want: [][]int{{200}},
		body: []string{loopPodSaw("GET", "/app/a", "", "")}, balanced: true},
	{name: "a request without a key is given one on a route that mints them",
		send: []string{rawRequest("GET", "/assign/a", "")}, want: [][]int{{200}},
		body: []string{loopPodSaw("GET", "/assign/a", "$key", "")}, balanced: true},
	{name: "a key brought to a route that mints them is kept",
		send: []string{rawRequest("GET", "/assign/a", "carol")}, want: [][]int{{200}},
		body: []string{loopPodSaw("GET", "/assign/a", "carol", "")}},

	// Pipelining and connection handling.
	{name: "pipelined requests are answered in order",
		send: []string{appAlice + rawRequest("GET", "/app/b", "bob") + rawRequest("HEAD", "/app/c", "carol") + appAlice},
		want: [][]int{{200, 200, 200, 200}}, head: []int{2},
		body: []string{aliceSaw, loopPodSaw("GET", "/app/b", "bob", ""), "", aliceSaw}},
	{name: "HTTP/1.0 without keep-alive is answered, then closed",
		send: []string{"GET /app/a HTTP/1.0\r\nX-Session: alice\r\n\r\n"}, want: [][]int{{200}},
		body: []string{aliceSaw}, closed: true},
	{name: "HTTP/1.0 with keep-alive stays open",
		send: []string{
			"GET /app/a HTTP/1.0\r\nConnection: keep-alive\r\nX-Session: alice\r\n\r\n",
			"GET /app/a HTTP/1.0\r\nConnection: keep-alive\r\nX-Session: alice\r\n\r\n",
		},
		want: [][]int{{200}, {200}}, body: []string{aliceSaw, aliceSaw}},
	{name: "Connection: close is answered, then closed",
		send: []string{rawRequest("GET", "/app/a", "alice", "Connection: close")}, want: [][]int{{200}},
		body: []string{aliceSaw}, closed: true},
	{name: "a request pipelined after Connection: close is not answered",
		send: []string{rawRequest("GET", "/app/a", "alice", "Connection: close") + rawRequest("GET", "/app/b", "bob")},
		want: [][]int{{200}}, body: []string{aliceSaw}, closed: true},

	// Bodies: the goroutine front end reads them.
	{name: "a Content-Length body",
		send: []string{rawRequest("POST", "/app/a", "alice", "Content-Length: 4") + "abcd"}, want: [][]int{{200}},
		body: []string{loopPodSaw("POST", "/app/a", "alice", "abcd")}},
	{name: "a chunked body",
		send: []string{rawRequest("POST", "/app/a", "alice", "Transfer-Encoding: chunked") + "4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"},
		want: [][]int{{200}}, body: []string{loopPodSaw("POST", "/app/a", "alice", "abcdefg")}},
	{name: "Expect: 100-continue, the body sent after the interim answer",
		send: []string{rawRequest("PUT", "/app/a", "alice", "Expect: 100-continue", "Content-Length: 4"), "abcd"},
		want: [][]int{{100}, {200}}, body: []string{"", loopPodSaw("PUT", "/app/a", "alice", "abcd")}},
	{name: "Expect: 100-continue, the body sent at once",
		send: []string{rawRequest("PUT", "/app/a", "alice", "Expect: 100-continue", "Content-Length: 4") + "abcd"},
		want: [][]int{{100, 200}}, body: []string{"", loopPodSaw("PUT", "/app/a", "alice", "abcd")}},
	{name: "a body after plain GETs on one connection, then GETs again",
		send: []string{appAlice, appAlice, rawRequest("POST", "/app/a", "alice", "Content-Length: 4") + "abcd", appAlice},
		want: [][]int{{200}, {200}, {200}, {200}},
		body: []string{aliceSaw, aliceSaw, loopPodSaw("POST", "/app/a", "alice", "abcd"), aliceSaw}},
	{name: "a chunked body pipelined between GETs",
		send: []string{appAlice + rawRequest("POST", "/app/a", "alice", "Transfer-Encoding: chunked") + "2\r\nxy\r\n0\r\n\r\n" + appAlice},
		want: [][]int{{200, 200, 200}}, body: []string{aliceSaw, loopPodSaw("POST", "/app/a", "alice", "xy"), aliceSaw}},
	{name: "a body larger than the front end buffers, after a GET",
		send: []string{appAlice, rawRequest("POST", "/app/a", "alice", "Content-Length: "+strconv.Itoa(len(bigUpload))) + bigUpload},
		want: [][]int{{200}, {200}}, body: []string{aliceSaw, loopPodSaw("POST", "/app/a", "alice", bigUpload)}},

	// Upgrades.
	{name: "a WebSocket upgrade becomes a tunnel to the key's pod",
		send: []string{rawRequest("GET", "/app/ws", "alice", "Connection: Upgrade", "Upgrade: websocket",
			"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")},
		want: [][]int{{101}}, tunnel: "hi", echo: loopPodSaw("WS", "/app/ws", "alice", "hi")},

	// Malformed input.
	{name: "a request line that is not one is refused",
		send: []string{"GARBAGE\r\n\r\n"}, want: [][]int{{400}}, body: []string{"podpin: malformed request\n"}, closed: true},
	{name: "a request line without a version is refused",
		send: []string{"GET /app/a\r\n\r\n"}, want: [][]int{{400}}, body: []string{"podpin: malformed request\n"}, closed: true},
	{name: "a bad header name is refused",
		send: []string{rawRequest("GET", "/app/a", "alice", "X A: b")}, want: [][]int{{400}},
		body: []string{"podpin: invalid header field name\n"}, closed: true},
	{name: "two Content-Length fields are refused",
		send: []string{rawRequest("POST", "/app/a", "alice", "Content-Length: 4", "Content-Length: 5") + "abcde"},
		want: [][]int{{400}}, body: []string{"podpin: Content-Length sent more than once\n"}, closed: true},
	{name: "Content-Length with Transfer-Encoding is refused",
		send: []string{rawRequest("POST", "/app/a", "alice", "Content-Length: 4", "Transfer-Encoding: chunked") + "0\r\n\r\n"},
		want: [][]int{{400}}, body: []string{"podpin: both Content-Length and Transfer-Encoding\n"}, closed: true},
	{name: "obs-fold is refused",
		send: []string{rawRequest("GET", "/app/a", "alice", "X-A: one", " two")}, want: [][]int{{400}},
		body: []string{"podpin: header line folding (obs-fold)\n"}, closed: true},
	{name: "a header block over the limit gets 431",
		send: []string{rawRequest("GET", "/app/a", "alice", "X-Big: "+strings.Repeat("b", 5000))}, want: [][]int{{431}},
		body: []string{"podpin: request line and headers are too large\n"}, closed: true},
	{name: "a malformed request after a GET on one connection",
		send: []string{appAlice, rawRequest("GET", "/app/a", "alice", "X A: b")}, want: [][]int{{200}, {400}},
		body: []string{aliceSaw, "podpin: invalid header field name\n"}, closed: true},
	{name: "a request no route takes gets 404",
		send: []string{rawRequest("GET", "/nowhere", "alice")}, want: [][]int{{404}},
		body: []string{"podpin: " + place.ErrNoRoute.Error() + "\n"}},

	// The pod's framing.
	{name: "a pod's Content-Length answer",
		send: []string{rawRequest("GET", "/f/cl", "f")}, want: [][]int{{200}}, body: []string{"hello"}},
	{name: "a pod's chunked answer with a trailer",
		send: []string{rawRequest("GET", "/f/chunked", "f")}, want: [][]int{{200}}, body: []string{"abcdef"}},
	{name: "a pod's 204",
		send: []string{rawRequest("GET", "/f/204", "f")}, want: [][]int{{204}}, body: []string{""}},
	{name: "a pod's 304",
		send: []string{rawRequest("GET", "/f/304", "f")}, want: [][]int{{304}}, body: []string{""}},
	{name: "a pod's answer to HEAD, then a GET",
		send: []string{rawRequest("HEAD", "/f/head", "f"), rawRequest("GET", "/f/cl", "f")}, want: [][]int{{200}, {200}},
		head: []int{0}, body: []string{"", "hello"}},
	{name: "a pod's close-delimited HTTP/1.0 answer",
		send: []string{rawRequest("GET", "/f/http10", "f")}, want: [][]int{{200}}, body: []string{"until the end"}},
	{name: "a pod's close-delimited HTTP/1.0 answer to an HTTP/1.0 client",
		send: []string{"GET /f/http10 HTTP/1.0\r\n\r\n"}, want: [][]int{{200}}, body: []string{"until the end"}, closed: true},
	{name: "a pod's 1 MiB answer",
		send: []string{rawRequest("GET", "/f/big", "f")}, want: [][]int{{200}}, body: []string{bigBody}},
	{name: "a pod that closes mid-answer, then a GET",
		send: []string{rawRequest("GET", "/f/cut", "f"), rawRequest("GET", "/f/cl", "f")}, want: [][]int{{502}, {200}},
		body: []string{"podpin: pod frame-0 failed: bad response\n", "hello"}},
	{name: "a pod that resets mid-answer",
		send: []string{rawRequest("GET", "/f/reset", "f")}, want: [][]int{{502}},
		body: []string{"podpin: pod frame-0 failed: bad response\n"}},
	{name: "a pod that closes mid-way through a streamed answer",
		send: []string{rawRequest("GET", "/f/longcut", "f")}, want: [][]int{{200}}, body: []string{bigBody}, closed: true, short: true},

	// Pods that do not answer.
	{name: "keyed requests placed on a pod that refuses connections rebind",
		send: []string{rawRequest("GET", "/refuse/a", "r1"), rawRequest("GET", "/refuse/a", "r2")},
		want: [][]int{{200}, {200}},
		body: []string{"live-0 GET /refuse/a key=r1 body=\"\"", "live-0 GET /refuse/a key=r2 body=\"\""}},
	{name: "a pod silent past the route's timeout gets 504, then a GET",
		send: []string{rawRequest("GET", "/slow?delay=5s", "s"), rawRequest("GET", "/slow", "s")},
		want: [][]int{{504}, {200}}, body: []string{"podpin: pod slow-0 failed: no response in time\n", "slow-0"}},
}

// TestTheEventLoopAnswersAsTheGoroutineFrontEnd holds every conversation of
// loopCases with both listeners of one proxy, first the one, then the
// other, taking turns at going first so that each listener both places
// keys and finds them placed. Both must answer what the case wants, and
// alike.
func TestTheEventLoopAnswersAsTheGoroutineFrontEnd(t *testing.T) {
	for _, over := range []struct {
		name string
		tls  bool
	}{{"cleartext", false}, {"TLS", true}} {
		t.Run(over.name, func(t *testing.T) { testLoopCases(t, startLoopEnvOver(t, over.tls)) })
	}
}

func testLoopCases(t *testing.T, env *loopEnv) {
	for i, c := range loopCases {
		t.Run(c.name, func(t *testing.T) {
			var plain, loop loopResult
			if i%2 == 0 {
				plain = c.talk(t, "without EventLoop", env.plain, loopProbe)
				loop = c.talk(t, "with EventLoop", env.loop, loopProbe)
			} else {
				loop = c.talk(t, "with EventLoop", env.loop, loopProbe)
				plain = c.talk(t, "without EventLoop", env.plain, loopProbe)
			}
			shortOverTLS := c.short && env.plain.tls != nil
			if shortOverTLS {
				for i, a := range plain.answers {
					if !strings.HasPrefix(c.body[i], a.body) || len(a.body) < len(c.body[i])-16<<10 {
						t.Errorf("without EventLoop: answer %d: %d bytes of body, want the first %d or a few KiB fewer", i, len(a.body), len(c.body[i]))
					}
					plain.answers[i].body = c.body[i]
				}
			}
			c.check(t, "without EventLoop", plain, env.pins)
			c.check(t, "with EventLoop", loop, env.pins)
			if !shortOverTLS {
				sameConversation(t, plain.transcript(c.balanced), loop.transcript(c.balanced))
			}
		})
	}
	if n := env.plain.rebinds("refuse")[place.ReasonConnectFailed]; n < 1 {
		t.Errorf("route refuse: %d rebinds for connect-failed, want at least 1", n)
	}
}

// TestEdgeRequestsOverTheEventLoop holds the event-loop listener to the
// edge cases (edgeCases, sizeLimitCases: the answers, and what the pod
// receives) that TestEdgeRequests and TestEdgeSizeLimits hold the other
// to, and requires both listeners of one proxy to answer each case alike.
func TestEdgeRequestsOverTheEventLoop(t *testing.T) {
	for _, set := range []struct {
		limits config.Limits
		cases  []edgeCase
	}{{config.Limits{}, edgeCases}, {sizeLimits, sizeLimitCases}} {
		for _, c := range set.cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				plain, pod := edgeProxy(t, set.limits)
				loop := plain.withEventLoop(t)
				c.check(t, pod, func() net.Conn { return loop.dial(t) })
				lc := loopCase{send: []string{c.raw}, want: [][]int{c.want}, closed: c.closed}
				const probe = "GET /probe HTTP/1.1\r\n" + hdr + "\r\n"
				a := lc.talk(t, "without EventLoop", plain, probe)
				b := lc.talk(t, "with EventLoop", loop, probe)
				pins := map[string]string{}
				lc.check(t, "without EventLoop", a, pins)
				lc.check(t, "with EventLoop", b, pins)
				sameConversation(t, a.transcript(false), b.transcript(false))
			})
		}
	}
}

// TestTheEventLoopHandsHTTP2PriorKnowledgeOn: a connection that opens with
// the HTTP/2 preface on the event-loop listener reaches the HTTP/2 server,
// and its streams find the keys the other listener placed, and place keys
// the other listener finds.
func TestTheEventLoopHandsHTTP2PriorKnowledgeOn(t *testing.T) {
	env := startLoopEnv(t)
	env.loop.useHTTP2()
	for i := range 20 {
		key := fmt.Sprintf("h2-%d", i)
		var got, want string
		if i%2 == 0 {
			want = podOfOn(t, env.plain, key, 1)
			got = podOfOn(t, env.loop, key, 2)
		} else {
			got = podOfOn(t, env.loop, key, 2)
			want = podOfOn(t, env.plain, key, 1)
		}
		if got != want {
			t.Errorf("key %s: HTTP/2 on the event loop reached %s, HTTP/1.1 on the other listener %s", key, got, want)
		}
	}
}

// podOfOn is the pod that answers key through h, whose client speaks HTTP
// of major version proto.
func podOfOn(t *testing.T, h *harness, key string, proto int) string {
	t.Helper()
	resp, body := h.get("/app/a", "X-Session: "+key)
	pod := resp.Header.Get("X-Podpin-Pod")
	if want := strings.ReplaceAll(loopPodSaw("GET", "/app/a", key, ""), "$pod", pod); resp.StatusCode != 200 || resp.ProtoMajor != proto || body != want {
		t.Fatalf("key %s: got %s %d %q, want HTTP/%d 200 %q", key, resp.Proto, resp.StatusCode, body, proto, want)
	}
	return pod
}

// TestManyKeepAliveClientsKeepTheirPodsThroughTheEventLoop: 32 clients, each
// on its own keep-alive connection to the event-loop listener, send 200
// requests each, with a key drawn at random from 100 that every client
// uses or from 20 of the client's own. Every answer is a 200 from the
// key's one pod, and the other listener finds each key there. First
// requests of one key from several clients at once agree on its pod
// (place.Sessions.Claim).
func TestManyKeepAliveClientsKeepTheirPodsThroughTheEventLoop(t *testing.T) {
	env := startLoopEnv(t)
	const clients, requests, shared, own = 32, 200, 100, 20
	// guards pods
	var mu sync.Mutex
	// The shared keys' first requests come from several clients at once:
	// they must agree on one pod all the same.
	pods := map[string]string{}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", env.loop.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			rng := rand.New(rand.NewPCG(uint64(i), 0))
			for n := range requests {
				key := fmt.Sprintf("shared-%d", rng.IntN(shared))
				if rng.IntN(2) == 0 {
					key = fmt.Sprintf("client-%d-%d", i, rng.IntN(own))
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, rawRequest("GET", "/app/a", key)); err != nil {
					t.Errorf("client %d, request %d: %v", i, n, err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Errorf("client %d, request %d: %v", i, n, err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				pod := resp.Header.Get("X-Podpin-Pod")
				want := strings.ReplaceAll(loopPodSaw("GET", "/app/a", key, ""), "$pod", pod)
				if err != nil || resp.StatusCode != 200 || string(body) != want {
					t.Errorf("client %d, request %d: got %d %q (%v), want 200 %q", i, n, resp.StatusCode, body, err, want)
					return
				}
				mu.Lock()
				if p, ok := pods[key]; ok && p != pod {
					t.Errorf("key %s went to %s, then %s", key, p, pod)
				}
				pods[key] = pod
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	used := map[string]bool{}
	for key, pod := range pods {
		used[pod] = true
		if got := podOfOn(t, env.plain, key, 1); got != pod {
			t.Errorf("key %s: the event loop placed it on %s, the other listener found it on %s", key, pod, got)
		}
	}
	if len(used) != 3 {
		t.Errorf("the keys went to %d pods, want all 3", len(used))
	}
}

// TestKeysMintedOnTheEventLoopPinOnBothListeners: a key minted for a
// request without one, on either listener, takes the other listener's
// requests to the same pod.
func TestKeysMintedOnTheEventLoopPinOnBothListeners(t *testing.T) {
	env := startLoopEnv(t)
	for i := range 6 {
		mint, use := env.loop, env.plain
		if i%2 == 1 {
			mint, use = use, mint
		}
		resp, body := mint.get("/assign/a")
		key, pod := resp.Header.Get("X-Session"), resp.Header.Get("X-Podpin-Pod")
		if want := strings.ReplaceAll(loopPodSaw("GET", "/assign/a", key, ""), "$pod", pod); resp.StatusCode != 200 || key == "" || body != want {
			t.Fatalf("got %d %q with key %q, want 200 %q and a key", resp.StatusCode, body, key, want)
		}
		for range 3 {
			resp, body := use.get("/assign/a", "X-Session: "+key)
			if got := resp.Header.Get("X-Podpin-Pod"); resp.StatusCode != 200 || got != pod || resp.Header.Get("X-Session") != "" {
				t.Errorf("minted key on its way back: got %d from %s (%q), X-Session %q; want 200 from %s, no new key",
					resp.StatusCode, got, body, resp.Header.Get("X-Session"), pod)
			}
		}
	}
}

// loopAnswer is one answer as it came off the wire.
type loopAnswer struct {
	status int
	// lines are the status line and the header fields, as sent.
	lines   []string
	body    string // decoded from chunks, when chunked
	chunked bool
	trailer string // the trailer section of a chunked body, as sent
	cut     bool   // the connection ended before the body did
}

// field is the value of the answer's first header field called name.
func (a loopAnswer) field(name string) string {
	for _, l := range a.lines[min(1, len(a.lines)):] {
		n, v, _ := strings.Cut(l, ":")
		if strings.EqualFold(n, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// normal is the answer in the form the listeners are compared in: as sent,
// but for Date's value and with a chunked body in one chunk.
func (a loopAnswer) normal() string {
	var b strings.Builder
	for _, l := range a.lines {
		if n, _, _ := strings.Cut(l, ":"); strings.EqualFold(n, "Date") {
			l = n + ": (a date)"
		}
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	if a.chunked {
		if a.body != "" {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(a.body), a.body)
		}
		b.WriteString("0\r\n" + a.trailer)
	} else {
		b.WriteString(a.body)
	}
	if a.cut {
		b.WriteString("(cut short)")
	}
	return b.String()
}

// readAnswer reads one answer, to a HEAD request when head is set. A body
// the connection ends in the middle of is the answer's, marked cut.
func readAnswer(br *bufio.Reader, head bool) (loopAnswer, error) {
	var a loopAnswer
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return a, fmt.Errorf("header block %q: %w", a.lines, err)
		}
		line = strings.TrimSuffix(line, "\r\n")
		if line == "" {
			break
		}
		a.lines = append(a.lines, line)
	}
	if len(a.lines) == 0 {
		return a, errors.New("an empty line where a status line belongs")
	}
	proto, rest, _ := strings.Cut(a.lines[0], " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if err != nil || !strings.HasPrefix(proto, "HTTP/1.") {
		return a, fmt.Errorf("status line %q", a.lines[0])
	}
	a.status = status
	// RFC 9112, section 6.3.
	var body bytes.Buffer
	switch {
	case head || status < 200 || status == 204 || status == 304:
		return a, nil
	case strings.EqualFold(a.field("Transfer-Encoding"), "chunked"):
		a.chunked = true
		err = readChunked(br, &body)
		a.body, a.trailer = unchunk(body.String())
	case a.field("Content-Length") != "":
		n, _ := strconv.ParseInt(a.field("Content-Length"), 10, 64)
		_, err = io.CopyN(&body, br, n)
		a.body = body.String()
	default:
		_, err = io.Copy(&body, br)
		a.body = body.String()
	}
	a.cut = err != nil
	return a, nil
}

// unchunk decodes a chunked body read by readChunked into its data and its
// trailer section.
func unchunk(raw string) (body, trailer string) {
	var b strings.Builder
	for {
		line, rest, ok := strings.Cut(raw, "\r\n")
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseUint(size, 16, 32)
		if !ok || err != nil || n == 0 || uint64(len(rest)) < n+2 {
			return b.String(), rest
		}
		b.WriteString(rest[:n])
		raw = rest[n+2:]
	}
}

// loopResult is what one listener answered in a conversation.
type loopResult struct {
	answers []loopAnswer
	echo    string     // what came back through the tunnel
	probe   loopAnswer // the answer to the probe, on a connection left open
	closed  bool       // the connection was closed after the answers
	stray   string     // bytes after the answers of a closed connection
}

// transcript is the conversation as compared across the listeners. For a
// balanced request, the pod it went to and the key minted for it are
// blanked out.
func (r loopResult) transcript(balanced bool) string {
	var b strings.Builder
	for _, a := range r.answers {
		s := a.normal()
		if balanced {
			for _, name := range []string{"X-Podpin-Pod", "X-Session"} {
				if v := a.field(name); v != "" {
					s = strings.ReplaceAll(s, v, "("+name+")")
				}
			}
		}
		b.WriteString(s + "\n--\n")
	}
	if r.echo != "" {
		fmt.Fprintf(&b, "tunnel: %q\n", r.echo)
	}
	switch {
	case r.closed:
		fmt.Fprintf(&b, "closed after %q\n", r.stray)
	case r.probe.status != 0:
		b.WriteString("then:\n" + r.probe.normal())
	}
	return b.String()
}

// talk holds c's conversation with the listener called name, at addr. On
// a connection left open it then sends probe, a request a pod answers with
// 200: that answer shows that the connection is open and carried nothing
// more.
func (c loopCase) talk(t *testing.T, name string, h *harness, probe string) loopResult {
	t.Helper()
	conn := h.dial(t)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	var r loopResult
	for i, part := range c.send {
		if _, err := io.WriteString(conn, part); err != nil {
			t.Fatalf("%s: writing part %d: %v", name, i, err)
		}
		for range c.want[i] {
			a, err := readAnswer(br, slices.Contains(c.head, len(r.answers)))
			if err != nil {
				t.Fatalf("%s: answer %d: %v", name, len(r.answers), err)
			}
			r.answers = append(r.answers, a)
		}
	}
	switch {
	case c.tunnel != "":
		// A text frame, masked with a key of zeros as a client's must be.
		frame := append([]byte{0x81, 0x80 | byte(len(c.tunnel)), 0, 0, 0, 0}, c.tunnel...)
		if _, err := conn.Write(frame); err != nil {
			t.Fatalf("%s: writing to the tunnel: %v", name, err)
		}
		// The pod's: unmasked, and shorter than 126 bytes.
		head := make([]byte, 2)
		if _, err := io.ReadFull(br, head); err != nil {
			t.Fatalf("%s: reading from the tunnel: %v", name, err)
		}
		payload := make([]byte, head[1]&0x7f)
		n, _ := io.ReadFull(br, payload)
		r.echo = string(head) + string(payload[:n])
	case c.closed:
		rest, err := io.ReadAll(br)
		var ne net.Error
		r.closed = !(errors.As(err, &ne) && ne.Timeout())
		r.stray = string(rest)
	default:
		if _, err := io.WriteString(conn, probe); err == nil {
			r.probe, err = readAnswer(br, false)
			r.closed = err != nil
		} else {
			r.closed = true
		}
	}
	return r
}

// check holds r, the answers of the listener called name, to what c wants,
// and to what every answer must be: podpin's own answers name no pod and
// say "podpin: " and why in one line; a pod's answer names the pod, which
// is the one that answered; a key goes to one pod for good (by route, in
// pins).
func (c loopCase) check(t *testing.T, name string, r loopResult, pins map[string]string) {
	t.Helper()
	var codes []int
	for _, a := range r.answers {
		codes = append(codes, a.status)
	}
	if want := slices.Concat(c.want...); !slices.Equal(codes, want) {
		t.Errorf("%s: got statuses %v, want %v", name, codes, want)
		return
	}
	for i, a := range r.answers {
		pod := a.field("X-Podpin-Pod")
		own := a.field("X-Podpin-Error") == "1"
		switch {
		case a.status == 100:
			if pod != "" || own || a.lines[0] != "HTTP/1.1 100 Continue" {
				t.Errorf("%s: answer %d: got %q, want a bare 100 Continue", name, i, a.lines)
			}
		case own:
			if pod != "" || !strings.HasPrefix(a.body, "podpin: ") || strings.Index(a.body, "\n") != len(a.body)-1 {
				t.Errorf("%s: answer %d: podpin's own %d names pod %q, body %q; want no pod and one line starting \"podpin: \"", name, i, a.status, pod, a.body)
			}
		case pod == "":
			t.Errorf("%s: answer %d: a pod's %d names no pod in X-Podpin-Pod", name, i, a.status)
		}
		if c.body != nil {
			want := strings.NewReplacer("$pod", pod, "$key", a.field("X-Session")).Replace(c.body[i])
			if a.body != want {
				t.Errorf("%s: answer %d: got body %.200q, want %.200q", name, i, a.body, want)
			}
			if strings.Contains(c.body[i], "$key") && a.field("X-Session") == "" {
				t.Errorf("%s: answer %d: no key handed out in X-Session", name, i)
			}
		}
		pinned(t, fmt.Sprintf("%s: answer %d", name, i), a.body, pod, pins)
	}
	if c.tunnel != "" {
		pod := r.answers[len(r.answers)-1].field("X-Podpin-Pod")
		text := strings.ReplaceAll(c.echo, "$pod", pod)
		if want := "\x81" + string(byte(len(text))) + text; r.echo != want {
			t.Errorf("%s: the tunnel answered %q, want %q", name, r.echo, want)
		}
		pinned(t, name+": the tunnel", r.echo[min(2, len(r.echo)):], pod, pins)
		return
	}
	if r.closed != c.closed {
		t.Errorf("%s: connection closed: got %v, want %v", name, r.closed, c.closed)
	}
	if r.stray != "" {
		t.Errorf("%s: got %q after the answers", name, r.stray)
	}
	if !r.closed && (r.probe.status != 200 || r.probe.field("X-Podpin-Pod") == "") {
		t.Errorf("%s: the connection then answered the probe with %q %q, want a pod's 200", name, r.probe.lines, r.probe.body)
	}
}

// pinned checks a loop pod's answer, text ("<pod> <method> <path>
// key=<key> ..."; anything else is let be): named, the pod the answer
// names, must be the pod that wrote it, and the key must go to one pod
// for good on its route, which pins holds.
func pinned(t *testing.T, what, text, named string, pins map[string]string) {
	t.Helper()
	f := strings.Fields(text)
	if len(f) < 4 || !strings.HasPrefix(f[3], "key=") {
		return
	}
	if f[0] != named {
		t.Errorf("%s: the answer names pod %q, but %s wrote it", what, named, f[0])
	}
	if key := strings.TrimPrefix(f[3], "key="); key != "" {
		route, _, _ := strings.Cut(strings.TrimPrefix(f[2], "/"), "/")
		if p, ok := pins[route+" "+key]; ok && p != f[0] {
			t.Errorf("%s: key %s on route %s went to %s, and before to %s", what, key, route, f[0], p)
		}
		pins[route+" "+key] = f[0]
	}
}

// sameConversation fails the test unless both listeners' transcripts are
// the same, showing where they part.
func sameConversation(t *testing.T, plain, loop string) {
	t.Helper()
	if plain == loop {
		return
	}
	i := 0
	for i < len(plain) && i < len(loop) && plain[i] == loop[i] {
		i++
	}
	from := max(0, i-200)
	t.Errorf("the listeners answered differently, from byte %d:\nwithout EventLoop: %.600q\nwith EventLoop:    %.600q", i, plain[from:], loop[from:])
}

// TestTheEventLoopReframesChunkedAnswers: a pod's chunked answer reaches
// the client in podpin's chunks, without the pod's chunk extensions, as
// the goroutine front end re-frames it (docs/http-policy.md, Responses).
func TestTheEventLoopReframesChunkedAnswers(t *testing.T) {
	env := startLoopEnv(t)
	for _, h := range []*harness{env.plain, env.loop} {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, rawRequest("GET", "/f/ext", "f")); err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, 4096)
		for !bytes.HasSuffix(got, []byte("0\r\n\r\n")) {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("%s: %v after %q", h.addr, err, got)
			}
		}
		if bytes.Contains(got, []byte("name=value")) || !bytes.Contains(got, []byte("\r\n\r\n3\r\nabc\r\n0\r\n\r\n")) {
			t.Errorf("%s: got %q, want the body re-chunked as 3\\r\\nabc without the extension", h.addr, got)
		}
	}
}
