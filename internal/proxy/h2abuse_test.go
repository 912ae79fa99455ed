package proxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/podpin/podpin/internal/config"
)

// The HTTP/2 attacks of the last years, sent as raw frames to a real
// podpin in front of a real pod. Each test shows that podpin stays up,
// that a well-behaved client on another connection is served during and
// after the attack, and that the pod sees nothing of it (the pod counts
// the requests on the attack's path).

// abusePod is a pod that counts the requests on /attack and answers any
// other path with its name. attack, when set, answers the attack's
// requests.
type abusePod struct {
	*testPod
	attacks atomic.Int64
}

func newAbusePod(t *testing.T, attack http.HandlerFunc) *abusePod {
	p := &abusePod{}
	p.testPod = newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/attack" {
			io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, "web-0")
			return
		}
		p.attacks.Add(1)
		if attack != nil {
			attack(w, r)
		}
	})
	return p
}

// startAbuseProxy serves one route over pod with limits, in cleartext
// (h2c) or over TLS (h2 by ALPN).
func startAbuseProxy(t *testing.T, pod *abusePod, lim config.Limits, tlsOn bool) *harness {
	t.Helper()
	cfg := oneRoute(pod.testPod)
	cfg.Limits = lim
	if tlsOn {
		return startTLSProxy(t, cfg, config.Listener{}, Options{})
	}
	return startProxy(t, cfg)
}

// checkServed sends a well-behaved request over a connection of its own,
// in HTTP/2, and fails the test unless the pod answers it.
func checkServed(t *testing.T, h *harness, when string) {
	t.Helper()
	var protos http.Protocols
	if h.tls != nil {
		protos.SetHTTP2(true)
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	tr := &http.Transport{TLSClientConfig: h.tls, Protocols: &protos}
	defer tr.CloseIdleConnections()
	scheme := map[bool]string{true: "https", false: "http"}[h.tls != nil]
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get(scheme + "://" + h.addr + "/ok")
	if err != nil {
		t.Fatalf("%s: a well-behaved client: %v", when, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "web-0" || resp.ProtoMajor != 2 {
		t.Fatalf("%s: a well-behaved client got %s %d %q, want HTTP/2 200 from web-0", when, resp.Proto, resp.StatusCode, b)
	}
}

// rawH2 is a client connection that writes HTTP/2 frames by hand. A
// goroutine reads the server's frames into frames, acknowledging its
// SETTINGS and PINGs, until the connection ends (then frames is closed).
type rawH2 struct {
	t    *testing.T
	conn net.Conn
	// guards fr's writes and enc
	mu     sync.Mutex
	fr     *http2.Framer
	enc    *hpack.Encoder
	encBuf bytes.Buffer

	frames chan http2.Frame
	// readErr is why the reading ended, once frames is closed.
	readErr error
}

// dialRawH2 opens an HTTP/2 connection to h (h2 by ALPN over TLS, h2c
// with prior knowledge in cleartext) and sends the preface with settings.
func dialRawH2(t *testing.T, h *harness, settings ...http2.Setting) *rawH2 {
	t.Helper()
	var c net.Conn
	var err error
	if h.tls != nil {
		cfg := h.tls.Clone()
		cfg.NextProtos = []string{"h2"}
		tc, terr := tls.Dial("tcp", h.addr, cfg)
		if terr == nil && tc.ConnectionState().NegotiatedProtocol != "h2" {
			t.Fatalf("ALPN chose %q, want h2", tc.ConnectionState().NegotiatedProtocol)
		}
		c, err = tc, terr
	} else {
		c, err = net.Dial("tcp", h.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawH2{t: t, conn: c, frames: make(chan http2.Frame, 1<<16)}
	r.fr = http2.NewFramer(c, c)
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.fr.MaxHeaderListSize = 1 << 20
	r.enc = hpack.NewEncoder(&r.encBuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	go r.read()
	return r
}

func (r *rawH2) read() {
	defer close(r.frames)
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.readErr = err
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				r.write(func() error { return r.fr.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				r.write(func() error { return r.fr.WritePing(true, f.Data) })
			}
		case *http2.DataFrame:
			// Frames are reused by the next read: keep a copy of the data.
			f = &http2.DataFrame{FrameHeader: f.FrameHeader}
		}
		r.frames <- f
	}
}

// write runs a write of frames under the writing lock.
func (r *rawH2) write(fn func() error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fn()
}

// block encodes header fields ("name", "value" pairs) into a header block.
func (r *rawH2) block(fields ...string) []byte {
	r.encBuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		r.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(r.encBuf.Bytes())
}

// request is the header block of a GET of path, then extra fields.
func (r *rawH2) request(path string, extra ...string) []byte {
	return r.block(append([]string{":method", "GET", ":scheme", "http", ":path", path, ":authority", "podpin.test"}, extra...)...)
}

// headers sends a whole header block on stream id, ending the stream.
func (r *rawH2) headers(id uint32, block []byte) error {
	return r.write(func() error {
		return r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true})
	})
}

// until reads frames until ok says so, and returns the frame it chose, or
// nil if the connection ended or the time ran out first.
func (r *rawH2) until(d time.Duration, ok func(http2.Frame) bool) http2.Frame {
	timeout := time.After(d)
	for {
		select {
		case f, open := <-r.frames:
			if !open {
				return nil
			}
			if ok(f) {
				return f
			}
		case <-timeout:
			return nil
		}
	}
}

// ended reports whether podpin closed the connection within d (after a
// GOAWAY or not), reading and dropping frames until then.
func (r *rawH2) ended(d time.Duration) bool {
	r.until(d, func(http2.Frame) bool { return false })
	select {
	case _, open := <-r.frames:
		return !open
	default:
		return false
	}
}

// goroutinesBack waits until the process has at most want goroutines
// again, and fails the test if it does not within 10s. The idle
// connections podpin keeps to the pods (upstream.idleConnTimeout) are
// closed first: their goroutines, podpin's and the pod's, are the pool's,
// not the attack's.
func goroutinesBack(t *testing.T, h *harness, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > want {
		for _, r := range h.p.state.Load().routes {
			r.transports.http1.CloseIdleConnections()
			r.transports.h2c.CloseIdleConnections()
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines remain, want at most %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHTTP2RapidReset opens and at once resets thousands of streams
// (CVE-2023-44487). Each reset stream may cost a handler at most: podpin
// runs at most maxConcurrentStreams of them at once and closes the
// connection when the resets outrun them.
func TestHTTP2RapidReset(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{true: "tls", false: "h2c"}[tlsOn], func(t *testing.T) {
			pod := newAbusePod(t, nil)
			h := startAbuseProxy(t, pod, config.Limits{}, tlsOn)
			checkServed(t, h, "before the attack")
			before := runtime.NumGoroutine()
			r := dialRawH2(t, h)
			const streams = 5000
			block := r.request("/attack")
			sent := 0
			for i := range streams {
				id := uint32(2*i + 1)
				err := r.write(func() error {
					if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
						return err
					}
					return r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
				})
				if err != nil {
					break // podpin closed the connection
				}
				sent++
			}
			checkServed(t, h, "during the attack")
			ended := r.ended(5 * time.Second)
			r.conn.Close()
			checkServed(t, h, "after the attack")
			goroutinesBack(t, h, before+5)
			t.Logf("sent %d HEADERS+RST_STREAM pairs; podpin closed the connection: %v; the pod saw %d", sent, ended, pod.attacks.Load())
			if !ended {
				t.Errorf("the connection is still open after %d resets, want it closed", sent)
			}
			// A stream may reach the pod before its reset arrives: at
			// most the streams of one reset window and the handlers
			// running when it closed.
			if n, most := pod.attacks.Load(), int64(resetWindow+config.DefaultMaxStreams); n > most {
				t.Errorf("the pod saw %d of %d reset requests, want at most %d", n, sent, most)
			}
		})
	}
}
