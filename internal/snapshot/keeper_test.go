package snapshot_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/logtest"
	"github.com/podpin/podpin/internal/proxy"
	"github.com/podpin/podpin/internal/snapshot"
)

var _ snapshot.Tables = (*proxy.Proxy)(nil)

// newProxy returns a real proxy with one route over two pods that are never
// contacted, its key digest keyed by secret.
func newProxy(t *testing.T, secret string) *proxy.Proxy {
	t.Helper()
	cfg := &config.Config{Routes: []config.Route{{
		Name:  "default",
		Table: config.Table{KeepRawKeys: true},
		Backends: []config.Backend{
			{Name: "web-0", URL: "http://192.0.2.10:8080"},
			{Name: "web-1", URL: "http://192.0.2.11:8080"},
		},
	}}}
	cfg.SetDefaults()
	p := proxy.New(proxy.Options{KeySecret: []byte(secret)})
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// saves counts saves by outcome; it is safe for concurrent use.
type saves struct {
	mu       sync.Mutex // guards ok and failed
	ok, fail int
}

func (s *saves) Saved(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.ok++
	} else {
		s.fail++
	}
}

func (s *saves) counts() (ok, fail int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok, s.fail
}

// newKeeper returns a Keeper of file and what it logs.
func newKeeper(file string, tables snapshot.Tables, m snapshot.SaveCounter) (*snapshot.Keeper, *logtest.Buffer) {
	log, buf := logtest.New()
	return snapshot.NewKeeper(snapshot.KeeperOptions{File: file, Tables: tables, Metrics: m, Logger: log}), buf
}

func TestKeeperCarriesSessionsToTheNextProxy(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state")
	before := newProxy(t, "")
	for key, pod := range map[string]string{"alice": "web-1", "bob": "web-0"} {
		if _, err := before.Pin("default", key, pod); err != nil {
			t.Fatal(err)
		}
	}
	m := &saves{}
	k, _ := newKeeper(file, before, m)
	k.Save()
	if ok, fail := m.counts(); ok != 1 || fail != 0 {
		t.Errorf("saves: got %d ok, %d failed; want 1, 0", ok, fail)
	}

	after := newProxy(t, "")
	k, log := newKeeper(file, after, nil)
	k.Restore()
	for key, pod := range map[string]string{"alice": "web-1", "bob": "web-0"} {
		if e, err := after.Session("default", key); err != nil || e.Pod != pod {
			t.Errorf("%s after the restore: got %+v, %v; want it on %s", key, e, err, pod)
		}
	}
	if !strings.Contains(log.String(), `msg="stick tables restored"`) || !strings.Contains(log.String(), "sessions=2 dropped=0") {
		t.Errorf("log lacks the restore with its counts:\n%s", log)
	}
}

func TestKeeperStartsEmptyFromAFileItCannotUse(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "foreign")
	other := newProxy(t, "another secret")
	if _, err := other.Pin("default", "alice", "web-1"); err != nil {
		t.Fatal(err)
	}
	k, _ := newKeeper(foreign, other, nil)
	k.Save()
	corrupt := filepath.Join(dir, "corrupt")
	if err := os.WriteFile(corrupt, []byte("podpin-state\nnot really"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, file, want string
	}{
		{"no file yet is a first start", filepath.Join(dir, "missing"), `msg="no state file yet; starting with empty tables"`},
		{"a corrupt file is ignored", corrupt, `level=ERROR msg="state file ignored; starting with empty tables"`},
		{"a file saved under another secret is ignored", foreign, `level=ERROR msg="state file ignored; starting with empty tables"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxy(t, "")
			k, log := newKeeper(tt.file, p, nil)
			k.Restore()
			if rs, _ := p.Route("default"); rs.TableStats.Entries != 0 {
				t.Errorf("got %d entries, want none", rs.TableStats.Entries)
			}
			if !strings.Contains(log.String(), tt.want) {
				t.Errorf("log lacks %s:\n%s", tt.want, log)
			}
		})
	}
}

func TestAFailedSaveIsCountedAndLogged(t *testing.T) {
	m := &saves{}
	k, log := newKeeper(filepath.Join(t.TempDir(), "gone", "state"), newProxy(t, ""), m)
	k.Save()
	if ok, fail := m.counts(); ok != 0 || fail != 1 {
		t.Errorf("saves: got %d ok, %d failed; want 0, 1", ok, fail)
	}
	if !strings.Contains(log.String(), `level=ERROR msg="saving stick tables failed"`) {
		t.Errorf("log lacks the failure:\n%s", log)
	}
}

func TestKeeperSavesEveryIntervalUntilStopped(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state")
	m := &saves{}
	k := snapshot.NewKeeper(snapshot.KeeperOptions{File: file, Interval: 10 * time.Millisecond, Tables: newProxy(t, ""), Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- k.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for ok, _ := m.counts(); ok < 2; ok, _ = m.counts() {
		if time.Now().After(deadline) {
			t.Fatal("no two periodic saves within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
	if _, err := snapshot.Load(file); err != nil {
		t.Errorf("the saved file: %v", err)
	}
}

func TestKeeperWithoutAFileKeepsNothing(t *testing.T) {
	// No Tables: a Keeper without a file must never reach them.
	k := snapshot.NewKeeper(snapshot.KeeperOptions{Interval: time.Millisecond})
	k.Restore()
	k.Save()
	if err := k.Run(context.Background()); err != nil {
		t.Errorf("Run: got %v, want nil at once", err)
	}
}
