package config_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/logtest"
	"github.com/podpin/podpin/internal/proxy"
)

// reloads counts reloads by outcome, and keeps the last count of settings
// waiting for a restart.
type reloads struct{ applied, rejected, pending atomic.Int64 }

func (r *reloads) RestartPending(n int) { r.pending.Store(int64(n)) }

func (r *reloads) Reloaded(applied bool) {
	if applied {
		r.applied.Add(1)
	} else {
		r.rejected.Add(1)
	}
}

// reloadEnv is a real proxy whose configuration file a Reloader watches.
type reloadEnv struct {
	t       *testing.T
	file    string
	proxy   *proxy.Proxy
	log     *logtest.Buffer
	counts  *reloads
	signals chan os.Signal
}

const podsYAML = "  backends: [{name: web-0, url: 'http://127.0.0.1:9001'}]\n"

// startReloader writes routes (YAML of the routes: list) to a file, applies
// it to a new proxy, and runs a Reloader over it until the test ends.
func startReloader(t *testing.T, routes string) *reloadEnv {
	t.Helper()
	log, buf := logtest.New()
	e := &reloadEnv{t: t, file: filepath.Join(t.TempDir(), "podpin.yaml"), proxy: proxy.New(proxy.Options{}),
		log: buf, counts: &reloads{}, signals: make(chan os.Signal, 1)}
	t.Cleanup(e.proxy.Close)
	e.write(routes)
	cfg, err := config.Load(e.file)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.proxy.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	r := config.NewReloader(config.ReloaderOptions{
		File: e.file, Apply: e.proxy, Running: cfg, Signals: e.signals, Interval: 10 * time.Millisecond,
		Metrics: e.counts, Logger: log,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

func (e *reloadEnv) write(body string) {
	e.t.Helper()
	if err := os.WriteFile(e.file, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// waitLog waits until the log holds a line with every one of parts.
func (e *reloadEnv) waitLog(parts ...string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for line := range strings.SplitSeq(e.log.String(), "\n") {
			if all(line, parts) {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("no log line with %q; log:\n%s", parts, e.log.String())
}

func all(line string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(line, p) {
			return false
		}
	}
	return true
}

func (e *reloadEnv) routes() []string {
	var names []string
	for _, r := range e.proxy.Routes() {
		names = append(names, r.Name)
	}
	return names
}

func TestAChangedFileIsApplied(t *testing.T) {
	e := startReloader(t, "routes:\n- name: a\n"+podsYAML)
	e.write("routes:\n- name: a\n" + podsYAML + "- name: b\n" + podsYAML)
	e.waitLog(`msg="configuration reloaded"`, `trigger="file changed"`, "routes=2")
	if got := strings.Join(e.routes(), ","); got != "a,b" {
		t.Errorf("routes after the change: got %s, want a,b", got)
	}
	if a, r := e.counts.applied.Load(), e.counts.rejected.Load(); a != 1 || r != 0 {
		t.Errorf("reloads: got %d applied, %d rejected; want 1, 0", a, r)
	}
}

func TestASignalReloadsAnUnchangedFile(t *testing.T) {
	e := startReloader(t, "routes:\n- name: a\n"+podsYAML)
	// The same content again is no change; only the signal reloads.
	e.write("routes:\n- name: a\n" + podsYAML)
	e.signals <- syscall.SIGHUP
	e.waitLog(`msg="configuration reloaded"`, "trigger=SIGHUP", "routes=1")
	if strings.Contains(e.log.String(), "file changed") {
		t.Errorf("content written again counted as a change:\n%s", e.log.String())
	}
	if a := e.counts.applied.Load(); a != 1 {
		t.Errorf("reloads applied: got %d, want 1", a)
	}
}

func TestARejectedConfigurationLeavesTheRunningOne(t *testing.T) {
	for _, tt := range []struct {
		name string
		file string
		want [][]string // log lines, each by its parts
	}{
		{
			name: "every invalid field is logged with its path",
			file: "routes:\n- name: a\n  balancer: fastest\n  backends: [{name: web-0, url: 'ftp://x'}]\n",
			want: [][]string{
				{"configuration rejected", "field=routes[0].balancer"},
				{"configuration rejected", "field=routes[0].backends[0].url"},
			},
		},
		{
			name: "a configuration the proxy refuses is logged with its error",
			file: "routes:\n- name: a\n  service: {name: web, port: http}\n",
			want: [][]string{{"configuration rejected", `error="route \"a\": service default/web`}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startReloader(t, "routes:\n- name: a\n"+podsYAML)
			e.write(tt.file)
			for _, parts := range tt.want {
				e.waitLog(parts...)
			}
			rs, err := e.proxy.Route("a")
			if err != nil || len(rs.Pods) != 1 || rs.Pods[0].Name != "web-0" {
				t.Errorf("route a after the rejection: got %+v, %v; want web-0 still", rs, err)
			}
			if a, r := e.counts.applied.Load(), e.counts.rejected.Load(); a != 0 || r != 1 {
				t.Errorf("reloads: got %d applied, %d rejected; want 0, 1", a, r)
			}
		})
	}
}

func TestSettingsOnlyARestartAppliesAreNamedAndTheRestApplies(t *testing.T) {
	e := startReloader(t, "routes:\n- name: a\n"+podsYAML)
	// A Redis store waits for a restart; the new route and the pod header
	// apply now.
	e.write("podHeader: ''\nstore: {type: redis, redis: {url: 'redis://127.0.0.1:1'}}\n" +
		"routes:\n- name: a\n" + podsYAML + "- name: b\n" + podsYAML)
	e.waitLog(`msg="configuration reloaded"`, "routes=2")
	for _, s := range []string{"store.type", "store.redis", "routes[a].store", "routes[b].store"} {
		e.waitLog("level=WARN", s+" changed: needs a restart", "setting="+s)
	}
	if got := strings.Join(e.routes(), ","); got != "a,b" {
		t.Errorf("routes after the change: got %s, want a,b", got)
	}
	if got := e.counts.pending.Load(); got != 4 {
		t.Errorf("settings waiting for a restart: got %d, want 4", got)
	}
	// Back to the file podpin started with: nothing waits any more.
	e.write("routes:\n- name: a\n" + podsYAML)
	e.waitLog(`msg="configuration reloaded"`, "routes=1")
	if got := e.counts.pending.Load(); got != 0 {
		t.Errorf("settings waiting for a restart after the revert: got %d, want 0", got)
	}
}

func TestAChangedPodCAFileIsApplied(t *testing.T) {
	dir := t.TempDir()
	caFile := certstest.NewCA(t).WriteCAFile(t, dir)
	e := startReloader(t, "routes:\n- name: a\n  pods: {tls: {caFile: '"+caFile+"'}}\n"+
		"  backends: [{name: web-0, url: 'https://127.0.0.1:9001'}]\n")

	// A new bundle in the same file: the configuration is applied again,
	// and the route's pods are verified with it.
	if err := os.WriteFile(caFile, certstest.NewCA(t).PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e.waitLog(`msg="configuration reloaded"`, `trigger="file changed"`)
	if n := e.counts.applied.Load(); n != 1 {
		t.Errorf("reloads applied: got %d, want 1", n)
	}

	// A bundle that holds no certificate is refused, naming the field.
	if err := os.WriteFile(caFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.waitLog(`msg="configuration rejected, the running one stays"`, `field=routes[0].pods.tls.caFile`, "holds no PEM certificate")
	if n := e.counts.rejected.Load(); n != 1 {
		t.Errorf("reloads rejected: got %d, want 1", n)
	}
}
