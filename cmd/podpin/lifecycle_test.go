package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestRestartKeepsEverySession(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "podpin.yaml")
	pods := []string{
		"web-0=" + namedPod(t, "web-0", 0).URL,
		"web-1=" + namedPod(t, "web-1", 0).URL,
		"web-2=" + namedPod(t, "web-2", 0).URL,
	}
	writeConfig(t, cfg, "state: {file: "+state+"}\n", pods...)
	p := startPodpin(t, "--config", cfg)
	before := map[string]string{}
	for i := range 200 {
		key := fmt.Sprintf("user-%d", i)
		before[key] = p.podOf(key)
	}
	p.signal(syscall.SIGTERM)
	if err := p.wait(); err != nil {
		t.Fatalf("podpin exited with %v after SIGTERM, want success", err)
	}

	// The pods come back in another order, so a fresh round-robin would
	// place keys elsewhere: only the restored table keeps them.
	writeConfig(t, cfg, "state: {file: "+state+"}\n", pods[2], pods[0], pods[1])
	p2 := startPodpin(t, "--config", cfg)
	p2.waitLog(t, "stick tables restored")
	for key, want := range before {
		if got := p2.podOf(key); got != want {
			t.Fatalf("after restart key %q went to %s, want %s", key, got, want)
		}
	}
}

func TestCrashLosesAtMostTheLastSaveInterval(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	pods := []string{"--backend", "web-0=" + namedPod(t, "web-0", 0).URL, "--backend", "web-1=" + namedPod(t, "web-1", 0).URL}
	args := append([]string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--state-file", state}, pods...)
	cfg := filepath.Join(dir, "podpin.yaml")
	writeConfig(t, cfg, "state: {file: "+state+", interval: 200ms}\n", pods[1], pods[3])
	p := startPodpin(t, "--config", cfg)
	before := map[string]string{}
	for i := range 50 {
		before[fmt.Sprintf("k%d", i)] = p.podOf(fmt.Sprintf("k%d", i))
	}
	time.Sleep(600 * time.Millisecond) // at least two saves
	p.signal(syscall.SIGKILL)
	p.wait()

	// Restarted from quick flags with the balancer that would place keys by
	// hash: the restored entries win over it.
	p2 := startPodpin(t, append(args, "--balancer", "hash")...)
	p2.waitLog(t, "stick tables restored")
	for key, want := range before {
		if got := p2.podOf(key); got != want {
			t.Fatalf("after a crash key %q went to %s, want %s", key, got, want)
		}
	}
}

func TestCorruptStateFileIsReportedAndIgnored(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.WriteFile(state, []byte("podpin-state\n\x01 this is not a real snapshot at all"), 0o644)
	p := startPodpin(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--state-file", state,
		"--backend", "web-0="+namedPod(t, "web-0", 0).URL)
	p.waitLog(t, "state file ignored")
	if got := p.podOf("a"); got != "web-0" {
		t.Errorf("got %s, want web-0", got)
	}
}

func TestReloadAppliesChangesAndRejectsBadConfigs(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "podpin.yaml")
	web0 := "web-0=" + namedPod(t, "web-0", 0).URL
	web1 := "web-1=" + namedPod(t, "web-1", 0).URL
	writeConfig(t, cfg, "", web0)
	p := startPodpin(t, "--config", cfg)
	if got := p.podOf("alice"); got != "web-0" {
		t.Fatalf("got %s, want web-0", got)
	}

	t.Run("SIGHUP adds a pod and moves no session", func(t *testing.T) {
		writeConfig(t, cfg, "", web0, web1)
		p.signal(syscall.SIGHUP)
		p.waitLog(t, `msg="configuration reloaded" .*trigger=SIGHUP`)
		if got := p.podOf("alice"); got != "web-0" {
			t.Errorf("alice moved to %s after the reload", got)
		}
		seen := map[string]bool{}
		for i := range 10 {
			seen[p.podOf(fmt.Sprintf("new-%d", i))] = true
		}
		if !seen["web-1"] {
			t.Errorf("no new session reached the added pod web-1")
		}
	})
	t.Run("a changed file is picked up by itself", func(t *testing.T) {
		writeConfig(t, cfg, "podHeader: X-Served-By\n", web0, web1)
		p.waitLog(t, `msg="configuration reloaded" .*trigger="file changed"`)
	})
	t.Run("an invalid file is rejected and the running configuration stays", func(t *testing.T) {
		os.WriteFile(cfg, []byte("routes:\n- name: default\n  balancer: fastest\n  backends: [{name: web-0, url: 'ftp://x'}]\n"), 0o644)
		p.waitLog(t, `configuration rejected.*field=routes\[0\]\.balancer`)
		p.waitLog(t, `configuration rejected.*field=routes\[0\]\.backends\[0\]\.url`)
		if got := p.podOf("alice"); got != "web-0" {
			t.Errorf("after a rejected reload alice went to %s, want web-0", got)
		}
	})
}

func TestReloadUnderLoadDropsNoRequest(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "podpin.yaml")
	web0 := "web-0=" + namedPod(t, "web-0", 0).URL
	web1 := "web-1=" + namedPod(t, "web-1", 0).URL
	writeConfig(t, cfg, "", web0, web1)
	p := startPodpin(t, "--config", cfg)
	want := map[string]string{}
	for i := range 20 {
		want[fmt.Sprintf("k%d", i)] = p.podOf(fmt.Sprintf("k%d", i))
	}
	var total, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("k%d", i%20)
				code, body, err := p.get(key)
				total.Add(1)
				if err != nil || code != 200 || body != want[key] {
					failed.Add(1)
				}
			}
		})
	}
	for i := range 10 {
		writeConfig(t, cfg, fmt.Sprintf("upstream: {maxConnsPerPod: %d}\n", 100+i%2), web0, web1)
		p.signal(syscall.SIGHUP)
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || total.Load() < 50 {
		t.Errorf("%d of %d requests failed or moved during 10 reloads, want none", failed.Load(), total.Load())
	}
}

func TestSIGTERMFinishesRequestsInFlight(t *testing.T) {
	slow := namedPod(t, "slow", 700*time.Millisecond)
	p := startPodpin(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--drain-timeout", "5s",
		"--shutdown-delay", "300ms", "--backend", "slow="+slow.URL)
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, body, err := p.get("a")
		res <- result{code, body, err}
	}()
	time.Sleep(200 * time.Millisecond)
	p.signal(syscall.SIGTERM)
	// Readiness turns false at once, while the listener keeps serving for
	// the shutdown delay.
	time.Sleep(100 * time.Millisecond)
	resp, err := httpGet("http://" + p.admin + "/readyz")
	if err != nil || resp != 503 {
		t.Errorf("/readyz during shutdown: %d %v, want 503", resp, err)
	}
	r := <-res
	if r.err != nil || r.code != 200 || r.body != "slow" {
		t.Errorf("in-flight request: %d %q %v, want 200 slow", r.code, r.body, r.err)
	}
	if err := p.wait(); err != nil {
		t.Errorf("exit: %v, want success", err)
	}
}
