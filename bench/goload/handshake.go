package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// runHandshakes opens a new TLS connection for every request, with no
// session to resume, sends one HTTP/1.1 request with a hot key and
// "Connection: close", reads the answer and closes: each request costs the
// server a full handshake. It runs --concurrency such loops for --duration
// and prints the summary; a request's latency runs from the dial to the end
// of the answer.
func runHandshakes(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("handshake", flag.ContinueOnError)
	target := fs.String("target", "", "`host:port` of the proxy")
	concurrency := fs.Int("concurrency", 64, "connections open at once")
	duration := fs.Duration("duration", 10*time.Second, "how `long` to send")
	keys := fs.Int("keys", 10000, "session `keys` (X-Session: hot-00001...)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *target == "" || *concurrency < 1 || *duration <= 0 || *keys < 1 {
		return errors.New("--target, a positive --concurrency, --duration and --keys are required")
	}
	cfg := &tls.Config{
		// The benchmark's certificate is self-signed; trust is not what is
		// measured. The server's signature is still checked.
		InsecureSkipVerify: true,
		ServerName:         "localhost",
		NextProtos:         []string{"http/1.1"},
		// X25519 alone, as OpenSSL 3.0 clients (wrk, h2load) offer it: Go
		// would also offer X25519MLKEM768, which HAProxy's OpenSSL does
		// not know and podpin would choose, so the two proxies would not
		// do the same work.
		CurvePreferences: []tls.CurveID{tls.X25519},
		// No ClientSessionCache: every handshake is a full one.
	}
	ctx, cancel := runFor(ctx, *duration)
	defer cancel()
	type result struct {
		lat              []int64
		status, connErrs int64
		firstErr         error
	}
	results := make([]result, *concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range results {
		r := &results[i]
		rnd := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Now()
				code, err := oneRequest(ctx, *target, cfg, fmt.Sprintf("hot-%05d", rnd.IntN(*keys)+1))
				if ctx.Err() != nil {
					return
				}
				switch {
				case err != nil:
					r.connErrs++
					if r.firstErr == nil {
						r.firstErr = err
					}
				case code < 200 || code > 399:
					r.status++
				default:
					r.lat = append(r.lat, time.Since(t).Microseconds())
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var s summary
	var lat []int64
	seen := map[string]bool{}
	for _, r := range results {
		lat = append(lat, r.lat...)
		s.Status += r.status
		s.Read += r.connErrs
		if r.firstErr != nil && !seen[r.firstErr.Error()] && len(seen) < 5 {
			seen[r.firstErr.Error()] = true
			fmt.Fprintf(out, "a request failed: %v\n", r.firstErr)
		}
	}
	slices.Sort(lat)
	s.Requests = int64(len(lat)) + s.Status
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
	fmt.Fprintf(out, "%s: %d requests, each with a full handshake, in %s, %.0f/s, p50 %d µs, p99 %d µs, %d failed\n",
		*target, s.Requests, elapsed.Round(time.Millisecond), float64(s.Requests)/elapsed.Seconds(), s.P50US, s.P99US, s.Status+s.Read)
	fmt.Fprintf(out, "PODPIN_BENCH %s\n", js)
	return nil
}

// oneRequest makes one request on a new TLS connection and returns the
// answer's status.
func oneRequest(ctx context.Context, target string, cfg *tls.Config, key string) (int, error) {
	d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 5 * time.Second}}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nX-Session: %s\r\nConnection: close\r\n\r\n", target, key); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}
