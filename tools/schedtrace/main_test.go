package main

import (
	"bufio"
	"bytes"
	"math"
	"net"
	"runtime"
	"runtime/trace"
	"slices"
	"strings"
	"testing"
	"time"

	xtrace "golang.org/x/exp/trace"
)

// TestRequestsAreFoundInARealTrace traces a small proxy on loopback (read a
// line from the client, wait a turn, pass the line to an upstream, yield,
// read the answer, write it back) and checks that every request it served
// is found, with its time split between the states.
func TestRequestsAreFoundInARealTrace(t *testing.T) {
	const n = 200
	upstream := listen(t, func(c net.Conn) { // echoes lines
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			c.Write([]byte(line))
		}
	})
	proxy := listen(t, func(c net.Conn) {
		up, err := net.Dial("tcp", upstream)
		if err != nil {
			return
		}
		defer up.Close()
		serveClient(c, up)
	})

	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for range n {
		c.Write([]byte("ping\n"))
		if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("got %q, %v", line, err)
		}
	}
	c.Close()
	trace.Stop()

	reqs, order, err := analyse(&buf, "schedtrace.serveClient", "schedtrace.readUpstream", "schedtrace.takeTurn")
	if err != nil {
		t.Fatal(err)
	}
	// A request whose bytes are in before the proxy reads again (the first
	// one, or one the client sent quickly) is counted with the one before;
	// a wake-up of the read with nothing to read yet counts as one more.
	if len(reqs) < n*9/10 || len(reqs) > n+n/50 {
		t.Fatalf("found %d requests, want about %d", len(reqs), n)
	}
	for i, r := range reqs {
		var sum int64
		for _, d := range r.in {
			sum += int64(d)
		}
		if r.total <= 0 || sum != int64(r.total) || r.in[running] <= 0 || r.in[waitingTurn] <= 0 {
			t.Fatalf("request %d: total %v, states %v: the states must add up to the total, with some running and some waiting a turn", i, r.total, r.in)
		}
	}
	var out strings.Builder
	report(&out, reqs, order)
	if !strings.Contains(out.String(), "requests; server-side time p50") || !strings.Contains(out.String(), stateNames[readyAfterYield]) {
		t.Errorf("report:\n%s", out.String())
	}
}

// A server that keeps the order of arrival keeps each client's place from
// round to round; one that reverses each round moves first to last.
func TestRoundsTellKeptFromReversedOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reverse bool
		want    float64
	}{{"kept", false, 1}, {"reversed", true, -1}} {
		o := &rounds{last: map[xtrace.GoID]float64{}}
		clients := []xtrace.GoID{1, 2, 3, 4, 5, 6, 7, 8}
		for range 5 {
			for _, g := range clients {
				o.readied(g)
			}
			o.ran()
			if tc.reverse {
				slices.Reverse(clients)
			}
		}
		o.readied(9) // a round too small to count
		o.ran()
		c, ok := o.correlation()
		if !ok || math.Abs(c-tc.want) > 1e-9 || len(o.prev) != 4*len(clients) {
			t.Errorf("%s: correlation %v (ok %v) over %d pairs, want %v over %d", tc.name, c, ok, len(o.prev), tc.want, 4*len(clients))
		}
	}
}

//go:noinline
func serveClient(c, up net.Conn) {
	br, ubr := bufio.NewReader(c), bufio.NewReader(up)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		takeTurn()
		up.Write([]byte(line))
		runtime.Gosched()
		answer, err := readUpstream(ubr)
		if err != nil {
			return
		}
		c.Write([]byte(answer))
	}
}

// takeTurn blocks briefly, as a wait for a turn does.
//
//go:noinline
func takeTurn() { time.Sleep(time.Microsecond) }

//go:noinline
func readUpstream(br *bufio.Reader) (string, error) { return br.ReadString('\n') }

func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}
