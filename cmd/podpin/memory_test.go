//go:build !race

// The race detector multiplies memory use, so this proof runs without it
// (scripts/test runs it in a step of its own; make memory-proof at full
// size).

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/table"
)

// chartMemoryLimit is the chart's default container memory limit
// (deploy/helm/podpin/values.yaml, resources.limits.memory).
const chartMemoryLimit = 256 << 20

// TestMemoryStaysWithinTheContainerLimit runs podpin in a memory cgroup
// limited as the chart limits its container, pins 900 sessions, and floods
// it with new keys (PODPIN_MEMORY_PROOF_KEYS, default 2,300,000) while the
// sessions keep coming back. podpin must take its memory limit from the
// cgroup, derive its table budget from it, and come out alive, not
// OOM-killed, with every session on its pod and its peak memory under the
// limit.
func TestMemoryStaysWithinTheContainerLimit(t *testing.T) {
	keys := 2_300_000
	if v := os.Getenv("PODPIN_MEMORY_PROOF_KEYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("PODPIN_MEMORY_PROOF_KEYS=%q: want a positive number", v)
		}
		keys = n
	}
	cg, err := newMemCgroup(t, chartMemoryLimit)
	if err != nil {
		t.Skipf("cannot make a memory cgroup to run podpin in (needs root and cgroup v1 or v2 with the memory controller): %v", err)
	}

	var pods []string
	for _, name := range []string{"web-0", "web-1", "web-2"} {
		pods = append(pods, name+"=http://"+fastPod(t, name))
	}
	cfgFile := filepath.Join(t.TempDir(), "podpin.yaml")
	writeConfig(t, cfgFile, "", pods...)
	// The shell joins the cgroup, then becomes podpin: podpin reads its
	// limit from the cgroup it starts in.
	cmd := exec.Command("sh", "-c", `echo $$ > "$0" && exec "$@"`, cg.procs(), binary, "serve", "--config", cfgFile)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "AUTOMEMLIMIT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	p := startCommand(t, cmd)
	pid := p.cmd.Process.Pid

	wantBudget := table.EntriesFor(chartMemoryLimit*9/10, 0)
	if got := metricValue(t, p.admin, "podpin_table_budget_entries"); got != float64(wantBudget) {
		t.Fatalf("podpin_table_budget_entries: got %v, want %d, derived from 90%% of the cgroup's %d bytes\n%s",
			got, wantBudget, chartMemoryLimit, p.logText())
	}

	c := &fasthttp.PipelineClient{Addr: p.addr, MaxConns: 4, MaxPendingRequests: 4096}
	sessions := map[string]string{}
	for i := range 900 {
		key := fmt.Sprint("session-", i)
		sessions[key] = podOf(t, c, key)
	}
	revisit := func() (moved int) {
		for key, want := range sessions {
			if got := podOf(t, c, key); got != want {
				moved++
			}
		}
		return moved
	}
	if n := revisit(); n != 0 {
		t.Fatalf("%d of 900 sessions moved on their second request", n)
	}

	var rssPeak atomic.Int64
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		for {
			if rss, err := procStatus(pid, "VmRSS"); err == nil && rss > rssPeak.Load() {
				rssPeak.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	var moved atomic.Int64
	bg.Go(func() { // the established sessions keep coming back
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
				moved.Add(int64(revisit()))
			}
		}
	})

	start := time.Now()
	var next atomic.Int64
	var floodErr error
	var errOnce sync.Once
	var flood sync.WaitGroup
	for range 64 {
		flood.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://podpin/")
			for {
				i := next.Add(1)
				if i > int64(keys) {
					return
				}
				req.Header.Set("X-Session", "flood-"+strconv.FormatInt(i, 10))
				if err := c.DoTimeout(req, resp, 30*time.Second); err != nil || resp.StatusCode() != 200 {
					errOnce.Do(func() { floodErr = fmt.Errorf("flood key %d: status %d, %v", i, resp.StatusCode(), err) })
					next.Store(int64(keys))
					return
				}
			}
		})
	}
	flood.Wait()
	elapsed := time.Since(start)
	close(stop)
	bg.Wait()

	select {
	case <-p.exited:
		kills, _ := cg.oomKills()
		t.Fatalf("podpin exited during the flood (%v), OOM kills in its cgroup: %d", p.err, kills)
	default:
	}
	if floodErr != nil {
		t.Fatal(floodErr)
	}
	moved.Add(int64(revisit()))
	hwm, err := procStatus(pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	hwm = max(hwm, rssPeak.Load())
	cgPeak, err := cg.peak()
	if err != nil {
		t.Fatal(err)
	}
	kills, err := cg.oomKills()
	if err != nil {
		t.Fatal(err)
	}
	entries := metricValue(t, p.admin, "podpin_table_entries")
	t.Logf("%d new keys in %v; table entries %v of a budget of %d; peak RSS %.1f MiB (sampled every 100ms: %.1f MiB), cgroup peak %.1f MiB of %d MiB; OOM kills %d; sessions moved %d of 900",
		keys, elapsed.Round(time.Second), entries, wantBudget, mib(hwm), mib(rssPeak.Load()), mib(cgPeak), chartMemoryLimit>>20, kills, moved.Load())

	if kills != 0 {
		t.Errorf("got %d OOM kills in podpin's cgroup, want 0", kills)
	}
	if hwm >= chartMemoryLimit || cgPeak >= chartMemoryLimit {
		t.Errorf("peak RSS %d bytes, cgroup peak %d bytes: want both under the limit of %d", hwm, cgPeak, chartMemoryLimit)
	}
	if n := moved.Load(); n != 0 {
		t.Errorf("%d visits found an established session on another pod, want none", n)
	}
	if entries > float64(wantBudget) {
		t.Errorf("podpin_table_entries: got %v, want at most the budget %d", entries, wantBudget)
	}
	if code, err := httpGet("http://" + p.admin + "/healthz"); err != nil || code != 200 {
		t.Errorf("/healthz after the flood: %d, %v; want 200", code, err)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// podOf sends a request with key through c and returns the pod that
// answered.
func podOf(t *testing.T, c *fasthttp.PipelineClient, key string) string {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://podpin/")
	req.Header.Set("X-Session", key)
	if err := c.DoTimeout(req, resp, 30*time.Second); err != nil || resp.StatusCode() != 200 {
		t.Errorf("key %q: status %d, %v", key, resp.StatusCode(), err)
		return ""
	}
	return string(resp.Body())
}

// fastPod is a real HTTP server, cheap enough to answer a flood, that
// answers with its name. It returns its address.
func fastPod(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(name) }}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// metricValue returns the sum of a metric's series from podpin's admin
// listener.
func metricValue(t *testing.T, admin, name string) float64 {
	t.Helper()
	rx := regexp.MustCompile(`(?m)^` + name + `(\{[^}]*\})? (\S+)$`)
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d, %v", resp.StatusCode, err)
	}
	body := string(b)
	sum, found := 0.0, false
	for _, m := range rx.FindAllStringSubmatch(body, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		t.Fatalf("/metrics has no %s", name)
	}
	return sum
}

// procStatus returns a "kB" field of /proc/PID/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// memCgroup is a memory cgroup made for one test: a child of the test's
// own cgroup, or of the root of a cgroup v2 hierarchy when the own one
// cannot have children with a memory controller.
type memCgroup struct {
	dir string
	v2  bool
}

// newMemCgroup makes a cgroup limited to limit bytes, without swap, and
// removes it when the test ends.
func newMemCgroup(t *testing.T, limit int64) (*memCgroup, error) {
	name := fmt.Sprintf("podpin-memory-%d", os.Getpid())
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	var v1Path, v2Path string
	for _, line := range strings.Split(string(own), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2Path = parts[2]
		case inList(parts[1], "memory"):
			v1Path = parts[2]
		}
	}
	var c *memCgroup
	switch {
	case hasController("/sys/fs/cgroup/cgroup.controllers", "memory"):
		parent := "/sys/fs/cgroup"
		if hasController(filepath.Join(parent, v2Path, "cgroup.subtree_control"), "memory") {
			parent = filepath.Join(parent, v2Path)
		} else if !hasController(filepath.Join(parent, "cgroup.subtree_control"), "memory") {
			return nil, errors.New("cgroup v2 without the memory controller for child cgroups")
		}
		c = &memCgroup{dir: filepath.Join(parent, name), v2: true}
	case v1Path != "":
		c = &memCgroup{dir: filepath.Join("/sys/fs/cgroup/memory", v1Path, name)}
	default:
		return nil, errors.New("no memory cgroup controller")
	}
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := os.Remove(c.dir); err != nil {
			t.Errorf("removing the cgroup: %v", err)
		}
	})
	lim := strconv.FormatInt(limit, 10)
	if c.v2 {
		if err := os.WriteFile(filepath.Join(c.dir, "memory.max"), []byte(lim), 0); err != nil {
			return nil, err
		}
		os.WriteFile(filepath.Join(c.dir, "memory.swap.max"), []byte("0"), 0) // absent without swap accounting
		return c, nil
	}
	if err := os.WriteFile(filepath.Join(c.dir, "memory.limit_in_bytes"), []byte(lim), 0); err != nil {
		return nil, err
	}
	os.WriteFile(filepath.Join(c.dir, "memory.memsw.limit_in_bytes"), []byte(lim), 0) // absent without swap accounting
	return c, nil
}

func inList(list, name string) bool {
	for _, s := range strings.Split(list, ",") {
		if s == name {
			return true
		}
	}
	return false
}

func hasController(file, name string) bool {
	b, err := os.ReadFile(file)
	return err == nil && inList(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", ","), name)
}

func (c *memCgroup) procs() string { return filepath.Join(c.dir, "cgroup.procs") }

// peak returns the most memory the cgroup has used, in bytes.
func (c *memCgroup) peak() (int64, error) {
	file := "memory.max_usage_in_bytes"
	if c.v2 {
		file = "memory.peak" // Linux 5.19 and later
	}
	b, err := os.ReadFile(filepath.Join(c.dir, file))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// oomKills returns how many processes the kernel killed in the cgroup for
// want of memory.
func (c *memCgroup) oomKills() (int64, error) {
	file := "memory.oom_control"
	if c.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(c.dir, file))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no oom_kill count", file)
}
