package redistest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Faults is a TCP proxy in front of one Redis node that can delay its
// replies or cut every connection, to put one client (one podpin replica)
// in trouble while the others reach Redis directly. Safe for concurrent
// use.
type Faults struct {
	// Addr is where clients connect instead of the node.
	Addr   string
	target string
	ln     net.Listener

	latency atomic.Int64 // nanoseconds added to every reply
	cut     atomic.Bool

	// guards conns
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewFaults starts a proxy to target on a free loopback port; it passes
// bytes through unchanged until told otherwise.
func NewFaults(t testing.TB, target string) *Faults {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Faults{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	f.wg.Go(f.accept)
	t.Cleanup(f.close)
	return f
}

// SetLatency delays every reply from the node by d from now on (0: none).
func (f *Faults) SetLatency(d time.Duration) { f.latency.Store(int64(d)) }

// Cut closes every connection and refuses new ones (true), or lets them
// through again (false).
func (f *Faults) Cut(on bool) {
	f.cut.Store(on)
	if on {
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	}
}

func (f *Faults) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if f.cut.Load() {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", f.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		if !f.track(c, up) {
			return
		}
		f.wg.Go(func() { f.pipe(c, up) })
	}
}

// track registers a connection pair; false once the proxy is closed.
func (f *Faults) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

// pipe copies requests straight through and replies after the latency:
// each chunk read from the node is written to the client once its delay,
// counted from when it arrived, has passed, so the client's own timeouts
// see a slow server.
func (f *Faults) pipe(client, up net.Conn) {
	defer func() {
		client.Close()
		up.Close()
		f.mu.Lock()
		delete(f.conns, client)
		delete(f.conns, up)
		f.mu.Unlock()
	}()
	go func() {
		io.Copy(up, client)
		up.Close()
	}()
	type chunk struct {
		b  []byte
		at time.Time
	}
	replies := make(chan chunk, 1024)
	go func() {
		defer close(replies)
		for {
			b := make([]byte, 32<<10)
			n, err := up.Read(b)
			if n > 0 {
				replies <- chunk{b[:n], time.Now().Add(time.Duration(f.latency.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range replies {
		time.Sleep(time.Until(c.at))
		if _, err := client.Write(c.b); err != nil {
			up.Close()
			for range replies {
			}
			return
		}
	}
}

func (f *Faults) close() {
	f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
}
