package h2

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

func TestRequestAndAnswer(t *testing.T) {
	// The handler tells what it saw of the request in its answer.
	srv := &Server{}
	addr := serve(t, srv, func(s *Stream) {
		body, err := io.ReadAll(s)
		if err != nil {
			s.Reset(uint32(http2.ErrCodeInternal))
			return
		}
		seen := fmt.Sprintf("%s %s %s %s cl=%d body=%t x=%q [%s]",
			s.Method, s.Scheme, s.Authority, s.Path, s.ContentLength, s.HasBody, s.HeaderValue("x-test"), body)
		s.WriteHeaders(201, []HeaderField{{Name: "X-Answer", Value: "yes"}, {Name: "connection", Value: "close"}}, false)
		s.WriteData([]byte(seen), true)
	})
	xnet, _ := h2cClient(t)
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	std := &http.Transport{Protocols: protos}
	t.Cleanup(std.CloseIdleConnections)
	clients := map[string]*http.Client{
		"x/net http2.Transport": xnet,
		"net/http Transport":    {Transport: std, Timeout: wait},
	}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		header http.Header
		want   string
	}{
		{
			name:   "a GET without a body reaches the handler with its pseudo-header fields",
			method: "GET", path: "/a?b=c",
			want: "GET http " + addr + " /a?b=c cl=-1 body=false x=\"\" []",
		},
		{
			name:   "a POST brings its body and content-length",
			method: "POST", path: "/post", body: "hello, pod",
			want: "POST http " + addr + " /post cl=10 body=true x=\"\" [hello, pod]",
		},
		{
			name:   "header fields arrive with their names in lower case",
			method: "GET", path: "/", header: http.Header{"X-Test": {"Value"}},
			want: "GET http " + addr + " / cl=-1 body=false x=\"Value\" []",
		},
	} {
		for cname, client := range clients {
			t.Run(tc.name+" from "+cname, func(t *testing.T) {
				var body io.Reader
				if tc.body != "" {
					body = strings.NewReader(tc.body)
				}
				req, err := http.NewRequest(tc.method, "http://"+addr+tc.path, body)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range tc.header {
					req.Header[k] = v
				}
				res, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if res.StatusCode != 201 {
					t.Errorf("got status %d, want 201", res.StatusCode)
				}
				if h := res.Header.Get("X-Answer"); h != "yes" {
					t.Errorf("got X-Answer %q, want %q", h, "yes")
				}
				if _, ok := res.Header["Connection"]; ok {
					t.Errorf("got a Connection field in the answer, want it left out")
				}
				if res.ProtoMajor != 2 {
					t.Errorf("got %s, want HTTP/2", res.Proto)
				}
				if string(got) != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
			})
		}
	}
}

func TestConcurrentStreamsOnOneConnection(t *testing.T) {
	// Every stream is answered with its own path, all on one connection.
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := &Server{}
	addr := serve(t, srv, func(s *Stream) {
		mu.Lock()
		conns[s.Conn().RemoteAddr().String()] = true
		mu.Unlock()
		answer(s, strings.Repeat(s.Path, 1000))
	})
	client, _ := h2cClient(t)
	// A first request sets up the connection the others share.
	if res, err := client.Get("http://" + addr + "/first"); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
	}
	const n = 80
	errs := make(chan error, n)
	for i := range n {
		go func() {
			path := "/stream-" + strconv.Itoa(i)
			res, err := client.Get("http://" + addr + path)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				errs <- err
				return
			}
			if want := strings.Repeat(path, 1000); string(body) != want {
				errs <- fmt.Errorf("%s: got %d bytes beginning %.20q, want %d bytes of %q", path, len(body), body, len(want), path)
				return
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 1 {
		t.Errorf("got %d connections, want 1", len(conns))
	}
}

func TestRequestBodyLargerThanTheWindow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window uint32
		size   int
	}{
		{name: "a 3 MiB body passes the default 1 MiB window", size: 3 << 20},
		{name: "a 1 MiB body passes a 65535-byte window", window: 65535, size: 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{Settings: Settings{WindowSize: tc.window}}
			want := pattern(tc.size)
			addr := serve(t, srv, func(s *Stream) {
				// Small reads, so that the window comes back a little
				// at a time.
				var got []byte
				buf := make([]byte, 1000)
				for {
					n, err := s.Read(buf)
					got = append(got, buf[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						answer(s, "read: "+err.Error())
						return
					}
				}
				if !bytes.Equal(got, want) {
					answer(s, fmt.Sprintf("got %d bytes not in order, want %d", len(got), len(want)))
					return
				}
				answer(s, "whole")
			})
			client, _ := h2cClient(t)
			res, err := client.Post("http://"+addr+"/upload", "application/octet-stream", bytes.NewReader(want))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			got, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "whole" {
				t.Errorf("got %q, want %q", got, "whole")
			}
		})
	}
}

func TestResponseBodyLargerThanTheClientsWindow(t *testing.T) {
	// The client gives the server a small window and gives back each
	// DATA frame's bytes only once it has read it: the server must never
	// send more than the window allows, and the body must arrive whole.
	for _, tc := range []struct {
		name   string
		window uint32
		size   int
		writes int // the handler writes the body in this many pieces
	}{
		{name: "a 300 KiB body in one write passes a 1000-byte window", window: 1000, size: 300 << 10, writes: 1},
		{name: "a 1 MiB body in many writes passes a 16 KiB window", window: 16 << 10, size: 1 << 20, writes: 64},
		{name: "a body larger than the connection's 65535-byte window", window: 1 << 20, size: 2 << 20, writes: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := pattern(tc.size)
			srv := &Server{}
			addr := serve(t, srv, func(s *Stream) {
				s.WriteHeaders(200, nil, false)
				piece := tc.size / tc.writes
				for i := 0; i < tc.size; i += piece {
					if err := s.WriteData(body[i:min(i+piece, tc.size)], i+piece >= tc.size); err != nil {
						return
					}
				}
			})
			c := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: tc.window})
			c.request(1, "GET", "/big", true)
			streamWin, connWin := int64(tc.window), int64(65535)
			var got []byte
			updates := 0
			for {
				f, err := c.next()
				if err != nil {
					t.Fatalf("got %v after %d bytes, want %d bytes", err, len(got), tc.size)
				}
				d, ok := f.(*dataFrame)
				if !ok {
					continue
				}
				n := int64(len(d.payload))
				if n > streamWin || n > connWin {
					t.Fatalf("got a DATA frame of %d bytes, want at most the windows: stream %d, connection %d", n, streamWin, connWin)
				}
				got = append(got, d.payload...)
				if d.StreamEnded() {
					break
				}
				if n > 0 {
					c.fr.WriteWindowUpdate(1, uint32(n))
					c.fr.WriteWindowUpdate(0, uint32(n))
					updates++
				}
			}
			if !bytes.Equal(got, body) {
				t.Errorf("got %d bytes, not the %d sent in order", len(got), len(body))
			}
			if updates == 0 {
				t.Errorf("got the body without a WINDOW_UPDATE, want it to need some")
			}
		})
	}
}

func TestServerSendsWindowUpdatesForARequestBody(t *testing.T) {
	// A client that sends a body of twice the window, frame by frame,
	// needs the server's WINDOW_UPDATEs for the stream and the
	// connection to send the second half.
	const window = 65535
	srv := &Server{Settings: Settings{WindowSize: window}}
	addr := serve(t, srv, func(s *Stream) {
		n, err := io.Copy(io.Discard, s)
		if err != nil {
			s.Reset(uint32(http2.ErrCodeInternal))
			return
		}
		answer(s, strconv.FormatInt(n, 10))
	})
	c := dialRaw(t, addr)
	c.request(1, "POST", "/upload", false)
	streamWin, connWin := int64(window), int64(65535)
	sent, streamUpdates, connUpdates := 0, 0, 0
	chunk := make([]byte, 8192)
	for sent < 2*window {
		n := min(int64(len(chunk)), streamWin, connWin, int64(2*window-sent))
		if n > 0 {
			c.data(1, false, chunk[:n])
			streamWin -= n
			connWin -= n
			sent += int(n)
			continue
		}
		f, err := c.next()
		if err != nil {
			t.Fatalf("got %v after sending %d bytes, want WINDOW_UPDATEs", err, sent)
		}
		if wu, ok := f.(*http2.WindowUpdateFrame); ok {
			switch wu.StreamID {
			case 0:
				connWin += int64(wu.Increment)
				connUpdates++
			case 1:
				streamWin += int64(wu.Increment)
				streamUpdates++
			}
		}
	}
	c.data(1, true, nil)
	r := c.response(1)
	if want := strconv.Itoa(2 * window); string(r.body) != want {
		t.Errorf("got the handler to read %q bytes, want %s", r.body, want)
	}
	if streamUpdates == 0 || connUpdates == 0 {
		t.Errorf("got %d WINDOW_UPDATEs for the stream and %d for the connection, want some of each", streamUpdates, connUpdates)
	}
}

func TestTrailers(t *testing.T) {
	srv := &Server{}
	addr := serve(t, srv, func(s *Stream) {
		body, err := io.ReadAll(s)
		if err != nil {
			s.Reset(uint32(http2.ErrCodeInternal))
			return
		}
		var seen []string
		for _, f := range s.Trailer() {
			seen = append(seen, f.Name+"="+f.Value)
		}
		s.WriteHeaders(200, []HeaderField{{Name: "x-request-trailer", Value: strings.Join(seen, ",")}}, false)
		s.WriteData(body, false)
		s.WriteTrailers([]HeaderField{{Name: "grpc-status", Value: "0"}, {Name: "grpc-message", Value: "all good"}})
	})
	client, _ := h2cClient(t)
	req, err := http.NewRequest("POST", "http://"+addr+"/trailers", io.NopCloser(strings.NewReader("payload")))
	if err != nil {
		t.Fatal(err)
	}
	req.Trailer = http.Header{"X-Checksum": {"1234"}}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{name: "the request's trailers reach Stream.Trailer", got: res.Header.Get("X-Request-Trailer"), want: "x-checksum=1234"},
		{name: "the body comes before the trailers", got: string(body), want: "payload"},
		{name: "the response's trailers arrive", got: res.Trailer.Get("Grpc-Status"), want: "0"},
		{name: "every response trailer arrives", got: res.Trailer.Get("Grpc-Message"), want: "all good"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestRequestFields(t *testing.T) {
	// The handler answers with what it saw; the client sends raw frames.
	type ctxKey struct{}
	srv := &Server{
		Settings: Settings{MaxHeaderListSize: 4096},
		ConnContext: func(nc net.Conn) context.Context {
			return context.WithValue(context.Background(), ctxKey{}, "from the connection")
		},
	}
	addr := serve(t, srv, func(s *Stream) {
		var fields []string
		for _, f := range s.Header {
			fields = append(fields, f.Name+"="+f.Value)
		}
		v, _ := s.Context().Value(ctxKey{}).(string)
		answer(s, fmt.Sprintf("authority=%s truncated=%t ctx=%q [%s]", s.Authority, s.Truncated, v, strings.Join(fields, " ")))
	})
	for _, tc := range []struct {
		name   string
		fields []string
		want   string
		// partial: want is the answer's beginning, and x-99 is not in it.
		partial bool
	}{
		{
			name:   "cookie fields are joined into one where the first came",
			fields: []string{":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/", "cookie", "a=1", "x-other", "y", "cookie", "b=2"},
			want:   `authority=a.test truncated=false ctx="from the connection" [cookie=a=1; b=2 x-other=y]`,
		},
		{
			name:   "the host field stands in for a missing :authority",
			fields: []string{":method", "GET", ":scheme", "http", ":path", "/", "host", "h.test"},
			want:   `authority=h.test truncated=false ctx="from the connection" [host=h.test]`,
		},
		{
			name:   "a header list over MaxHeaderListSize arrives truncated",
			fields: append([]string{":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/"}, manyFields(100, 100)...),
			// Header holds the list's beginning only.
			want:    `authority=a.test truncated=true ctx="from the connection" [x-0=` + strings.Repeat("v", 100) + ` x-1=`,
			partial: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.headers(1, true, tc.fields...)
			r := c.response(1)
			got := string(r.body)
			if tc.partial {
				if !strings.HasPrefix(got, tc.want) || strings.Contains(got, "x-99=") {
					t.Errorf("got %.200q (frames %v), want it to begin %q and leave out x-99", got, r.frames, tc.want)
				}
				return
			}
			if got != tc.want {
				t.Errorf("got %q (frames %v), want %q", got, r.frames, tc.want)
			}
		})
	}
}

func TestFieldLongerThanTheHeaderListSizeClosesTheConnection(t *testing.T) {
	// The HPACK decoder reads no string longer than MaxHeaderListSize:
	// such a field is not truncated but a COMPRESSION_ERROR.
	srv := &Server{Settings: Settings{MaxHeaderListSize: 4096}}
	addr := serve(t, srv, func(s *Stream) { answer(s, "ok") })
	c := dialRaw(t, addr)
	c.headers(1, true, ":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/", "x-big", strings.Repeat("b", 5000))
	away := c.closed()
	if away == nil || away.ErrCode != http2.ErrCodeCompression {
		t.Errorf("got GOAWAY %v, want one with COMPRESSION_ERROR", away)
	}
}

func TestLargeResponseHeaderGoesInContinuationFrames(t *testing.T) {
	// 40,000 bytes cannot go in one frame of the 16,384 a client reads by
	// default: a client's framer would fail on a larger frame.
	big := strings.Repeat("v", 40000)
	srv := &Server{}
	addr := serve(t, srv, func(s *Stream) {
		s.WriteHeaders(200, []HeaderField{{Name: "x-big", Value: big}}, true)
	})
	c := dialRaw(t, addr)
	c.request(1, "GET", "/", true)
	r := c.response(1)
	var got string
	for _, f := range r.header {
		if f.Name == "x-big" {
			got = f.Value
		}
	}
	if got != big {
		t.Errorf("got x-big of %d bytes, want %d", len(got), len(big))
	}
	client, _ := h2cClient(t)
	res, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("X-Big"); got != big {
		t.Errorf("got x-big of %d bytes from x/net's client, want %d", len(got), len(big))
	}
}

// manyFields is n fields x-0, x-1... whose values are size bytes long.
func manyFields(n, size int) []string {
	var fields []string
	for i := range n {
		fields = append(fields, "x-"+strconv.Itoa(i), strings.Repeat("v", size))
	}
	return fields
}

func TestConnectionWindowUnderTheDefault(t *testing.T) {
	// A connection's window starts at 65535 whatever SETTINGS say (RFC
	// 9113, 6.9.2): with a stream window of 16384, a client may send
	// 16000 bytes on each of four streams before any is read.
	const streams, size = 4, 16000
	open := make(chan struct{})
	srv := &Server{Settings: Settings{WindowSize: 16384}}
	addr := serve(t, srv, func(s *Stream) {
		<-open
		n, err := io.Copy(io.Discard, s)
		if err != nil {
			return
		}
		answer(s, strconv.FormatInt(n, 10))
	})
	c := dialRaw(t, addr)
	c.sync() // the server's SETTINGS are in force
	for i := range streams {
		id := uint32(2*i + 1)
		c.request(id, "POST", "/upload", false)
		c.data(id, true, make([]byte, size))
	}
	c.sync()
	close(open)
	for i := range streams {
		id := uint32(2*i + 1)
		if r := c.response(id); string(r.body) != strconv.Itoa(size) {
			t.Errorf("got stream %d's frames %v, body %q, want %d", id, r.frames, r.body, size)
		}
	}
}

// writeCounter is a listener whose connections count their writes.
type writeCounter struct {
	net.Listener
	writes atomic.Int64
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, writes: &l.writes}, nil
}

type countedConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countedConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestAnAnswerWrittenWholeLeavesInOneWrite: a header, a body written with
// WriteMore and the trailers go to the socket in one write; the same body
// written with Write goes out at once, in a write of its own.
func TestAnAnswerWrittenWholeLeavesInOneWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &writeCounter{Listener: ln}
	srv := &Server{Handler: HandlerFunc(func(s *Stream) {
		s.WriteHeaders(200, []HeaderField{{Name: "content-type", Value: "application/grpc"}}, false)
		if s.Path == "/more" {
			s.WriteMore([]byte("answer"))
		} else {
			s.Write([]byte("answer"))
		}
		s.WriteTrailers([]HeaderField{{Name: "grpc-status", Value: "0"}})
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(counted) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	client, _ := h2cClient(t)
	get := func(path string) {
		t.Helper()
		res, err := client.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(body) != "answer" || res.Trailer.Get("Grpc-Status") != "0" {
			t.Fatalf("%s: body %q trailers %v", path, body, res.Trailer)
		}
	}
	// The first request settles the connection (SETTINGS and their
	// acknowledgements).
	get("/more")
	time.Sleep(100 * time.Millisecond)
	// An answer written in two steps takes up to two writes: fewer when
	// the second step finds the first still being written, which depends
	// on scheduling, not on the server.
	for _, tc := range []struct {
		path     string
		min, max int64
	}{{"/more", 1, 1}, {"/write", 1, 2}} {
		before := counted.writes.Load()
		get(tc.path)
		if n := counted.writes.Load() - before; n < tc.min || n > tc.max {
			t.Errorf("%s: the answer took %d writes, want %d to %d", tc.path, n, tc.min, tc.max)
		}
	}
}

// TestAStalledBodyDoesNotHoldBackTheOthers: a stream whose handler reads
// none of its body takes only its own window of the connection's, and
// another stream's body on the same connection still passes.
func TestAStalledBodyDoesNotHoldBackTheOthers(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := &Server{Settings: Settings{WindowSize: 16 << 10, ConnWindowSize: 64 << 10}}
	addr := serve(t, srv, func(s *Stream) {
		if s.Path == "/stalled" {
			<-release
			return
		}
		n, err := io.Copy(io.Discard, s)
		if err != nil {
			s.Reset(uint32(http2.ErrCodeInternal))
			return
		}
		s.WriteHeaders(200, nil, false)
		s.WriteData([]byte(strconv.FormatInt(n, 10)), true)
	})
	_, tr := h2cClient(t)
	client := &http.Client{Transport: tr}
	// The stalled stream's body is larger than its window: the client
	// sends what the window allows and waits, until the test ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stalled, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/stalled", io.NopCloser(bytes.NewReader(make([]byte, 1<<20))))
	if err != nil {
		t.Fatal(err)
	}
	go client.Do(stalled)
	time.Sleep(200 * time.Millisecond)
	// The other stream's body is larger than the connection's window
	// less the stalled stream's.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	req, err := http.NewRequestWithContext(ctx2, "POST", "http://"+addr+"/read", bytes.NewReader(make([]byte, 200<<10)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("the second stream: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != strconv.Itoa(200<<10) {
		t.Errorf("the second stream's handler read %q bytes, want %d", body, 200<<10)
	}
}
