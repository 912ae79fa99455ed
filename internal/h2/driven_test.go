package h2

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"
)

// fakeOwner drives a connection as an event loop would, from goroutines
// of a test: a fake of podpin's loops, which the proxy's tests cover. It
// reads the socket and feeds what comes, and writes what Take gives, when
// told of frames or after a feed. The owner's streams (fast) answer from
// its goroutine: each gets "fast <path>" through WriteAvailable.
type fakeOwner struct {
	mu    sync.Mutex // one owner call at a time
	d     *Driven
	nc    net.Conn
	notes chan struct{}
	// held are the owner's streams whose answer waits for window.
	held map[*Stream][]byte
	pool StreamPool
}

func driveOn(t *testing.T, srv *Server, h HandlerFunc, fastPrefix string) string {
	t.Helper()
	srv.Handler = h
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); srv.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			o := &fakeOwner{nc: nc, notes: make(chan struct{}, 1), held: map[*Stream][]byte{}}
			fast := func(s *Stream) bool {
				if fastPrefix == "" || !strings.HasPrefix(s.Path, fastPrefix) {
					return false
				}
				// Called within Feed: o.mu is held.
				s.WriteHeaders(200, []HeaderField{{Name: "x-served-by", Value: "owner"}}, false)
				o.send(s, []byte(strings.Repeat("fast "+s.Path+"\n", 8000)))
				return true
			}
			o.d = srv.Drive(nc, func() {
				select {
				case o.notes <- struct{}{}:
				default:
				}
			}, fast, &o.pool)
			if o.d == nil {
				nc.Close()
				continue
			}
			go o.run()
		}
	}()
	return ln.Addr().String()
}

// send writes what the window lets through of b, holds the rest.
func (o *fakeOwner) send(s *Stream, b []byte) {
	n, err := s.WriteAvailable(b, true)
	if err != nil {
		delete(o.held, s)
		o.d.Finish(s)
		return
	}
	if n < len(b) {
		o.held[s] = b[n:]
		return
	}
	delete(o.held, s)
	o.d.Finish(s)
}

// flush writes what waits; it reports false once the connection is over.
func (o *fakeOwner) flush() bool {
	out, over := o.d.Take(nil)
	if len(out) > 0 {
		if _, err := o.nc.Write(out); err != nil {
			return false
		}
	}
	o.d.Wrote(len(out) > 0, false)
	return !over
}

func (o *fakeOwner) run() {
	done := make(chan struct{})
	defer func() {
		close(done)
		o.mu.Lock()
		o.d.Close()
		o.mu.Unlock()
		o.nc.Close()
	}()
	go func() {
		for {
			select {
			case <-o.notes:
				o.mu.Lock()
				ok := o.flush()
				o.mu.Unlock()
				if !ok {
					o.nc.Close()
					return
				}
			case <-done:
				return
			}
		}
	}()
	buf := make([]byte, 4096) // small: frames arrive in pieces
	for {
		n, err := o.nc.Read(buf)
		o.mu.Lock()
		ok := err == nil && o.d.Feed(buf[:n])
		for s, b := range o.held {
			o.send(s, b)
		}
		ok = o.flush() && ok
		o.mu.Unlock()
		if !ok {
			return
		}
	}
}

// A driven connection serves streams its owner answers itself and
// streams handlers answer, on one connection, with its owner moving the
// bytes: answers larger than the client's windows wait for them.
func TestDrivenConnectionServesOwnerAndHandlerStreams(t *testing.T) {
	addr := driveOn(t, &Server{}, func(s *Stream) {
		body, _ := io.ReadAll(s)
		answer(s, fmt.Sprintf("handler %s %d", s.Path, len(body)))
	}, "/fast")
	client, _ := h2cClient(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Go(func() {
			path := fmt.Sprint("/fast/", i)
			want := strings.Repeat("fast "+path+"\n", 8000)
			var body io.Reader
			if i%2 == 1 {
				path = fmt.Sprint("/slow/", i)
				want = fmt.Sprintf("handler %s %d", path, 100<<10)
				body = bytes.NewReader(pattern(100 << 10))
			}
			req, _ := http.NewRequest("POST", "http://"+addr+path, body)
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(got) != want {
				errs <- fmt.Errorf("%s: %d bytes (%v), want %d", path, len(got), err, len(want))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A driven connection reads frames however the socket cuts them, and
// closes on a bad preface or a header block without end.
func TestDrivenConnectionClosesOnABadPrefaceAndAContinuationFlood(t *testing.T) {
	addr := driveOn(t, &Server{Settings: Settings{MaxHeaderListSize: 4 << 10}}, func(s *Stream) { answer(s, "ok") }, "")

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := goAwayCode(t, nc); got != http2.ErrCodeProtocol {
		t.Errorf("bad preface: GOAWAY %v, want PROTOCOL_ERROR", got)
	}

	c := dialRaw(t, addr)
	c.fr.WriteSettingsAck()
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}, EndHeaders: false})
	var err2 error
	sent := 0
	for sent < 1<<20 && err2 == nil {
		err2 = c.fr.WriteContinuation(1, false, make([]byte, 1024))
		sent += 1024
	}
	if got := goAwayCode(t, c.nc); got != http2.ErrCodeProtocol {
		t.Errorf("CONTINUATION flood: GOAWAY %v after %d KiB, want PROTOCOL_ERROR", got, sent>>10)
	}
}

// goAwayCode reads frames from nc until a GOAWAY, and returns its code.
func goAwayCode(t *testing.T, nc net.Conn) http2.ErrCode {
	t.Helper()
	fr := http2.NewFramer(io.Discard, nc)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return g.ErrCode
		}
	}
}

func TestFrameSpan(t *testing.T) {
	frame := func(typ http2.FrameType, flags http2.Flags, n int) []byte {
		return append([]byte{byte(n >> 16), byte(n >> 8), byte(n), byte(typ), byte(flags), 0, 0, 0, 1}, make([]byte, n)...)
	}
	data := frame(http2.FrameData, 0, 10)
	open := frame(http2.FrameHeaders, 0, 5)
	cont := frame(http2.FrameContinuation, 0, 5)
	last := frame(http2.FrameContinuation, http2.FlagHeadersEndHeaders, 5)
	for _, c := range []struct {
		name string
		b    []byte
		want int
	}{
		{"a header alone", data[:5], 0},
		{"part of a payload", data[:12], 0},
		{"a frame", data, 19},
		{"a frame and part of the next", append(data, data[:3]...), 19},
		{"a header block open", append(open, cont...), 0},
		{"a header block to its end", append(append(open, cont...), last...), 42},
		{"a block past the limit", append(append(open, cont...), cont...), -1},
		{"a frame longer than allowed", frame(http2.FrameData, 0, 20<<10)[:9], 9},
	} {
		if got := frameSpan(c.b, 30); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
