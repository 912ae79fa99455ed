package h2

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// dialer is a pool's Dial to addr that counts its dials, those under way
// at once, and keeps the connections it made.
type dialer struct {
	addr string
	// hold, when set, makes each dial wait for it to be closed.
	hold chan struct{}
	// err, when set, is what each dial returns.
	err error

	mu                     sync.Mutex
	dials, now, mostAtOnce int
	conns                  []*countConn
	started                chan struct{} // receives (without blocking) at each dial
}

func newDialer(addr string) *dialer {
	return &dialer{addr: addr, started: make(chan struct{}, 1)}
}

func (d *dialer) dial() (net.Conn, error) {
	d.mu.Lock()
	d.dials++
	d.now++
	d.mostAtOnce = max(d.mostAtOnce, d.now)
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.now--
		d.mu.Unlock()
	}()
	select {
	case d.started <- struct{}{}:
	default:
	}
	if d.hold != nil {
		<-d.hold
	}
	if d.err != nil {
		return nil, d.err
	}
	// Dials that overlap would show in mostAtOnce: they get a moment.
	time.Sleep(2 * time.Millisecond)
	nc, err := net.Dial("tcp", d.addr)
	if err != nil {
		return nil, err
	}
	cc := &countConn{Conn: nc}
	d.mu.Lock()
	d.conns = append(d.conns, cc)
	d.mu.Unlock()
	return cc, nil
}

func (d *dialer) counts() (dials, mostAtOnce int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials, d.mostAtOnce
}

func (d *dialer) conn(i int) *countConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conns[i]
}

// poolState is the pool's connections and whether its goroutine runs.
func (p *Pool) state() (conns int, ticking bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns), p.ticking
}

func newPool(t *testing.T, d *dialer) *Pool {
	p := &Pool{Dial: d.dial}
	t.Cleanup(p.Close)
	return p
}

// concurrency counts the streams each connection of a server has open at
// once, and the most it ever had.
type concurrency struct {
	mu   sync.Mutex
	now  map[string]int
	most int
}

func (c *concurrency) enter(conn string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now == nil {
		c.now = map[string]int{}
	}
	c.now[conn]++
	c.most = max(c.most, c.now[conn])
}

func (c *concurrency) leave(conn string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now[conn]--
}

func TestPoolDialsOneAtATimeAndAnotherConnectionAtTheServersLimit(t *testing.T) {
	const streams = 50
	for _, tc := range []struct {
		name  string
		serve func(t *testing.T, h func(conn string)) string
	}{
		{"x/net", func(t *testing.T, h func(string)) string {
			return serveXNet(t, &http2.Server{MaxConcurrentStreams: 2}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h(r.RemoteAddr)
				io.WriteString(w, "ok")
			})).addr
		}},
		{"podpin", func(t *testing.T, h func(string)) string {
			return servePodpin(t, Settings{MaxConcurrentStreams: 2}, func(s *Stream) {
				h(s.Conn().RemoteAddr().String())
				answer(s, "ok")
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every handler waits until all the streams are open at
			// once: they need 25 connections of 2.
			var arrived atomic.Int32
			all := make(chan struct{})
			var conc concurrency
			addr := tc.serve(t, func(conn string) {
				conc.enter(conn)
				defer conc.leave(conn)
				if arrived.Add(1) == streams {
					close(all)
				}
				select {
				case <-all:
				case <-time.After(wait):
				}
			})
			d := newDialer(addr)
			p := newPool(t, d)
			start := make(chan struct{})
			errs := make(chan error, streams)
			for range streams {
				go func() {
					<-start
					s, err := p.NewStream(reqFields("GET", "/"), true)
					if err != nil {
						errs <- err
						return
					}
					r := readReply(s)
					if r.err == nil && (r.status != 200 || string(r.body) != "ok") {
						r.err = fmt.Errorf("answer %d %q", r.status, r.body)
					}
					errs <- r.err
				}()
			}
			close(start)
			for range streams {
				if err := waitFor(t, "the streams", errs); err != nil {
					t.Error(err)
				}
			}
			dials, most := d.counts()
			if most != 1 {
				t.Errorf("%d dials at once, want 1", most)
			}
			if dials != streams/2 {
				t.Errorf("%d dials, want %d: 2 streams a connection", dials, streams/2)
			}
			if conc.most > 2 {
				t.Errorf("a connection had %d streams at once, over the server's 2", conc.most)
			}
			if n, _ := p.state(); n != streams/2 {
				t.Errorf("the pool keeps %d connections, want %d", n, streams/2)
			}
		})
	}
}

func TestPoolDialErrorReachesEveryWaiter(t *testing.T) {
	errDial := errors.New("no route to the pod")
	d := newDialer("127.0.0.1:1")
	d.hold = make(chan struct{})
	d.err = errDial
	p := newPool(t, d)
	const n = 20
	var ready sync.WaitGroup
	ready.Add(n)
	errs := make(chan error, n)
	for range n {
		go func() {
			ready.Done()
			_, err := p.NewStream(reqFields("GET", "/"), true)
			errs <- err
		}()
	}
	ready.Wait()
	waitFor(t, "the dial", d.started)
	// The others come to wait for the dial under way.
	time.Sleep(50 * time.Millisecond)
	close(d.hold)
	for range n {
		if err := waitFor(t, "the callers", errs); !errors.Is(err, errDial) {
			t.Errorf("NewStream: %v, want the dial's error", err)
		}
	}
	dials, most := d.counts()
	if most != 1 {
		t.Errorf("%d dials at once, want 1", most)
	}
	if dials >= n {
		t.Errorf("%d dials for %d callers: none shared the dial under way", dials, n)
	}
	if c, _ := p.state(); c != 0 {
		t.Errorf("%d connections kept", c)
	}
}

func TestPoolClosesIdleConnectionsAndItsGoroutineEnds(t *testing.T) {
	release := make(chan struct{})
	peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-time.After(wait):
			}
		}
		io.WriteString(w, "ok")
	}))
	d := newDialer(peer.addr)
	p := newPool(t, d)
	p.IdleTimeout = 100 * time.Millisecond

	// A stream open for many idle timeouts keeps its connection.
	s, err := p.NewStream(reqFields("GET", "/slow"), true)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * p.IdleTimeout)
	if d.conn(0).closed.Load() {
		t.Fatal("a connection with a stream open was closed as idle")
	}
	close(release)
	okReply(t, getReply(t, s), "ok")

	// Idle, it is closed, and the pool's goroutine ends.
	eventually(t, "the idle connection closed", d.conn(0).closed.Load)
	eventually(t, "the pool's goroutine ended", func() bool {
		n, ticking := p.state()
		return n == 0 && !ticking
	})
	// The next stream dials again, and the goroutine runs again.
	s, err = p.NewStream(reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	okReply(t, getReply(t, s), "ok")
	if dials, _ := d.counts(); dials != 2 {
		t.Errorf("%d dials, want 2", dials)
	}
	if n, ticking := p.state(); n != 1 || !ticking {
		t.Errorf("%d connections, goroutine running: %v; want 1, true", n, ticking)
	}
	eventually(t, "the second connection closed", d.conn(1).closed.Load)
	eventually(t, "the pool's goroutine ended", func() bool {
		n, ticking := p.state()
		return n == 0 && !ticking
	})
}

func TestPoolClosesAConnectionWhoseServerReadsNothing(t *testing.T) {
	// The server gives every window there is, then reads nothing.
	addr, accept := listenRaw(t, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	go func() {
		p := accept()
		p.fr.WriteWindowUpdate(0, 1<<31-1-65535)
	}()
	d := newDialer(addr)
	p := newPool(t, d)
	p.WriteTimeout = 200 * time.Millisecond
	s, err := p.NewStream(reqFields("POST", "/upload"), false)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 1<<20)
	err = await(t, "the write", func() error {
		for range 256 { // more than the sockets hold
			if err := s.WriteData(body, false); err != nil {
				return err
			}
		}
		return nil
	})
	var ce *ConnError
	if !errors.As(err, &ce) {
		t.Fatalf("WriteData to a server that reads nothing: %v, want a *ConnError", err)
	}
	eventually(t, "the socket closed", d.conn(0).closed.Load)
	eventually(t, "the pool's goroutine ended", func() bool {
		n, ticking := p.state()
		return n == 0 && !ticking
	})
}

func TestPoolDialsAfreshWhenTheServerClosedItsConnection(t *testing.T) {
	started := make(chan struct{}, 1)
	peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		http.NewResponseController(w).Flush()
		if r.URL.Path == "/hang" {
			started <- struct{}{}
			<-r.Context().Done()
		}
	}))
	d := newDialer(peer.addr)
	p := newPool(t, d)
	s, err := p.NewStream(reqFields("GET", "/hang"), true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handler", started)
	peer.closeConns()
	var ce *ConnError
	if r := getReply(t, s); !errors.As(r.err, &ce) {
		t.Fatalf("a stream whose server closed the connection: %v, want a *ConnError", r.err)
	}
	s, err = p.NewStream(reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	okReply(t, getReply(t, s), "first")
	if dials, _ := d.counts(); dials != 2 {
		t.Errorf("%d dials, want 2", dials)
	}
	if n, _ := p.state(); n != 1 {
		t.Errorf("the pool keeps %d connections, want 1: the closed one forgotten", n)
	}
}

func TestPoolMovesToANewConnectionAfterGoAway(t *testing.T) {
	// podpin's server sends GOAWAY to an idle connection; the pool has
	// no timeout of its own, and forgets the connection all the same.
	srv := &Server{Settings: Settings{IdleTimeout: 200 * time.Millisecond}}
	addr := serve(t, srv, func(s *Stream) { answer(s, "ok") })
	d := newDialer(addr)
	p := newPool(t, d)
	for i := range 3 {
		s, err := p.NewStream(reqFields("GET", "/"), true)
		if err != nil {
			t.Fatal(err)
		}
		okReply(t, getReply(t, s), "ok")
		eventually(t, "the server's GOAWAY", d.conn(i).closed.Load)
	}
	if dials, _ := d.counts(); dials != 3 {
		t.Errorf("%d dials, want 3", dials)
	}
	if n, ticking := p.state(); n > 1 || ticking {
		t.Errorf("the pool keeps %d connections (goroutine %v), want at most the last", n, ticking)
	}
}

func TestPoolClose(t *testing.T) {
	started := make(chan struct{}, 1)
	peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		http.NewResponseController(w).Flush()
		started <- struct{}{}
		<-r.Context().Done()
	}))
	d := newDialer(peer.addr)
	p := &Pool{Dial: d.dial, IdleTimeout: time.Minute}
	s, err := p.NewStream(reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handler", started)
	p.Close()
	var ce *ConnError
	if r := getReply(t, s); !errors.As(r.err, &ce) {
		t.Errorf("a stream of a closed pool: %v, want a *ConnError", r.err)
	}
	if _, err := p.NewStream(reqFields("GET", "/"), true); err != errPoolClosed {
		t.Errorf("NewStream after Close: %v", err)
	}
	eventually(t, "the socket closed", d.conn(0).closed.Load)
	eventually(t, "the pool's goroutine ended", func() bool {
		_, ticking := p.state()
		return !ticking
	})
}

func TestPoolHandsOutNoStreamOnAConnectionWithoutSettings(t *testing.T) {
	// A server that takes one stream: the pool knows it before it hands
	// out the second, which goes to a second connection.
	addr, accept := listenRaw(t, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
	peers := make(chan *rawPeer, 2)
	go func() {
		for range 2 {
			peers <- accept()
		}
	}()
	d := newDialer(addr)
	p := newPool(t, d)
	var streams []*ClientStream
	for range 2 {
		type opened struct {
			s   *ClientStream
			err error
		}
		o := await(t, "NewStream", func() opened {
			s, err := p.NewStream(reqFields("GET", "/"), true)
			return opened{s, err}
		})
		if o.err != nil {
			t.Fatalf("NewStream: %v", o.err)
		}
		s := o.s
		streams = append(streams, s)
	}
	for range 2 {
		rp := waitFor(t, "a connection", peers)
		rp.expectHeaders(1)
		rp.headers(1, false, ":status", "200")
		rp.data(1, true, []byte("one"))
	}
	for _, s := range streams {
		okReply(t, getReply(t, s), "one")
	}
	if dials, _ := d.counts(); dials != 2 {
		t.Errorf("%d dials, want 2", dials)
	}
}
