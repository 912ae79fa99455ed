// Command schedtrace reads a Go execution trace (runtime/trace, or
// /debug/pprof/trace on podpin's admin listener) and reports where the
// requests of a server spend their time: running, waiting for a processor
// after the network readied them or after they yielded, waiting their turn
// to send upstream, or blocked on a second connection.
//
// A request is one goroutine's span from the moment the client's bytes make
// it runnable to the moment it blocks reading its client again (a request
// whose bytes are in before that read is counted with the one before). Blocking
// frames are told apart by function names in the stack: -client names the
// network read that ends a request (fasthttp's serveConn by default),
// -upstream the read of the pod's answer (podpin's idleConn.Read), -turn
// the wait before a request goes to its pod (podpin's turns.wait, with one
// processor).
//
//	curl -s -o trace.out "127.0.0.1:9901/debug/pprof/trace?seconds=1"   # under load
//	go run ./tools/schedtrace trace.out   (from tools/schedtrace: go run . ../../trace.out)
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// state is where a request's time goes.
type state int

const (
	running state = iota
	readyAfterNet
	waitingTurn
	readyAfterYield
	readyAfterUpstream
	blockedUpstream
	blockedElse
	numStates
)

var stateNames = [numStates]string{
	running:            "running",
	readyAfterNet:      "runnable after the client's bytes",
	waitingTurn:        "waiting its turn, until it runs",
	readyAfterYield:    "runnable after yielding",
	readyAfterUpstream: "runnable after the upstream answered",
	blockedUpstream:    "blocked on the upstream",
	blockedElse:        "blocked on anything else",
}

// request is one request's time, by state.
type request struct {
	total     time.Duration
	in        [numStates]time.Duration
	upstreams int
}

// goroutine follows one goroutine through the trace.
type goroutine struct {
	inRequest bool
	start     trace.Time
	last      trace.Time
	req       request
	why       state // the current wait, while not running
}

// analyse reads a trace and returns its requests, in trace order, and the
// order their starts kept from one network poll to the next.
func analyse(r io.Reader, client, upstream, turn string) ([]request, *rounds, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	gs := map[trace.GoID]*goroutine{}
	var out []request
	order := &rounds{last: map[trace.GoID]float64{}}
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			return out, order, nil
		}
		if err != nil {
			return out, order, err
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		g := gs[st.Resource.Goroutine()]
		if g == nil {
			g = &goroutine{}
			gs[st.Resource.Goroutine()] = g
		}
		from, to := st.Goroutine()
		now := ev.Time()
		if to == trace.GoRunning {
			order.ran()
		}
		if g.inRequest {
			st := g.why
			if from == trace.GoRunning {
				st = running
			}
			g.req.in[st] += time.Duration(now - g.last)
		}
		g.last = now
		switch {
		case from == trace.GoRunning && to == trace.GoWaiting:
			stack := frames(ev)
			switch {
			case strings.Contains(stack, upstream):
				g.why = blockedUpstream
				g.req.upstreams++
			case strings.Contains(stack, turn):
				g.why = waitingTurn
			case strings.Contains(stack, client) && strings.Contains(stack, netRead):
				if g.inRequest {
					g.req.total = time.Duration(now - g.start)
					out = append(out, g.req)
				}
				g.inRequest = false
			default:
				g.why = blockedElse
			}
		case from == trace.GoRunning && to == trace.GoRunnable:
			g.why = readyAfterYield
		case from == trace.GoWaiting && to == trace.GoRunnable:
			switch {
			case !g.inRequest:
				g.inRequest, g.start, g.req = true, now, request{}
				g.why = readyAfterNet
				order.readied(st.Resource.Goroutine())
			case g.why == blockedUpstream:
				g.why = readyAfterUpstream
			}
		}
	}
}

// rounds follows the requests that one network poll readied, in the order
// they were readied (which is the order they run in), from each poll to the
// next: a goroutine's place in its round against its place in the round of
// its next request. A server that keeps the order of arrival keeps each
// client's place; one that reverses it every round swaps first and last.
type rounds struct {
	batch      []trace.GoID           // readied since a goroutine last ran: one poll's
	last       map[trace.GoID]float64 // each goroutine's place in its last round, 0 first to 1 last
	prev, next []float64              // pairs of places in consecutive rounds
}

// minRound is the fewest requests in a round whose order counts.
const minRound = 4

func (o *rounds) readied(g trace.GoID) { o.batch = append(o.batch, g) }

// ran ends the round being readied.
func (o *rounds) ran() {
	if len(o.batch) >= minRound {
		for i, g := range o.batch {
			place := float64(i) / float64(len(o.batch)-1)
			if p, ok := o.last[g]; ok {
				o.prev = append(o.prev, p)
				o.next = append(o.next, place)
			}
			o.last[g] = place
		}
	}
	o.batch = o.batch[:0]
}

// correlation is the correlation of places from one round to the next: 1
// when every client keeps its place, -1 when the order is reversed each
// round, about 0 when places are shuffled. ok is false without pairs.
func (o *rounds) correlation() (c float64, ok bool) {
	n := float64(len(o.prev))
	if n < 2 {
		return 0, false
	}
	var mx, my float64
	for i := range o.prev {
		mx += o.prev[i]
		my += o.next[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range o.prev {
		dx, dy := o.prev[i]-mx, o.next[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0, false
	}
	return sxy / math.Sqrt(sxx*syy), true
}

// netRead is in the stack of a goroutine blocked reading a connection. A
// request ends only there: within the client function it may also block on
// anything else (a lock, a garbage collection assist).
const netRead = "internal/poll.(*FD).Read"

func frames(ev trace.Event) string {
	var b strings.Builder
	for f := range ev.Stack().Frames() {
		b.WriteString(f.Func)
		b.WriteByte(';')
	}
	return b.String()
}

// report prints percentiles of the requests' time, how well their order
// held from one network poll to the next and, for slices of them by
// duration, the mean time in each state.
func report(w io.Writer, reqs []request, order *rounds) {
	if len(reqs) == 0 {
		fmt.Fprintln(w, "no requests found: check -client and -upstream")
		return
	}
	if c, ok := order.correlation(); ok {
		fmt.Fprintf(w, "order from one poll's round of requests to the next: correlation of places %.2f over %d requests (1 kept, -1 reversed)\n", c, len(order.prev))
	}
	slices.SortFunc(reqs, func(a, b request) int { return int(a.total - b.total) })
	n := len(reqs)
	fmt.Fprintf(w, "%d requests; server-side time p50 %v, p90 %v, p99 %v\n",
		n, reqs[n/2].total, reqs[n*9/10].total, reqs[n*99/100].total)
	for _, b := range []struct {
		name   string
		lo, hi int
	}{{"fastest half", 0, n / 2}, {"50-90%", n / 2, n * 9 / 10}, {"90-99%", n * 9 / 10, n * 99 / 100}, {"slowest 1%", n * 99 / 100, n}} {
		part := reqs[b.lo:b.hi]
		if len(part) == 0 {
			continue
		}
		var sum request
		for _, r := range part {
			sum.total += r.total
			sum.upstreams += r.upstreams
			for i := range sum.in {
				sum.in[i] += r.in[i]
			}
		}
		k := time.Duration(len(part))
		fmt.Fprintf(w, "\n%s (%d): mean %v, upstream blocks %.2f per request\n", b.name, len(part), sum.total/k, float64(sum.upstreams)/float64(len(part)))
		for i, s := range stateNames {
			fmt.Fprintf(w, "  %-40s %v\n", s, (sum.in[i] / k).Round(time.Microsecond/10))
		}
	}
}

func main() {
	client := flag.String("client", "fasthttp.(*Server).serveConn", "function in the stack of the read that ends a request")
	upstream := flag.String("upstream", "idleConn).Read", "function in the stack of a read of the upstream's answer")
	turn := flag.String("turn", "turns).wait", "function in the stack of a wait for the turn to send upstream")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: schedtrace [-client FUNC] [-upstream FUNC] [-turn FUNC] TRACE")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	reqs, order, err := analyse(f, *client, *upstream, *turn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading the trace:", err)
		os.Exit(1)
	}
	report(os.Stdout, reqs, order)
}
