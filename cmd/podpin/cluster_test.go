package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/redistest"
)

// TestRedisCluster runs three podpin processes on a real Redis Cluster of
// three masters with one replica each: first requests raced from every
// replica, a resharding under load, and a master killed and failed over
// under load. One cluster serves the three in turn.
func TestRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	cfg := t.TempDir() + "/podpin.yaml"
	writeConfig(t, cfg, fmt.Sprintf("store: {type: redis, redis: {addrs: ['%s'], cluster: true, timeout: 500ms}}\n",
		strings.Join(cl.Addrs(), "', '")), threeDemoPods(t)...)
	var reps []*process
	for range 3 {
		reps = append(reps, startPodpin(t, "--config", cfg))
	}
	fresh := func(t *testing.T) *process { return startPodpin(t, "--config", cfg) }
	storedKeys := func() int {
		n := 0
		for _, m := range cl.Masters() {
			n += cl.Keys(m)
		}
		return n
	}

	const keys = 1000
	pinned := map[string]string{}
	t.Run("first requests raced from three replicas reach one pod", func(t *testing.T) {
		first := raceFirstRequests(t, reps, keys)
		spread := map[string]int{}
		for k := range keys {
			key := fmt.Sprintf("user-%d", k)
			want := first[0][k]
			spread[want]++
			pinned[key] = want
			for ri := range reps {
				if first[ri][k] != want {
					t.Errorf("key %s: replica 0 sent its first request to %s, replica %d to %s", key, want, ri, first[ri][k])
				}
			}
		}
		if len(spread) != 3 {
			t.Errorf("keys spread over %v, want all three pods", spread)
		}
		if n := storedKeys(); n != keys {
			t.Errorf("the cluster's masters hold %d keys, want %d", n, keys)
		}
		perMaster := []int{}
		for _, m := range cl.Masters() {
			perMaster = append(perMaster, cl.Keys(m))
		}
		t.Logf("keys per master: %v; per pod: %v", perMaster, spread)
	})

	// load sends requests for the pinned keys through every replica until
	// stop, counting requests, failures, and answers from another pod than
	// the key's. With fresh set, it also starts new sessions.
	load := func(stop <-chan struct{}, newKeys *sync.Map) (total, failed, moved *atomic.Int64, wait func()) {
		total, failed, moved = new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)
		all := make([]string, 0, len(pinned))
		for k := range pinned {
			all = append(all, k)
		}
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					rp := reps[(w+i)%len(reps)]
					key := all[rand.IntN(len(all))]
					if newKeys != nil && i%4 == 0 {
						key = fmt.Sprintf("new-%d-%d", w, i)
					}
					code, body, err := rp.get(key)
					total.Add(1)
					switch {
					case err != nil || code != 200:
						failed.Add(1)
					case newKeys != nil && strings.HasPrefix(key, "new-"):
						newKeys.Store(key, body)
					case body != pinned[key]:
						moved.Add(1)
					}
				}
			})
		}
		return total, failed, moved, wg.Wait
	}

	t.Run("a resharding under load fails no request and moves no key", func(t *testing.T) {
		masters := cl.Masters()
		owned := cl.Slots(masters[0])
		stop := make(chan struct{})
		var created sync.Map
		total, failed, moved, wait := load(stop, &created)
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		cl.Reshard(masters[0], masters[1], 1000)
		t.Logf("resharding took %v", time.Since(start).Round(time.Millisecond))
		time.Sleep(200 * time.Millisecond)
		close(stop)
		wait()
		kept := map[int]bool{}
		for _, s := range cl.Slots(masters[0]) {
			kept[s] = true
		}
		var gone []int
		for _, s := range owned {
			if !kept[s] {
				gone = append(gone, s)
			}
		}
		migrated, left := cl.KeysInSlots(masters[1], gone), cl.KeysInSlots(masters[0], gone)
		t.Logf("%d slots moved with %d keys; %d requests, %d failed, %d moved", len(gone), migrated, total.Load(), failed.Load(), moved.Load())
		if len(gone) != 1000 || migrated == 0 || left != 0 {
			t.Errorf("%d slots moved with %d keys, %d keys left behind; want 1000 slots, some keys, none left", len(gone), migrated, left)
		}
		if failed.Load() != 0 || moved.Load() != 0 {
			t.Errorf("%d of %d requests failed and %d reached another pod during the resharding, want none", failed.Load(), total.Load(), moved.Load())
		}
		// The sessions started while slots moved are in Redis too: a
		// replica started now, with an empty table, sends each to its pod.
		n := 0
		created.Range(func(k, v any) bool {
			pinned[k.(string)] = v.(string)
			n++
			return true
		})
		// Every replica has now served every session (the failover below
		// counts on it).
		agree(t, "after the resharding", append([]*process{fresh(t)}, reps...), pinned)
		t.Logf("%d sessions started during the resharding", n)
	})

	// Sessions every replica has served are in every replica's table, so
	// while a master's slots have no master (seconds) those requests are
	// served locally. (A session a replica has never served is placed by
	// hash there meanwhile, as in any Redis outage, and yields to Redis's
	// pod once Redis answers; the store's tests prove that.)
	t.Run("a master killed and failed over under load moves no key", func(t *testing.T) {
		// Every key is on a replica of its master before the master goes.
		want := len(pinned)
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := 0
			for _, s := range cl.Nodes {
				if !strings.Contains(cl.Cli(s, "info", "replication"), "role:master") {
					n += cl.Keys(s)
				}
			}
			if n == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cluster's replicas hold %d keys, want %d", n, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		stop := make(chan struct{})
		total, failed, moved, wait := load(stop, nil)
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		cl.KillMaster(cl.Masters()[0], 30*time.Second)
		t.Logf("failover done in %v", time.Since(start).Round(time.Millisecond))
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wait()
		t.Logf("%d requests, %d failed, %d moved", total.Load(), failed.Load(), moved.Load())
		if failed.Load() != 0 || moved.Load() != 0 {
			t.Errorf("%d of %d requests failed and %d reached another pod during the failover, want none", failed.Load(), total.Load(), moved.Load())
		}
		// The promoted replica kept every session: a replica started now
		// finds each in Redis.
		agree(t, "after the failover", append([]*process{fresh(t)}, reps...), pinned)
	})
}

// agree sends a request for every pinned key through every process (the
// first one started last, with an empty table) and fails the test where one
// reaches another pod.
func agree(t *testing.T, when string, procs []*process, pinned map[string]string) {
	t.Helper()
	keys := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for k := range keys {
				for i, p := range procs {
					code, got, err := p.get(k)
					if err != nil || code != 200 || got != pinned[k] {
						t.Errorf("%s, replica %d (0 is the new one) sent %q to %s (%d %v), want %s", when, i, k, got, code, err, pinned[k])
					}
				}
			}
		})
	}
	for k := range pinned {
		keys <- k
	}
	close(keys)
	wg.Wait()
}

// TestAReplicaCutOffFromRedisAgreesAgainOnceRedisAnswers runs three podpin
// processes on one Redis; the third reaches it through a proxy that delays
// replies past its 5ms timeout for a while, so it places sessions on its
// own while the other two claim them. Once Redis answers it in time again,
// every replica sends every session where Redis says.
func TestAReplicaCutOffFromRedisAgreesAgainOnceRedisAnswers(t *testing.T) {
	srv := redistest.Start(t)
	f := redistest.NewFaults(t, srv.Addr)
	pods := threeDemoPods(t)
	dir := t.TempDir()
	writeConfig(t, dir+"/direct.yaml", "store: {type: redis, redis: {url: 'redis://"+srv.Addr+"', timeout: 500ms}}\n", pods...)
	writeConfig(t, dir+"/faulty.yaml", "store: {type: redis, redis: {url: 'redis://"+f.Addr+"', timeout: 5ms}}\n", pods...)
	reps := []*process{startPodpin(t, "--config", dir+"/direct.yaml"), startPodpin(t, "--config", dir+"/direct.yaml"),
		startPodpin(t, "--config", dir+"/faulty.yaml")}

	// A new session every 2ms; each replica sends requests for the four
	// newest, so first requests race on every session throughout.
	var frontier atomic.Int64
	var stop atomic.Bool
	var failed atomic.Int64
	var cSaw sync.Map // what the cut-off replica answered for each session
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			frontier.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	})
	for ri, rp := range reps {
		wg.Go(func() {
			for n := 0; !stop.Load(); n++ {
				key := fmt.Sprintf("s-%d", frontier.Load()-int64(n%4))
				code, body, err := rp.get(key)
				if err != nil || code != 200 {
					failed.Add(1)
					continue
				}
				if ri == 2 {
					cSaw.Store(key, body)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	f.SetLatency(20 * time.Millisecond)
	time.Sleep(time.Second)
	for i := range 20 {
		f.SetLatency(time.Duration(i%2) * 20 * time.Millisecond)
		time.Sleep(50 * time.Millisecond)
	}
	f.SetLatency(0)
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d requests failed, want none", failed.Load())
	}

	// Redis's pod for each session, as a replica started now finds it.
	fresh := startPodpin(t, "--config", dir+"/direct.yaml")
	keys := int(frontier.Load())
	want := map[string]string{}
	for i := range keys + 1 {
		key := fmt.Sprintf("s-%d", i)
		if _, ok := cSaw.Load(key); ok {
			want[key] = fresh.podOf(key)
		}
	}
	overruled := 0
	cSaw.Range(func(k, v any) bool {
		if want[k.(string)] != v.(string) {
			overruled++
		}
		return true
	})
	t.Logf("%d sessions; the cut-off replica sent %d of them elsewhere than redis holds", len(want), overruled)
	if overruled == 0 {
		t.Error("the cut-off replica always agreed with redis: the fault did not take effect")
	}
	start := time.Now()
	for round := 1; ; round++ {
		differ, why := 0, ""
		for key, pod := range want {
			for ri, rp := range reps {
				if got := rp.podOf(key); got != pod {
					differ++
					why = fmt.Sprintf("replica %d sends %q to %s, redis holds %s", ri, key, got, pod)
				}
			}
		}
		t.Logf("round %d of requests for every session through every replica: %d disagreements", round, differ)
		if differ == 0 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("5s after recovery %d disagreements remain, e.g. %s", differ, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("every replica agrees with redis on every session, %v after the first check began", time.Since(start).Round(time.Millisecond))
}
