package balance

import "math/rand/v2"

// randomTwo implements the power of two choices: it draws two distinct pods
// uniformly at random and picks the one with fewer requests in flight per
// unit of weight (Mitzenmacher, "The Power of Two Choices in Randomized Load
// Balancing", IEEE TPDS 12(10), 2001). Compared with a uniform random pick,
// the maximum load falls from about log n / log log n to log log n; compared
// with least-conn, many replicas reading stale counts do not all pile onto
// the same pod at once.
//
// It has no state and is safe for concurrent use. Random numbers come from
// math/rand/v2's top-level functions, which are per-thread and take no lock.
// Cost: two random draws and two pods' loads read; no allocation. Of two
// equally loaded candidates, the first drawn wins, which is itself random.
// The pod with the strictly highest load is never chosen when n >= 2.
type randomTwo struct{}

// Pick implements Balancer. It ignores key.
func (randomTwo) Pick(_ uint64, pods []Pod) int {
	n := len(pods)
	switch n {
	case 0:
		return -1
	case 1:
		return 0
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++ // distinct from i, still uniform over the others
	}
	a, b := pods[i], pods[j]
	if compareLoad(b.InFlight(), weight(b), a.InFlight(), weight(a)) < 0 {
		return j
	}
	return i
}
