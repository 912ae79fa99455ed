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
// A Proxy's turns put the round back in readiness order. A goroutine about to
// write its request to a pod waits its turn; once the goroutines already
// runnable have all come to wait, they go in reverse order of coming, which
// is the order their requests arrived. It is used with one processor only
// (GOMAXPROCS=1, as in podpin's benchmarks; a CPU limit alone gives Go at
// least two), as found when a configuration is applied: with more,
// goroutines come from several run queues at once and there is no round to
// put in order. The measured effect is in docs/benchmarks.md.

// turns lets goroutines go in rounds, newest first. The first to come in a
// round leads it: it yields until the goroutines already runnable have come
// too, then lets them go from the newest down and goes last itself, woken by
// the one before it. No goroutine runs for the turns between rounds. Safe
// for concurrent use; the zero value is ready.
type turns struct {
	// guards gathering, waiting and spare
	mu        sync.Mutex
	gathering bool     // a leader is gathering a round
	waiting   []waiter // the round's other goroutines, in order of coming
	spare     []waiter // the last round's slice, for the next one
	waiters   sync.Pool
}

// A waiter is woken with the waiter it must wake in turn, or nil.
type waiter chan waiter

// wait returns when the calling goroutine's turn comes.
func (q *turns) wait() {
	w := q.waiter()
	q.mu.Lock()
	leads := !q.gathering
	q.gathering = true
	if !leads {
		q.waiting = append(q.waiting, w)
	}
	q.mu.Unlock()
	if leads {
		q.lead(w)
	}
	if next := <-w; next != nil {
		next <- nil
	}
	q.waiters.Put(w)
}

func (q *turns) waiter() waiter {
	if w, ok := q.waiters.Get().(waiter); ok {
		return w
	}
	return make(waiter, 1)
}

// lead gathers a round and lets it go. It yields until two yields in a
// row bring no one new: one alone may be the scheduler's periodic look at
// the global run queue, which runs the leader again ahead of the goroutines
// already runnable. With more than one processor goroutines may keep
// coming, so it gives up after a few yields. The leader's own turn comes
// after the oldest of the others: that one wakes it.
func (q *turns) lead(self waiter) {
	n, quiet := 0, 0
	for range 8 {
		runtime.Gosched()
		q.mu.Lock()
		m := len(q.waiting)
		q.mu.Unlock()
		if m != n {
			n, quiet = m, 0
		} else if quiet++; quiet == 2 {
			break
		}
	}
	q.mu.Lock()
	round := q.waiting
	q.waiting, q.spare = q.spare[:0], nil
	q.gathering = false
	q.mu.Unlock()
	if len(round) == 0 {
		self <- nil // alone: its turn is now
		return
	}
	release(round, self)
	clear(round)
	q.mu.Lock()
	if q.spare == nil {
		q.spare = round[:0]
	}
	q.mu.Unlock()
}

// release lets the waiters of a round go, the last to come first, and has
// the first to come wake last. Waking a goroutine puts it next in line and
// moves the one woken before it to the back of the run queue, so the newest
// is woken last and the others from the second newest down: they then run
// newest first.
func release(round []waiter, last waiter) {
	wake := func(i int) {
		if i == 0 {
			round[i] <- last
		} else {
			round[i] <- nil
		}
	}
	n := len(round)
	for i := n - 2; i >= 0; i-- {
		wake(i)
	}
	wake(n - 1)
}
