package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// workload is one kind of load and what it exercises.
type workload struct {
	name  string
	about string // one line for the report
	path  string // request path, for the pre-flight check
	// suite is the set the workload is measured in: suiteHTTP (cleartext
	// HTTP/1.1, what bench/run measures by default) or suiteTLS (TLS,
	// HTTP/2 and gRPC; PODPIN_BENCH_SUITE=tls).
	suite string
	// driver sends the load: driverWrk (the script bench/wrk/SCRIPT.lua),
	// driverH2load, driverGRPCUnary, driverGRPCStream or driverHandshake.
	driver string
	script string // wrk's script, without ".lua"
	// front is what clients speak to the proxy: frontHTTP, frontTLS (HTTP/1.1
	// or HTTP/2 by ALPN) or frontH2C.
	front string
	// grpc: the pods are the gRPC servers (h2c), not nginx.
	grpc bool
	// closes: every request closes its connection, so each is a new
	// connection and, over TLS, a full handshake.
	closes bool
}

// Suites, drivers and front ends of workloads.
const (
	suiteHTTP = "http"
	suiteTLS  = "tls"

	driverWrk        = "wrk"
	driverH2load     = "h2load"
	driverGRPCUnary  = "grpc-unary"
	driverGRPCStream = "grpc-stream"
	driverHandshake  = "handshake" // bench/goload's full-handshake client

	frontHTTP = "http"
	frontTLS  = "tls"
	frontH2C  = "h2c"
)

// workloads are run in this order, those of the suite being measured.
var workloads = []workload{
	{name: "hot", about: "10,000 session keys, one chosen at random per request: stick-table hits.", path: "/",
		suite: suiteHTTP, driver: driverWrk, script: "hot", front: frontHTTP},
	{name: "distinct", about: "a new key on every request (1,000,000 keys, cycling): a miss, an insert and, once the table is full, an eviction each.", path: "/",
		suite: suiteHTTP, driver: driverWrk, script: "distinct", front: frontHTTP},
	{name: "nokey", about: "no session header: round-robin balancing only, the table is not used.", path: "/",
		suite: suiteHTTP, driver: driverWrk, script: "nokey", front: frontHTTP},
	{name: "large", about: "the hot keys, each response a 1 MiB file: body copying dominates.", path: largePath,
		suite: suiteHTTP, driver: driverWrk, script: "large", front: frontHTTP},

	{name: "tls", about: "`hot` over TLS: HTTP/1.1 with keep-alive (wrk), 10,000 keys at random, stick-table hits.", path: "/",
		suite: suiteTLS, driver: driverWrk, script: "hot", front: frontTLS},
	{name: "handshake", about: "the hot keys over TLS, each request on a new connection with a full handshake (no session to resume: a Go client, X25519, `Connection: close`). Requests per CPU-second are handshakes per CPU-second.", path: "/",
		suite: suiteTLS, driver: driverHandshake, front: frontTLS, closes: true},
	{name: "resume", about: "the hot keys over TLS, each request on a new connection (wrk, `Connection: close`) that resumes the last one's session: a TLS 1.3 handshake with a pre-shared key and a new X25519 exchange, no certificate.", path: "/",
		suite: suiteTLS, driver: driverWrk, script: "resume", front: frontTLS, closes: true},
	{name: "h2", about: "HTTP/2 over TLS (h2load, ALPN h2), many streams on each connection, one session key on every request (h2load -H): stick-table hits; HTTP/1.1 to the pods.", path: "/",
		suite: suiteTLS, driver: driverH2load, front: frontTLS},
	{name: "h2c", about: "`h2` in cleartext: HTTP/2 with prior knowledge (h2c).", path: "/",
		suite: suiteTLS, driver: driverH2load, front: frontH2C},
	{name: "grpc-unary", about: "gRPC unary calls over TLS (a grpc-go client), 10,000 keys at random in the x-session metadata; the pods are grpc-go servers, reached over h2c.", path: "/",
		suite: suiteTLS, driver: driverGRPCUnary, front: frontTLS, grpc: true},
	{name: "grpc-stream", about: "gRPC over TLS: one bidirectional stream per caller for the whole run, each with its own key, one message and its answer after the other; a request is one message and its answer.", path: "/",
		suite: suiteTLS, driver: driverGRPCStream, front: frontTLS, grpc: true},
}

// suiteWorkloads returns the workloads of suite, in order.
func suiteWorkloads(suite string) []workload {
	var ws []workload
	for _, w := range workloads {
		if w.suite == suite {
			ws = append(ws, w)
		}
	}
	return ws
}

// wrkResult is the summary that bench/wrk/report.lua prints.
type wrkResult struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	Bytes      int64   `json:"bytes"`
	P50US      float64 `json:"p50_us"`
	P90US      float64 `json:"p90_us"`
	P99US      float64 `json:"p99_us"`
	MeanUS     float64 `json:"mean_us"`
	Connect    int64   `json:"connect"`
	Read       int64   `json:"read"`
	Write      int64   `json:"write"`
	Status     int64   `json:"status"` // responses other than 2xx and 3xx
	Timeout    int64   `json:"timeout"`
}

// socketErrors is the count of connect, read, write and timeout errors.
func (r wrkResult) socketErrors() int64 { return r.Connect + r.Read + r.Write + r.Timeout }

// wrkRun is one invocation of wrk.
type wrkRun struct {
	name     string // process and log name
	script   string
	url      string
	duration time.Duration
	conns    int
	tag      string // passed to the script, which may use it to vary keys
	from     int64  // for a warm-up: the key to start from (after a previous one)
}

// runWrk runs wrk on the load's CPUs and returns its summary.
func (b *bench) runWrk(ctx context.Context, w wrkRun) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, w.duration+60*time.Second)
	defer cancel()
	p, err := b.procs.run(ctx, w.name, b.layout.loadCPUs,
		"wrk", "-t1", fmt.Sprintf("-c%d", w.conns), "-d"+wrkDuration(w.duration), "--latency",
		"-s", w.script, w.url, "--", w.tag, strconv.FormatInt(w.from, 10))
	if err != nil {
		return wrkResult{}, err
	}
	out, err := p.output()
	if err != nil {
		return wrkResult{}, err
	}
	r, err := parseWrk(out)
	if err != nil {
		return r, fmt.Errorf("%s: %w (see %s)", w.name, err, p.logFile)
	}
	return r, nil
}

// parseWrk finds report.lua's summary line in wrk's output.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	for _, line := range strings.Split(out, "\n") {
		if js, ok := strings.CutPrefix(line, "PODPIN_BENCH "); ok {
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				return r, fmt.Errorf("reading wrk summary: %w", err)
			}
			if r.DurationUS <= 0 {
				return r, fmt.Errorf("wrk summary has no duration: %q", js)
			}
			return r, nil
		}
	}
	return r, fmt.Errorf("no summary line in wrk's output")
}

// wrkDuration writes d the way wrk reads it: whole seconds with an "s".
func wrkDuration(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s < 1 {
		s = 1
	}
	return fmt.Sprintf("%ds", s)
}

func (b *bench) script(w workload) string {
	return filepath.Join(b.cfg.repo, "bench", "wrk", w.script+".lua")
}
