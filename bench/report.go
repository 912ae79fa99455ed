package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// baseline is the target every ratio is taken against.
const baseline = "haproxy"

// results is everything one invocation measured. It is written to
// latest.json, from which --from renders the report again.
type results struct {
	Started      time.Time     `json:"started"`
	Command      string        `json:"command"`
	Duration     time.Duration `json:"duration_ns"`
	Warmup       time.Duration `json:"warmup_ns"`
	Runs         int           `json:"runs"`
	Connections  int           `json:"connections"`
	TableSize    int           `json:"table_size"`
	Processors   []int         `json:"processors"` // the layouts, in the order they ran
	Workloads    []string      `json:"workloads"`
	Targets      []string      `json:"targets"` // in the order they ran
	Machine      machine       `json:"machine"`
	Measurements []measurement `json:"measurements"`
	// Suite is the set of workloads measured: "http" (also when empty, in
	// results from before suites) or "tls".
	Suite string `json:"suite,omitempty"`
	// H2Streams and TLSKey are the TLS suite's streams per HTTP/2
	// connection and certificate key type.
	H2Streams int    `json:"h2_streams,omitempty"`
	TLSKey    string `json:"tls_key,omitempty"`
}

// report turns results into markdown and a chart.
type report struct {
	res       results
	layouts   []int // processor counts
	workloads []workload
	targets   []string
	rows      map[int]map[string]map[string]row // by processors, workload, target
}

// row is one target under one workload: medians over the runs that
// succeeded, and for each metric the median of the per-run ratios to the
// baseline in the same run.
type row struct {
	runs           int
	rps, p50, p99  float64
	cpu, busy, rss float64 // rss in KiB
	core0, core1   float64
	non2xx         int64    // totals over all runs
	sock           [4]int64 // connect, read, write, timeout
	ratio          map[string]float64
	errs, warnings []string
}

// metric is one figure compared between targets.
type metric struct {
	key string
	get func(measurement) float64
}

var metrics = []metric{
	{"rps", func(m measurement) float64 { return m.RPS }},
	{"p50", func(m measurement) float64 { return m.P50US }},
	{"p99", func(m measurement) float64 { return m.P99US }},
	{"cpu", func(m measurement) float64 { return m.CPUPerReqUS }},
	{"rss", func(m measurement) float64 { return float64(m.PeakRSSKiB) }},
	// Requests per CPU-second of the proxy: with a new connection per
	// request, handshakes per CPU-second.
	{"percpu", func(m measurement) float64 {
		if m.CPUPerReqUS <= 0 {
			return 0
		}
		return 1e6 / m.CPUPerReqUS
	}},
}

func newReport(res results) (*report, error) {
	// Results from before the two-processor layout measured one processor.
	res.Measurements = slices.Clone(res.Measurements)
	for i := range res.Measurements {
		if res.Measurements[i].Processors == 0 {
			res.Measurements[i].Processors = 1
		}
	}
	r := &report{res: res, layouts: res.Processors, targets: res.Targets, rows: map[int]map[string]map[string]row{}}
	if len(r.layouts) == 0 {
		r.layouts = []int{1}
	}
	for _, name := range res.Workloads {
		i := slices.IndexFunc(workloads, func(w workload) bool { return w.name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown workload %q in results", name)
		}
		r.workloads = append(r.workloads, workloads[i])
	}
	for _, n := range r.layouts {
		if _, ok := layouts[n]; !ok {
			return nil, fmt.Errorf("unknown layout of %d processors in results", n)
		}
		r.rows[n] = map[string]map[string]row{}
		for _, w := range r.workloads {
			r.rows[n][w.name] = map[string]row{}
			for _, t := range r.targets {
				r.rows[n][w.name][t] = r.aggregate(n, w.name, t)
			}
		}
	}
	return r, nil
}

// failures counts the measurements that produced no figures.
func (r *report) failures() int {
	n := 0
	for _, m := range r.res.Measurements {
		if !m.ok() {
			n++
		}
	}
	return n
}

func (r *report) find(run, processors int, workload, target string) (measurement, bool) {
	for _, m := range r.res.Measurements {
		if m.Run == run && m.Processors == processors && m.Workload == workload && m.Target == target {
			return m, true
		}
	}
	return measurement{}, false
}

func (r *report) aggregate(processors int, workload, target string) row {
	var ok []measurement
	rw := row{ratio: map[string]float64{}}
	for _, m := range r.res.Measurements {
		if m.Processors != processors || m.Workload != workload || m.Target != target {
			continue
		}
		if m.Warning != "" {
			rw.warnings = append(rw.warnings, fmt.Sprintf("run %d: %s", m.Run, m.Warning))
		}
		if !m.ok() {
			rw.errs = append(rw.errs, fmt.Sprintf("run %d: %s", m.Run, m.Error))
			continue
		}
		ok = append(ok, m)
		rw.non2xx += m.Non2xx
		rw.sock[0] += m.Connect
		rw.sock[1] += m.Read
		rw.sock[2] += m.Write
		rw.sock[3] += m.Timeouts
	}
	rw.runs = len(ok)
	if rw.runs == 0 {
		return rw
	}
	med := func(get func(measurement) float64) float64 {
		vs := make([]float64, len(ok))
		for i, m := range ok {
			vs[i] = get(m)
		}
		return median(vs)
	}
	rw.rps = med(func(m measurement) float64 { return m.RPS })
	rw.p50 = med(func(m measurement) float64 { return m.P50US })
	rw.p99 = med(func(m measurement) float64 { return m.P99US })
	rw.cpu = med(func(m measurement) float64 { return m.CPUPerReqUS })
	rw.busy = med(func(m measurement) float64 { return m.ProxyBusy })
	rw.rss = med(func(m measurement) float64 { return float64(m.PeakRSSKiB) })
	rw.core0 = med(func(m measurement) float64 { return m.Core0Busy })
	rw.core1 = med(func(m measurement) float64 { return m.Core1Busy })
	for _, mt := range metrics {
		var ratios []float64
		for _, m := range ok {
			base, found := r.find(m.Run, processors, workload, baseline)
			if !found || !base.ok() || mt.get(base) <= 0 || mt.get(m) <= 0 {
				continue
			}
			ratios = append(ratios, mt.get(m)/mt.get(base))
		}
		if len(ratios) > 0 {
			rw.ratio[mt.key] = median(ratios)
		}
	}
	return rw
}

// median returns the middle value, or the mean of the two middle values; NaN
// for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func targetLabel(name string) string {
	switch name {
	case "direct":
		return "direct (no proxy)"
	case "haproxy":
		return "HAProxy"
	case "podpin-redis":
		return "podpin, Redis store"
	case "podpin-goroutines":
		return "podpin, goroutines"
	}
	return name
}

// goal is a figure podpin aims for, as a ratio to HAProxy's.
type goal struct {
	metric string
	label  string
	max    bool // the ratio must stay at or below limit; else at or above
	limit  float64
}

// hotGoals are the goals on the cleartext hot workload.
var hotGoals = []goal{
	{"cpu", "CPU/request", true, 1.0},
	{"rps", "req/s", false, 0.95},
	{"p99", "p99", true, 1.2},
}

// tlsGoals are the goals on every TLS, HTTP/2 and gRPC workload but
// handshake, whose goal is handshakeGoals.
var (
	tlsGoals = []goal{
		{"cpu", "CPU/request", true, 1.2},
		{"p99", "p99", true, 1.2},
	}
	handshakeGoals = []goal{
		{"percpu", "handshakes per CPU-second", false, 0.8},
	}
)

// goalsOf returns the goals on workload w; none for most cleartext ones.
func goalsOf(w workload) []goal {
	switch {
	case w.name == "hot":
		return hotGoals
	case w.closes:
		return handshakeGoals
	case w.suite == suiteTLS:
		return tlsGoals
	}
	return nil
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	mc := r.res.Machine
	tlsSuite := r.res.Suite == suiteTLS
	if tlsSuite {
		p("# podpin vs HAProxy: TLS, HTTP/2 and gRPC\n\n")
		p("Measured %s: %d run(s) of %s for each layout, workload and target, each after a %s warm-up; %d requests in flight: `wrk -t1 -c%d --latency`, `h2load -t1 -c%d -m%d`, the gRPC load with %d calls or streams over %d connections. ",
			r.res.Started.UTC().Format("2006-01-02 15:04 MST"), r.res.Runs, r.res.Duration, r.res.Warmup, r.res.Connections,
			r.res.Connections, max(1, r.res.Connections/r.res.H2Streams), r.res.H2Streams, r.res.Connections, max(1, r.res.Connections/r.res.H2Streams))
	} else {
		p("# podpin vs HAProxy\n\n")
		p("Measured %s: %d run(s) of %s for each layout, workload and target, each after a %s warm-up; `wrk -t1 -c%d --latency`. ",
			r.res.Started.UTC().Format("2006-01-02 15:04 MST"), r.res.Runs, r.res.Duration, r.res.Warmup, r.res.Connections)
	}
	p("Figures are medians over the runs; a ratio is the median of the per-run ratios to HAProxy in the same run.\n\n")
	p("Command: `%s`\n\n", r.res.Command)
	p("## Machine\n\n| | |\n|---|---|\n")
	p("| CPUs (nproc) | %s |\n| CPU | %s |\n| kernel | %s |\n", mc.CPUs, mc.CPU, mc.Kernel)
	p("| HAProxy | %s |\n| nginx | %s |\n| wrk | %s |\n| Go | %s |\n| podpin | %s |\n", mc.HAProxy, mc.Nginx, mc.Wrk, mc.Go, mc.Podpin)
	if mc.OpenSSL != "" {
		p("| OpenSSL (HAProxy's, wrk's, h2load's) | %s |\n", mc.OpenSSL)
	}
	if mc.H2load != "" {
		p("| h2load | %s |\n", mc.H2load)
	}
	p("| load average (1 min), start / end | %s / %s |\n\n", mc.LoadStart, mc.LoadEnd)
	if mc.busy() {
		p("> **The machine was busy with other work** (load average above its %s CPUs when the run began): absolute figures are low and noisy; ratios within a run are more telling.\n\n", mc.CPUs)
	}
	p("Both stick tables hold %s entries and expire idle ones after 30 minutes; both balance new sessions round robin; podpin uses the memory store. ", thousands(float64(r.res.TableSize)))
	if tlsSuite {
		p("wrk, h2load (one thread each) or the gRPC client, and the pods (one nginx worker with four server blocks; for gRPC, four grpc-go servers in one process) are the load. ")
		p("Both proxies serve the same self-signed certificate (%s key) with TLS 1.3, as the clients negotiate it, and no session resumption; both offer h2 and http/1.1 by ALPN on one port; HAProxy speaks HTTP/2 only on the h2c port (`proto h2`), podpin takes h2c with prior knowledge on its cleartext listener. ", tlsKeyLabel(r.res.TLSKey))
		p("To the pods both speak HTTP/1.1 with keep-alive, and h2c to the gRPC pods (HAProxy `proto h2`, podpin `h2c://` backends).\n\n")
	} else {
		p("wrk (one thread) and the pods (one nginx worker, four server blocks) are the load.\n\n")
	}
	for _, n := range r.layouts {
		r.layoutMarkdown(&b, n)
	}
	loadName := "wrk"
	if tlsSuite {
		loadName = "the load"
	}
	p("Ratios in parentheses are to HAProxy in the same run. CPU µs/request is the proxy's utime+stime over the measured run divided by the requests %s completed; ", loadName)
	p("proxy CPU busy is that CPU time per second of the run (100%% is one whole core). Peak RSS is VmHWM, including the warm-up. ")
	p("CPU 0 / CPU 1 busy is how busy each core was with anything, from /proc/stat. With one processor, CPU 0 well above the proxy's own share means other work shared the proxy's core, ")
	p("and the proxy below 100%% means it was not the bottleneck: req/s and latency then also measure wrk and the pods on CPU 1.\n\n")
	if tlsSuite {
		p("![chart](../../docs/bench-tls.svg)\n")
	} else {
		p("![chart](../../docs/bench.svg)\n")
	}
	return b.String()
}

// layoutTitle names a layout in headings.
func layoutTitle(processors int) string {
	switch processors {
	case 1:
		return "One processor"
	case 2:
		return "Two processors"
	}
	return fmt.Sprintf("%d processors", processors)
}

// layoutMarkdown writes one layout's section: how the CPUs are shared, the
// podpin/HAProxy summary, and a table per workload.
func (r *report) layoutMarkdown(b *strings.Builder, n int) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	l := layouts[n]
	p("## %s\n\n", layoutTitle(n))
	if l.proxyCPUs != "" {
		p("The proxy under test runs alone on CPU %s (`taskset -c %s`; HAProxy `nbthread %d`, podpin `GOMAXPROCS=%d`); wrk and the pods share CPU %s.\n\n",
			l.proxyCPUs, l.proxyCPUs, n, n, l.loadCPUs)
	} else {
		p("HAProxy `nbthread %d`, podpin `GOMAXPROCS=%d`; nothing is pinned: the proxy, wrk and the pods share all CPUs.\n\n", n, n)
	}
	rows := r.rows[n]
	if slices.Contains(r.targets, "podpin") {
		p("### podpin / HAProxy, %s\n\n", strings.ToLower(layoutTitle(n)))
		cols := []string{"rps", "p50", "p99", "cpu", "rss"}
		if r.res.Suite == suiteTLS {
			cols = append(cols, "percpu")
			p("| workload | req/s | p50 | p99 | CPU/request | peak RSS | requests per CPU-second |\n|---|---|---|---|---|---|---|\n")
		} else {
			p("| workload | req/s | p50 | p99 | CPU/request | peak RSS |\n|---|---|---|---|---|---|\n")
		}
		for _, w := range r.workloads {
			rw := rows[w.name]["podpin"]
			p("| %s |", w.name)
			for _, k := range cols {
				p(" %s |", r.goalCell(w, k, rw))
			}
			p("\n")
		}
		p("\n")
		// One sentence per set of goals, naming the workloads it is on.
		var texts []string
		on := map[string][]string{}
		for _, w := range r.workloads {
			gs := goalsOf(w)
			if len(gs) == 0 {
				continue
			}
			t := goalsText(gs)
			if _, ok := on[t]; !ok {
				texts = append(texts, t)
			}
			on[t] = append(on[t], "`"+w.name+"`")
		}
		var sentences []string
		for i, t := range texts {
			head := "Goals"
			if i > 0 {
				head = "goals"
			}
			sentences = append(sentences, fmt.Sprintf("%s on %s: %s HAProxy's", head, strings.Join(on[t], ", "), t))
		}
		p("%s (✅ met, ❌ missed).\n\n", strings.Join(sentences, "; "))
	}

	for _, w := range r.workloads {
		p("### %s, %s\n\n%s\n\n", w.name, strings.ToLower(layoutTitle(n)), upperFirst(w.about))
		p("| target | req/s | p50 | p99 | CPU µs/request | proxy CPU busy | peak RSS | CPU 0 / CPU 1 busy | errors |\n")
		p("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		var notes []string
		for _, t := range r.targets {
			rw := rows[w.name][t]
			for _, e := range rw.errs {
				notes = append(notes, fmt.Sprintf("%s failed, %s", targetLabel(t), e))
			}
			for _, e := range rw.warnings {
				notes = append(notes, fmt.Sprintf("%s pre-flight check, %s", targetLabel(t), e))
			}
			if rw.runs == 0 {
				p("| %s | failed | | | | | | | |\n", targetLabel(t))
				continue
			}
			p("| %s | %s | %s | %s |", targetLabel(t),
				withRatio(thousands(rw.rps), rw, "rps", t),
				withRatio(latency(rw.p50), rw, "p50", t),
				withRatio(latency(rw.p99), rw, "p99", t))
			if rw.cpu > 0 {
				p(" %s | %.0f%% | %s |", withRatio(fmt.Sprintf("%.1f", rw.cpu), rw, "cpu", t), 100*rw.busy,
					withRatio(fmt.Sprintf("%.1f MiB", rw.rss/1024), rw, "rss", t))
			} else {
				p(" — | — | — |")
			}
			p(" %s / %s | %s |\n", percent(rw.core0), percent(rw.core1), errorCell(rw))
			if rw.runs < r.res.Runs {
				notes = append(notes, fmt.Sprintf("%s: figures from %d of %d runs", targetLabel(t), rw.runs, r.res.Runs))
			}
		}
		p("\n")
		for _, n := range notes {
			p("- %s\n", n)
		}
		if len(notes) > 0 {
			p("\n")
		}
	}
}

// goalsText writes goals as the summary states them: "CPU/request ≤ 1.2×,
// p99 ≤ 1.2×".
func goalsText(gs []goal) string {
	var parts []string
	for _, g := range gs {
		op := "≥"
		if g.max {
			op = "≤"
		}
		parts = append(parts, fmt.Sprintf("%s %s %.2g×", g.label, op, g.limit))
	}
	return strings.Join(parts, ", ")
}

// goalCell is a ratio in the summary, marked when the workload has a goal
// on it.
func (r *report) goalCell(w workload, metric string, rw row) string {
	v, ok := rw.ratio[metric]
	if !ok {
		return "—"
	}
	s := fmt.Sprintf("%.2f×", v)
	// Judged on the figure as shown, so 1.2004 reads 1.20× and meets ≤ 1.2×.
	v = math.Round(v*100) / 100
	for _, g := range goalsOf(w) {
		if g.metric != metric {
			continue
		}
		met := v >= g.limit
		if g.max {
			met = v <= g.limit
		}
		if met {
			return "**" + s + "** ✅"
		}
		return "**" + s + "** ❌"
	}
	return s
}

// benchCommand is the invocation that reproduces this one's settings.
func benchCommand() string {
	var parts []string
	for _, name := range []string{"PODPIN_BENCH_DURATION", "PODPIN_BENCH_WARMUP", "PODPIN_BENCH_RUNS",
		"PODPIN_BENCH_CONNECTIONS", "PODPIN_BENCH_TABLE_SIZE", "PODPIN_BENCH_WORKLOADS", "PODPIN_BENCH_PROCESSORS", "PODPIN_BENCH_REDIS",
		"PODPIN_BENCH_SUITE", "PODPIN_BENCH_H2_STREAMS", "PODPIN_BENCH_TLS_KEY"} {
		if v := os.Getenv(name); v != "" {
			parts = append(parts, name+"="+v)
		}
	}
	return strings.Join(append(parts, "bench/run"), " ")
}

func withRatio(value string, rw row, metric, target string) string {
	if target == baseline {
		return value
	}
	if v, ok := rw.ratio[metric]; ok {
		return fmt.Sprintf("%s (%.2f×)", value, v)
	}
	return value
}

func errorCell(rw row) string {
	var parts []string
	if rw.non2xx > 0 {
		parts = append(parts, fmt.Sprintf("%d non-2xx", rw.non2xx))
	}
	for i, kind := range []string{"connect", "read", "write", "timeout"} {
		if rw.sock[i] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", rw.sock[i], kind))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// latency writes microseconds as µs below a millisecond, else as ms.
func latency(us float64) string {
	if us < 1000 {
		return fmt.Sprintf("%.0f µs", us)
	}
	return fmt.Sprintf("%.2f ms", us/1000)
}

func percent(share float64) string {
	if share < 0 || math.IsNaN(share) {
		return "?"
	}
	return fmt.Sprintf("%.0f%%", 100*share)
}

// thousands writes v rounded, with commas between groups of three digits.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// tlsKeyLabel names a certificate key type for the report.
func tlsKeyLabel(keyType string) string {
	switch keyType {
	case keyRSA:
		return "RSA 2048-bit"
	case keyECDSA, "":
		return "ECDSA P-256"
	}
	return keyType
}
