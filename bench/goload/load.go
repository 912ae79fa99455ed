package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// loadConfig is one load run.
type loadConfig struct {
	target      string        // host:port
	tls         bool          // TLS (ALPN h2), else h2c
	mode        string        // "unary" or "stream"
	conns       int           // HTTP/2 connections
	concurrency int           // calls or streams in flight, spread over conns
	duration    time.Duration // how long to send
	keys        int           // session keys hot-00001..; 0: no key
	sequential  bool          // unary: visit the keys in order (a warm-up), not at random
}

func parseLoad(args []string) (loadConfig, error) {
	var c loadConfig
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&c.target, "target", "", "`host:port` of the proxy or pod")
	fs.BoolVar(&c.tls, "tls", false, "speak TLS (ALPN h2); without it h2c with prior knowledge")
	fs.StringVar(&c.mode, "mode", "unary", "`unary` calls, or messages on bidirectional `stream`s")
	fs.IntVar(&c.conns, "conns", 8, "HTTP/2 `connections`")
	fs.IntVar(&c.concurrency, "concurrency", 64, "calls or streams in `flight`, spread over the connections")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how `long` to send")
	fs.IntVar(&c.keys, "keys", 10000, "session `keys` (x-session: hot-00001...); 0 sends none")
	fs.BoolVar(&c.sequential, "sequential", false, "unary: visit the keys in order, so that each is in the table afterwards")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.target == "":
		return c, errors.New("--target is required")
	case c.mode != "unary" && c.mode != "stream":
		return c, fmt.Errorf("--mode %q: want unary or stream", c.mode)
	case c.conns < 1 || c.concurrency < c.conns:
		return c, fmt.Errorf("--conns %d, --concurrency %d: want at least one connection and a call per connection", c.conns, c.concurrency)
	case c.duration <= 0:
		return c, errors.New("--duration must be positive")
	}
	return c, nil
}

// runFor returns a context that is canceled after d. The run ends by
// cancellation, not by a deadline: grpc-go and the dialer time a deadline
// with timers of their own and may report it before ctx.Err() does, and a
// loop would then count calls refused at once as failures until it did.
// Cancel sets ctx.Err() before any call sees ctx end.
func runFor(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	t := time.AfterFunc(d, cancel)
	return ctx, func() {
		t.Stop()
		cancel()
	}
}

// summary is what bench/wrk/report.lua prints for wrk, so the bench program
// reads both alike.
type summary struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	Bytes      int64   `json:"bytes"`
	P50US      int64   `json:"p50_us"`
	P90US      int64   `json:"p90_us"`
	P99US      int64   `json:"p99_us"`
	MeanUS     float64 `json:"mean_us"`
	Connect    int64   `json:"connect"`
	Read       int64   `json:"read"`
	Write      int64   `json:"write"`
	Status     int64   `json:"status"` // calls or messages that ended with a status other than OK
	Timeout    int64   `json:"timeout"`
}

// runLoad sends calls for the configured time and prints the summary. A
// call cut short by the end of the run is not counted.
func runLoad(ctx context.Context, args []string, out io.Writer) error {
	c, err := parseLoad(args)
	if err != nil {
		return err
	}
	conns, err := dial(c.target, c.tls, c.conns)
	if err != nil {
		return err
	}
	defer func() {
		for _, cc := range conns {
			cc.Close()
		}
	}()
	ctx, cancel := runFor(ctx, c.duration)
	defer cancel()

	var next atomic.Int64 // the sequential key cursor
	key := func(r *rand.Rand) string {
		if c.keys == 0 {
			return ""
		}
		n := int(next.Add(1)-1)%c.keys + 1
		if !c.sequential {
			n = r.IntN(c.keys) + 1
		}
		return fmt.Sprintf("hot-%05d", n)
	}
	workers := make([]worker, c.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &workers[i]
		w.conn = conns[i%len(conns)]
		w.rand = rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
		wg.Go(func() {
			if c.mode == "unary" {
				w.unary(ctx, key)
			} else {
				w.stream(ctx, key)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	var s summary
	var lat []int64
	seen := map[string]bool{}
	for _, w := range workers {
		lat = append(lat, w.latencies...)
		s.Status += w.failed
		if w.firstErr != nil && !seen[w.firstErr.Error()] && len(seen) < 5 {
			seen[w.firstErr.Error()] = true
			fmt.Fprintf(out, "a call failed: %v\n", w.firstErr)
		}
	}
	slices.Sort(lat)
	s.Requests = int64(len(lat))
	s.DurationUS = elapsed.Microseconds()
	if n := len(lat); n > 0 {
		s.P50US, s.P90US, s.P99US = lat[n*50/100], lat[n*90/100], lat[n*99/100]
		var sum int64
		for _, v := range lat {
			sum += v
		}
		s.MeanUS = float64(sum) / float64(n)
	}
	js, err := json.Marshal(s)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %d %s calls in %s, %.0f/s, p50 %d µs, p99 %d µs, %d failed\n",
		c.target, s.Requests, c.mode, elapsed.Round(time.Millisecond), float64(s.Requests)/elapsed.Seconds(), s.P50US, s.P99US, s.Status)
	fmt.Fprintf(out, "PODPIN_BENCH %s\n", js)
	return nil
}

// dial opens n client connections to target, each its own HTTP/2
// connection, and waits for them to be ready.
func dial(target string, useTLS bool, n int) ([]*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if useTLS {
		// The benchmark's certificate is self-signed; trust is not what is
		// measured.
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	}
	var conns []*grpc.ClientConn
	for range n {
		cc, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(creds))
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("connecting to %s: %w", target, err)
		}
		cc.Connect()
		conns = append(conns, cc)
	}
	return conns, nil
}

// worker makes one call at a time (or keeps one stream) and records each
// call's latency. Each is used by one goroutine.
type worker struct {
	conn      *grpc.ClientConn
	rand      *rand.Rand
	latencies []int64 // µs
	failed    int64
	firstErr  error
}

// withKey returns ctx carrying the session key in x-session, if any.
func withKey(ctx context.Context, key string) context.Context {
	if key == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "x-session", key)
}

func (w *worker) unary(ctx context.Context, key func(*rand.Rand) string) {
	in, out := wrapperspb.String("ping"), new(wrapperspb.StringValue)
	for ctx.Err() == nil {
		t := time.Now()
		err := w.conn.Invoke(withKey(ctx, key(w.rand)), unaryMethod, in, out, grpc.WaitForReady(true))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.fail(err)
			continue
		}
		w.latencies = append(w.latencies, time.Since(t).Microseconds())
	}
}

// fail counts a failed call and keeps the first error, which the summary
// prints.
func (w *worker) fail(err error) {
	w.failed++
	if w.firstErr == nil {
		w.firstErr = err
	}
}

// stream keeps one bidirectional stream with one key for the whole run,
// sending a message and waiting for its answer in turn; a stream that fails
// is counted and replaced by one with a new key.
func (w *worker) stream(ctx context.Context, key func(*rand.Rand) string) {
	in, out := wrapperspb.String("ping"), new(wrapperspb.StringValue)
	for ctx.Err() == nil {
		st, err := w.conn.NewStream(withKey(ctx, key(w.rand)), &streamDesc, streamMethod, grpc.WaitForReady(true))
		if err != nil {
			if ctx.Err() == nil {
				w.fail(err)
			}
			continue
		}
		for ctx.Err() == nil {
			t := time.Now()
			if err = st.SendMsg(in); err == nil {
				err = st.RecvMsg(out)
			}
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				w.fail(err)
				break
			}
			w.latencies = append(w.latencies, time.Since(t).Microseconds())
		}
	}
}

// runCheck asks the target what a pre-flight check needs: one key reaches
// one pod five times, on unary calls and on one stream, and calls without a
// key reach more than one pod. It prints the pods seen.
func runCheck(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	target := fs.String("target", "", "`host:port` of the proxy")
	useTLS := fs.Bool("tls", false, "speak TLS (ALPN h2)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conns, err := dial(*target, *useTLS, 1)
	if err != nil {
		return err
	}
	cc := conns[0]
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	call := func(key string) (string, error) {
		reply := new(wrapperspb.StringValue)
		err := cc.Invoke(withKey(ctx, key), unaryMethod, wrapperspb.String("check"), reply, grpc.WaitForReady(true))
		return reply.GetValue(), err
	}
	first := ""
	for i := range 5 {
		pod, err := call("preflight-key")
		if err != nil {
			return fmt.Errorf("unary call: %w", err)
		}
		if i == 0 {
			first = pod
		} else if pod != first {
			return fmt.Errorf("one key went to %q and then %q", first, pod)
		}
	}
	st, err := cc.NewStream(withKey(ctx, "preflight-key"), &streamDesc, streamMethod)
	if err != nil {
		return fmt.Errorf("opening a stream: %w", err)
	}
	for range 5 {
		reply := new(wrapperspb.StringValue)
		if err := st.SendMsg(wrapperspb.String("check")); err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		if err := st.RecvMsg(reply); err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		if reply.GetValue() != first {
			return fmt.Errorf("a stream with the key went to %q, its unary calls to %q", reply.GetValue(), first)
		}
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	if err := st.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
		return fmt.Errorf("stream end: got %v, want the OK status", err)
	}
	seen := map[string]bool{}
	for range 8 {
		pod, err := call("")
		if err != nil {
			return fmt.Errorf("unary call without a key: %w", err)
		}
		seen[pod] = true
	}
	if len(seen) < 2 {
		return fmt.Errorf("8 calls without a key all went to one pod")
	}
	fmt.Fprintf(out, "ok: the key stayed on %s; calls without one reached %d pods\n", first, len(seen))
	return nil
}
