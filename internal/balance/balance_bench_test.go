package balance

import (
	"fmt"
	"testing"
)

// benchPods returns four pods with realistic names, some load, and the given
// weights.
func benchPods(weights ...int) []Pod {
	pods := make([]Pod, len(weights))
	for i, w := range weights {
		p := &testPod{name: fmt.Sprintf("checkout-7c9d8f5b6-x2k4p%d", i), weight: w}
		p.inFlight.Store(int64(3 + i%2))
		p.sessions.Store(int64(100 + i%3))
		pods[i] = p
	}
	return pods
}

func BenchmarkPick(b *testing.B) {
	equal, unequal := []int{1, 1, 1, 1}, []int{1, 3, 2, 1}
	benchmarks := []struct {
		name     string
		balancer string
		weights  []int
	}{
		{name: RoundRobin, balancer: RoundRobin, weights: equal},
		{name: RoundRobin + "/weighted", balancer: RoundRobin, weights: unequal},
		{name: LeastConn, balancer: LeastConn, weights: equal},
		{name: LeastSessions, balancer: LeastSessions, weights: equal},
		{name: RandomTwo, balancer: RandomTwo, weights: equal},
		{name: Hash, balancer: Hash, weights: equal},
		{name: Hash + "/weighted", balancer: Hash, weights: unequal},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			bal := mustNew(b, bm.balancer)
			pods := benchPods(bm.weights...)
			b.ReportAllocs()
			var key uint64
			for b.Loop() {
				key += 0x9e3779b97f4a7c15
				if bal.Pick(key, pods) < 0 {
					b.Fatal("Pick returned -1 over four pods")
				}
			}
		})
	}
}

// BenchmarkPickParallel measures contention: every goroutine shares one
// balancer, as every request of a route does.
func BenchmarkPickParallel(b *testing.B) {
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			bal := mustNew(b, name)
			pods := benchPods(1, 1, 1, 1)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var key uint64
				for pb.Next() {
					key += 0x9e3779b97f4a7c15
					bal.Pick(key, pods)
				}
			})
		})
	}
}
