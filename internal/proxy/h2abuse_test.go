package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
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
	if err := served(h); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

// servedDuring sends well-behaved requests, one after another, until the
// returned function is called (at least one); that function fails the
// test if any was not served.
func servedDuring(t *testing.T, h *harness) (stop func()) {
	done := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		for {
			if err := served(h); err != nil {
				result <- err
				return
			}
			select {
			case <-done:
				result <- nil
				return
			default:
			}
		}
	}()
	return func() {
		t.Helper()
		close(done)
		if err := <-result; err != nil {
			t.Errorf("during the attack: %v", err)
		}
	}
}

// served sends a well-behaved request over a connection of its own, in
// HTTP/2, and returns an error unless the pod answers it.
func served(h *harness) error {
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
		return fmt.Errorf("a well-behaved client: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "web-0" || resp.ProtoMajor != 2 {
		return fmt.Errorf("a well-behaved client got %s %d %q, want HTTP/2 200 from web-0", resp.Proto, resp.StatusCode, b)
	}
	return nil
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

	frames chan frame
	// readErr is why the reading ended, once frames is closed.
	readErr error
}

// dialH2 opens a connection to h for HTTP/2: h2 by ALPN over TLS, a
// plain one in cleartext. readBuffer, when not 0, sizes the socket's
// receive buffer. It is closed when the test ends.
func dialH2(t *testing.T, h *harness, readBuffer int) net.Conn {
	t.Helper()
	tcp, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	if readBuffer > 0 {
		tcp.(*net.TCPConn).SetReadBuffer(readBuffer)
	}
	if h.tls == nil {
		return tcp
	}
	cfg := h.tls.Clone()
	cfg.NextProtos = []string{"h2"}
	tc := tls.Client(tcp, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	return tc
}

// dialRawH2 opens an HTTP/2 connection to h (dialH2) and sends the
// preface with settings.
func dialRawH2(t *testing.T, h *harness, settings ...http2.Setting) *rawH2 {
	t.Helper()
	c := dialH2(t, h, 0)
	r := &rawH2{t: t, conn: c, frames: make(chan frame, 1<<16)}
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

// frame is what the tests read of a frame from podpin: the Framer reuses
// its frames, so the reading goroutine copies this much out.
type frame struct {
	typ      http2.FrameType
	streamID uint32
	ack      bool
	errCode  http2.ErrCode // of RST_STREAM and GOAWAY
	status   string        // :status of a response's HEADERS
	settings map[http2.SettingID]uint32
}

func (f *frame) String() string {
	if f == nil {
		return "no frame"
	}
	return fmt.Sprintf("%v stream %d (status %q, code %v)", f.typ, f.streamID, f.status, f.errCode)
}

func (r *rawH2) read() {
	defer close(r.frames)
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.readErr = err
			return
		}
		out := frame{typ: f.Header().Type, streamID: f.Header().StreamID}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			out.ack = f.IsAck()
			if !f.IsAck() {
				out.settings = map[http2.SettingID]uint32{}
				f.ForeachSetting(func(s http2.Setting) error {
					out.settings[s.ID] = s.Val
					return nil
				})
				r.write(func() error { return r.fr.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				r.write(func() error { return r.fr.WritePing(true, f.Data) })
			}
		case *http2.MetaHeadersFrame:
			out.status = f.PseudoValue("status")
		case *http2.RSTStreamFrame:
			out.errCode = f.ErrCode
		case *http2.GoAwayFrame:
			out.errCode = f.ErrCode
		}
		r.frames <- out
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
func (r *rawH2) until(d time.Duration, ok func(frame) bool) *frame {
	timeout := time.After(d)
	for {
		select {
		case f, open := <-r.frames:
			if !open {
				return nil
			}
			if ok(f) {
				return &f
			}
		case <-timeout:
			return nil
		}
	}
}

// ended reports whether podpin closed the connection within d (after a
// GOAWAY or not), reading and dropping frames until then.
func (r *rawH2) ended(d time.Duration) bool {
	r.until(d, func(frame) bool { return false })
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
			for _, pd := range r.pods.Load().all {
				pd.client.CloseIdleConnections()
			}
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
			stop := servedDuring(t, h)
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
			stop()
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

// TestHTTP2ContinuationFlood sends a HEADERS frame without END_HEADERS and
// then CONTINUATION frames without end (CVE-2023-45288 in Go): podpin
// must close the connection instead of reading and decoding forever.
func TestHTTP2ContinuationFlood(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{true: "tls", false: "h2c"}[tlsOn], func(t *testing.T) {
			continuationFlood(t, tlsOn)
		})
	}
}

func continuationFlood(t *testing.T, tlsOn bool) {
	pod := newAbusePod(t, nil)
	h := startAbuseProxy(t, pod, config.Limits{}, tlsOn)
	before := runtime.NumGoroutine()
	r := dialRawH2(t, h)
	if err := r.write(func() error {
		return r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.request("/attack"), EndStream: true})
	}); err != nil {
		t.Fatal(err)
	}
	// Each frame is a whole, valid header field of 16 KiB less a little.
	frag := r.block("x-flood", strings.Repeat("a", 16<<10-64))
	const most = 64 << 20
	sent := 0
	var closed atomic.Bool
	go func() {
		r.ended(30 * time.Second)
		closed.Store(true)
	}()
	stop := servedDuring(t, h)
	for sent < most && !closed.Load() {
		if err := r.write(func() error { return r.fr.WriteContinuation(1, false, frag) }); err != nil {
			break
		}
		sent += len(frag)
	}
	stop()
	if !r.ended(10 * time.Second) {
		t.Fatalf("podpin still reads after %d MiB of CONTINUATION frames, want the connection closed", sent>>20)
	}
	t.Logf("podpin closed the connection after %d KiB of CONTINUATION frames (the socket buffers hold part of them)", sent>>10)
	checkServed(t, h, "after the attack")
	if n := pod.attacks.Load(); n != 0 {
		t.Errorf("the pod saw %d requests of the attack, want none", n)
	}
	goroutinesBack(t, h, before+5)
}

// TestHTTP2HPACKBomb adds one large field to the connection's header table
// and then names it thousands of times, one byte each: a small header
// block that decodes to megabytes. The decoded size counts against
// limits.maxHeaderBytes, so the request gets 431 and reaches no pod.
func TestHTTP2HPACKBomb(t *testing.T) {
	pod := newAbusePod(t, nil)
	h := startAbuseProxy(t, pod, config.Limits{}, false)
	r := dialRawH2(t, h)
	// A literal field with incremental indexing takes index 62, the first
	// of the dynamic table (RFC 7541, section 2.3.3); 0xbe names it.
	field := r.block("x-bomb", strings.Repeat("b", 4000))
	block := append(r.request("/attack"), field...)
	for range 3000 {
		block = append(block, 0xbe)
	}
	if len(block) > 16<<10 {
		t.Fatalf("the block is %d bytes: it must fit one frame", len(block))
	}
	if err := r.headers(1, block); err != nil {
		t.Fatal(err)
	}
	f := r.until(10*time.Second, func(f frame) bool {
		return f.streamID == 1 && (f.typ == http2.FrameHeaders || f.typ == http2.FrameRSTStream) || f.typ == http2.FrameGoAway
	})
	if f == nil || f.typ != http2.FrameHeaders || f.status != "431" {
		t.Fatalf("got %v (%v), want 431 for a header block of 12 MB decoded", f, r.readErr)
	}
	checkServed(t, h, "after the attack")
	if n := pod.attacks.Load(); n != 0 {
		t.Errorf("the pod saw %d requests of the attack, want none", n)
	}
}

// TestHTTP2OversizeHeaderList sends header lists over the limits: larger
// than limits.maxHeaderBytes, and with more fields than limits.maxHeaders.
// None reaches the pod. A list over the limits gets 431 on its stream and
// the connection stays usable; a single field longer than the whole limit
// cannot even be decoded (net/http's HPACK decoder refuses a string longer
// than the limit), which ends the connection with COMPRESSION_ERROR.
func TestHTTP2OversizeHeaderList(t *testing.T) {
	pod := newAbusePod(t, nil)
	h := startAbuseProxy(t, pod, config.Limits{MaxHeaderBytes: 8 << 10, MaxHeaders: 20}, false)
	var many []string
	for i := range 30 {
		many = append(many, fmt.Sprintf("x-field-%d", i), "v")
	}
	for _, c := range []struct {
		name   string
		fields []string
		goaway bool // the connection ends with COMPRESSION_ERROR
	}{
		{"fields adding up over maxHeaderBytes", []string{"x-a", strings.Repeat("a", 3<<10), "x-b", strings.Repeat("b", 3<<10), "x-c", strings.Repeat("c", 3<<10)}, false},
		{"more fields than maxHeaders", many, false},
		{"one field longer than maxHeaderBytes", []string{"x-big", strings.Repeat("c", 9<<10)}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := dialRawH2(t, h)
			if err := r.headers(1, r.request("/attack", c.fields...)); err != nil {
				t.Fatal(err)
			}
			f := r.until(10*time.Second, func(f frame) bool {
				return f.streamID == 1 && (f.typ == http2.FrameHeaders || f.typ == http2.FrameRSTStream) || f.typ == http2.FrameGoAway
			})
			if c.goaway {
				if f == nil || f.typ != http2.FrameGoAway || f.errCode != http2.ErrCodeCompression {
					t.Fatalf("got %v, want GOAWAY with COMPRESSION_ERROR", f)
				}
				if !r.ended(10 * time.Second) {
					t.Error("the connection is still open after the GOAWAY")
				}
				return
			}
			if f == nil || f.typ != http2.FrameHeaders || f.status != "431" {
				t.Fatalf("got %v (%v), want a 431 answer", f, r.readErr)
			}
			// The same connection still serves a request within the
			// limits.
			if err := r.headers(3, r.request("/ok")); err != nil {
				t.Fatal(err)
			}
			f = r.until(10*time.Second, func(f frame) bool { return f.typ == http2.FrameHeaders && f.streamID == 3 })
			if f == nil || f.status != "200" {
				t.Errorf("a request within the limits on the same connection: got %v, want 200", f)
			}
		})
	}
	checkServed(t, h, "after the attack")
	if n := pod.attacks.Load(); n != 0 {
		t.Errorf("the pod saw %d requests of the attack, want none", n)
	}
}

// TestHTTP2StreamsOverTheLimit opens limits.maxConcurrentStreams streams
// that the pod holds, then more: the extra streams are refused with
// RST_STREAM and never reach the pod.
func TestHTTP2StreamsOverTheLimit(t *testing.T) {
	const limit = 4
	release := make(chan struct{})
	pod := newAbusePod(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	h := startAbuseProxy(t, pod, config.Limits{MaxConcurrentStreams: limit}, false)
	r := dialRawH2(t, h)
	// Wait for podpin's SETTINGS (acknowledged by the reading goroutine),
	// which announces the limit.
	s := r.until(10*time.Second, func(f frame) bool { return f.typ == http2.FrameSettings && !f.ack })
	if s == nil {
		t.Fatal("no SETTINGS from podpin")
	}
	if v, ok := s.settings[http2.SettingMaxConcurrentStreams]; !ok || v != limit {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d", v, limit)
	}
	block := r.request("/attack")
	for i := range limit {
		if err := r.headers(uint32(2*i+1), block); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the pod holds the streams within the limit", func() bool { return pod.attacks.Load() == limit })
	refused := map[uint32]http2.ErrCode{}
	for i := limit; i < limit+20; i++ {
		id := uint32(2*i + 1)
		if err := r.headers(id, block); err != nil {
			t.Fatal(err)
		}
		f := r.until(10*time.Second, func(f frame) bool { return f.typ == http2.FrameRSTStream && f.streamID == id })
		if f == nil {
			t.Fatalf("stream %d over the limit: no RST_STREAM: %v", id, r.readErr)
		}
		refused[id] = f.errCode
	}
	for id, code := range refused {
		if code != http2.ErrCodeProtocol && code != http2.ErrCodeRefusedStream {
			t.Errorf("stream %d refused with %v, want PROTOCOL_ERROR or REFUSED_STREAM", id, code)
		}
	}
	checkServed(t, h, "during the attack")
	free()
	if n := pod.attacks.Load(); n != limit {
		t.Errorf("the pod saw %d streams, want the %d within the limit", n, limit)
	}
	checkServed(t, h, "after the attack")
}

// slowReaderLimits make the write timeout of a test short.
var slowReaderLimits = config.Limits{BodyTimeout: time.Second}

// TestHTTP2SlowReaders asks for a large response and never reads it: in
// one case the client opens no flow-control window (SETTINGS_INITIAL_WINDOW_SIZE
// 0), so podpin cannot send; in the other it stops reading the socket. In
// both podpin gives up on the stream within limits.bodyTimeout and lets go
// of the pod's connection, holding no goroutine for it.
func TestHTTP2SlowReaders(t *testing.T) {
	chunk := []byte(strings.Repeat("z", 32<<10))
	noWindow := []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 0}}
	for _, c := range []struct {
		name     string
		settings []http2.Setting
		short    bool // the answer is 1 KiB, not 1 GiB
	}{
		{"a client that opens no window", noWindow, false},
		{"a client that opens no window for a short answer", noWindow, true},
		{"a client that stops reading the socket", nil, false},
	} {
		for _, tlsOn := range []bool{false, true} {
			t.Run(c.name+map[bool]string{true: " over tls", false: " over h2c"}[tlsOn], func(t *testing.T) {
				slowReader(t, tlsOn, c.settings, c.short, chunk)
			})
		}
	}
}

// slowReader is one case of TestHTTP2SlowReaders: a client with settings
// (nil: one that stops reading the socket) asks for a long answer, or a
// short one.
func slowReader(t *testing.T, tlsOn bool, settings []http2.Setting, short bool, chunk []byte) {
	podDone := make(chan error, 1)
	pod := newAbusePod(t, func(w http.ResponseWriter, r *http.Request) {
		if short {
			w.Write(chunk[:1<<10])
			return
		}
		// Far more than the socket buffers between the pod and the client
		// hold: 1 GiB.
		var err error
		for i := 0; i < 1<<15 && err == nil; i++ {
			_, err = w.Write(chunk)
		}
		podDone <- err
	})
	h := startAbuseProxy(t, pod, slowReaderLimits, tlsOn)
	// A request first: the pod connection it leaves idle in podpin's
	// pool (and its goroutine in the pod) is in the baseline, as the one
	// the request after the attack leaves is after it.
	checkServed(t, h, "before the attack")
	before := runtime.NumGoroutine()
	var r *rawH2
	if settings != nil {
		r = dialRawH2(t, h, settings...)
		// The connection stays open: count its goroutines (two of
		// podpin's, the reader's here) in the baseline.
		if r.until(10*time.Second, func(f frame) bool { return f.typ == http2.FrameSettings }) == nil {
			t.Fatal("no SETTINGS from podpin")
		}
		before = runtime.NumGoroutine()
	} else {
		// A client that never reads: its frames are not read at all, so
		// the socket's buffers fill.
		conn := dialH2(t, h, 4<<10)
		r = &rawH2{t: t, conn: conn, fr: http2.NewFramer(conn, nil)}
		r.enc = hpack.NewEncoder(&r.encBuf)
		io.WriteString(conn, http2.ClientPreface)
		r.fr.WriteSettings()
		r.fr.WriteSettingsAck()
		// The whole connection's window: 1 GiB.
		r.fr.WriteWindowUpdate(0, 1<<30)
	}
	if err := r.headers(1, r.request("/attack")); err != nil {
		t.Fatal(err)
	}
	if settings == nil {
		r.fr.WriteWindowUpdate(1, 1<<30)
	}
	start := time.Now()
	if !short {
		select {
		case err := <-podDone:
			if err == nil {
				t.Fatal("the pod wrote 1 GiB to a client that reads nothing")
			}
			t.Logf("the pod's connection was dropped after %v: %v", time.Since(start).Round(100*time.Millisecond), err)
		case <-time.After(30 * time.Second):
			// Generous: the buffers between the pod and the client fill
			// first, slowly under the race detector over TLS.
			t.Fatalf("the pod still writes after 30s, want podpin to give up after limits.bodyTimeout (%v) without progress", slowReaderLimits.BodyTimeout)
		}
	}
	if settings != nil {
		rst := r.until(10*time.Second, func(f frame) bool { return f.typ == http2.FrameRSTStream && f.streamID == 1 })
		if rst == nil {
			t.Errorf("no RST_STREAM for the stream: %v", r.readErr)
		}
	}
	checkServed(t, h, "after the attack")
	goroutinesBack(t, h, before+5)
	// The stream ended, however it ended: its pod soon has no request in
	// flight (least-conn counts them); the handler may still be returning
	// when the pod's connection has already dropped.
	pd, _ := h.p.state.Load().routes[0].pods.Load().Pod("web-0")
	waitUntil(t, "web-0 has no request in flight after the stream ended", func() bool { return pd.Tally().InFlight() == 0 })
}

func TestResetFloodWindow(t *testing.T) {
	for _, c := range []struct {
		name       string
		everyReset int // one stream in every n is reset; 0: none
		streams    int
		want       bool // the connection is closed
	}{
		{"no resets", 0, 1000, false},
		{"a browser or gRPC client cancelling one stream in two", 2, 1000, false},
		{"every stream reset, but fewer than a window", 1, resetWindow - 1, false},
		{"every stream reset for a window", 1, resetWindow, true},
		{"three in four reset, exactly the bound", 4, 1000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cc := &clientConn{}
			closed := false
			for i := range c.streams {
				reset := c.everyReset == 1 || c.everyReset == 4 && i%4 != 0 || c.everyReset == 2 && i%2 == 0
				if cc.resetFlood(reset) {
					closed = true
					break
				}
			}
			if closed != c.want {
				t.Errorf("closed %v, want %v", closed, c.want)
			}
		})
	}
}

// TestHTTP2LateCancellationsKeepTheConnection: a client whose calls time
// out while a pod is slow resets every stream, but after more than a
// second, so it is no rapid reset: its connection stays open.
func TestHTTP2LateCancellationsKeepTheConnection(t *testing.T) {
	pod := newAbusePod(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	h := startAbuseProxy(t, pod, config.Limits{}, false)
	h.useHTTP2()
	// Two rounds of 70 calls: within maxConcurrentStreams (100), so the
	// client keeps them on one connection, and more than a window.
	const rounds, calls = 2, 70
	for range rounds {
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+h.addr+"/attack", nil)
				if resp, err := h.client.Do(req); err == nil {
					resp.Body.Close()
					t.Errorf("a call to a pod that answers in 10s ended before its deadline: %s", resp.Status)
				}
			})
		}
		wg.Wait()
	}
	if n := pod.attacks.Load(); n != rounds*calls {
		t.Errorf("the pod saw %d calls, want %d", n, rounds*calls)
	}
	reused := false
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+h.addr+"/ok", nil)
	resp, body := h.do(req)
	if resp.StatusCode != 200 || body != "web-0" {
		t.Fatalf("got %d %q, want 200 from web-0", resp.StatusCode, body)
	}
	if !reused {
		t.Errorf("the connection was closed after %d late cancellations, want it kept", rounds*calls)
	}
}
