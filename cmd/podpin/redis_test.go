package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/redistest"
	"github.com/podpin/podpin/internal/table"
)

// replicas starts n podpin processes sharing one Redis.
func replicas(t *testing.T, n int, redisURL string, pods []string, extra ...string) []*process {
	t.Helper()
	var out []*process
	for range n {
		args := []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--redis", redisURL}
		for _, p := range pods {
			args = append(args, "--backend", p)
		}
		out = append(out, startPodpin(t, append(args, extra...)...))
	}
	return out
}

func threeDemoPods(t *testing.T) []string {
	return []string{
		"web-0=" + namedPod(t, "web-0", 0).URL,
		"web-1=" + namedPod(t, "web-1", 0).URL,
		"web-2=" + namedPod(t, "web-2", 0).URL,
	}
}

func TestReplicasSharingRedisPinEachKeyToOnePod(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	cfg := dir + "/podpin.yaml"
	// A generous timeout: this test is about claims, not about a Redis that
	// a busy test machine makes look slow.
	writeConfig(t, cfg, "store: {type: redis, redis: {url: 'redis://"+srv.Addr+"', timeout: 2s}}\n", threeDemoPods(t)...)
	var reps []*process
	for range 3 {
		reps = append(reps, startPodpin(t, "--config", cfg))
	}
	const keys = 3000
	first := raceFirstRequests(t, reps, keys)
	spread := map[string]int{}
	for k := range keys {
		key := fmt.Sprintf("user-%d", k)
		want := first[0][k]
		spread[want]++
		for ri := range reps {
			if first[ri][k] != want {
				t.Errorf("key %s: replica 0 sent its first request to %s, replica %d to %s", key, want, ri, first[ri][k])
			}
			if again := reps[ri].podOf(key); again != want {
				t.Fatalf("key %s later went to %s on replica %d, want %s", key, again, ri, want)
			}
		}
		v := srv.Do("GET", "podpin:default:"+digestOf("default", key))
		if !strings.HasPrefix(v, "$") {
			t.Fatalf("redis has no entry for %s: %q", key, v)
		}
	}
	if len(spread) != 3 {
		t.Errorf("keys spread over %v, want all three pods", spread)
	}
	if n := srv.Do("DBSIZE"); n != fmt.Sprintf(":%d", keys) {
		t.Errorf("redis holds %s keys, want %d", n, keys)
	}
	for ri, rp := range reps {
		if strings.Contains(rp.logText(), "redis unavailable") {
			t.Errorf("replica %d lost redis during the test:\n%s", ri, rp.logText())
		}
	}
}

func TestRedisOutageFailsNoRequestAndReplicasStillAgree(t *testing.T) {
	srv := redistest.Start(t)
	reps := replicas(t, 2, "redis://"+srv.Addr, threeDemoPods(t))
	before := map[string]string{}
	for i := range 200 {
		k := fmt.Sprintf("old-%d", i)
		before[k] = reps[i%2].podOf(k)
	}

	var total, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("old-%d", i%200)
				code, body, err := reps[i%2].get(k)
				total.Add(1)
				if err != nil || code != 200 || body != before[k] {
					failed.Add(1)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	srv.Kill()
	time.Sleep(time.Second)

	// New keys placed during the outage: by hash, the same on both replicas.
	during := map[string]string{}
	for i := range 100 {
		k := fmt.Sprintf("new-%d", i)
		a, b := reps[0].podOf(k), reps[1].podOf(k)
		if a != b {
			t.Fatalf("during the outage key %q went to %s on one replica and %s on the other", k, a, b)
		}
		during[k] = a
	}
	srv.Restart() // empty
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed or moved while redis was down, want none", failed.Load(), total.Load())
	}
	// Both replicas wrote their entries back to the empty redis.
	for k := range during {
		if v := srv.Do("EXISTS", "podpin:default:"+digestOf("default", k)); v != ":1" {
			t.Errorf("key %q not written back to redis", k)
		}
	}
	for k := range before {
		if v := srv.Do("EXISTS", "podpin:default:"+digestOf("default", k)); v != ":1" {
			t.Errorf("key %q not written back to redis", k)
		}
	}

	t.Run("a pin on one replica reaches the other within the bound", func(t *testing.T) {
		key := "old-1"
		target := "web-0"
		if before[key] == "web-0" {
			target = "web-1"
		}
		req, _ := http.NewRequest("PUT", "http://"+reps[0].admin+"/api/v1/routes/default/sessions/"+key, strings.NewReader(`{"pod":"`+target+`"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("pin: %v %v", resp, err)
		}
		resp.Body.Close()
		start := time.Now()
		for reps[1].podOf(key) != target {
			if time.Since(start) > time.Second {
				t.Fatalf("replica 1 still routes %q elsewhere a second after the pin", key)
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Logf("pin on replica 0 reached replica 1 in %v", time.Since(start))
	})
}

// digestOf is the hex digest podpin stores for a raw key (no key secret).
func digestOf(route, key string) string {
	k := table.NewDigester(nil).Key(route, []byte(key))
	return fmt.Sprintf("%016x%016x", k.Hi, k.Lo)
}

func TestSentinelFailoverKeepsEverySession(t *testing.T) {
	master := redistest.Start(t)
	standby := redistest.Start(t, "--replicaof", "127.0.0.1", fmt.Sprint(master.Port))
	sentinel := redistest.StartSentinel(t, master)
	cfg := t.TempDir() + "/podpin.yaml"
	writeConfig(t, cfg, fmt.Sprintf("store: {type: redis, redis: {addrs: ['%s'], masterName: %s, timeout: 500ms}}\n", sentinel.Addr, redistest.MasterName), threeDemoPods(t)...)
	a, b := startPodpin(t, "--config", cfg), startPodpin(t, "--config", cfg)
	before := map[string]string{}
	for i := range 300 {
		k := fmt.Sprintf("s-%d", i)
		before[k] = a.podOf(k)
	}
	deadline := time.Now().Add(10 * time.Second)
	for standby.Do("DBSIZE") != ":300" {
		if time.Now().After(deadline) {
			t.Fatalf("the standby holds %s keys, want 300", standby.Do("DBSIZE"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	master.Kill()
	if got := sentinel.WaitMaster(t, master.Addr, 20*time.Second); got != standby.Addr {
		t.Fatalf("sentinel promoted %s, want %s", got, standby.Addr)
	}
	// Both replicas, the one that placed the keys and the one that never
	// saw them, send every session to its pod after the failover; a third,
	// started after it, finds them all in the new master.
	c := startPodpin(t, "--config", cfg)
	for k, want := range before {
		for i, rp := range []*process{a, b, c} {
			if got := rp.podOf(k); got != want {
				t.Fatalf("after failover key %q went to %s on replica %d, want %s", k, got, i, want)
			}
		}
	}
}

// raceFirstRequests sends the first request of keys user-0 to
// user-(keys-1) through every replica at once, four workers each, every
// replica in its own order so that many keys race on all of them. It
// returns the pod each replica's first request of each key reached.
func raceFirstRequests(t *testing.T, reps []*process, keys int) [][]string {
	t.Helper()
	first := make([][]string, len(reps))
	var wg sync.WaitGroup
	for ri, rp := range reps {
		first[ri] = make([]string, keys)
		for w := range 4 {
			wg.Go(func() {
				for i := w; i < keys; i += 4 {
					k := (i*7 + ri*keys/len(reps)) % keys
					code, body, err := rp.get(fmt.Sprintf("user-%d", k))
					if err != nil || code != 200 {
						t.Errorf("replica %d key %d: %d %v", ri, k, code, err)
						return
					}
					first[ri][k] = body
				}
			})
		}
	}
	wg.Wait()
	return first
}
