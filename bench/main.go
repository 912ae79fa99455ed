// Command bench compares podpin with HAProxy on one machine: each proxy in
// turn in front of the same four nginx pods, driven by wrk with the same
// workloads, and a run without a proxy as the baseline. It prints a markdown
// report, writes it to bench/results/latest.md (raw figures beside it in
// latest.json) and draws docs/bench.svg.
//
// The TLS suite (PODPIN_BENCH_SUITE=tls) compares them terminating TLS and
// HTTP/2: HTTP/1.1 over TLS and new handshakes (wrk), HTTP/2 over TLS and
// h2c (h2load), and gRPC unary calls and streams to gRPC pods, and full TLS handshakes (bench/goload).
// Its report goes to bench/results/tls.md and tls.json, its chart to
// docs/bench-tls.svg.
//
// bench/run installs the tools, builds podpin and this program, and runs it;
// see bench/README.md for the settings (PODPIN_BENCH_* variables).
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what one invocation measures.
type config struct {
	podpin     string        // podpin binary
	goload     string        // bench/goload binary: gRPC pods and load, full handshakes (TLS suite)
	repo       string        // repository root: scripts in, results out
	work       string        // scratch directory: configs, logs, pid files
	from       string        // results file to render instead of measuring
	duration   time.Duration // each measured run; PODPIN_BENCH_DURATION, default 10s
	warmup     time.Duration // before each measured run; PODPIN_BENCH_WARMUP, default 2s
	runs       int           // repetitions of the whole set; PODPIN_BENCH_RUNS, default 3
	conns      int           // wrk connections; PODPIN_BENCH_CONNECTIONS, default 64
	tableSize  int           // stick-table entries, both proxies; PODPIN_BENCH_TABLE_SIZE, default 100000
	workloads  []workload    // PODPIN_BENCH_WORKLOADS, default all
	layouts    []layout      // PODPIN_BENCH_PROCESSORS, default 1,2
	redis      bool          // PODPIN_BENCH_REDIS=1 adds podpin with the Redis store
	goroutines bool          // PODPIN_BENCH_GOROUTINES=1 adds podpin without event loops
	count      bool          // PODPIN_BENCH_COUNT=1 counts instructions and system calls instead
	suite      string        // PODPIN_BENCH_SUITE: suiteHTTP (default) or suiteTLS
	h2Streams  int           // streams per HTTP/2 connection; PODPIN_BENCH_H2_STREAMS, default 8
	tlsKey     string        // the certificate's key type; PODPIN_BENCH_TLS_KEY, default ecdsa
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, stderr)
	if err != nil {
		return err
	}
	if cfg.from != "" {
		raw, err := os.ReadFile(cfg.from)
		if err != nil {
			return err
		}
		var res results
		if err := json.Unmarshal(raw, &res); err != nil {
			return fmt.Errorf("reading %s: %w", cfg.from, err)
		}
		return write(cfg.repo, res, stdout)
	}
	if cfg.count && cfg.suite != suiteHTTP {
		return errors.New("PODPIN_BENCH_COUNT=1 counts the cleartext hot workload only; unset PODPIN_BENCH_SUITE")
	}
	if cfg.count {
		cs, err := countAll(ctx, cfg, stderr)
		if err != nil {
			return err
		}
		md := countsMarkdown(cs, describeMachine(cfg))
		fmt.Fprint(stdout, md)
		return os.WriteFile(filepath.Join(cfg.repo, "bench", "results", "counts.md"), []byte(md), 0o644)
	}
	res, err := measureAll(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	return write(cfg.repo, res, stdout)
}

// measureAll starts the pods and measures every workload and target,
// cfg.runs times over.
func measureAll(ctx context.Context, cfg config, stderr io.Writer) (results, error) {
	res := results{
		Command:     benchCommand(),
		Duration:    cfg.duration,
		Warmup:      cfg.warmup,
		Runs:        cfg.runs,
		Connections: cfg.conns,
		TableSize:   cfg.tableSize,
		Machine:     describeMachine(cfg),
		Suite:       cfg.suite,
	}
	if cfg.suite == suiteTLS {
		res.H2Streams, res.TLSKey = cfg.h2Streams, cfg.tlsKey
	}
	for _, l := range cfg.layouts {
		res.Processors = append(res.Processors, l.processors)
	}
	for _, w := range cfg.workloads {
		res.Workloads = append(res.Workloads, w.name)
	}
	for _, t := range targets(cfg.redis, cfg.goroutines, cfg.suite) {
		res.Targets = append(res.Targets, t.name)
	}
	if res.Machine.busy() {
		fmt.Fprintf(stderr, "bench: load average %s on %s CPUs: other work will skew the figures\n", res.Machine.LoadStart, res.Machine.CPUs)
	}

	ps, err := newProcs(cfg.work)
	if err != nil {
		return res, err
	}
	defer ps.stopAll()
	b := &bench{cfg: cfg, procs: ps, log: stderr, ticks: clockTicks()}
	if cfg.suite == suiteTLS {
		if b.cert, err = writeCert(cfg.work, cfg.tlsKey); err != nil {
			return res, fmt.Errorf("writing the certificate: %w", err)
		}
	}
	res.Started = time.Now()
	for run := 1; run <= cfg.runs; run++ {
		for _, l := range cfg.layouts {
			ms, err := b.measureLayout(ctx, run, l)
			res.Measurements = append(res.Measurements, ms...)
			if err != nil {
				return res, err
			}
		}
	}
	res.Machine.LoadEnd = loadAverage()
	return res, nil
}

// measureLayout measures every workload and target in layout l, with the
// pods started on the layout's CPUs.
func (b *bench) measureLayout(ctx context.Context, run int, l layout) ([]measurement, error) {
	b.layout = l
	nginx, err := startPods(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("starting the pods: %w", err)
	}
	defer nginx.stop()
	if slices.ContainsFunc(b.cfg.workloads, func(w workload) bool { return w.grpc }) {
		grpcPods, err := startGRPCPods(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("starting the gRPC pods: %w", err)
		}
		defer grpcPods.stop()
	}
	var ms []measurement
	for _, w := range b.cfg.workloads {
		for _, t := range targets(b.cfg.redis, b.cfg.goroutines, b.cfg.suite) {
			m := b.measure(ctx, run, w, t)
			if ctx.Err() != nil {
				return ms, ctx.Err()
			}
			fmt.Fprintln(b.log, m.progressLine(b.cfg.runs))
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// write prints the report and writes it to bench/results/latest.md, the
// results to latest.json and the chart to docs/bench.svg (for the TLS
// suite: tls.md, tls.json and docs/bench-tls.svg). It fails when a
// measurement did.
func write(repo string, res results, stdout io.Writer) error {
	base, chart := "latest", "bench.svg"
	if res.Suite == suiteTLS {
		base, chart = "tls", "bench-tls.svg"
	}
	rep, err := newReport(res)
	if err != nil {
		return err
	}
	md := rep.markdown()
	fmt.Fprint(stdout, md)
	dir := filepath.Join(repo, "bench", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, base+".md"), []byte(md), 0o644); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, base+".json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(repo, "docs"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(repo, "docs", chart), []byte(rep.svg()), 0o644); err != nil {
		return err
	}
	if failed := rep.failures(); failed > 0 {
		return fmt.Errorf("%d of %d measurements failed; see the report", failed, len(res.Measurements))
	}
	return nil
}

func loadConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.podpin, "podpin", "", "podpin `binary` to run")
	fs.StringVar(&c.goload, "goload", "", "bench/goload `binary`: gRPC pods and load, full TLS handshakes, for the TLS suite")
	fs.StringVar(&c.repo, "repo", ".", "repository `root`")
	fs.StringVar(&c.work, "work", "", "scratch `directory` for configs, logs and pid files")
	fs.StringVar(&c.from, "from", "", "render the report again from a results `file` (latest.json) instead of measuring")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.from == "" && (c.podpin == "" || c.work == "") {
		return c, errors.New("--podpin and --work are required (bench/run sets them)")
	}
	var err error
	get := func(name string, parse func(string) error) {
		if v := os.Getenv(name); v != "" && err == nil {
			if e := parse(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	}
	positive := func(dst *int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 1 {
				err = errors.New("must be at least 1")
			}
			*dst = n
			return err
		}
	}
	seconds := func(dst *time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err == nil && d < time.Second {
				err = errors.New("must be at least 1s")
			}
			*dst = d
			return err
		}
	}
	c.duration, c.warmup, c.runs, c.conns, c.tableSize = 10*time.Second, 2*time.Second, 3, 64, 100_000
	c.suite, c.h2Streams, c.tlsKey = suiteHTTP, 8, keyECDSA
	c.layouts = []layout{layouts[1], layouts[2]}
	get("PODPIN_BENCH_SUITE", func(v string) error {
		if v != suiteHTTP && v != suiteTLS {
			return fmt.Errorf("want %s or %s", suiteHTTP, suiteTLS)
		}
		c.suite = v
		return nil
	})
	c.workloads = suiteWorkloads(c.suite)
	get("PODPIN_BENCH_H2_STREAMS", positive(&c.h2Streams))
	get("PODPIN_BENCH_TLS_KEY", func(v string) error {
		if v != keyECDSA && v != keyRSA {
			return fmt.Errorf("want %s or %s", keyECDSA, keyRSA)
		}
		c.tlsKey = v
		return nil
	})
	get("PODPIN_BENCH_DURATION", seconds(&c.duration))
	get("PODPIN_BENCH_WARMUP", seconds(&c.warmup))
	get("PODPIN_BENCH_RUNS", positive(&c.runs))
	get("PODPIN_BENCH_CONNECTIONS", positive(&c.conns))
	get("PODPIN_BENCH_TABLE_SIZE", positive(&c.tableSize))
	get("PODPIN_BENCH_WORKLOADS", func(v string) error {
		c.workloads = nil
		for _, name := range strings.Split(v, ",") {
			found := false
			for _, w := range suiteWorkloads(c.suite) {
				if w.name == strings.TrimSpace(name) {
					c.workloads, found = append(c.workloads, w), true
				}
			}
			if !found {
				return fmt.Errorf("no workload %q in the %s suite (PODPIN_BENCH_SUITE)", name, c.suite)
			}
		}
		return nil
	})
	get("PODPIN_BENCH_PROCESSORS", func(v string) error {
		c.layouts = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			l, ok := layouts[n]
			if err != nil || !ok {
				return fmt.Errorf("processors %q: want 1 or 2", f)
			}
			c.layouts = append(c.layouts, l)
		}
		return nil
	})
	c.redis = os.Getenv("PODPIN_BENCH_REDIS") == "1"
	c.goroutines = os.Getenv("PODPIN_BENCH_GOROUTINES") == "1"
	c.count = os.Getenv("PODPIN_BENCH_COUNT") == "1"
	if err == nil && c.from == "" && c.goload == "" &&
		slices.ContainsFunc(c.workloads, func(w workload) bool { return w.grpc || w.driver == driverHandshake }) {
		err = errors.New("--goload is required for the gRPC and handshake workloads (bench/run sets it)")
	}
	if err != nil {
		return c, err
	}
	if c.repo, err = filepath.Abs(c.repo); err != nil {
		return c, err
	}
	return c, err
}

// bench holds what every measurement needs.
type bench struct {
	cfg   config
	procs *procs
	log   io.Writer
	ticks float64 // clock ticks per second
	// layout is the CPU layout being measured.
	layout layout
	// wrap prefixes the proxy's command line and env adds to its
	// environment (counting mode runs proxies under valgrind).
	wrap []string
	env  []string
	// cert is the certificate both proxies serve in the TLS suite.
	cert certFiles
}

// measurement is one target under one workload in one run.
type measurement struct {
	Run int `json:"run"`
	// Processors names the layout: the proxy's threads (1 or 2).
	Processors int    `json:"processors"`
	Workload   string `json:"workload"`
	Target     string `json:"target"`
	// Error, when set, says why there are no figures.
	Error string `json:"error,omitempty"`
	// Warning is a failed pre-flight check; the figures are still taken.
	Warning string `json:"warning,omitempty"`

	Requests     int64   `json:"requests"`
	Seconds      float64 `json:"seconds"`
	RPS          float64 `json:"rps"`
	P50US        float64 `json:"p50_us"`
	P99US        float64 `json:"p99_us"`
	Non2xx       int64   `json:"non2xx"`
	SocketErrors int64   `json:"socket_errors"` // the four below together
	Connect      int64   `json:"connect_errors"`
	Read         int64   `json:"read_errors"`
	Write        int64   `json:"write_errors"`
	Timeouts     int64   `json:"timeouts"` // requests that took longer than wrk's 2s timeout
	// Proxy figures, zero for the direct target.
	CPUPerReqUS float64 `json:"cpu_per_request_us"`
	ProxyBusy   float64 `json:"proxy_busy"` // proxy CPU seconds per second of the run
	PeakRSSKiB  int64   `json:"peak_rss_kib"`
	// Core0Busy and Core1Busy are the shares of time CPU 0 and CPU 1 were
	// busy during the run (with one processor: the proxy's and the load's);
	// -1 when unknown.
	Core0Busy float64 `json:"core0_busy"`
	Core1Busy float64 `json:"core1_busy"`
}

func (m measurement) ok() bool { return m.Error == "" }

func (m measurement) progressLine(runs int) string {
	head := fmt.Sprintf("run %d/%d %dP %-8s %-12s", m.Run, runs, m.Processors, m.Workload, m.Target)
	if !m.ok() {
		return head + " failed: " + m.Error
	}
	s := fmt.Sprintf("%s %9.0f req/s  p50 %s  p99 %s", head, m.RPS, latency(m.P50US), latency(m.P99US))
	if m.CPUPerReqUS > 0 {
		s += fmt.Sprintf("  %.1f µs CPU/req  busy %.0f%%  RSS %.1f MiB", m.CPUPerReqUS, 100*m.ProxyBusy, float64(m.PeakRSSKiB)/1024)
	}
	if n := m.Non2xx + m.SocketErrors; n > 0 {
		s += fmt.Sprintf("  errors %d", n)
	}
	if m.Warning != "" {
		s += "  warning: " + m.Warning
	}
	return s
}

// measure starts t, checks it, warms it up, runs wrk and samples the proxy.
func (b *bench) measure(ctx context.Context, run int, w workload, t target) measurement {
	m := measurement{Run: run, Processors: b.layout.processors, Workload: w.name, Target: t.name}
	tag := fmt.Sprintf("r%d-%dp-%s", run, b.layout.processors, w.name)
	var proxy *proc
	if t.start != nil {
		if err := portsFree(t.binds); err != nil {
			m.Error = err.Error()
			return m
		}
		ps, err := t.start(b, tag, w)
		if err != nil {
			m.Error = err.Error()
			return m
		}
		defer func() {
			for _, p := range ps {
				p.stop()
			}
		}()
		proxy = ps[0]
		if err := waitListening(ctx, proxy, fmt.Sprintf("127.0.0.1:%d", t.port)); err != nil {
			m.Error = err.Error()
			return m
		}
	}
	host := fmt.Sprintf("127.0.0.1:%d", t.port)
	if err := b.preflight(ctx, host, w, t.proxy); err != nil {
		m.Warning = err.Error()
	}
	name := fmt.Sprintf("%s-%s-%s", w.driver, tag, t.name)
	if _, err := b.runLoad(ctx, w, loadRun{name: name + "-warmup", host: host, duration: b.cfg.warmup, warmup: true}); err != nil {
		m.Error = "warm-up: " + err.Error()
		return m
	}

	var cpu0 int64
	if proxy != nil {
		var err error
		if cpu0, err = cpuTicks(proxy.pid()); err != nil {
			m.Error = err.Error()
			return m
		}
	}
	cores0, _ := readCoreTimes()
	r, err := b.runLoad(ctx, w, loadRun{name: name, host: host, duration: b.cfg.duration})
	if err != nil {
		m.Error = err.Error()
		return m
	}
	cores1, _ := readCoreTimes()
	m.Requests = r.Requests
	m.Seconds = float64(r.DurationUS) / 1e6
	m.RPS = float64(r.Requests) / m.Seconds
	m.P50US, m.P99US = r.P50US, r.P99US
	m.Non2xx, m.SocketErrors = r.Status, r.socketErrors()
	m.Connect, m.Read, m.Write, m.Timeouts = r.Connect, r.Read, r.Write, r.Timeout
	m.Core0Busy, m.Core1Busy = busy(cores0, cores1, "cpu0"), busy(cores0, cores1, "cpu1")
	if proxy != nil {
		cpu1, err := cpuTicks(proxy.pid())
		if err != nil || !proxy.running() {
			m.Error = exitReason(proxy, err)
			return m
		}
		cpuSeconds := float64(cpu1-cpu0) / b.ticks
		if r.Requests > 0 {
			m.CPUPerReqUS = cpuSeconds * 1e6 / float64(r.Requests)
		}
		m.ProxyBusy = cpuSeconds / m.Seconds
		if m.PeakRSSKiB, err = peakRSS(proxy.pid()); err != nil {
			m.Error = exitReason(proxy, err)
		}
	}
	return m
}

// exitReason says why p could not be sampled after a run: it exited
// during it, with the first line of a Go panic or fatal error, or the last
// line it wrote; else err. /proc/PID is gone as soon as the process has
// been waited for, which may be before running() knows it exited.
func exitReason(p *proc, err error) string {
	select {
	case <-p.exited:
	case <-time.After(time.Second):
		if err != nil {
			return err.Error()
		}
	}
	out, _ := p.output()
	why := lastLines(out, 1)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
			why = line
			break
		}
	}
	return fmt.Sprintf("%s %s during the run: %s (see %s)", p.name, errExited, why, p.logFile)
}

// preflight checks that the target answers and, behind a proxy, that a key
// sticks to one pod while requests without a key are spread. It speaks what
// w's clients speak: HTTP/1.1 or HTTP/2 over TLS (the protocol the driver
// uses), h2c, or gRPC (through bench/goload's check); where each request closes
// its connection, the proxy must say so.
func (b *bench) preflight(ctx context.Context, host string, w workload, proxied bool) error {
	if w.grpc {
		args := []string{b.cfg.goload, "check", "--target", host}
		if w.front == frontTLS {
			args = append(args, "--tls")
		}
		p, err := b.procs.run(ctx, "grpc-check-"+w.name, b.layout.loadCPUs, args...)
		if err != nil {
			out := ""
			if p != nil {
				out, _ = p.output()
			}
			return fmt.Errorf("%w: %s", err, lastLines(out, 1))
		}
		return nil
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: preflightTransport(w)}
	defer client.CloseIdleConnections()
	url := targetURLFor(w, host)
	get := func(path, key string) (string, error) {
		req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(url, "/")+path, nil)
		if err != nil {
			return "", err
		}
		if key != "" {
			req.Header.Set("X-Session", key)
		}
		req.Close = w.closes
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if w.closes && !resp.Close {
			return "", errors.New("a request with Connection: close was answered without it: its connection stays open")
		}
		if want := wantProto(w); resp.Proto != want {
			return "", fmt.Errorf("answered in %s, want %s", resp.Proto, want)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
		}
		return string(body), nil
	}
	if w.path == largePath {
		body, err := get(largePath, "preflight-large")
		if err != nil {
			return err
		}
		if len(body) != 1<<20 {
			return fmt.Errorf("GET %s: got %d bytes, want %d", largePath, len(body), 1<<20)
		}
	}
	if !proxied {
		_, err := get("/", "")
		return err
	}
	first := ""
	for i := range 5 {
		body, err := get("/", "preflight-key")
		if err != nil {
			return err
		}
		if i == 0 {
			first = body
		} else if body != first {
			return fmt.Errorf("one key went to %q and then %q", strings.TrimSpace(first), strings.TrimSpace(body))
		}
	}
	seen := map[string]bool{}
	for range 2 * podCount {
		body, err := get("/", "")
		if err != nil {
			return err
		}
		seen[body] = true
	}
	if len(seen) < 2 {
		return fmt.Errorf("%d requests without a key all went to one pod", 2*podCount)
	}
	return nil
}

// preflightTransport speaks to the proxy as w's load does: HTTP/2 for
// h2load (by ALPN over TLS, with prior knowledge on h2c), HTTP/1.1 for wrk.
// The benchmark's certificate is self-signed; trust is not what is checked.
func preflightTransport(w workload) *http.Transport {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	var ps http.Protocols
	switch {
	case w.driver == driverH2load && w.front == frontH2C:
		ps.SetUnencryptedHTTP2(true)
	case w.driver == driverH2load:
		ps.SetHTTP2(true)
	default:
		ps.SetHTTP1(true)
	}
	tr.Protocols = &ps
	return tr
}

// wantProto is the protocol w's responses come in.
func wantProto(w workload) string {
	if w.driver == driverH2load {
		return "HTTP/2.0"
	}
	return "HTTP/1.1"
}
