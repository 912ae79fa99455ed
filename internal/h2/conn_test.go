package h2

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// gate holds handlers until it opens, or until their stream ends.
type gate struct {
	open    chan struct{}
	started chan uint32 // the streams whose handlers started
	ended   chan uint32 // the streams whose context ended first
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), started: make(chan uint32, 100), ended: make(chan uint32, 100)}
}

// hold is a handler that answers with the stream's path once the gate
// opens.
func (g *gate) hold(s *Stream) {
	g.started <- s.ID()
	select {
	case <-g.open:
		answer(s, s.Path)
	case <-s.Context().Done():
		g.ended <- s.ID()
	}
}

// waitStarted waits for the handlers of ids to start, in any order.
func (g *gate) waitStarted(t *testing.T, ids ...uint32) {
	t.Helper()
	want := map[uint32]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for len(want) > 0 {
		select {
		case id := <-g.started:
			if !want[id] {
				t.Fatalf("got the handler of stream %d started, want only those of %v", id, ids)
			}
			delete(want, id)
		case <-time.After(wait):
			t.Fatalf("handlers of %v not started within %v", want, wait)
		}
	}
}

func TestMaxConcurrentStreams(t *testing.T) {
	t.Run("a stream past the limit is refused and the others are served", func(t *testing.T) {
		g := newGate()
		srv := &Server{Settings: Settings{MaxConcurrentStreams: 2}}
		addr := serve(t, srv, g.hold)
		c := dialRaw(t, addr)
		c.sync() // the server's SETTINGS are acknowledged
		c.request(1, "GET", "/one", true)
		c.request(3, "GET", "/three", true)
		c.request(5, "GET", "/five", true)
		r := c.response(5)
		if r.reset == nil || (*r.reset != http2.ErrCodeProtocol && *r.reset != http2.ErrCodeRefusedStream) {
			t.Errorf("got stream 5's frames %v (reset %v), want it refused with RST_STREAM", r.frames, r.reset)
		}
		g.waitStarted(t, 1, 3)
		close(g.open)
		for _, id := range []uint32{1, 3} {
			if r := c.response(id); r.status != "200" {
				t.Errorf("got stream %d's frames %v, want an answer", id, r.frames)
			}
		}
	})
	t.Run("streams queued behind running handlers run once those end", func(t *testing.T) {
		// The client resets two streams whose handlers do not end with
		// their stream: the next two streams wait for those handlers.
		release := make(chan struct{})
		started := make(chan uint32, 10)
		srv := &Server{Settings: Settings{MaxConcurrentStreams: 2}}
		addr := serve(t, srv, func(s *Stream) {
			started <- s.ID()
			if s.Path == "/stubborn" {
				<-release
				return
			}
			answer(s, s.Path)
		})
		c := dialRaw(t, addr)
		c.request(1, "GET", "/stubborn", true)
		c.request(3, "GET", "/stubborn", true)
		for range 2 {
			<-started
		}
		c.rst(1, http2.ErrCodeCancel)
		c.rst(3, http2.ErrCodeCancel)
		c.request(5, "GET", "/five", true)
		c.request(7, "GET", "/seven", true)
		c.sync() // the server has taken streams 5 and 7
		select {
		case id := <-started:
			t.Fatalf("got stream %d's handler started while two handlers run, want it queued", id)
		default:
		}
		close(release)
		for _, id := range []uint32{5, 7} {
			if r := c.response(id); r.status != "200" || string(r.body) != []string{5: "/five", 7: "/seven"}[id] {
				t.Errorf("got stream %d's frames %v, body %q, want its answer", id, r.frames, r.body)
			}
		}
	})
}

func TestShutdown(t *testing.T) {
	t.Run("in-flight streams finish after the GOAWAY, then Shutdown returns nil", func(t *testing.T) {
		g := newGate()
		srv := &Server{}
		addr := serve(t, srv, g.hold)
		c := dialRaw(t, addr)
		c.request(1, "GET", "/in-flight", true)
		g.waitStarted(t, 1)
		shut := make(chan error, 1)
		go func() { shut <- srv.Shutdown(context.Background()) }()
		var away *http2.GoAwayFrame
		for away == nil {
			f, err := c.next()
			if err != nil {
				t.Fatalf("got %v, want a GOAWAY", err)
			}
			away, _ = f.(*http2.GoAwayFrame)
		}
		if away.ErrCode != http2.ErrCodeNo || away.LastStreamID != 1 {
			t.Errorf("got GOAWAY %v last stream %d, want NO_ERROR last stream 1", away.ErrCode, away.LastStreamID)
		}
		select {
		case err := <-shut:
			t.Fatalf("got Shutdown to return %v with a stream in flight, want it to wait", err)
		default:
		}
		close(g.open)
		if r := c.response(1); string(r.body) != "/in-flight" {
			t.Errorf("got the in-flight stream's frames %v, body %q, want its answer", r.frames, r.body)
		}
		c.closed()
		if err := <-shut; err != nil {
			t.Errorf("got Shutdown %v, want nil", err)
		}
		if _, err := net.Dial("tcp", addr); err == nil {
			t.Errorf("got a new connection accepted after Shutdown, want the listener closed")
		}
	})
	t.Run("an idle connection closes at once and a stream opened after the GOAWAY is refused", func(t *testing.T) {
		g := newGate()
		srv := &Server{}
		addr := serve(t, srv, g.hold)
		idle := dialRaw(t, addr)
		idle.sync()
		busy := dialRaw(t, addr)
		busy.request(1, "GET", "/in-flight", true)
		g.waitStarted(t, 1)
		shut := make(chan error, 1)
		go func() { shut <- srv.Shutdown(context.Background()) }()
		if away := idle.closed(); away == nil || away.ErrCode != http2.ErrCodeNo {
			t.Errorf("got the idle connection closed with GOAWAY %v, want one with NO_ERROR", away)
		}
		for {
			f, err := busy.next()
			if err != nil {
				t.Fatalf("got %v, want a GOAWAY", err)
			}
			if _, ok := f.(*http2.GoAwayFrame); ok {
				break
			}
		}
		busy.request(3, "GET", "/late", true)
		if r := busy.response(3); r.reset == nil || *r.reset != http2.ErrCodeRefusedStream {
			t.Errorf("got the late stream's frames %v (reset %v), want REFUSED_STREAM", r.frames, r.reset)
		}
		close(g.open)
		if r := busy.response(1); string(r.body) != "/in-flight" {
			t.Errorf("got the in-flight stream's frames %v, want its answer", r.frames)
		}
		if err := <-shut; err != nil {
			t.Errorf("got Shutdown %v, want nil", err)
		}
	})
	t.Run("a context that ends first closes the connections and is returned", func(t *testing.T) {
		g := newGate()
		srv := &Server{}
		addr := serve(t, srv, g.hold)
		c := dialRaw(t, addr)
		c.request(1, "GET", "/forever", true)
		g.waitStarted(t, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got Shutdown %v, want context.DeadlineExceeded", err)
		}
		if away := c.closed(); away == nil {
			t.Errorf("got the connection closed without a GOAWAY, want one")
		}
	})
	t.Run("Close closes every connection and ends every stream's context", func(t *testing.T) {
		g := newGate()
		srv := &Server{}
		addr := serve(t, srv, g.hold)
		var cs []*rawConn
		for i := range 3 {
			c := dialRaw(t, addr)
			c.request(1, "GET", "/conn-"+strconv.Itoa(i), true)
			cs = append(cs, c)
		}
		for range 3 {
			g.waitStarted(t, 1)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("got Close %v, want nil", err)
		}
		for i := range 3 {
			select {
			case <-g.ended:
			case <-time.After(wait):
				t.Fatalf("got %d of 3 streams' contexts ended after Close, want all", i)
			}
		}
		for i, c := range cs {
			r := c.nc
			r.SetReadDeadline(time.Now().Add(wait))
			if _, err := io.Copy(io.Discard, r); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("connection %d: got it open %v after Close, want it closed", i, wait)
				}
			}
		}
	})
}

func TestConnectionTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		settings    Settings
		ignorePings bool
		// request: the client sends a request first.
		request bool
		// goAway: a GOAWAY comes before the connection closes.
		goAway bool
	}{
		{
			name:     "an idle connection is closed with a GOAWAY",
			settings: Settings{IdleTimeout: 200 * time.Millisecond},
			goAway:   true,
		},
		{
			name:     "a connection idle after its streams is closed with a GOAWAY",
			settings: Settings{IdleTimeout: 200 * time.Millisecond},
			request:  true,
			goAway:   true,
		},
		{
			name:        "a connection that answers no PING is closed",
			settings:    Settings{PingInterval: 100 * time.Millisecond, PingTimeout: 200 * time.Millisecond},
			ignorePings: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{Settings: tc.settings}
			addr := serve(t, srv, func(s *Stream) { answer(s, "ok") })
			c := dialRaw(t, addr)
			c.ignorePings = tc.ignorePings
			if tc.request {
				c.request(1, "GET", "/", true)
				if r := c.response(1); r.status != "200" {
					t.Fatalf("got frames %v, want an answer", r.frames)
				}
			}
			pings := 0
			var away *http2.GoAwayFrame
			for {
				f, err := c.next()
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatalf("got the connection open after %v, want it closed", wait)
					}
					break
				}
				switch f := f.(type) {
				case *http2.PingFrame:
					pings++
				case *http2.GoAwayFrame:
					away = f
				}
			}
			if tc.goAway && (away == nil || away.ErrCode != http2.ErrCodeNo) {
				t.Errorf("got GOAWAY %v, want one with NO_ERROR", away)
			}
			if tc.ignorePings && pings == 0 {
				t.Errorf("got the connection closed without a PING, want one first")
			}
		})
	}
}

func TestClientGoAwayClosesTheConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		// held: the handler still runs, its answer sent, when the
		// client's GOAWAY comes.
		held bool
	}{
		{name: "a GOAWAY on an idle connection closes it"},
		{name: "a GOAWAY while a handler runs closes the connection once it returns", held: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := &Server{}
			addr := serve(t, srv, func(s *Stream) {
				answer(s, "ok")
				if s.Path == "/held" {
					<-release
				}
			})
			c := dialRaw(t, addr)
			path := "/"
			if tc.held {
				path = "/held"
			}
			c.request(1, "GET", path, true)
			c.response(1)
			if err := c.fr.WriteGoAway(0, http2.ErrCodeNo, nil); err != nil {
				t.Fatal(err)
			}
			if tc.held {
				c.sync() // the GOAWAY came before the handler returns
			}
			close(release)
			c.closed() // fails the test if the connection stays open
		})
	}
}

func TestAnsweredPingsKeepTheConnection(t *testing.T) {
	srv := &Server{Settings: Settings{PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond}}
	addr := serve(t, srv, func(s *Stream) { answer(s, "ok") })
	c := dialRaw(t, addr)
	c.ignorePings = true
	// Answer five PINGs, each after a moment longer than the timeout
	// would allow if the answers did not count.
	for answered := 0; answered < 5; {
		f, err := c.next()
		if err != nil {
			t.Fatalf("got %v after %d PINGs answered, want the connection open", err, answered)
		}
		if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
			if err := c.fr.WritePing(true, p.Data); err != nil {
				t.Fatal(err)
			}
			answered++
		}
	}
	c.request(1, "GET", "/", true)
	if r := c.response(1); string(r.body) != "ok" {
		t.Errorf("got frames %v, want an answer after the PINGs", r.frames)
	}
}

func TestWriteTimeoutDisconnectsAClientThatDoesNotRead(t *testing.T) {
	got := make(chan error, 1)
	srv := &Server{Settings: Settings{WriteTimeout: 300 * time.Millisecond}}
	addr := serve(t, srv, func(s *Stream) {
		s.WriteHeaders(200, nil, false)
		chunk := make([]byte, 64<<10)
		for {
			if _, err := s.Write(chunk); err != nil {
				got <- err
				return
			}
		}
	})
	// The client grants all the window it can, asks, and reads nothing.
	c := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	if err := c.fr.WriteWindowUpdate(0, 1<<31-1-65535); err != nil {
		t.Fatal(err)
	}
	c.request(1, "GET", "/endless", true)
	select {
	case err := <-got:
		if !errors.Is(err, ErrStreamClosed) {
			t.Errorf("got the handler's write to fail with %v, want ErrStreamClosed", err)
		}
	case <-time.After(wait):
		t.Fatalf("got the handler still writing after %v, want the connection closed", wait)
	}
	// What the socket holds is read, then the connection ends.
	c.nc.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.Copy(io.Discard, c.nc); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("got the connection open %v later, want it closed", wait)
		}
	}
}

func TestWorkersEndAndNoGoroutineOutlivesClose(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := &Server{}
	const burst = 40
	var arrived sync.WaitGroup
	arrived.Add(burst)
	addr := serve(t, srv, func(s *Stream) {
		if s.Path == "/burst" {
			// Every handler of the burst runs at once: each needs a
			// worker of its own.
			arrived.Done()
			arrived.Wait()
		}
		answer(s, "ok")
	})
	client, tr := h2cClient(t)
	errs := make(chan error, burst)
	for range burst {
		go func() {
			res, err := client.Get("http://" + addr + "/burst")
			if err == nil {
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			errs <- err
		}()
	}
	for range burst {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	idle := func() int {
		srv.workers.mu.Lock()
		defer srv.workers.mu.Unlock()
		return len(srv.workers.idle)
	}
	// The burst's workers go idle once their handlers have ended.
	for deadline := time.Now().Add(wait); idle() < burst; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("got %d idle workers after a burst of %d, want %d", idle(), burst, burst)
		}
	}
	for deadline := time.Now().Add(wait); idle() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("got %d workers still idle after %v, want them ended", idle(), wait)
		}
	}
	// A worker is made again when needed.
	res, err := client.Get("http://" + addr + "/after")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()

	tr.CloseIdleConnections()
	srv.Close()
	var now int
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		if now = runtime.NumGoroutine(); now <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("got %d goroutines %v after Close, want at most the %d from before:\n%s", now, wait, before, buf)
		}
	}
}

func TestServeAfterShutdown(t *testing.T) {
	srv := &Server{Handler: HandlerFunc(func(s *Stream) {})}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("got Shutdown %v with nothing served, want nil", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("got Serve %v after Shutdown, want ErrServerClosed", err)
	}
}

func TestTimerRunsOnlyWithATimeout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings Settings
		want     bool
	}{
		{name: "a connection with no timeout set runs no timer"},
		{name: "an idle timeout runs a timer", settings: Settings{IdleTimeout: time.Minute}, want: true},
		{name: "a write timeout runs a timer", settings: Settings{WriteTimeout: time.Minute}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{Settings: tc.settings}
			addr := serve(t, srv, func(s *Stream) { answer(s, "ok") })
			c := dialRaw(t, addr)
			c.request(1, "GET", "/", true)
			c.response(1) // the connection is past its preface
			srv.mu.Lock()
			var got []bool
			for sc := range srv.conns {
				sc.mu.Lock()
				got = append(got, sc.timer != nil)
				sc.mu.Unlock()
			}
			srv.mu.Unlock()
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("got timers %v, want one connection with a timer: %t", got, tc.want)
			}
		})
	}
}

func TestSettingsComeFirstWhenShutdownMeetsANewConnection(t *testing.T) {
	// Shutdown may send a GOAWAY to a connection whose reader has not
	// started yet: the server's preface, SETTINGS, must still come first.
	srv := &Server{Handler: HandlerFunc(func(s *Stream) {})}
	server, client := net.Pipe()
	defer client.Close()
	c := newConn(srv, server)
	c.goAway()
	go c.serve()
	client.SetDeadline(time.Now().Add(wait))
	fr := http2.NewFramer(client, client)
	var kinds []string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		kinds = append(kinds, f.Header().Type.String())
		if _, ok := f.(*http2.GoAwayFrame); ok {
			break
		}
	}
	if len(kinds) == 0 || kinds[0] != "SETTINGS" {
		t.Errorf("got frames %v, want SETTINGS first", kinds)
	}
}
