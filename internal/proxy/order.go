package proxy

import (
	"runtime"
	"sync"
)

// Requests go to the pods in the order they arrived.
//
// Go's network poller hands the scheduler the goroutines that one poll
// found ready in reverse order of readiness (runtime.netpoll pushes each
// onto a list). On one processor under load, the requests of one poll are
// served as a round: each goroutine reads its request and writes it to a
// pod, yields (podTransport.RoundTrip), then reads the pod's answer and
// answers its client. Answers leave in the order the round ran, clients
// send their next requests in that order, and the next poll reverses it
// again: a client served first in one round is served last in the next, so
// a request waits anywhere between almost no time and two rounds. HAProxy's
// event loop serves in readiness order, and every request waits about one
// round.
//
// arrivals puts the round back in readiness order. A goroutine about to
// write its request to a pod waits its turn; once the goroutines already
// runnable have all come to wait, they go in reverse order of coming, which
// is the order their requests arrived. It is used with one processor only
// (podpin's own benchmark setting, and a CPU limit of one core), as found
// when a configuration is applied: with more, goroutines come from several
// run queues at once and there is no round to put in order. The measured
// effect is in docs/benchmarks.md.
var arrivals turns

// turns releases waiting goroutines in rounds, newest first.
type turns struct {
	start   sync.Once
	mu      sync.Mutex
	waiting []chan struct{} // in order of coming
	wake    chan struct{}   // holds a token while waiting is not empty
	chans   sync.Pool       // of chan struct{}, one per waiter
}

// wait returns when the calling goroutine's turn comes.
func (q *turns) wait() {
	q.start.Do(func() {
		q.wake = make(chan struct{}, 1)
		q.chans.New = func() any { return make(chan struct{}, 1) }
		go q.run()
	})
	ch := q.chans.Get().(chan struct{})
	q.mu.Lock()
	q.waiting = append(q.waiting, ch)
	first := len(q.waiting) == 1
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	<-ch
	q.chans.Put(ch)
}

// run releases the waiting goroutines, a round at a time, for the life of
// the process.
func (q *turns) run() {
	var spare []chan struct{}
	for range q.wake {
		q.settle()
		q.mu.Lock()
		round := q.waiting
		q.waiting = spare[:0]
		q.mu.Unlock()
		release(round)
		clear(round)
		spare = round
	}
}

// settle lets the goroutines that are already runnable come to wait: it
// yields until a yield brings no new waiter. With more than one processor
// waiters may keep coming, so it gives up after a few yields.
func (q *turns) settle() {
	n := q.count()
	for range 4 {
		runtime.Gosched()
		m := q.count()
		if m == n {
			return
		}
		n = m
	}
}

func (q *turns) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

// release lets the waiters of a round go, the last to come first. Waking a
// goroutine puts it next in line and moves the one woken before it to the
// back of the run queue, so the newest is woken last and the others from
// the second newest down: they then run newest first.
func release(round []chan struct{}) {
	n := len(round)
	if n == 0 {
		return
	}
	for i := n - 2; i >= 0; i-- {
		round[i] <- struct{}{}
	}
	round[n-1] <- struct{}{}
}
