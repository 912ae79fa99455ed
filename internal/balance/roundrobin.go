package balance

import (
	"sync"
	"sync/atomic"
)

// roundRobin hands new sessions to pods in turn. It is safe for concurrent use.
//
// When every candidate has the same weight it advances one atomic counter and
// takes it modulo len(pods): lock-free, no allocation, O(n) only for reading
// the weights. Over any run of k*len(pods) picks on a stable set each pod gets
// exactly k, however many goroutines pick.
//
// With unequal weights it runs nginx's smooth weighted round robin
// (ngx_http_upstream_round_robin.c, 2012): each pick adds every pod's weight
// to its current score, takes the highest score and subtracts the total
// weight from it. Over every run of sum(weights) picks from a fresh state
// each pod is chosen exactly weight times, spread out rather than in bursts:
// weights 1:3 give B A B B, not A B B B. The scores are kept by position
// under a mutex; O(n) per pick.
//
// The candidate set may change between calls. Position-keyed state then
// carries over to whichever pod now sits at that position, which never
// panics and makes the turn fair again once the set is stable.
type roundRobin struct {
	// next counts equal-weight picks.
	next atomic.Uint64

	// mu guards current.
	mu sync.Mutex
	// current holds the smooth weighted round robin score of each position.
	current []int64
}

// Pick implements Balancer. It ignores key.
func (r *roundRobin) Pick(_ uint64, pods []Pod) int {
	switch len(pods) {
	case 0:
		return -1
	case 1:
		return 0
	}
	if equalWeights(pods) {
		return int((r.next.Add(1) - 1) % uint64(len(pods)))
	}
	return r.pickWeighted(pods)
}

// pickWeighted is one step of smooth weighted round robin over pods.
func (r *roundRobin) pickWeighted(pods []Pod) int {
	r.mu.Lock()
	defer r.mu.Unlock()

	if len(r.current) != len(pods) {
		// The set grew or shrank: start the cycle over. The backing array
		// is reused, so a stable set never allocates.
		if cap(r.current) >= len(pods) {
			r.current = r.current[:len(pods)]
		} else {
			r.current = make([]int64, len(pods))
		}
		clear(r.current)
	}

	var total int64
	best := 0
	for i, p := range pods {
		w := int64(weight(p))
		total += w
		r.current[i] += w
		if r.current[i] > r.current[best] {
			best = i
		}
	}
	r.current[best] -= total
	return best
}

// equalWeights reports whether every pod in pods (at least one) has the same
// effective weight.
func equalWeights(pods []Pod) bool {
	w := weight(pods[0])
	for _, p := range pods[1:] {
		if weight(p) != w {
			return false
		}
	}
	return true
}
