package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Counting mode (PODPIN_BENCH_COUNT=1) measures what the other core and the
// host cannot disturb: for HAProxy and podpin (and podpin with the Redis
// store, with PODPIN_BENCH_REDIS=1) on the hot workload, the
// instructions each proxy executes in user space per request, counted by
// valgrind's callgrind (which counts rather than samples), and the system
// calls it makes per request, with how many returned EAGAIN, counted by the
// kernel's syscall tracepoints through perf stat. Kernel time is not in
// either figure; with the same system calls it is the same work.
//
// System calls are counted in each layout. Instructions are counted with
// one processor only: callgrind runs a program's threads one at a time, so
// it cannot show what a second processor changes.

// count is one proxy's counted figures, per request, in one layout.
type count struct {
	Target       string
	Processors   int
	Instructions float64 // user space, under callgrind; 0 when not counted
	Syscalls     float64
	EAGAIN       float64 // system calls that returned EAGAIN
}

// countAll counts every proxy target on the hot workload, in each layout.
func countAll(ctx context.Context, cfg config, stderr io.Writer) ([]count, error) {
	ps, err := newProcs(cfg.work)
	if err != nil {
		return nil, err
	}
	defer ps.stopAll()
	b := &bench{cfg: cfg, procs: ps, log: stderr, ticks: clockTicks()}
	var out []count
	for _, l := range cfg.layouts {
		cs, err := b.countLayout(ctx, l)
		out = append(out, cs...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// countLayout counts every proxy target in layout l.
func (b *bench) countLayout(ctx context.Context, l layout) ([]count, error) {
	b.layout = l
	nginx, err := startPods(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("starting the pods: %w", err)
	}
	defer nginx.stop()
	hot := workloads[0]
	var out []count
	for _, t := range targets(b.cfg.redis, b.cfg.goroutines, suiteHTTP) {
		if !t.proxy {
			continue
		}
		c := count{Target: t.name, Processors: l.processors}
		if l.processors == 1 {
			if c.Instructions, err = b.countInstructions(ctx, hot, t); err != nil {
				return out, fmt.Errorf("%s: counting instructions: %w", t.name, err)
			}
		}
		if c.Syscalls, c.EAGAIN, err = b.countSyscalls(ctx, hot, t); err != nil {
			return out, fmt.Errorf("%s: counting system calls: %w", t.name, err)
		}
		fmt.Fprintf(b.log, "count %dP %-8s %-8s %8.0f instructions/request  %.2f system calls/request, %.2f EAGAIN\n",
			l.processors, hot.name, t.name, c.Instructions, c.Syscalls, c.EAGAIN)
		out = append(out, c)
	}
	return out, nil
}

// countWrk is the load of a counting run: few connections, as a proxy under
// callgrind runs some fifty times slower.
const countWrk = 16

// countInstructions runs t under callgrind, zeroes its counters after a
// warm-up, and returns the instructions per request of one measured run.
func (b *bench) countInstructions(ctx context.Context, w workload, t target) (float64, error) {
	file := filepath.Join(b.cfg.work, "callgrind-"+t.name+".out")
	b.wrap = []string{"valgrind", "--tool=callgrind", "--callgrind-out-file=" + file}
	// callgrind cannot follow Go's preemption signals.
	b.env = []string{"GODEBUG=asyncpreemptoff=1"}
	defer func() { b.wrap, b.env = nil, nil }()
	p, stop, err := b.startCounted(ctx, t, "callgrind")
	if err != nil {
		return 0, err
	}
	defer stop()
	// Under callgrind a warm-up period serves far fewer requests: repeat it,
	// each going on from the key where the last stopped, until every hot
	// key has been sent once.
	for warm := int64(0); warm < hotKeys; {
		n, err := b.countWarmup(ctx, w, t, warm)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errors.New("no requests completed in the warm-up")
		}
		warm += n
	}
	if err := exec.CommandContext(ctx, "callgrind_control", "-z", strconv.Itoa(p.pid())).Run(); err != nil {
		return 0, fmt.Errorf("callgrind_control -z: %w", err)
	}
	res, err := b.runWrk(ctx, wrkRun{name: "wrk-count-" + t.name, script: b.script(w), url: targetURL(t),
		duration: b.cfg.duration, conns: countWrk, tag: "count"})
	if err != nil {
		return 0, err
	}
	if err := exec.CommandContext(ctx, "callgrind_control", "-d", strconv.Itoa(p.pid())).Run(); err != nil {
		return 0, fmt.Errorf("callgrind_control -d: %w", err)
	}
	total, err := callgrindTotal(file)
	if err != nil {
		return 0, err
	}
	if res.Requests == 0 {
		return 0, errors.New("no requests completed")
	}
	return float64(total) / float64(res.Requests), nil
}

// countSyscalls runs t as measured and counts its system calls during one
// wrk run.
func (b *bench) countSyscalls(ctx context.Context, w workload, t target) (calls, eagain float64, err error) {
	p, stop, err := b.startCounted(ctx, t, "perf")
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	if _, err := b.countWarmup(ctx, w, t, 0); err != nil {
		return 0, 0, err
	}
	statFile := filepath.Join(b.cfg.work, "perf-"+t.name+".csv")
	perf := exec.CommandContext(ctx, "perf", "stat", "-x,", "-o", statFile,
		"-e", "raw_syscalls:sys_enter",
		"-e", "raw_syscalls:sys_exit", "--filter", "ret == -11",
		"-p", strconv.Itoa(p.pid()), "--", "sleep", strconv.Itoa(int(b.cfg.duration/time.Second)))
	if err := perf.Start(); err != nil {
		return 0, 0, fmt.Errorf("perf stat: %w", err)
	}
	res, werr := b.runWrk(ctx, wrkRun{name: "wrk-count-perf-" + t.name, script: b.script(w), url: targetURL(t),
		duration: b.cfg.duration, conns: b.cfg.conns, tag: "count"})
	if err := perf.Wait(); err != nil {
		return 0, 0, fmt.Errorf("perf stat: %w", err)
	}
	if werr != nil {
		return 0, 0, werr
	}
	counts, err := perfCounts(statFile)
	if err != nil {
		return 0, 0, err
	}
	if res.Requests == 0 || len(counts) != 2 {
		return 0, 0, fmt.Errorf("got %d requests and %d perf counts", res.Requests, len(counts))
	}
	return counts[0] / float64(res.Requests), counts[1] / float64(res.Requests), nil
}

// startCounted starts t's proxy and waits until it listens; valgrind makes
// that slow.
func (b *bench) startCounted(ctx context.Context, t target, tag string) (*proc, func(), error) {
	if err := portsFree(t.binds); err != nil {
		return nil, nil, err
	}
	ps, err := t.start(b, tag, workloads[0])
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		for _, p := range ps {
			p.stop()
		}
	}
	if err := waitListening(ctx, ps[0], fmt.Sprintf("127.0.0.1:%d", t.port)); err != nil {
		stop()
		return nil, nil, err
	}
	return ps[0], stop, nil
}

// hotKeys is the number of keys in bench/wrk/hot.lua.
const hotKeys = 10_000

// countWarmup runs one warm-up of t (wrk for PODPIN_BENCH_WARMUP), sending
// the keys in order from key from, and returns the requests it completed.
func (b *bench) countWarmup(ctx context.Context, w workload, t target, from int64) (int64, error) {
	res, err := b.runWrk(ctx, wrkRun{name: "wrk-count-warmup-" + t.name, script: b.script(w), url: targetURL(t),
		duration: b.cfg.warmup, conns: countWrk, tag: "warmup", from: from})
	return res.Requests, err
}

func targetURL(t target) string { return fmt.Sprintf("http://127.0.0.1:%d/", t.port) }

// callgrindTotal reads the instruction total of a callgrind dump; a dump
// requested with callgrind_control goes to FILE.N.
func callgrindTotal(file string) (int64, error) {
	dumps, _ := filepath.Glob(file + ".*")
	if len(dumps) == 0 {
		return 0, fmt.Errorf("no callgrind dump beside %s", file)
	}
	raw, err := os.ReadFile(dumps[len(dumps)-1])
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "summary: "); ok {
			return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no summary line in %s", dumps[len(dumps)-1])
}

// perfCounts reads the counts of perf stat -x, output, in event order.
func perfCounts(file string) ([]float64, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []float64
	for line := range strings.SplitSeq(string(raw), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 || !strings.Contains(f[2], "syscalls") {
			continue
		}
		n, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("perf count %q: %w", line, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// countsMarkdown renders the counted figures with podpin's as a ratio to
// HAProxy's.
func countsMarkdown(cs []count, m machine) string {
	var sb strings.Builder
	sb.WriteString("# Counted per request: podpin vs HAProxy (hot workload)\n\n")
	fmt.Fprintf(&sb, "%s, %s CPUs, kernel %s, HAProxy %s, Go %s.\n\n", m.CPU, m.CPUs, m.Kernel, m.HAProxy, m.Go)
	sb.WriteString("Instructions are counted with one processor only (callgrind runs threads one at a time).\n\n")
	sb.WriteString("| proxy | processors | user-space instructions | system calls | of which EAGAIN |\n|---|--:|--:|--:|--:|\n")
	find := func(name string) *count {
		for i := range cs {
			if cs[i].Target == name && cs[i].Instructions > 0 {
				return &cs[i]
			}
		}
		return nil
	}
	// Every proxy against HAProxy; podpin's Redis store also against its
	// memory store.
	haproxy, podpin := find("haproxy"), find("podpin")
	for _, c := range cs {
		instructions := "—"
		if c.Instructions > 0 {
			var ratios []string
			if haproxy != nil && c.Target != haproxy.Target {
				ratios = append(ratios, fmt.Sprintf("%.2f× HAProxy", c.Instructions/haproxy.Instructions))
			}
			if podpin != nil && c.Target == "podpin-redis" {
				ratios = append(ratios, fmt.Sprintf("%.3f× podpin", c.Instructions/podpin.Instructions))
			}
			instructions = fmt.Sprintf("%.0f", c.Instructions)
			if len(ratios) > 0 {
				instructions += " (" + strings.Join(ratios, ", ") + ")"
			}
		}
		fmt.Fprintf(&sb, "| %s | %d | %s | %.2f | %.2f |\n", c.Target, c.Processors, instructions, c.Syscalls, c.EAGAIN)
	}
	return sb.String()
}
