package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// countingPod answers every request with "ok" after pause, and counts the
// connections it holds open now and at most.
type countingPod struct {
	*tcpPod
	pause time.Duration
	// closeAfter, when set, makes the pod close each connection after its
	// first answer, without saying so (no Connection: close).
	closeAfter bool
	now, peak  atomic.Int32
	ended      chan struct{} // the pod is done with a connection
}

func newCountingPod(t *testing.T, pause time.Duration, closeAfter bool) *countingPod {
	p := &countingPod{pause: pause, closeAfter: closeAfter, ended: make(chan struct{}, 100)}
	p.tcpPod = startTCPPod(t, p.serve)
	return p
}

func (p *countingPod) serve(c net.Conn) {
	defer func() { p.ended <- struct{}{} }()
	defer c.Close()
	n := p.now.Add(1)
	defer p.now.Add(-1)
	for {
		peak := p.peak.Load()
		if n <= peak || p.peak.CompareAndSwap(peak, n) {
			break
		}
	}
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		time.Sleep(p.pause)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if p.closeAfter {
			return
		}
	}
}

// waitEnded waits for the pod to be done with a connection.
func (p *countingPod) waitEnded(t *testing.T) {
	t.Helper()
	select {
	case <-p.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection ended within 5s")
	}
}

func testPodClient(p *countingPod, s upstreamSettings) *podClient {
	if s.connectTimeout == 0 {
		s.connectTimeout = time.Second
	}
	if s.readTimeout == 0 {
		s.readTimeout = 5 * time.Second
	}
	return newPodClient(p.ln.Addr().String(), s, nil)
}

// get sends one request through c and returns its body.
func get(c *podClient, method string, body string) (string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://pod/")
	if body != "" {
		req.SetBodyString(body)
	}
	if err := c.Do(req, resp); err != nil {
		return "", err
	}
	return string(resp.Body()), nil
}

func TestPodClientReusesOneConnectionForSequentialRequests(t *testing.T) {
	p := newCountingPod(t, 0, false)
	c := testPodClient(p, upstreamSettings{idleConnTimeout: time.Minute})
	for range 20 {
		if body, err := get(c, "GET", ""); err != nil || body != "ok" {
			t.Fatalf("got %q, %v", body, err)
		}
	}
	if got := p.accepted(); got != 1 {
		t.Errorf("pod accepted %d connections, want 1", got)
	}
}

func TestPodClientKeepsToItsConnectionCap(t *testing.T) {
	p := newCountingPod(t, 50*time.Millisecond, false)
	c := testPodClient(p, upstreamSettings{maxConns: 2, connectTimeout: 5 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if body, err := get(c, "GET", ""); err != nil || body != "ok" {
				errs <- errors.Join(err, errors.New("body "+body))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := p.peak.Load(); got > 2 {
		t.Errorf("pod held %d connections at once, want at most 2", got)
	}
}

func TestPodClientWaitsForAConnectionOnlySoLong(t *testing.T) {
	p := newCountingPod(t, 500*time.Millisecond, false)
	c := testPodClient(p, upstreamSettings{maxConns: 1, connectTimeout: 100 * time.Millisecond})
	first := make(chan error, 1)
	go func() {
		_, err := get(c, "GET", "")
		first <- err
	}()
	time.Sleep(50 * time.Millisecond) // the first request holds the one connection
	start := time.Now()
	if _, err := get(c, "GET", ""); !errors.Is(err, fasthttp.ErrNoFreeConns) {
		t.Errorf("second request: got %v, want %v", err, fasthttp.ErrNoFreeConns)
	} else if got := upstreamReason(err); !strings.Contains(got, "maxConnsPerPod") {
		t.Errorf("the client is told %q, want the setting named", got)
	}
	if d := time.Since(start); d < 80*time.Millisecond || d > time.Second {
		t.Errorf("second request failed after %v, want about 100ms", d)
	}
	if err := <-first; err != nil {
		t.Errorf("first request: %v", err)
	}
	// The connection is free again.
	if body, err := get(c, "GET", ""); err != nil || body != "ok" {
		t.Errorf("third request: got %q, %v", body, err)
	}
}

func TestPodClientClosesIdleConnections(t *testing.T) {
	p := newCountingPod(t, 0, false)
	c := testPodClient(p, upstreamSettings{idleConnTimeout: 200 * time.Millisecond})
	if _, err := get(c, "GET", ""); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.waitEnded(t)
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("idle connection closed after %v, want 200-250ms", d)
	}
	// The cleaner has nothing left to watch and ends.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c.mu.Lock()
		cleaning, open := c.cleaning, c.open
		c.mu.Unlock()
		if !cleaning && open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cleaning %v with %d open, want the cleaner ended and none open", cleaning, open)
		}
	}
	if body, err := get(c, "GET", ""); err != nil || body != "ok" {
		t.Errorf("after the close: got %q, %v", body, err)
	}
}

// A pod that closes its connections without saying so leaves dead ones in
// the pool: a request safe to send twice goes again on a fresh connection,
// one with a body does not.
func TestPodClientResendsOnlySafeRequestsOverStaleConnections(t *testing.T) {
	p := newCountingPod(t, 0, true)
	c := testPodClient(p, upstreamSettings{idleConnTimeout: time.Minute})
	if _, err := get(c, "GET", ""); err != nil {
		t.Fatal(err)
	}
	p.waitEnded(t) // the pod has closed the pooled connection
	if body, err := get(c, "GET", ""); err != nil || body != "ok" {
		t.Errorf("GET over a stale connection: got %q, %v; want it sent again", body, err)
	}
	p.waitEnded(t)
	before := p.accepted()
	if _, err := get(c, "POST", "data"); err == nil {
		t.Error("POST over a stale connection succeeded, want it failed, not sent again")
	}
	if got := p.accepted(); got != before {
		t.Errorf("the POST reached %d new connections, want none", got-before)
	}
}
