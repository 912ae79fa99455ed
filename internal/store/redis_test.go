package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/redistest"
	"github.com/podpin/podpin/internal/table"
)

// replica is one podpin's view: a store connection and a route's table.
type replica struct {
	s *Redis
	r *Route
	t *table.Table
}

func newReplica(t *testing.T, o Options) *replica {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 200 * time.Millisecond
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 200 * time.Millisecond
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	tb := table.New(table.Config{MaxEntries: 100_000})
	return &replica{s: s, t: tb, r: s.Route("default", tb, 30*time.Minute, 0, true)}
}

func key(i int) table.Key { return table.NewDigester(nil).Key("default", []byte(fmt.Sprint("k", i))) }

func TestConcurrentClaimsPinEachKeyToOnePod(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, Options{URL: "redis://" + srv.Addr}), newReplica(t, Options{URL: "redis://" + srv.Addr})
	const n = 2000
	var wg sync.WaitGroup
	won := [2][]string{make([]string, n), make([]string, n)}
	for ri, rep := range []*replica{a, b} {
		wg.Go(func() {
			for i := range n {
				// Each replica would place the key on a different pod.
				won[ri][i] = rep.r.Claim(key(i), "", fmt.Sprintf("web-%d", ri), nil)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if won[0][i] != won[1][i] {
			t.Fatalf("key %d: replica a holds %s, replica b holds %s", i, won[0][i], won[1][i])
		}
		for _, rep := range []*replica{a, b} {
			if p, _ := rep.t.Lookup(key(i)); p != won[0][i] {
				t.Fatalf("key %d: local table has %q, want %s", i, p, won[0][i])
			}
		}
		e, ok, err := a.r.Get(key(i))
		if err != nil || !ok || e.Pod != won[0][i] {
			t.Fatalf("key %d: redis has %v %v %v, want %s", i, e.Pod, ok, err, won[0][i])
		}
	}
}

func TestARebindIsSeenByTheOtherReplicaQuickly(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, Options{URL: "redis://" + srv.Addr}), newReplica(t, Options{URL: "redis://" + srv.Addr})
	k := key(1)
	a.r.Claim(k, "", "web-0", nil)
	if p, ok := b.r.Lookup(k); !ok || p != "web-0" {
		t.Fatalf("replica b sees %q %v, want web-0 from redis", p, ok)
	}
	time.Sleep(100 * time.Millisecond) // the subscription is up
	start := time.Now()
	if err := a.r.Pin(k, "web-1", nil); err != nil {
		t.Fatal(err)
	}
	for {
		if p, _ := b.r.Lookup(k); p == "web-1" {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatal("replica b still routes to web-0 two seconds after the pin")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("pin seen by the other replica after %v", time.Since(start))

	t.Run("a rebind from a pod only replaces that pod", func(t *testing.T) {
		// b still believes web-0 (stale) and rebinds from it: redis holds
		// web-1 since the pin, so b must adopt web-1, not write web-2.
		if got := b.r.Claim(k, "web-0", "web-2", nil); got != "web-1" {
			t.Errorf("stale rebind won with %s, want the stored web-1", got)
		}
	})
}

func TestRedisOutageServesLocallyAndWritesBack(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, Options{URL: "redis://" + srv.Addr, Timeout: 50 * time.Millisecond})
	a.r.Claim(key(1), "", "web-0", nil)
	srv.Kill()
	if p, ok := a.r.Lookup(key(1)); !ok || p != "web-0" {
		t.Fatalf("local hit during the outage: %q %v, want web-0", p, ok)
	}
	if got := a.r.Claim(key(2), "", "web-1", nil); got != "web-1" {
		t.Fatalf("claim during the outage: %s, want web-1 locally", got)
	}
	if !a.r.Degraded() {
		t.Fatal("not degraded after a failed claim")
	}
	srv.Restart() // empty
	deadline := time.Now().Add(5 * time.Second)
	for a.r.Degraded() {
		if time.Now().After(deadline) {
			t.Fatal("still degraded 5s after redis came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, want := range map[int]string{1: "web-0", 2: "web-1"} {
		e, ok, err := a.r.Get(key(i))
		if err != nil || !ok || e.Pod != want {
			t.Errorf("key %d in redis after write-back: %v %v %v, want %s", i, e.Pod, ok, err, want)
		}
	}
}

func TestWriteBackAdoptsWhatAnotherReplicaClaimed(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, Options{URL: "redis://" + srv.Addr})
	k := key(7)
	// a placed the key on its own (cut off from redis) after another replica
	// had claimed it in redis: the claim stands.
	a.t.Restore(table.Entry{Key: k, Pod: "web-0", Created: time.Now().Add(time.Minute), LastUsed: time.Now()})
	other := newReplica(t, Options{URL: "redis://" + srv.Addr})
	other.r.Claim(k, "", "web-2", nil)
	if _, err := a.s.writeBackAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := a.r.Get(k); e.Pod != "web-2" {
		t.Errorf("redis holds %s after write-back, want the claimed web-2", e.Pod)
	}
	if p, _ := a.t.Lookup(k); p != "web-2" {
		t.Errorf("local table holds %s, want web-2 adopted", p)
	}
}

func TestSentinelFailoverKeepsSessions(t *testing.T) {
	master := redistest.Start(t)
	replicaSrv := redistest.Start(t, "--replicaof", "127.0.0.1", fmt.Sprint(master.Port))
	sen := redistest.StartSentinel(t, master)
	a := newReplica(t, Options{Addrs: []string{sen.Addr}, MasterName: redistest.MasterName, Timeout: 200 * time.Millisecond})
	for i := range 100 {
		a.r.Claim(key(i), "", fmt.Sprintf("web-%d", i%3), nil)
	}
	// Let the replica catch up, then lose the master.
	deadline := time.Now().Add(5 * time.Second)
	for replicaSrv.Do("DBSIZE") != ":100" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	master.Kill()
	newMaster := sen.WaitMaster(t, master.Addr, 20*time.Second)
	if newMaster != replicaSrv.Addr {
		t.Fatalf("sentinel promoted %s, want %s", newMaster, replicaSrv.Addr)
	}
	// A fresh replica of podpin (empty local table) finds every session.
	b := newReplica(t, Options{Addrs: []string{sen.Addr}, MasterName: redistest.MasterName, Timeout: 200 * time.Millisecond})
	deadline = time.Now().Add(10 * time.Second)
	for i := 0; i < 100; {
		p, ok := b.r.Lookup(key(i))
		if ok && p == fmt.Sprintf("web-%d", i%3) {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %d after failover: %q %v, want web-%d", i, p, ok, i%3)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A replica whose copy of a key disagrees with Redis (an invalidation it
// never got) adopts Redis's pod at the key's next expiry refresh.
func TestTheExpiryRefreshAdoptsWhatRedisHolds(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, Options{URL: "redis://" + srv.Addr})
	// Idle 4s: the key's expiry is refreshed once a second while in use.
	r := a.s.Route("short", a.t, 4*time.Second, 0, false)
	k := key(3)
	if got := r.Claim(k, "", "web-0", nil); got != "web-0" {
		t.Fatalf("claim: %s, want web-0", got)
	}
	// Another replica's rebind, its invalidation lost.
	if v := srv.Do("SET", r.key(k), r.encode(time.Now(), "web-1", nil), "PX", "4000"); v != "+OK" {
		t.Fatalf("SET: %s", v)
	}
	start := time.Now()
	for {
		p, ok := r.Lookup(k)
		if ok && p == "web-1" {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("replica still holds %q %v five seconds after redis changed, want web-1", p, ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("adopted redis's pod after %v", time.Since(start).Round(time.Millisecond))
}
