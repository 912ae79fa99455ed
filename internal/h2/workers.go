package h2

import (
	"sync"
	"time"
)

// workerIdle is how long a worker waits for another stream before it
// ends, give or take as much again.
const workerIdle = time.Second

// workers runs the handlers of a server's streams on goroutines that live
// on after their stream, as fasthttp's worker pool runs HTTP/1.1
// connections: a handler then starts on a goroutine whose stack has
// already grown to what handlers need, instead of growing a fresh one on
// every stream. Workers idle for workerIdle end (sweep). Safe for
// concurrent use; the zero value is ready.
type workers struct {
	// guards idle, gen and stopped
	mu      sync.Mutex
	idle    []*worker // in the order they went idle
	gen     int       // sweeps so far
	stopped bool
}

type worker struct {
	work chan func() // capacity 1; closed to end the worker
	gen  int         // the sweep it went idle after
}

// run runs f on an idle worker, or on a new one.
func (p *workers) run(f func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		// The one idle last has the warmest stack.
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- f
		return
	}
	p.mu.Unlock()
	go p.loop(&worker{work: make(chan func(), 1)}, f)
}

func (p *workers) loop(w *worker, f func()) {
	for f != nil {
		f()
		p.mu.Lock()
		if p.stopped {
			p.mu.Unlock()
			return
		}
		w.gen = p.gen
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		f = <-w.work
	}
}

// sweep ends the workers that stayed idle since the last sweep.
func (p *workers) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := 0
	for i < len(p.idle) && p.idle[i].gen < p.gen {
		close(p.idle[i].work)
		i++
	}
	n := copy(p.idle, p.idle[i:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	p.gen++
}

// stop ends the idle workers, and every other one once its handler
// returns.
func (p *workers) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	for _, w := range p.idle {
		close(w.work)
	}
	p.idle = nil
}
