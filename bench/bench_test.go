package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	podpinconfig "github.com/podpin/podpin/internal/config"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want int64
	}{
		{
			name: "a plain command name",
			stat: "1234 (haproxy) S 1 1234 1234 0 -1 4194560 500 0 0 0 150 75 0 0 20 0 1 0 100 1000 200",
			want: 225,
		},
		{
			name: "a name with spaces and parentheses",
			stat: "99 (a b) (c)) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1",
			want: 10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU(tt.stat)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %d ticks, want %d", got, tt.want)
			}
		})
	}
	if _, err := parseStatCPU("12 (short) S 1 2"); err == nil {
		t.Error("a truncated line parsed without error")
	}
}

func TestParseCoreTimes(t *testing.T) {
	before := parseCoreTimes("cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 10 0 10 80 0 0 0 0 0 0\ncpu1 0 0 0 100 0 0 0 0 0 0\nintr 5\n")
	after := parseCoreTimes("cpu  60 0 10 130 0 0 0 0 0 0\ncpu0 60 0 10 80 0 0 0 0 0 0\ncpu1 0 0 0 150 0 0 0 0 0 0\n")
	if got := busy(before, after, "cpu0"); got != 1 {
		t.Errorf("cpu0: got %v busy, want 1", got)
	}
	if got := busy(before, after, "cpu1"); got != 0 {
		t.Errorf("cpu1: got %v busy, want 0", got)
	}
	if got := busy(before, after, "cpu7"); got != -1 {
		t.Errorf("an unknown CPU: got %v, want -1", got)
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 2s test @ http://127.0.0.1:18080/
  1 threads and 64 connections
Requests/sec:  21403.12
PODPIN_BENCH {"requests":42806,"duration_us":2000000,"bytes":100,"p50_us":1680,"p90_us":2000,"p99_us":30670,"mean_us":1800.5,"connect":0,"read":2,"write":0,"status":3,"timeout":1}
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 42806 || r.P99US != 30670 || r.Status != 3 || r.socketErrors() != 3 {
		t.Errorf("got %+v", r)
	}
	if _, err := parseWrk("Requests/sec: 1\n"); err == nil {
		t.Error("output without a summary line parsed without error")
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"an odd count takes the middle value", []float64{3, 1, 2}, 2},
		{"an even count takes the mean of the middle two", []float64{4, 1, 3, 2}, 2.5},
		{"one value is its own median", []float64{7}, 7},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("the median of nothing is not NaN")
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{thousands(1234567.4), "1,234,567"},
		{thousands(999), "999"},
		{latency(850), "850 µs"},
		{latency(1520), "1.52 ms"},
		{compact(40000), "40k"},
		{compact(1500), "1.5k"},
		{compact(0.5), "0.5"},
		{wrkDuration(2500 * time.Millisecond), "3s"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestReport builds a report from two runs and checks the ratios, the
// markdown and that the chart is well-formed XML.
func TestReport(t *testing.T) {
	res := results{Runs: 2, Duration: 10 * time.Second, Warmup: 2 * time.Second, Connections: 64, TableSize: 100_000,
		Workloads: []string{"hot"}, Targets: []string{"direct", "haproxy", "podpin"}, Machine: machine{CPUs: "2"}}
	var ms []measurement
	for run := 1; run <= 2; run++ {
		ms = append(ms,
			measurement{Run: run, Workload: "hot", Target: "direct", RPS: 50000, P50US: 700, P99US: 2000},
			measurement{Run: run, Workload: "hot", Target: "haproxy", RPS: 20000, P50US: 1500, P99US: 3000, CPUPerReqUS: 20, PeakRSSKiB: 16384},
			measurement{Run: run, Workload: "hot", Target: "podpin", RPS: 19000 + float64(run)*1000, P50US: 1500, P99US: 3000, CPUPerReqUS: 30, PeakRSSKiB: 32768},
		)
	}
	res.Measurements = ms
	rep, err := newReport(res)
	if err != nil {
		t.Fatal(err)
	}
	pp := rep.rows[1]["hot"]["podpin"]
	// Per run: 20,000/20,000 and 21,000/20,000.
	if got, want := pp.ratio["rps"], 1.025; math.Abs(got-want) > 1e-9 {
		t.Errorf("req/s ratio: got %v, want %v", got, want)
	}
	if got := pp.ratio["cpu"]; got != 1.5 {
		t.Errorf("CPU ratio: got %v, want 1.5", got)
	}
	md := rep.markdown()
	for _, want := range []string{"| hot |", "**1.50×** ❌", "| HAProxy | 20,000 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if err := xml.Unmarshal([]byte(rep.svg()), new(struct{})); err != nil {
		t.Errorf("chart is not well-formed: %v", err)
	}
}

// TestReportLayouts checks that each layout's ratios are taken against
// HAProxy in the same layout and that each layout has its own section.
func TestReportLayouts(t *testing.T) {
	res := results{Runs: 1, Duration: 10 * time.Second, Processors: []int{1, 2}, Workloads: []string{"hot"},
		Targets: []string{"haproxy", "podpin"}, Machine: machine{CPUs: "2"}}
	res.Measurements = []measurement{
		{Run: 1, Processors: 1, Workload: "hot", Target: "haproxy", RPS: 20000, P99US: 2000, CPUPerReqUS: 20},
		{Run: 1, Processors: 1, Workload: "hot", Target: "podpin", RPS: 20000, P99US: 2000, CPUPerReqUS: 18},
		{Run: 1, Processors: 2, Workload: "hot", Target: "haproxy", RPS: 30000, P99US: 1000, CPUPerReqUS: 25},
		{Run: 1, Processors: 2, Workload: "hot", Target: "podpin", RPS: 24000, P99US: 2500, CPUPerReqUS: 30},
	}
	rep, err := newReport(res)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.rows[1]["hot"]["podpin"].ratio["cpu"]; got != 0.9 {
		t.Errorf("one processor, CPU ratio: got %v, want 0.9", got)
	}
	if got := rep.rows[2]["hot"]["podpin"].ratio["cpu"]; got != 1.2 {
		t.Errorf("two processors, CPU ratio: got %v, want 1.2", got)
	}
	md := rep.markdown()
	for _, want := range []string{"## One processor", "## Two processors", "`nbthread 2`, podpin `GOMAXPROCS=2`",
		"| hot | **1.00×** ✅ | — | **1.00×** ✅ | **0.90×** ✅ |", "| hot | **0.80×** ❌ | — | **2.50×** ❌ | **1.20×** ❌ |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if err := xml.Unmarshal([]byte(rep.svg()), new(struct{})); err != nil {
		t.Errorf("chart is not well-formed: %v", err)
	}
}

func TestGoalCell(t *testing.T) {
	r := &report{}
	tests := []struct {
		name   string
		metric string
		ratio  float64
		want   string
	}{
		{"a ratio that rounds to the limit meets it", "p99", 1.2004, "**1.20×** ✅"},
		{"a ratio above the limit misses it", "p99", 1.21, "**1.21×** ❌"},
		{"throughput must reach its floor", "rps", 0.94, "**0.94×** ❌"},
		{"a metric without a goal is plain", "p50", 3, "3.00×"},
	}
	for _, tt := range tests {
		got := r.goalCell(workloads[0], tt.metric, row{ratio: map[string]float64{tt.metric: tt.ratio}})
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCountedFiguresAreReadFromTheToolsOutput(t *testing.T) {
	dir := t.TempDir()
	perf := dir + "/perf.csv"
	// perf stat -x, output: a comment, a blank line, one line per event.
	if err := os.WriteFile(perf, []byte("# started on Wed Nov 25 23:26:27 2026\n\n"+
		"2586463,,raw_syscalls:sys_enter,9948584307,100.00,,\n"+
		"856184,,raw_syscalls:sys_exit,9948584307,100.00,,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	counts, err := perfCounts(perf)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || counts[0] != 2586463 || counts[1] != 856184 {
		t.Errorf("got perf counts %v, want [2586463 856184]", counts)
	}

	// callgrind_control -d writes FILE.1 beside the file callgrind was given.
	cg := dir + "/callgrind.out"
	if err := os.WriteFile(cg+".1", []byte("version: 1\ncmd: haproxy\nevents: Ir\nsummary: 1211901632\ntotals: 1211901632\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	total, err := callgrindTotal(cg)
	if err != nil {
		t.Fatal(err)
	}
	if total != 1211901632 {
		t.Errorf("got %d instructions, want 1211901632", total)
	}
	if _, err := callgrindTotal(dir + "/missing.out"); err == nil {
		t.Error("a missing dump read without error")
	}
}

func TestCountsTableGivesRatios(t *testing.T) {
	md := countsMarkdown([]count{
		{Target: "haproxy", Processors: 1, Instructions: 30000, Syscalls: 4.1},
		{Target: "podpin", Processors: 1, Instructions: 27000, Syscalls: 5, EAGAIN: 1},
		{Target: "podpin-redis", Processors: 1, Instructions: 27540, Syscalls: 5, EAGAIN: 1},
		{Target: "podpin", Processors: 2, Syscalls: 6, EAGAIN: 1.5},
	}, machine{})
	for _, want := range []string{
		"| haproxy | 1 | 30000 | 4.10 | 0.00 |",
		"| podpin | 1 | 27000 (0.90× HAProxy) | 5.00 | 1.00 |",
		"| podpin-redis | 1 | 27540 (0.92× HAProxy, 1.020× podpin) | 5.00 | 1.00 |",
		"| podpin | 2 | — | 6.00 | 1.50 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("counts table lacks %q:\n%s", want, md)
		}
	}
}

func TestPodpinConfigsLoad(t *testing.T) {
	dir := t.TempDir()
	cert, err := writeCert(dir, keyECDSA)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{cfg: config{work: dir, tableSize: 1000}, cert: cert}
	hot, tls, h2c, grpcUnary := workloads[0], workloadNamed(t, "tls"), workloadNamed(t, "h2c"), workloadNamed(t, "grpc-unary")
	for _, tc := range []struct {
		name     string
		workload workload
		store    map[string]any
		want     string        // store type
		wait     time.Duration // Redis timeout
		tls      bool          // the listener terminates TLS
		scheme   string        // of the backends' URLs
	}{
		{"memory", hot, nil, "memory", 0, false, "http"},
		{"redis", hot, map[string]any{"Redis": "redis://127.0.0.1:18479", "RedisTimeout": ""}, "redis", 50 * time.Millisecond, false, "http"},
		{"redis under a tool", hot, map[string]any{"Redis": "redis://127.0.0.1:18479", "RedisTimeout": "5s"}, "redis", 5 * time.Second, false, "http"},
		{"tls", tls, nil, "memory", 0, true, "http"},
		{"h2c", h2c, nil, "memory", 0, false, "http"},
		{"grpc over tls", grpcUnary, nil, "memory", 0, true, "h2c"},
		{"grpc with redis", grpcUnary, map[string]any{"Redis": "redis://127.0.0.1:18479", "RedisTimeout": ""}, "redis", 50 * time.Millisecond, true, "h2c"},
	} {
		file, err := b.writePodpinConfig(strings.ReplaceAll(tc.name, " ", "-")+".yaml", podpinPort, podpinAdmin, tc.workload, tc.store)
		if err != nil {
			t.Fatal(err)
		}
		c, err := podpinconfig.Load(file)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.Store.Type == "" {
			c.Store.Type = "memory"
		}
		if c.Store.Type != tc.want || c.Routes[0].Table.MaxEntries != 1000 || len(c.Routes[0].Backends) != podCount {
			t.Errorf("%s: store %q, table %d, %d backends", tc.name, c.Store.Type, c.Routes[0].Table.MaxEntries, len(c.Routes[0].Backends))
		}
		if tc.wait > 0 && c.Store.Redis.Timeout != tc.wait {
			t.Errorf("%s: Redis timeout %v, want %v", tc.name, c.Store.Redis.Timeout, tc.wait)
		}
		if got := c.Listeners[0].TLS != nil; got != tc.tls {
			t.Errorf("%s: listener terminates TLS: got %v, want %v", tc.name, got, tc.tls)
		} else if got && c.Listeners[0].TLS.Certificates[0].CertFile != cert.cert {
			t.Errorf("%s: certificate %q, want %q", tc.name, c.Listeners[0].TLS.Certificates[0].CertFile, cert.cert)
		}
		if u := c.Routes[0].Backends[0].URL; !strings.HasPrefix(u, tc.scheme+"://") {
			t.Errorf("%s: backend URL %q, want scheme %s", tc.name, u, tc.scheme)
		}
	}
}

func workloadNamed(t *testing.T, name string) workload {
	t.Helper()
	for _, w := range workloads {
		if w.name == name {
			return w
		}
	}
	t.Fatalf("no workload %q", name)
	return workload{}
}

func TestParseH2load(t *testing.T) {
	out := `finished in 10.00s, 4039.50 req/s, 119.22KB/s
requests: 40395 total, 40459 started, 40395 done, 40390 succeeded, 5 failed, 3 errored, 1 timeout
status codes: 40390 2xx, 0 3xx, 2 4xx, 3 5xx
`
	r, err := parseH2load(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 40395 || r.DurationUS != 10_000_000 || r.Status != 5 || r.Read != 3 || r.Timeout != 1 {
		t.Errorf("got %+v, want 40395 requests in 10s, 5 statuses, 3 errored, 1 timeout", r)
	}
	r, err = parseH2load("finished in 850.5ms, 10 req/s\nrequests: 9 total, 9 started, 9 done, 9 succeeded, 0 failed, 0 errored, 0 timeout\n")
	if err != nil {
		t.Fatal(err)
	}
	if r.DurationUS != 850_500 {
		t.Errorf("a run in milliseconds: got %d µs, want 850500", r.DurationUS)
	}
	for _, bad := range []string{"", "finished in 10.00s, 1 req/s\n", "requests: 1 total, 1 started, 1 done, 1 succeeded, 0 failed, 0 errored, 0 timeout\n"} {
		if _, err := parseH2load(bad); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func TestH2loadLatencies(t *testing.T) {
	// h2load's --log-file: start (µs since the epoch), status, µs to the
	// end of the response. 100 requests of 1..100 µs, in no order.
	var sb strings.Builder
	for i := 100; i >= 1; i-- {
		fmt.Fprintf(&sb, "1764750000%06d\t200\t%d\n", i, i)
	}
	file := t.TempDir() + "/requests"
	if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r wrkResult
	if err := h2loadLatencies(f, &r); err != nil {
		t.Fatal(err)
	}
	if r.P50US != 51 || r.P90US != 91 || r.P99US != 100 || r.MeanUS != 50.5 {
		t.Errorf("got p50 %v, p90 %v, p99 %v, mean %v; want 51, 91, 100, 50.5", r.P50US, r.P90US, r.P99US, r.MeanUS)
	}
	empty := t.TempDir() + "/empty"
	os.WriteFile(empty, nil, 0o644)
	g, _ := os.Open(empty)
	defer g.Close()
	if err := h2loadLatencies(g, &r); err == nil {
		t.Error("an empty log gave latencies")
	}
}

// TestTLSReportGoals checks that the TLS suite marks its own goals: CPU
// per request and p99 on the HTTP/2 and gRPC workloads, handshakes per
// CPU-second on the handshake ones, and writes its own files.
func TestTLSReportGoals(t *testing.T) {
	res := results{Suite: suiteTLS, Runs: 1, Duration: 10 * time.Second, Connections: 64, H2Streams: 8, TLSKey: keyECDSA,
		Processors: []int{1}, Workloads: []string{"h2", "handshake"}, Targets: []string{"haproxy", "podpin"}, Machine: machine{CPUs: "2"}}
	res.Measurements = []measurement{
		{Run: 1, Processors: 1, Workload: "h2", Target: "haproxy", RPS: 20000, P99US: 2000, CPUPerReqUS: 20},
		{Run: 1, Processors: 1, Workload: "h2", Target: "podpin", RPS: 10000, P99US: 2200, CPUPerReqUS: 30},
		{Run: 1, Processors: 1, Workload: "handshake", Target: "haproxy", RPS: 1000, P99US: 9000, CPUPerReqUS: 800},
		{Run: 1, Processors: 1, Workload: "handshake", Target: "podpin", RPS: 1500, P99US: 9000, CPUPerReqUS: 500},
	}
	rep, err := newReport(res)
	if err != nil {
		t.Fatal(err)
	}
	md := rep.markdown()
	for _, want := range []string{
		"# podpin vs HAProxy: TLS, HTTP/2 and gRPC",
		"`h2load -t1 -c8 -m8`",
		"| h2 | 0.50× | — | **1.10×** ✅ | **1.50×** ❌ | — | 0.67× |",
		"| handshake | 1.50× | — | 1.00× | 0.62× | — | **1.60×** ✅ |",
		"Goals on `h2`: CPU/request ≤ 1.2×, p99 ≤ 1.2× HAProxy's; goals on `handshake`: handshakes per CPU-second ≥ 0.8× HAProxy's (✅ met, ❌ missed).",
		"ECDSA P-256",
		"bench-tls.svg",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if err := xml.Unmarshal([]byte(rep.svg()), new(struct{})); err != nil {
		t.Errorf("chart is not well-formed: %v", err)
	}

	repo := t.TempDir()
	if err := write(repo, res, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bench/results/tls.md", "bench/results/tls.json", "docs/bench-tls.svg"} {
		if _, err := os.Stat(repo + "/" + f); err != nil {
			t.Errorf("the TLS suite wrote no %s: %v", f, err)
		}
	}
	if _, err := os.Stat(repo + "/bench/results/latest.md"); err == nil {
		t.Error("the TLS suite overwrote the cleartext report")
	}
}

func TestSuiteSelectsWorkloads(t *testing.T) {
	for _, tc := range []struct {
		name, suite, workloads string
		want                   []string
		err                    bool
	}{
		{"the cleartext suite by default", "", "", []string{"hot", "distinct", "nokey", "large"}, false},
		{"the TLS suite", "tls", "", []string{"tls", "handshake", "resume", "h2", "h2c", "grpc-unary", "grpc-stream"}, false},
		{"a subset of the TLS suite", "tls", "h2,grpc-stream", []string{"h2", "grpc-stream"}, false},
		{"a workload of the other suite", "tls", "hot", nil, true},
		{"an unknown suite", "quic", "", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PODPIN_BENCH_SUITE", tc.suite)
			t.Setenv("PODPIN_BENCH_WORKLOADS", tc.workloads)
			c, err := loadConfig([]string{"--podpin", "x", "--work", t.TempDir(), "--goload", "y"}, io.Discard)
			if tc.err {
				if err == nil {
					t.Errorf("got workloads %v, want an error", c.workloads)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range c.workloads {
				got = append(got, w.name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExitReasonNamesThePanic(t *testing.T) {
	ps, err := newProcs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ps.stopAll()
	p, err := ps.start("crasher", "", nil, "sh", "-c", "echo starting; echo 'panic: runtime error: nil pointer'; echo; echo 'goroutine 7 [running]:'; exit 2")
	if err != nil {
		t.Fatal(err)
	}
	<-p.exited
	got := exitReason(p, errors.New("open /proc/1/stat: no such file or directory"))
	if !strings.Contains(got, "crasher exited early during the run: panic: runtime error: nil pointer") {
		t.Errorf("got %q, want the panic named", got)
	}
}
