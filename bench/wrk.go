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

// workload is one wrk script and what it exercises.
type workload struct {
	name  string
	about string // one line for the report
	path  string // request path, for the pre-flight check
}

// workloads are run in this order. Their scripts are bench/wrk/NAME.lua.
var workloads = []workload{
	{"hot", "10,000 session keys, one chosen at random per request: stick-table hits.", "/"},
	{"distinct", "a new key on every request (1,000,000 keys, cycling): a miss, an insert and, once the table is full, an eviction each.", "/"},
	{"nokey", "no session header: round-robin balancing only, the table is not used.", "/"},
	{"large", "the hot keys, each response a 1 MiB file: body copying dominates.", largePath},
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
	return filepath.Join(b.cfg.repo, "bench", "wrk", w.name+".lua")
}
