package h2

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// outcome is what a handler saw, sent to the test.
type outcome struct {
	err      error // of the Read or Write that waited
	ctxEnded bool
	writeErr error // of a write after that
	written  int   // what that write says it wrote
}

func TestClientReset(t *testing.T) {
	for _, tc := range []struct {
		name string
		// window is the stream window the client grants.
		window uint32
		// wait blocks the handler until the client's reset.
		wait func(s *Stream) error
		// want says whether the waiting call's error is right.
		want     func(error) bool
		wantText string
	}{
		{
			name:   "a reset fails a Read waiting for the body",
			window: 65535,
			wait: func(s *Stream) error {
				_, err := s.Read(make([]byte, 10))
				return err
			},
			want:     IsReset,
			wantText: "an error for which IsReset is true",
		},
		{
			name:   "a reset fails a Write waiting for the client's window",
			window: 0,
			wait: func(s *Stream) error {
				s.WriteHeaders(200, nil, false)
				_, err := s.Write([]byte("more than the window"))
				return err
			},
			want:     func(err error) bool { return errors.Is(err, ErrStreamClosed) },
			wantText: "ErrStreamClosed",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started := make(chan struct{})
			got := make(chan outcome, 1)
			srv := &Server{}
			addr := serve(t, srv, func(s *Stream) {
				close(started)
				var o outcome
				o.err = tc.wait(s)
				select {
				case <-s.Context().Done():
					o.ctxEnded = true
				case <-time.After(wait):
				}
				o.written, o.writeErr = s.Write([]byte("after the reset"))
				got <- o
			})
			c := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: tc.window})
			c.request(1, "POST", "/upload", false)
			<-started
			c.rst(1, http2.ErrCodeCancel)
			o := <-got
			if !tc.want(o.err) {
				t.Errorf("got %v from the waiting call, want %s", o.err, tc.wantText)
			}
			if !o.ctxEnded {
				t.Errorf("got the stream's context still going, want it ended")
			}
			if o.writeErr == nil || o.written != 0 {
				t.Errorf("got a write after the reset to return %d, %v, want 0 and an error", o.written, o.writeErr)
			}
			// The connection goes on.
			c.request(3, "GET", "/", true)
			c.rst(3, http2.ErrCodeCancel)
			c.sync()
		})
	}
}

func TestReadDeadline(t *testing.T) {
	for _, tc := range []struct {
		name string
		// set sets the deadline of s, whose handler then reads.
		set func(s *Stream)
	}{
		{
			name: "a deadline ahead fails the Read that waits past it",
			set:  func(s *Stream) { s.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) },
		},
		{
			name: "a deadline in the past set during the Read ends it",
			set: func(s *Stream) {
				time.AfterFunc(100*time.Millisecond, func() { s.SetReadDeadline(time.Now().Add(-time.Second)) })
			},
		},
		{
			name: "a deadline already past fails the Read at once",
			set:  func(s *Stream) { s.SetReadDeadline(time.Now().Add(-time.Second)) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan error, 1)
			srv := &Server{}
			addr := serve(t, srv, func(s *Stream) {
				tc.set(s)
				_, err := s.Read(make([]byte, 10))
				got <- err
				answer(s, "late")
			})
			c := dialRaw(t, addr)
			// A body is announced and never sent.
			c.request(1, "POST", "/slow", false)
			if err := <-got; !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("got %v, want os.ErrDeadlineExceeded", err)
			}
			if r := c.response(1); string(r.body) != "late" {
				t.Errorf("got the answer after the deadline %q (frames %v), want %q", r.body, r.frames, "late")
			}
		})
	}
}

func TestWriteDeadlineResetsTheStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		// window is what the client grants the stream.
		window uint32
		write  func(s *Stream) (int, error)
		// written is what the write says went out.
		written int
	}{
		{
			name: "a write waiting for window past its deadline",
			write: func(s *Stream) (int, error) {
				s.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				return s.Write([]byte("no window for this"))
			},
		},
		{
			name:   "a write that used the window and waits for more",
			window: 10,
			write: func(s *Stream) (int, error) {
				s.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				return s.Write([]byte("ten bytes, then no window"))
			},
			written: 10,
		},
		{
			name: "a deadline in the past",
			write: func(s *Stream) (int, error) {
				s.SetWriteDeadline(time.Now().Add(-time.Second))
				return s.Write([]byte("too late"))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				n   int
				err error
			}
			got := make(chan result, 1)
			srv := &Server{}
			addr := serve(t, srv, func(s *Stream) {
				s.WriteHeaders(200, nil, false)
				n, err := tc.write(s)
				got <- result{n, err}
			})
			// The client's window lets tc.window bytes of body out.
			c := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: tc.window})
			c.keepWindow = true
			c.request(1, "GET", "/", true)
			r := c.response(1)
			if r.reset == nil || *r.reset != http2.ErrCodeInternal {
				t.Errorf("got frames %v (reset %v), want the stream reset with INTERNAL_ERROR", r.frames, r.reset)
			}
			if len(r.body) != tc.written {
				t.Errorf("got %d body bytes, want %d", len(r.body), tc.written)
			}
			res := <-got
			if res.err == nil || res.n != tc.written {
				t.Errorf("got the write to return %d, %v, want %d and an error", res.n, res.err, tc.written)
			}
		})
	}
}

func TestHandlerEndings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(s *Stream)
		// frames are the stream's frames the client reads.
		frames []string
		reset  http2.ErrCode
	}{
		{
			name:    "a handler that returns without writing resets the stream with INTERNAL_ERROR",
			handler: func(s *Stream) {},
			frames:  []string{"RST"},
			reset:   http2.ErrCodeInternal,
		},
		{
			name:    "a handler that panics resets the stream with INTERNAL_ERROR",
			handler: func(s *Stream) { panic("handler bug") },
			frames:  []string{"RST"},
			reset:   http2.ErrCodeInternal,
		},
		{
			name: "a handler that panics after its header resets the stream with INTERNAL_ERROR",
			handler: func(s *Stream) {
				s.WriteHeaders(200, nil, false)
				s.Flush()
				panic("handler bug")
			},
			frames: []string{"HEADERS", "RST"},
			reset:  http2.ErrCodeInternal,
		},
		{
			name:    "a handler that writes its header only gets an empty DATA with END_STREAM",
			handler: func(s *Stream) { s.WriteHeaders(204, nil, false) },
			frames:  []string{"HEADERS", "DATA+END"},
		},
		{
			name:    "a header that ends the response goes alone",
			handler: func(s *Stream) { s.WriteHeaders(200, nil, true) },
			frames:  []string{"HEADERS+END"},
		},
		{
			name: "a body not ended by the handler is ended for it",
			handler: func(s *Stream) {
				s.WriteHeaders(200, nil, false)
				s.Write([]byte("part"))
			},
			frames: []string{"HEADERS", "DATA", "DATA+END"},
		},
		{
			name: "an informational header comes before the final one",
			handler: func(s *Stream) {
				s.WriteHeaders(103, []HeaderField{{Name: "link", Value: "</a.css>; rel=preload"}}, false)
				s.WriteHeaders(200, nil, true)
			},
			frames: []string{"HEADERS", "HEADERS+END"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{}
			addr := serve(t, srv, func(s *Stream) {
				if s.Path == "/next" {
					answer(s, "still serving")
					return
				}
				tc.handler(s)
			})
			c := dialRaw(t, addr)
			c.request(1, "GET", "/", true)
			r := c.response(1)
			if !slices.Equal(r.frames, tc.frames) {
				t.Errorf("got frames %v, want %v", r.frames, tc.frames)
			}
			if tc.reset != 0 && (r.reset == nil || *r.reset != tc.reset) {
				t.Errorf("got reset %v, want %v", r.reset, tc.reset)
			}
			// The connection keeps serving.
			c.request(3, "GET", "/next", true)
			if r := c.response(3); r.status != "200" || string(r.body) != "still serving" {
				t.Errorf("got the next stream %s %q (frames %v), want 200 %q", r.status, r.body, r.frames, "still serving")
			}
		})
	}
}

func TestHeadersOnAClosedStream(t *testing.T) {
	// Both sides ended stream 1; its handler has not returned yet. A
	// HEADERS frame on it is a connection error (RFC 9113, 5.1), as it is
	// once the handler has returned.
	for _, tc := range []struct {
		name     string
		returned bool
	}{
		{name: "while the handler still runs"},
		{name: "after the handler returned", returned: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := &Server{}
			addr := serve(t, srv, func(s *Stream) {
				answer(s, "done")
				if !tc.returned {
					<-release
				}
			})
			defer close(release)
			c := dialRaw(t, addr)
			c.request(1, "GET", "/", true)
			if r := c.response(1); string(r.body) != "done" {
				t.Fatalf("got frames %v, want the answer", r.frames)
			}
			if tc.returned {
				c.sync()
			}
			c.request(1, "GET", "/again", true)
			var resets []uint32
			for {
				f, err := c.next()
				if err != nil {
					t.Fatalf("got %v with stream resets %v, want a GOAWAY", err, resets)
				}
				if rst, ok := f.(*http2.RSTStreamFrame); ok {
					resets = append(resets, rst.StreamID)
				}
				if g, ok := f.(*http2.GoAwayFrame); ok {
					if g.ErrCode != http2.ErrCodeStreamClosed && g.ErrCode != http2.ErrCodeProtocol {
						t.Errorf("got GOAWAY %v, want STREAM_CLOSED or PROTOCOL_ERROR", g.ErrCode)
					}
					break
				}
			}
			if len(resets) > 0 {
				t.Errorf("got RST_STREAM on streams %v, want the connection error alone", resets)
			}
		})
	}
}
