package store

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/redistest"
	"github.com/podpin/podpin/internal/table"
)

// TestAnEntryPlacedWithoutRedisYieldsToRedisOnceRedisAnswers puts three
// replicas on one Redis (a single node, then a Cluster). Replica c reaches
// Redis through a proxy that delays every reply past c's very short
// timeout, so c keeps falling back to its own placements (and some of its
// claims still land in Redis after c gave up on them) while a and b claim
// the same keys. Once the delay is gone, every replica and Redis must hold
// the same pod for every key.
func TestAnEntryPlacedWithoutRedisYieldsToRedisOnceRedisAnswers(t *testing.T) {
	t.Run("single node", func(t *testing.T) {
		srv := redistest.Start(t)
		f := redistest.NewFaults(t, srv.Addr)
		direct := Options{URL: "redis://" + srv.Addr}
		faulty := Options{URL: "redis://" + f.Addr}
		testConvergence(t, direct, faulty, []*redistest.Faults{f})
	})
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.StartCluster(t)
		// c dials every node through its own proxy; the addresses Redis
		// names (CLUSTER SLOTS) are mapped to them.
		proxyOf := map[string]string{}
		var faults []*redistest.Faults
		for _, n := range cl.Nodes {
			f := redistest.NewFaults(t, n.Addr)
			proxyOf[n.Addr] = f.Addr
			faults = append(faults, f)
		}
		var d net.Dialer
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			if p, ok := proxyOf[addr]; ok {
				addr = p
			}
			return d.DialContext(ctx, network, addr)
		}
		direct := Options{Addrs: cl.Addrs(), Cluster: true}
		faulty := Options{Addrs: cl.Addrs(), Cluster: true, Dialer: dial}
		testConvergence(t, direct, faulty, faults)
	})
}

func testConvergence(t *testing.T, direct, faulty Options, faults []*redistest.Faults) {
	faulty.Timeout = 5 * time.Millisecond
	a, b := newReplica(t, direct), newReplica(t, direct)
	c := newReplica(t, faulty)
	reps := []*replica{a, b, c}
	setLatency := func(d time.Duration) {
		for _, f := range faults {
			f.SetLatency(d)
		}
	}

	// New sessions arrive all the time: a new key every millisecond, and
	// each replica sends requests for the four newest, as a proxy does:
	// the local table or Redis first, else a claim for the pod its
	// balancer picked (each replica its own pod, so any disagreement
	// shows). So first requests race on every key, before, during and
	// after the fault.
	var frontier atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	// cPlaced is the last pod c's claims gave each key.
	var cPlaced sync.Map
	wg.Go(func() {
		for !stop.Load() {
			frontier.Add(1)
			time.Sleep(time.Millisecond)
		}
	})
	for ri, rep := range reps {
		wg.Go(func() {
			for n := 0; !stop.Load(); n++ {
				k := key(int(frontier.Load()) - n%4)
				if _, ok := rep.r.Lookup(k); !ok {
					p := rep.r.Claim(k, "", fmt.Sprintf("web-%d", ri), nil)
					if rep == c {
						cPlaced.Store(k, p)
					}
				}
			}
		})
	}

	time.Sleep(300 * time.Millisecond)
	// Replies to c come late, then on time and late by turns, as on a
	// congested link, and finally on time again; requests go on a little
	// while after, then stop.
	setLatency(20 * time.Millisecond)
	time.Sleep(time.Second)
	for i := range 20 {
		setLatency(time.Duration(i%2) * 20 * time.Millisecond)
		time.Sleep(50 * time.Millisecond)
	}
	setLatency(0)
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	keys := int(frontier.Load())

	differ := func() (int, string) {
		n, first := 0, ""
		for i := range keys + 1 {
			k := key(i)
			e, ok, err := a.r.Get(k)
			if err != nil || !ok {
				if _, held := a.t.Peek(k); held {
					n++
					first = fmt.Sprintf("key %d: redis has none (%v)", i, err)
				}
				continue
			}
			for ri, rep := range reps {
				if p, ok := rep.t.Peek(k); ok && p.Pod != e.Pod {
					n++
					first = fmt.Sprintf("key %d: replica %d holds %q, redis %s", i, ri, p.Pod, e.Pod)
				}
			}
		}
		return n, first
	}
	start := time.Now()
	n, why := differ()
	t.Logf("when the requests stopped: %d disagreements over %d keys (%s)", n, keys, why)
	for n > 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("5s after recovery %d disagreements remain, e.g. %s", n, why)
		}
		time.Sleep(50 * time.Millisecond)
		n, why = differ()
	}
	t.Logf("every replica agrees with redis on all %d keys %v after the requests stopped", keys, time.Since(start).Round(time.Millisecond))

	// The fault must have had an effect, or this test proves nothing: c
	// placed some keys on its own pod while Redis held another's.
	overruled := 0
	cPlaced.Range(func(k, p any) bool {
		if e, _, _ := a.r.Get(k.(table.Key)); e.Pod != p {
			overruled++
		}
		return true
	})
	t.Logf("replica c's own placements overruled by redis: %d", overruled)
	if overruled == 0 {
		t.Error("replica c never placed a key against redis: the fault did not take effect")
	}
}

// More provisional entries than a route remembers one by one (a long
// outage with many new sessions) cost no memory past that bound, and are
// all checked, by a pass over the whole table.
func TestManyProvisionalEntriesAreAllChecked(t *testing.T) {
	srv := redistest.Start(t)
	f := redistest.NewFaults(t, srv.Addr)
	a := newReplica(t, Options{URL: "redis://" + f.Addr, Timeout: 100 * time.Millisecond})
	other := newReplica(t, Options{URL: "redis://" + srv.Addr})
	f.Cut(true)
	n := maxProvisional + 1000
	for i := range n {
		a.r.Claim(key(i), "", "web-0", nil)
	}
	if !a.r.Degraded() {
		t.Fatal("not degraded while cut off")
	}
	a.r.mu.Lock()
	remembered, overflow := len(a.r.prov), a.r.overflow
	a.r.mu.Unlock()
	if remembered > maxProvisional || !overflow {
		t.Fatalf("after %d local placements the route remembers %d (overflow %v), want at most %d and overflow", n, remembered, overflow, maxProvisional)
	}
	// Meanwhile another replica claimed one of them, first and last.
	for _, i := range []int{0, n - 1} {
		if got := other.r.Claim(key(i), "", "web-1", nil); got != "web-1" {
			t.Fatalf("claim of key %d: %s, want web-1", i, got)
		}
	}
	f.Cut(false)
	deadline := time.Now().Add(20 * time.Second)
	for a.r.Degraded() || a.r.nprov.Load() > 0 || srv.Do("DBSIZE") != fmt.Sprintf(":%d", n) {
		if time.Now().After(deadline) {
			t.Fatalf("20s after reconnecting: degraded %v, %d provisional, redis holds %s keys, want %d",
				a.r.Degraded(), a.r.nprov.Load(), srv.Do("DBSIZE"), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, i := range []int{0, n - 1} {
		if p, _ := a.t.Lookup(key(i)); p != "web-1" {
			t.Errorf("key %d: local table holds %s, want web-1 from redis", i, p)
		}
	}
	if p, _ := a.t.Lookup(key(1)); p != "web-0" {
		t.Errorf("key 1: local table holds %s, want its own web-0", p)
	}
}
