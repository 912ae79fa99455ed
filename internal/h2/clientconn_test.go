package h2

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// The servers of the client's tests are real ones: x/net's http2.Server
// and podpin's own Server, both speaking h2c with prior knowledge,
// grpc-go's server, and, for what those never do, a raw server that
// writes and reads frames itself.

// reqFields is a request's fields: its pseudo-header fields, then extra,
// given as name, value, name, value...
func reqFields(method, path string, extra ...string) []HeaderField {
	f := []HeaderField{
		{Name: ":method", Value: method},
		{Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "podpin.test"},
		{Name: ":path", Value: path},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f = append(f, HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return f
}

// fieldValue is the value of the first field named name, or "".
func fieldValue(fields []HeaderField, name string) string {
	for _, f := range fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// randomBytes is n bytes from seed: the same seed, the same bytes.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// await runs f and returns what it returns, failing the test when it has
// not returned within wait.
func await[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("%s: not over within %v", what, wait)
		panic("unreachable")
	}
}

// eventually waits for cond to hold, for wait at most.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so within %v", what, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitFor waits for ch to be closed or to receive, for wait at most.
func waitFor[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("%s: not within %v", what, wait)
		panic("unreachable")
	}
}

// reply is what a stream brought back.
type reply struct {
	status  int
	header  []HeaderField
	body    []byte
	trailer []HeaderField
	err     error
}

func readReply(s *ClientStream) reply {
	var r reply
	r.status, r.header, r.err = s.Response()
	if r.err != nil {
		return r
	}
	r.body, r.err = io.ReadAll(s)
	r.trailer = s.Trailer()
	return r
}

// getReply reads s's answer to its end.
func getReply(t *testing.T, s *ClientStream) reply {
	t.Helper()
	return await(t, "the answer", func() reply { return readReply(s) })
}

// okReply fails the test unless r is a 200 with body.
func okReply(t *testing.T, r reply, body string) {
	t.Helper()
	if r.err != nil || r.status != 200 || string(r.body) != body {
		t.Fatalf("answer: status %d, body %q, error %v; want 200, %q", r.status, r.body, r.err, body)
	}
}

// xnetPeer is x/net's http2.Server serving h2c with prior knowledge on a
// loopback listener.
type xnetPeer struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func serveXNet(t *testing.T, srv *http2.Server, h http.Handler) *xnetPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &xnetPeer{addr: ln.Addr().String()}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, nc)
			p.mu.Unlock()
			go func() {
				srv.ServeConn(nc, &http2.ServeConnOpts{Handler: h})
				nc.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.closeConns()
	})
	return p
}

// closeConns closes the server's side of every connection accepted.
func (p *xnetPeer) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, nc := range p.conns {
		nc.Close()
	}
}

// servePodpin serves h with podpin's Server and set.
func servePodpin(t *testing.T, set Settings, h HandlerFunc) string {
	t.Helper()
	return serve(t, &Server{Settings: set}, h)
}

// countConn is a client's socket that keeps a copy of every write and
// tells when it is closed.
type countConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	closed atomic.Bool
}

func (c *countConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

func (c *countConn) written() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slicesClone(c.writes)
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

// dialClient connects a ClientConn to addr through a countConn.
func dialClient(t *testing.T, addr string, set ClientSettings) (*ClientConn, *countConn) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cc := &countConn{Conn: nc}
	c := NewClientConn(cc, set)
	t.Cleanup(func() { c.Close() })
	return c, cc
}

// framesOf parses the frames in one write of the client.
func framesOf(t *testing.T, b []byte) []http2.Frame {
	t.Helper()
	b = bytes.TrimPrefix(b, []byte(http2.ClientPreface))
	fr := http2.NewFramer(nil, bytes.NewReader(b))
	var frames []http2.Frame
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			return frames
		}
		if err != nil {
			t.Fatalf("a write of the client does not hold whole frames: %v", err)
		}
		if d, ok := f.(*http2.DataFrame); ok {
			f = &dataFrame{DataFrame: d, payload: bytes.Clone(d.Data())}
		}
		frames = append(frames, f)
	}
}

// openStreams counts the streams c still knows.
func (c *ClientConn) openStreams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}

func TestClientRequestAndAnswerWithXNet(t *testing.T) {
	peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Got", r.Method+" "+r.URL.Path+" "+r.Header.Get("X-Upper")+" "+r.Header.Get("Te")+" "+r.Host)
		w.WriteHeader(201)
		w.Write([]byte("pong:"))
		w.Write(body)
		w.Header().Set("X-Sum", strconv.Itoa(len(body)))
	}))
	c, _ := dialClient(t, peer.addr, ClientSettings{})
	// Connection-specific fields are left out (the server would reset
	// the stream for them), names go in lower case.
	s, err := c.NewStream(reqFields("POST", "/ping", "X-Upper", "v", "Connection", "keep-alive", "Transfer-Encoding", "chunked", "TE", "gzip"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteData([]byte("ping"), true); err != nil {
		t.Fatal(err)
	}
	r := getReply(t, s)
	if r.err != nil || r.status != 201 || string(r.body) != "pong:ping" {
		t.Fatalf("answer: %d %q %v", r.status, r.body, r.err)
	}
	if got := fieldValue(r.header, "x-got"); got != "POST /ping v  podpin.test" {
		t.Errorf("the server saw %q", got)
	}
	if got := fieldValue(r.trailer, "x-sum"); got != "4" {
		t.Errorf("trailers after io.EOF: %v, want x-sum: 4", r.trailer)
	}
	if n := c.openStreams(); n != 0 {
		t.Errorf("%d streams still known after a complete exchange", n)
	}
	// A second request on the same connection.
	s, err = c.NewStream(reqFields("GET", "/again"), true)
	if err != nil {
		t.Fatal(err)
	}
	if r := getReply(t, s); r.err != nil || r.status != 201 || string(r.body) != "pong:" {
		t.Fatalf("second answer: %d %q %v", r.status, r.body, r.err)
	}
	s.Close()
}

func TestClientRequestAndAnswerWithPodpinServer(t *testing.T) {
	addr := servePodpin(t, Settings{}, func(s *Stream) {
		body, _ := io.ReadAll(s)
		// An informational answer first: the client skips it.
		s.WriteHeaders(103, []HeaderField{{Name: "link", Value: "</style.css>; rel=preload"}}, false)
		s.WriteHeaders(200, []HeaderField{{Name: "x-got", Value: s.Method + " " + s.Path + " " + s.HeaderValue("x-upper")}}, false)
		s.WriteData(append([]byte("pong:"), body...), false)
		s.WriteTrailers([]HeaderField{{Name: "grpc-status", Value: "0"}, {Name: "x-trailer-len", Value: strconv.Itoa(len(s.Trailer()))}})
	})
	c, _ := dialClient(t, addr, ClientSettings{})
	s, err := c.NewStream(reqFields("POST", "/ping", "X-UPPER", "v"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteData([]byte("ping"), true); err != nil {
		t.Fatal(err)
	}
	r := getReply(t, s)
	okReply(t, r, "pong:ping")
	if got := fieldValue(r.header, "x-got"); got != "POST /ping v" {
		t.Errorf("the server saw %q", got)
	}
	if fieldValue(r.header, "link") != "" {
		t.Errorf("the informational answer's fields came as the final one's: %v", r.header)
	}
	if fieldValue(r.trailer, "grpc-status") != "0" {
		t.Errorf("trailers: %v", r.trailer)
	}
}

func TestClientUnaryRequestGoesOutInOneWrite(t *testing.T) {
	peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}))
	c, cc := dialClient(t, peer.addr, ClientSettings{})
	// The first exchange settles the connection (SETTINGS both ways).
	s, _ := c.NewStream(reqFields("POST", "/warm"), true)
	okReply(t, getReply(t, s), "")
	mark := len(cc.written())

	s, err := c.NewStream(reqFields("POST", "/unary", "content-type", "application/grpc", "te", "trailers"), false)
	if err != nil {
		t.Fatal(err)
	}
	msg := append([]byte{0, 0, 0, 0, 5}, "hello"...)
	if err := s.WriteData(msg, true); err != nil {
		t.Fatal(err)
	}
	okReply(t, getReply(t, s), string(msg))

	var found [][]string
	for _, w := range cc.written()[mark:] {
		var kinds []string
		for _, f := range framesOf(t, w) {
			if f.Header().StreamID != 3 {
				continue
			}
			switch f := f.(type) {
			case *http2.HeadersFrame:
				kinds = append(kinds, "HEADERS"+plusEnd(f.StreamEnded()))
			case *dataFrame:
				if !bytes.Equal(f.payload, msg) && len(f.payload) > 0 {
					t.Errorf("DATA %q, want %q", f.payload, msg)
				}
				kinds = append(kinds, "DATA"+plusEnd(f.StreamEnded()))
			default:
				kinds = append(kinds, fmt.Sprintf("%T", f))
			}
		}
		if kinds != nil {
			found = append(found, kinds)
		}
	}
	if len(found) != 1 || strings.Join(found[0], " ") != "HEADERS DATA+END" {
		t.Fatalf("the request's frames by write: %v; want one write of HEADERS DATA+END", found)
	}
}

// echoXNet answers a request with its body, as it comes.
var echoXNet = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
			rc.Flush()
		}
		if err != nil {
			return
		}
	}
})

// echoPodpin answers a request with its body, as it comes.
func echoPodpin(s *Stream) {
	s.WriteHeaders(200, nil, false)
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if s.WriteData(buf[:n], false) != nil {
				return
			}
		}
		if err == io.EOF {
			s.WriteTrailers([]HeaderField{{Name: "x-end", Value: "1"}})
			return
		}
		if err != nil {
			return
		}
	}
}

// echoThrough sends body on a new stream of c in pieces while it reads
// the answer, and returns the answer's body's hash and length.
func echoThrough(c *ClientConn, body []byte, piece int) (sum [32]byte, n int64, err error) {
	s, err := c.NewStream(reqFields("POST", "/echo"), false)
	if err != nil {
		return sum, 0, err
	}
	defer s.Close()
	werr := make(chan error, 1)
	go func() {
		p := body
		for len(p) > 0 {
			k := min(piece, len(p))
			if err := s.WriteData(p[:k], false); err != nil {
				werr <- err
				return
			}
			p = p[k:]
		}
		werr <- s.WriteData(nil, true)
	}()
	status, _, err := s.Response()
	if err != nil {
		return sum, 0, err
	}
	if status != 200 {
		return sum, 0, fmt.Errorf("status %d", status)
	}
	h := sha256.New()
	n, err = io.Copy(h, s)
	if err != nil {
		return sum, n, err
	}
	if err := <-werr; err != nil {
		return sum, n, fmt.Errorf("writing the body: %w", err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, n, nil
}

func TestClientLargeBodiesBothWaysUnderFlowControl(t *testing.T) {
	body := randomBytes(6<<20+12345, 1)
	want := sha256.Sum256(body)
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"x/net", func(t *testing.T) string {
			return serveXNet(t, &http2.Server{MaxUploadBufferPerStream: 16 << 10, MaxUploadBufferPerConnection: 65535}, echoXNet).addr
		}},
		{"podpin", func(t *testing.T) string {
			return servePodpin(t, Settings{WindowSize: 16 << 10}, echoPodpin)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The client's own windows are small too: the answer waits
			// for the client's reads.
			c, _ := dialClient(t, tc.addr(t), ClientSettings{WindowSize: 32 << 10})
			type result struct {
				sum [32]byte
				n   int64
				err error
			}
			r := await(t, "the echo", func() result {
				sum, n, err := echoThrough(c, body, 100<<10+7)
				return result{sum, n, err}
			})
			if r.err != nil || r.n != int64(len(body)) || r.sum != want {
				t.Fatalf("echo of %d bytes: %d bytes back, same: %v, error %v", len(body), r.n, r.sum == want, r.err)
			}
		})
	}
}

func TestClientManyConcurrentStreamsOnOneConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"x/net", func(t *testing.T) string { return serveXNet(t, &http2.Server{}, echoXNet).addr }},
		{"podpin", func(t *testing.T) string { return servePodpin(t, Settings{}, echoPodpin) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := dialClient(t, tc.addr(t), ClientSettings{WindowSize: 256 << 10})
			const n = 64
			errs := make(chan error, n)
			for i := range n {
				go func() {
					body := randomBytes(i*3001+i%7, uint64(i))
					sum, got, err := echoThrough(c, body, 8<<10)
					if err == nil && (got != int64(len(body)) || sum != sha256.Sum256(body)) {
						err = fmt.Errorf("%d bytes back of %d, or not the same", got, len(body))
					}
					if err != nil {
						err = fmt.Errorf("stream %d: %w", i, err)
					}
					errs <- err
				}()
			}
			for range n {
				if err := waitFor(t, "the streams", errs); err != nil {
					t.Error(err)
				}
			}
			if c.Err() != nil {
				t.Errorf("the connection failed: %v", c.Err())
			}
			eventually(t, "every stream forgotten", func() bool { return c.openStreams() == 0 })
		})
	}
}

// rawCodec is a gRPC codec of bytes as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)      { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error { *v.(*[]byte) = bytes.Clone(data); return nil }
func (rawCodec) Name() string                       { return "raw" }

func serveGRPC(t *testing.T, srv *grpc.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// grpcFrame is msg with the gRPC message prefix.
func grpcFrame(msg []byte) []byte {
	b := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// grpcMessages splits a body into its gRPC messages.
func grpcMessages(b []byte) ([][]byte, error) {
	var msgs [][]byte
	for len(b) > 0 {
		if len(b) < 5 || b[0] != 0 {
			return nil, fmt.Errorf("a bad message prefix: % x", b[:min(5, len(b))])
		}
		n := int(binary.BigEndian.Uint32(b[1:]))
		if len(b) < 5+n {
			return nil, fmt.Errorf("a message of %d bytes cut at %d", n, len(b)-5)
		}
		msgs = append(msgs, b[5:5+n])
		b = b[5+n:]
	}
	return msgs, nil
}

func grpcFields(path string) []HeaderField {
	return reqFields("POST", path, "content-type", "application/grpc", "te", "trailers", "grpc-timeout", "30S")
}

func TestClientGRPCUnaryCall(t *testing.T) {
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	c, _ := dialClient(t, serveGRPC(t, srv), ClientSettings{})

	req, err := proto.Marshal(&healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewStream(grpcFields("/grpc.health.v1.Health/Check"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteData(grpcFrame(req), true); err != nil {
		t.Fatal(err)
	}
	r := getReply(t, s)
	if r.err != nil || r.status != 200 {
		t.Fatalf("answer: %d, %v", r.status, r.err)
	}
	if ct := fieldValue(r.header, "content-type"); ct != "application/grpc" {
		t.Errorf("content-type %q", ct)
	}
	msgs, err := grpcMessages(r.body)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("answer's messages: %d, %v", len(msgs), err)
	}
	var resp healthpb.HealthCheckResponse
	if err := proto.Unmarshal(msgs[0], &resp); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v, %v", resp.Status, err)
	}
	if st := fieldValue(r.trailer, "grpc-status"); st != "0" {
		t.Errorf("trailers %v, want grpc-status 0", r.trailer)
	}

	// A method the server does not have: a trailers-only answer, its
	// status in the one header block.
	s, err = c.NewStream(grpcFields("/grpc.health.v1.Health/Nope"), false)
	if err != nil {
		t.Fatal(err)
	}
	s.WriteData(grpcFrame(req), true)
	r = getReply(t, s)
	if r.err != nil || r.status != 200 || len(r.body) != 0 {
		t.Fatalf("answer: %d %q %v", r.status, r.body, r.err)
	}
	if st := fieldValue(r.header, "grpc-status"); st != "12" {
		t.Errorf("grpc-status %q, want 12 (unimplemented); header %v", st, r.header)
	}
}

func TestClientGRPCStreamingEcho(t *testing.T) {
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.MaxRecvMsgSize(8<<20), grpc.MaxSendMsgSize(8<<20),
		grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
			for {
				var b []byte
				if err := st.RecvMsg(&b); err == io.EOF {
					return nil
				} else if err != nil {
					return err
				}
				if err := st.SendMsg(&b); err != nil {
					return err
				}
			}
		}))
	c, _ := dialClient(t, serveGRPC(t, srv), ClientSettings{WindowSize: 64 << 10})
	var msgs [][]byte
	var body []byte
	for i := range 5 {
		m := randomBytes(1<<20+i, uint64(100+i))
		msgs = append(msgs, m)
		body = append(body, grpcFrame(m)...)
	}
	s, err := c.NewStream(grpcFields("/echo.Echo/Stream"), false)
	if err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		for p := body; len(p) > 0; {
			k := min(len(p), 70000)
			if err := s.WriteData(p[:k], false); err != nil {
				werr <- err
				return
			}
			p = p[k:]
		}
		werr <- s.WriteData(nil, true)
	}()
	r := getReply(t, s)
	if err := waitFor(t, "the request's body", werr); err != nil {
		t.Fatal(err)
	}
	if r.err != nil || r.status != 200 {
		t.Fatalf("answer: %d %v", r.status, r.err)
	}
	got, err := grpcMessages(r.body)
	if err != nil || len(got) != len(msgs) {
		t.Fatalf("%d messages back of %d: %v", len(got), len(msgs), err)
	}
	for i := range msgs {
		if sha256.Sum256(got[i]) != sha256.Sum256(msgs[i]) {
			t.Errorf("message %d is not the one sent", i)
		}
	}
	if st := fieldValue(r.trailer, "grpc-status"); st != "0" {
		t.Errorf("trailers %v", r.trailer)
	}
}

func TestClientResetAndCloseMidAnswerCancelTheServersWork(t *testing.T) {
	for _, how := range []string{"Reset", "Close"} {
		t.Run("x/net/"+how, func(t *testing.T) {
			canceled := make(chan struct{})
			peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte("first"))
				http.NewResponseController(w).Flush()
				select {
				case <-r.Context().Done():
					close(canceled)
				case <-time.After(wait):
				}
			}))
			c, _ := dialClient(t, peer.addr, ClientSettings{})
			cancelMidAnswer(t, c, how)
			waitFor(t, "the handler's context canceled", canceled)
		})
		t.Run("podpin/"+how, func(t *testing.T) {
			canceled := make(chan struct{})
			addr := servePodpin(t, Settings{}, func(s *Stream) {
				s.WriteHeaders(200, nil, false)
				s.WriteData([]byte("first"), false)
				s.Flush()
				select {
				case <-s.Done():
					close(canceled)
				case <-time.After(wait):
				}
			})
			c, _ := dialClient(t, addr, ClientSettings{})
			cancelMidAnswer(t, c, how)
			waitFor(t, "the handler's stream ended", canceled)
		})
		t.Run("raw/"+how, func(t *testing.T) {
			addr, accept := listenRaw(t)
			c, _ := dialClient(t, addr, ClientSettings{})
			s, err := c.NewStream(reqFields("GET", "/"), true)
			if err != nil {
				t.Fatal(err)
			}
			p := accept()
			p.expectHeaders(1)
			p.headers(1, false, ":status", "200")
			p.data(1, false, []byte("first"))
			if r := await(t, "the answer's header", func() error { _, _, err := s.Response(); return err }); r != nil {
				t.Fatal(r)
			}
			if how == "Reset" {
				s.Reset()
			} else {
				s.Close()
			}
			rst := p.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
			if rst.StreamID != 1 || rst.ErrCode != http2.ErrCodeCancel {
				t.Fatalf("RST_STREAM %d %v, want 1 CANCEL", rst.StreamID, rst.ErrCode)
			}
			// DATA the server sent meanwhile is dropped, and given
			// back to the connection's window.
			p.data(1, true, []byte("late"))
			p.ping(t, [8]byte{1})
			if n := c.openStreams(); n != 0 {
				t.Errorf("%d streams left", n)
			}
		})
	}
}

// cancelMidAnswer opens a stream, reads the first bytes of its answer,
// then resets or closes it: the stream's reads fail.
func cancelMidAnswer(t *testing.T, c *ClientConn, how string) {
	t.Helper()
	s, err := c.NewStream(reqFields("GET", "/slow"), true)
	if err != nil {
		t.Fatal(err)
	}
	first := await(t, "the first bytes", func() string {
		if _, _, err := s.Response(); err != nil {
			return err.Error()
		}
		b := make([]byte, 5)
		n, err := io.ReadFull(s, b)
		if err != nil {
			return err.Error()
		}
		return string(b[:n])
	})
	if first != "first" {
		t.Fatalf("the answer began with %q", first)
	}
	if how == "Reset" {
		s.Reset()
		if _, err := s.Read(make([]byte, 1)); err == nil || err == io.EOF {
			t.Errorf("Read after Reset: %v, want an error", err)
		}
		if err := s.WriteData([]byte("x"), true); err == nil {
			t.Errorf("WriteData after Reset succeeded")
		}
	} else {
		s.Close()
	}
	if n := c.openStreams(); n != 0 {
		t.Errorf("%d streams left", n)
	}
	if c.Err() != nil {
		t.Errorf("the connection failed: %v", c.Err())
	}
}

func TestClientServerClosingMidStreamIsAConnError(t *testing.T) {
	started := make(chan struct{}, 1)
	peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first"))
		http.NewResponseController(w).Flush()
		started <- struct{}{}
		<-r.Context().Done()
	}))
	c, _ := dialClient(t, peer.addr, ClientSettings{})
	s, err := c.NewStream(reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handler", started)
	peer.closeConns()
	r := getReply(t, s)
	var ce *ConnError
	if !errors.As(r.err, &ce) {
		t.Fatalf("answer's error %v, want a *ConnError", r.err)
	}
	if !errors.As(c.Err(), &ce) {
		t.Errorf("the connection's error %v, want a *ConnError", c.Err())
	}
	if _, err := c.NewStream(reqFields("GET", "/"), true); err != ErrNotProcessed {
		t.Errorf("a new stream on the closed connection: %v, want ErrNotProcessed", err)
	}
}

func TestClientCompleteAnswerSurvivesTheServersResetNoError(t *testing.T) {
	t.Run("x/net", func(t *testing.T) {
		// The handler answers without reading the request's body: the
		// server resets the stream with NO_ERROR after the answer.
		peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("done"))
		}))
		c, _ := dialClient(t, peer.addr, ClientSettings{})
		s, err := c.NewStream(reqFields("POST", "/"), false)
		if err != nil {
			t.Fatal(err)
		}
		// The write sends the request's header; the answer and the reset
		// may come before the bytes are written (on a fresh connection
		// they wait for the server's SETTINGS): the write then finds the
		// request over.
		if err := s.WriteData([]byte("part of a body"), false); err != nil && err != ErrStreamClosed {
			t.Fatal(err)
		}
		eventually(t, "the stream over", func() bool { return c.openStreams() == 0 })
		okReply(t, getReply(t, s), "done")
		if err := s.WriteData([]byte("more"), true); err != ErrStreamClosed {
			t.Errorf("WriteData after the server's reset: %v, want ErrStreamClosed", err)
		}
	})
	t.Run("raw", func(t *testing.T) {
		addr, accept := listenRaw(t)
		c, _ := dialClient(t, addr, ClientSettings{})
		p := accept()
		s, _ := c.NewStream(reqFields("POST", "/"), false)
		s.WriteData([]byte("part"), false)
		p.expectHeaders(1)
		p.headers(1, false, ":status", "200")
		p.data(1, true, []byte("done"))
		p.rst(1, http2.ErrCodeNo)
		p.ping(t, [8]byte{2})
		if n := c.openStreams(); n != 0 {
			t.Fatalf("%d streams left", n)
		}
		okReply(t, getReply(t, s), "done")
		// The connection closing does not take the answer either.
		s2, _ := c.NewStream(reqFields("POST", "/"), false)
		s2.Flush()
		p.expectHeaders(3)
		p.headers(3, false, ":status", "200")
		p.data(3, true, []byte("second"))
		p.ping(t, [8]byte{3})
		c.Close()
		okReply(t, getReply(t, s2), "second")
	})
}

func TestClientAnswersLeftUnreadHoldBackNoOtherStream(t *testing.T) {
	// The streams' windows are smaller than the 65535 the connection's
	// starts at, and their answers larger: while the first is read, the
	// others fill their windows, and the connection's has room for all.
	body := randomBytes(200<<10, 7)
	peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	c, _ := dialClient(t, peer.addr, ClientSettings{WindowSize: 16 << 10})
	var streams []*ClientStream
	for range 5 {
		s, err := c.NewStream(reqFields("GET", "/"), true)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	for _, s := range streams {
		if err := await(t, "the header", func() error { _, _, err := s.Response(); return err }); err != nil {
			t.Fatal(err)
		}
	}
	// Time for the server to send what the windows allow.
	time.Sleep(100 * time.Millisecond)
	for i, s := range streams {
		r := getReply(t, s)
		if r.err != nil || !bytes.Equal(r.body, body) {
			t.Fatalf("stream %d: %d bytes, error %v", i, len(r.body), r.err)
		}
	}
}

func TestClientWriteWaitingForTheConnectionsWindowDoesNotSpin(t *testing.T) {
	// The server's connection window (65535) is smaller than its
	// streams' (1 MiB): the request's body waits for the connection's.
	release := make(chan struct{})
	peer := serveXNet(t, &http2.Server{MaxUploadBufferPerConnection: 65535, MaxUploadBufferPerStream: 1 << 20},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-time.After(wait):
			}
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, n)
		}))
	c, _ := dialClient(t, peer.addr, ClientSettings{})
	s, err := c.NewStream(reqFields("POST", "/"), false)
	if err != nil {
		t.Fatal(err)
	}
	body := randomBytes(1<<20, 3)
	werr := make(chan error, 1)
	go func() { werr <- s.WriteData(body, true) }()
	eventually(t, "the connection's window used up", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.send == 0 && s.send > 0
	})
	c.mu.Lock()
	before := c.waits
	c.mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	c.mu.Lock()
	after := c.waits
	c.mu.Unlock()
	if after-before > 2 {
		t.Errorf("the write woke %d times while no window came", after-before)
	}
	close(release)
	if err := waitFor(t, "the write", werr); err != nil {
		t.Fatal(err)
	}
	okReply(t, getReply(t, s), strconv.Itoa(len(body)))
}

func TestServerWriteWaitingForTheConnectionsWindowDoesNotSpin(t *testing.T) {
	// A raw client gives no window back: two answers of 40 KiB do not
	// fit in the connection's 65535, and one waits for it with room in
	// its stream's.
	srv := &Server{}
	addr := serve(t, srv, func(s *Stream) {
		s.WriteHeaders(200, nil, false)
		s.WriteData(pattern(40<<10), true)
	})
	c := dialRaw(t, addr)
	c.keepWindow = true
	c.request(1, "GET", "/1", true)
	c.request(3, "GET", "/3", true)
	var sc *conn
	eventually(t, "the server's connection window used up with a write waiting", func() bool {
		srv.mu.Lock()
		for k := range srv.conns {
			sc = k
		}
		srv.mu.Unlock()
		if sc == nil {
			return false
		}
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.send == 0 && len(sc.waiting) > 0
	})
	sc.mu.Lock()
	before := sc.waits
	sc.mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	sc.mu.Lock()
	after := sc.waits
	sc.mu.Unlock()
	if after-before > 2 {
		t.Errorf("the server's write woke %d times while no window came", after-before)
	}
	c.fr.WriteWindowUpdate(0, 1<<20)
	for _, id := range []uint32{1, 3} {
		if r := c.response(id); !bytes.Equal(r.body, pattern(40<<10)) {
			t.Errorf("stream %d: %d bytes %v", id, len(r.body), r.frames)
		}
	}
}

// rawPeer is a server's side of a connection that writes and reads
// frames itself, from the test's goroutine.
type rawPeer struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

// listenRaw listens on loopback; accept takes the next connection, reads
// the client's preface and sends the server's, SETTINGS with settings.
func listenRaw(t *testing.T, settings ...http2.Setting) (addr string, accept func() *rawPeer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() *rawPeer {
		t.Helper()
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(wait))
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(wait))
		var preface [len(http2.ClientPreface)]byte
		if _, err := io.ReadFull(nc, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
			t.Fatalf("the client's preface: %q, %v", preface, err)
		}
		p := &rawPeer{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
		p.fr.ReadMetaHeaders = hpack.NewDecoder(65536, nil)
		p.enc = hpack.NewEncoder(&p.hbuf)
		if err := p.fr.WriteSettings(settings...); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// next reads the client's next frame other than SETTINGS (acknowledged)
// and WINDOW_UPDATE.
func (p *rawPeer) next() (http2.Frame, error) {
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := p.fr.WriteSettingsAck(); err != nil {
					return nil, err
				}
			}
			continue
		case *http2.WindowUpdateFrame:
			continue
		case *http2.DataFrame:
			return &dataFrame{DataFrame: f, payload: bytes.Clone(f.Data())}, nil
		}
		return f, nil
	}
}

// until reads frames until one for which ok holds, and returns it.
func (p *rawPeer) until(ok func(http2.Frame) bool) http2.Frame {
	p.t.Helper()
	for {
		f, err := p.next()
		if err != nil {
			p.t.Fatalf("reading the client's frames: %v", err)
		}
		if ok(f) {
			return f
		}
	}
}

// expectHeaders reads until the HEADERS of stream id.
func (p *rawPeer) expectHeaders(id uint32) *http2.MetaHeadersFrame {
	p.t.Helper()
	return p.until(func(f http2.Frame) bool {
		h, ok := f.(*http2.MetaHeadersFrame)
		return ok && h.StreamID == id
	}).(*http2.MetaHeadersFrame)
}

func (p *rawPeer) headers(id uint32, end bool, fields ...string) {
	p.t.Helper()
	p.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		p.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.hbuf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) data(id uint32, end bool, b []byte) {
	p.t.Helper()
	if err := p.fr.WriteData(id, end, b); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) rst(id uint32, code http2.ErrCode) {
	p.t.Helper()
	if err := p.fr.WriteRSTStream(id, code); err != nil {
		p.t.Fatal(err)
	}
}

// ping sends a PING and reads until its answer: the client processed
// every frame sent before it. It fails the test on any RST_STREAM read
// meanwhile.
func (p *rawPeer) ping(t *testing.T, data [8]byte) {
	t.Helper()
	if err := p.fr.WritePing(false, data); err != nil {
		t.Fatal(err)
	}
	p.until(func(f http2.Frame) bool {
		if r, ok := f.(*http2.RSTStreamFrame); ok {
			t.Errorf("unexpected RST_STREAM %d %v", r.StreamID, r.ErrCode)
		}
		pf, ok := f.(*http2.PingFrame)
		return ok && pf.IsAck() && pf.Data == data
	})
}

// closedByClient reads until the client closes the connection, and
// returns its GOAWAY, if any.
func (p *rawPeer) closedByClient() *http2.GoAwayFrame {
	p.t.Helper()
	var away *http2.GoAwayFrame
	for {
		f, err := p.next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				p.t.Fatalf("the client did not close the connection within %v", wait)
			}
			return away
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			g := *g
			away = &g
		}
	}
}

func TestClientRefusedStreamIsNotProcessed(t *testing.T) {
	addr, accept := listenRaw(t)
	c, _ := dialClient(t, addr, ClientSettings{})
	s, err := c.NewStream(reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	p := accept()
	p.expectHeaders(1)
	p.rst(1, http2.ErrCodeRefusedStream)
	if r := getReply(t, s); !errors.Is(r.err, ErrNotProcessed) {
		t.Fatalf("a refused stream: %v, want ErrNotProcessed", r.err)
	}
	// Another code is a reset.
	s, _ = c.NewStream(reqFields("GET", "/"), true)
	p.expectHeaders(3)
	p.rst(3, http2.ErrCodeInternal)
	var re *ResetError
	if r := getReply(t, s); !errors.As(r.err, &re) || re.Code != http2.ErrCodeInternal {
		t.Fatalf("a reset stream: %v, want a *ResetError INTERNAL_ERROR", r.err)
	}
	// The connection goes on.
	s, _ = c.NewStream(reqFields("GET", "/"), true)
	p.expectHeaders(5)
	p.headers(5, false, ":status", "200")
	p.data(5, true, []byte("ok"))
	okReply(t, getReply(t, s), "ok")
}

func TestClientGoAwayFailsTheLaterStreamsOnly(t *testing.T) {
	addr, accept := listenRaw(t)
	c, _ := dialClient(t, addr, ClientSettings{})
	var streams []*ClientStream
	for range 3 {
		s, err := c.NewStream(reqFields("GET", "/"), true)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	p := accept()
	for _, id := range []uint32{1, 3, 5} {
		p.expectHeaders(id)
	}
	if err := p.fr.WriteGoAway(1, http2.ErrCodeNo, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams[1:] {
		if r := getReply(t, s); !errors.Is(r.err, ErrNotProcessed) {
			t.Errorf("stream %d after GOAWAY 1: %v, want ErrNotProcessed", s.id, r.err)
		}
	}
	if _, err := c.NewStream(reqFields("GET", "/"), true); err != ErrNotProcessed {
		t.Errorf("a new stream after GOAWAY: %v, want ErrNotProcessed", err)
	}
	if c.Err() != nil {
		t.Fatalf("the connection ended with a stream left: %v", c.Err())
	}
	p.headers(1, false, ":status", "200")
	p.data(1, true, []byte("first"))
	okReply(t, getReply(t, streams[0]), "first")
	// Its last stream over, the connection closes, with a GOAWAY.
	if g := p.closedByClient(); g == nil || g.ErrCode != http2.ErrCodeNo {
		t.Errorf("the client's GOAWAY: %v", g)
	}
	var ce *ConnError
	if !errors.As(c.Err(), &ce) {
		t.Errorf("the connection's error: %v", c.Err())
	}
}

func TestClientAnswersPings(t *testing.T) {
	addr, accept := listenRaw(t)
	dialClient(t, addr, ClientSettings{})
	p := accept()
	p.ping(t, [8]byte{'p', 'o', 'd', 'p', 'i', 'n', '!', '!'})
}

func TestClientSkipsInformationalAnswers(t *testing.T) {
	addr, accept := listenRaw(t)
	c, _ := dialClient(t, addr, ClientSettings{})
	s, _ := c.NewStream(reqFields("POST", "/", "expect", "100-continue"), false)
	s.Flush()
	p := accept()
	p.expectHeaders(1)
	p.headers(1, false, ":status", "100")
	p.headers(1, false, ":status", "103", "link", "</a.css>")
	p.headers(1, false, ":status", "200", "x-final", "yes")
	p.data(1, true, []byte("body"))
	if err := s.WriteData([]byte("x"), true); err != nil {
		t.Fatal(err)
	}
	r := getReply(t, s)
	okReply(t, r, "body")
	if fieldValue(r.header, "x-final") != "yes" || fieldValue(r.header, "link") != "" {
		t.Errorf("header %v, want the final answer's", r.header)
	}
	// An informational answer that ends the stream is a stream error.
	s, _ = c.NewStream(reqFields("GET", "/"), true)
	p.expectHeaders(3)
	p.headers(3, true, ":status", "103")
	rst := p.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
	if rst.StreamID != 3 || rst.ErrCode != http2.ErrCodeProtocol {
		t.Errorf("RST_STREAM %d %v, want 3 PROTOCOL_ERROR", rst.StreamID, rst.ErrCode)
	}
	if r := getReply(t, s); r.err == nil {
		t.Errorf("the stream did not fail")
	}
}

func TestClientTrailersWithoutEndStreamAreAStreamError(t *testing.T) {
	addr, accept := listenRaw(t)
	c, _ := dialClient(t, addr, ClientSettings{})
	s, _ := c.NewStream(reqFields("GET", "/"), true)
	p := accept()
	p.expectHeaders(1)
	p.headers(1, false, ":status", "200")
	p.data(1, false, []byte("x"))
	p.headers(1, false, "grpc-status", "0")
	rst := p.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
	if rst.StreamID != 1 || rst.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("RST_STREAM %d %v, want 1 PROTOCOL_ERROR", rst.StreamID, rst.ErrCode)
	}
	r := getReply(t, s)
	var re *ResetError
	if !errors.As(r.err, &re) || re.Code != http2.ErrCodeProtocol {
		t.Errorf("the stream's error %v, want a *ResetError PROTOCOL_ERROR", r.err)
	}
	if s.Trailer() != nil {
		t.Errorf("trailers kept: %v", s.Trailer())
	}
	// A stream error only: the connection goes on.
	s, _ = c.NewStream(reqFields("GET", "/"), true)
	p.expectHeaders(3)
	p.headers(3, false, ":status", "200")
	p.headers(3, true, "grpc-status", "0")
	r = getReply(t, s)
	okReply(t, r, "")
	if fieldValue(r.trailer, "grpc-status") != "0" {
		t.Errorf("trailers %v", r.trailer)
	}
}

func TestClientFramesAfterTheAnswersEndAreAStreamError(t *testing.T) {
	addr, accept := listenRaw(t)
	c, _ := dialClient(t, addr, ClientSettings{})
	s, _ := c.NewStream(reqFields("POST", "/"), false)
	s.Flush()
	p := accept()
	p.expectHeaders(1)
	p.headers(1, true, ":status", "200")
	p.data(1, false, []byte("late"))
	rst := p.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
	if rst.StreamID != 1 || rst.ErrCode != http2.ErrCodeStreamClosed {
		t.Fatalf("RST_STREAM %d %v, want 1 STREAM_CLOSED", rst.StreamID, rst.ErrCode)
	}
	if c.Err() != nil {
		t.Errorf("the connection failed: %v", c.Err())
	}
}

func TestClientHeaderListLongerThanItsLimitIsAStreamError(t *testing.T) {
	addr, accept := listenRaw(t)
	c, _ := dialClient(t, addr, ClientSettings{MaxHeaderListSize: 1024})
	s, _ := c.NewStream(reqFields("GET", "/"), true)
	p := accept()
	p.expectHeaders(1)
	var fields []string
	for i := range 40 { // 40 fields of 40 bytes and more: over 1024
		fields = append(fields, fmt.Sprintf("x-field-%02d", i), strings.Repeat("v", 30))
	}
	p.headers(1, true, append([]string{":status", "200"}, fields...)...)
	rst := p.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
	if rst.StreamID != 1 {
		t.Fatalf("RST_STREAM %d", rst.StreamID)
	}
	if r := getReply(t, s); r.err == nil {
		t.Errorf("a truncated header list was taken: %v", r.header)
	}
}

func TestClientDataBeyondTheWindowIsAConnectionError(t *testing.T) {
	addr, accept := listenRaw(t)
	c, _ := dialClient(t, addr, ClientSettings{WindowSize: 65535})
	s, _ := c.NewStream(reqFields("GET", "/"), true)
	p := accept()
	p.expectHeaders(1)
	p.headers(1, false, ":status", "200")
	chunk := make([]byte, 16384)
	for range 5 { // 81920 bytes in a window of 65535
		p.data(1, false, chunk)
	}
	g := p.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if g.ErrCode != http2.ErrCodeFlowControl {
		t.Errorf("GOAWAY %v, want FLOW_CONTROL_ERROR", g.ErrCode)
	}
	r := getReply(t, s)
	var ce *ConnError
	if !errors.As(r.err, &ce) {
		t.Errorf("the stream's error %v, want a *ConnError", r.err)
	}
	p.closedByClient()
}

func TestClientServerGoAwayWithAnErrorFailsTheConnection(t *testing.T) {
	addr, accept := listenRaw(t)
	c, _ := dialClient(t, addr, ClientSettings{})
	s, _ := c.NewStream(reqFields("GET", "/"), true)
	p := accept()
	p.expectHeaders(1)
	p.fr.WriteGoAway(1, http2.ErrCodeInternal, []byte("bye"))
	r := getReply(t, s)
	var ce *ConnError
	if !errors.As(r.err, &ce) || !strings.Contains(r.err.Error(), "bye") {
		t.Errorf("the stream's error %v, want a *ConnError", r.err)
	}
	p.closedByClient()
}

func TestClientCloseSendsGoAwayAndFailsOpenStreams(t *testing.T) {
	addr, accept := listenRaw(t)
	c, cc := dialClient(t, addr, ClientSettings{})
	s, _ := c.NewStream(reqFields("GET", "/"), true)
	p := accept()
	p.expectHeaders(1)
	c.Close()
	var ce *ConnError
	if r := getReply(t, s); !errors.As(r.err, &ce) || !errors.Is(r.err, net.ErrClosed) {
		t.Errorf("the stream's error %v", r.err)
	}
	if g := p.closedByClient(); g == nil {
		t.Errorf("no GOAWAY before the close")
	}
	eventually(t, "the socket closed", cc.closed.Load)
	eventually(t, "the reader gone", func() bool {
		select {
		case <-c.gone:
			return true
		default:
			return false
		}
	})
}

func TestClientConnectionWindowGivenBackForUnreadAnswers(t *testing.T) {
	// Answers closed unread give their bytes back to the connection's
	// window: many of them go through a small window.
	body := pattern(40 << 10)
	peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	c, _ := dialClient(t, peer.addr, ClientSettings{WindowSize: 65535})
	for i := range 20 {
		s, err := c.NewStream(reqFields("GET", "/"), true)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			// Closed once the answer is over, unread.
			eventually(t, "the answer over", func() bool { return c.openStreams() == 0 })
			s.Close()
			continue
		}
		okReply(t, getReply(t, s), string(body))
	}
}

func TestClientStreamsWaitForTheServersInitialWindow(t *testing.T) {
	// The server's streams take 10 bytes before a WINDOW_UPDATE.
	addr, accept := listenRaw(t, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10})
	c, _ := dialClient(t, addr, ClientSettings{})
	p := accept()
	p.ping(t, [8]byte{4}) // the SETTINGS taken
	s, _ := c.NewStream(reqFields("POST", "/"), false)
	werr := make(chan error, 1)
	go func() { werr <- s.WriteData([]byte("0123456789abcdefghij"), true) }()
	p.expectHeaders(1)
	d := p.until(func(f http2.Frame) bool { _, ok := f.(*dataFrame); return ok }).(*dataFrame)
	if string(d.payload) != "0123456789" || d.StreamEnded() {
		t.Fatalf("first DATA %q end %v", d.payload, d.StreamEnded())
	}
	p.fr.WriteWindowUpdate(1, 100)
	d = p.until(func(f http2.Frame) bool { _, ok := f.(*dataFrame); return ok }).(*dataFrame)
	if string(d.payload) != "abcdefghij" || !d.StreamEnded() {
		t.Fatalf("second DATA %q end %v", d.payload, d.StreamEnded())
	}
	if err := waitFor(t, "the write", werr); err != nil {
		t.Fatal(err)
	}
}

func TestClientLargeRequestHeaderGoesInContinuationFrames(t *testing.T) {
	// The server reads frames of 16384 bytes at most, before its
	// SETTINGS come and after.
	peer := serveXNet(t, &http2.Server{MaxReadFrameSize: 16384}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, len(r.Header.Get("X-Big")), " ", r.Header.Get("X-After"))
	}))
	// The largest window there is, asked for: SETTINGS the server takes.
	c, cc := dialClient(t, peer.addr, ClientSettings{WindowSize: 1<<32 - 1})
	big := strings.Repeat("b", 40000)
	s, err := c.NewStream(reqFields("GET", "/", "x-big", big, "x-after", "1"), true)
	if err != nil {
		t.Fatal(err)
	}
	okReply(t, getReply(t, s), "40000 1")
	var kinds []string
	for _, w := range cc.written() {
		for _, f := range framesOf(t, w) {
			if f.Header().StreamID == 1 {
				kinds = append(kinds, f.Header().Type.String())
			}
		}
	}
	// 40000 bytes, Huffman-coded, take more than one frame of 16384.
	if len(kinds) < 2 || kinds[0] != "HEADERS" || strings.Trim(strings.Join(kinds[1:], ""), "CONTINUATION") != "" {
		t.Errorf("the request's frames: %v, want HEADERS then CONTINUATION", kinds)
	}
}
