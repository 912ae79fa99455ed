package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// Listeners keeps a proxy's client listeners as the configuration says,
// while it runs: Set binds the listeners that are new, stops those that
// are gone (they stop accepting and their requests in flight finish, as at
// shutdown), and rebinds those whose settings changed; the others serve on,
// untouched. Safe for concurrent use.
type Listeners struct {
	p     *Proxy
	drain time.Duration

	failed chan error // the first listener that stopped by itself
	wg     sync.WaitGroup

	// guards running and closed
	mu      sync.Mutex
	running map[string]*runningListener // by configured address
	closed  bool
}

// runningListener is one listener being served.
type runningListener struct {
	cfg  config.Listener
	ln   *releasingListener
	stop context.CancelFunc
	done chan struct{} // closed when ServeListener returned
}

// releasingListener tells when its socket is closed: at the start of a
// shutdown, long before the connections drain, so that a listener with new
// settings can bind the address again while the old one finishes.
type releasingListener struct {
	net.Listener
	released chan struct{}
	once     sync.Once
}

func (l *releasingListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.released) })
	return err
}

// ListenError is a listener address that could not be bound.
type ListenError struct {
	Address string // as in listeners[].address
	Err     error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("listening for clients on %s: %v", e.Address, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// ListenerAddress is the address that could not be bound.
func (e *ListenError) ListenerAddress() string { return e.Address }

// NewListeners returns the listeners of p, none yet; each lets its
// requests in flight finish for up to drain when it stops.
func (p *Proxy) NewListeners(drain time.Duration) *Listeners {
	return &Listeners{p: p, drain: drain, failed: make(chan error, 1), running: map[string]*runningListener{}}
}

// Set makes ls the running listeners. Every new address is bound first:
// when one cannot be, the error names it and nothing changes. Then the
// listeners no longer wanted stop, and those whose settings changed are
// bound again with their new settings as soon as the old ones released
// the address (a connection that arrives in between is refused), while the
// old ones' requests finish.
func (l *Listeners) Set(ls []config.Listener) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("listeners closed")
	}
	want := map[string]config.Listener{}
	for _, lc := range ls {
		want[lc.Address] = lc
	}
	bound := map[string]net.Listener{}
	for addr := range want {
		if _, ok := l.running[addr]; ok {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, b := range bound {
				b.Close()
			}
			return &ListenError{Address: addr, Err: err}
		}
		bound[addr] = ln
	}
	for addr, rl := range l.running {
		if lc, ok := want[addr]; ok && reflect.DeepEqual(lc, rl.cfg) {
			continue
		}
		rl.stop()
		select {
		case <-rl.ln.released:
		case <-rl.done:
		}
		delete(l.running, addr)
		if _, ok := want[addr]; ok {
			// A configured port 0 keeps the port the system chose: clients
			// already know it.
			ln, err := net.Listen("tcp", rl.ln.Addr().String())
			if err != nil {
				l.p.log.Error("listener not bound again after its settings changed", "address", addr, "err", err)
				continue
			}
			bound[addr] = ln
		} else {
			l.p.log.Info("listener removed", "address", addr)
		}
	}
	for addr, ln := range bound {
		l.start(want[addr], ln)
	}
	return nil
}

// start serves ln with the settings of lc. l.mu must be held.
func (l *Listeners) start(lc config.Listener, ln net.Listener) {
	ctx, stop := context.WithCancel(context.Background())
	rl := &runningListener{cfg: lc, ln: &releasingListener{Listener: ln, released: make(chan struct{})}, stop: stop, done: make(chan struct{})}
	l.running[lc.Address] = rl
	l.wg.Go(func() {
		defer close(rl.done)
		err := l.p.ServeListener(ctx, rl.ln, lc, l.drain)
		if err != nil && ctx.Err() == nil {
			select {
			case l.failed <- fmt.Errorf("listener %s: %w", lc.Address, err):
			default:
			}
		}
	})
}

// Addrs returns where each listener listens, by configured address: the
// port the system chose for a configured port 0.
func (l *Listeners) Addrs() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]string{}
	for addr, rl := range l.running {
		out[addr] = rl.ln.Addr().String()
	}
	return out
}

// Failed reports the first listener that stopped serving other than by
// Set or Close.
func (l *Listeners) Failed() <-chan error { return l.failed }

// Close stops every listener, lets their requests in flight finish for up
// to the drain time, and waits for them. Set fails afterwards.
func (l *Listeners) Close() {
	l.mu.Lock()
	l.closed = true
	for _, rl := range l.running {
		rl.stop()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
