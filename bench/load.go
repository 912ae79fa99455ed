package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// loadRun is one run of a workload's load against one target.
type loadRun struct {
	name     string // process and log name
	host     string // 127.0.0.1:PORT
	duration time.Duration
	warmup   bool // a warm-up: keys in order, so each is in the table afterwards
}

// runLoad runs w's driver against r.host on the load's CPUs and returns its
// summary in wrk's terms.
func (b *bench) runLoad(ctx context.Context, w workload, r loadRun) (wrkResult, error) {
	switch w.driver {
	case driverWrk:
		tag := "measure"
		if r.warmup {
			tag = "warmup"
		}
		return b.runWrk(ctx, wrkRun{name: r.name, script: b.script(w), url: targetURLFor(w, r.host),
			duration: r.duration, conns: b.cfg.conns, tag: tag})
	case driverH2load:
		return b.runH2load(ctx, w, r)
	case driverGRPCUnary, driverGRPCStream:
		return b.runGRPC(ctx, w, r)
	case driverHandshake:
		return b.runGoload(ctx, r, "handshake", "--target", r.host, "--concurrency", strconv.Itoa(b.cfg.conns),
			"--duration", r.duration.String(), "--keys", strconv.Itoa(hotKeys))
	}
	return wrkResult{}, fmt.Errorf("workload %s: unknown driver %q", w.name, w.driver)
}

// targetURLFor is the URL of "/" on host as w's clients reach it.
func targetURLFor(w workload, host string) string {
	if w.front == frontTLS {
		return "https://" + host + "/"
	}
	return "http://" + host + "/"
}

// h2Clients is how many HTTP/2 connections carry the configured requests in
// flight, cfg.h2Streams streams on each: as many requests in flight as wrk
// keeps on its connections.
func (b *bench) h2Clients() int { return max(1, b.cfg.conns/b.cfg.h2Streams) }

// runH2load runs h2load (one thread) with the session header on every
// request. h2load prints no percentiles, so the latencies come from its
// per-request log.
func (b *bench) runH2load(ctx context.Context, w workload, r loadRun) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, r.duration+60*time.Second)
	defer cancel()
	logFile := filepath.Join(b.cfg.work, r.name+".requests")
	defer os.Remove(logFile)
	p, err := b.procs.run(ctx, r.name, b.layout.loadCPUs,
		"h2load", "-t1", fmt.Sprintf("-c%d", b.h2Clients()), fmt.Sprintf("-m%d", b.cfg.h2Streams),
		"-D", strconv.Itoa(int(r.duration.Round(time.Second)/time.Second)),
		"-H", "X-Session: hot-00001", "--log-file", logFile, targetURLFor(w, r.host))
	if err != nil {
		return wrkResult{}, err
	}
	out, err := p.output()
	if err != nil {
		return wrkResult{}, err
	}
	res, err := parseH2load(out)
	if err != nil {
		return res, fmt.Errorf("%s: %w (see %s)", r.name, err, p.logFile)
	}
	f, err := os.Open(logFile)
	if err != nil {
		return res, err
	}
	defer f.Close()
	if err := h2loadLatencies(f, &res); err != nil {
		return res, fmt.Errorf("%s: %w", logFile, err)
	}
	return res, nil
}

var (
	h2loadFinished = regexp.MustCompile(`finished in ([0-9.]+)(s|ms)`)
	h2loadRequests = regexp.MustCompile(`requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2loadStatus   = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

// parseH2load reads the run's length, the requests done and the failures
// from h2load's report. A request is counted when its response was
// complete, whatever its status; responses other than 2xx and 3xx and the
// requests that failed are errors, as wrk counts them.
func parseH2load(out string) (wrkResult, error) {
	var r wrkResult
	m := h2loadFinished.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no \"finished in\" line in h2load's output")
	}
	secs, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return r, err
	}
	if m[2] == "ms" {
		secs /= 1000
	}
	r.DurationUS = int64(secs * 1e6)
	m = h2loadRequests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no \"requests:\" line in h2load's output")
	}
	n := make([]int64, len(m))
	for i := 1; i < len(m); i++ {
		n[i], _ = strconv.ParseInt(m[i], 10, 64)
	}
	r.Requests = n[1]
	r.Read = n[4] // errored: the stream or connection failed
	r.Timeout = n[5]
	if m := h2loadStatus.FindStringSubmatch(out); m != nil {
		c4, _ := strconv.ParseInt(m[3], 10, 64)
		c5, _ := strconv.ParseInt(m[4], 10, 64)
		r.Status = c4 + c5
	}
	if r.DurationUS <= 0 {
		return r, fmt.Errorf("h2load ran for no time")
	}
	return r, nil
}

// h2loadLatencies reads h2load's --log-file (start time in µs since the
// epoch, status, µs until the end of the response, tab-separated) into r's
// percentiles and mean.
func h2loadLatencies(f *os.File, r *wrkResult) error {
	var lat []float64
	s := bufio.NewScanner(f)
	for s.Scan() {
		cols := strings.Split(s.Text(), "\t")
		if len(cols) < 3 {
			continue
		}
		v, err := strconv.ParseFloat(cols[2], 64)
		if err != nil {
			return fmt.Errorf("latency %q: %w", cols[2], err)
		}
		lat = append(lat, v)
	}
	if err := s.Err(); err != nil {
		return err
	}
	if len(lat) == 0 {
		return fmt.Errorf("no requests logged")
	}
	slices.Sort(lat)
	pct := func(p int) float64 { return lat[min(len(lat)-1, len(lat)*p/100)] }
	r.P50US, r.P90US, r.P99US = pct(50), pct(90), pct(99)
	var sum float64
	for _, v := range lat {
		sum += v
	}
	r.MeanUS = sum / float64(len(lat))
	return nil
}

// runGRPC runs the gRPC load of bench/goload: cfg.conns calls or streams in
// flight over h2Clients connections.
func (b *bench) runGRPC(ctx context.Context, w workload, r loadRun) (wrkResult, error) {
	mode := "unary"
	if w.driver == driverGRPCStream {
		mode = "stream"
	}
	args := []string{"grpc", "--target", r.host, "--mode", mode,
		"--conns", strconv.Itoa(b.h2Clients()), "--concurrency", strconv.Itoa(b.cfg.conns),
		"--duration", r.duration.String(), "--keys", strconv.Itoa(hotKeys)}
	if w.front == frontTLS {
		args = append(args, "--tls")
	}
	if r.warmup {
		args = append(args, "--sequential")
	}
	return b.runGoload(ctx, r, args...)
}

// runGoload runs bench/goload with args on the load's CPUs and reads its
// summary.
func (b *bench) runGoload(ctx context.Context, r loadRun, args ...string) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, r.duration+60*time.Second)
	defer cancel()
	p, err := b.procs.run(ctx, r.name, b.layout.loadCPUs, append([]string{b.cfg.goload}, args...)...)
	if err != nil {
		return wrkResult{}, err
	}
	out, err := p.output()
	if err != nil {
		return wrkResult{}, err
	}
	res, err := parseWrk(out)
	if err != nil {
		return res, fmt.Errorf("%s: %w (see %s)", r.name, err, p.logFile)
	}
	return res, nil
}

// startGRPCPods starts the gRPC pods (bench/goload) on the load's CPUs.
func startGRPCPods(ctx context.Context, b *bench) (*proc, error) {
	var ports []int
	for _, pd := range grpcPods() {
		ports = append(ports, pd.Port)
	}
	if err := portsFree(ports); err != nil {
		return nil, err
	}
	p, err := b.procs.start("grpc-pods", b.layout.loadCPUs, nil,
		b.cfg.goload, "pods", "--port", strconv.Itoa(firstGRPCPodPort), "--count", strconv.Itoa(podCount))
	if err != nil {
		return nil, err
	}
	for _, pd := range grpcPods() {
		if err := waitListening(ctx, p, pd.Addr()); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}
