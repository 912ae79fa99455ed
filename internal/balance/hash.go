package balance

import "math"

// rendezvous places a key on the pod with the highest score for that key:
// highest random weight (rendezvous) hashing (Thaler and Ravishankar, "Using
// name-based mappings to increase hit rates", IEEE/ACM ToN 6(1), 1998). With
// weights, each pod scores -w / ln(u), where u in (0, 1) is a hash of the key
// and the pod's name; a pod then wins a share of keys proportional to its
// weight (Schindelhauer and Schomaker, "Weighted distributed hash tables",
// SPAA 2005).
//
// The pick depends only on the key and the set of (name, weight) pairs, not
// on their order in the slice nor on the process: every replica places a new
// key on the same pod without coordination. Removing a pod moves only the
// keys that were on it; adding one moves keys only onto it. Equal scores,
// which need a hash collision, go to the lexicographically smaller name.
// Pods with the same name are the same pod, and the first is picked.
//
// The hash is FNV-1a (64-bit) of the name, finalized and combined with the
// key through SplitMix64's finalizer (Steele, Lea and Flood, "Fast splittable
// pseudorandom number generators", OOPSLA 2014). These constants are part of
// the contract: changing them moves keys between pods, and replicas running
// different versions would disagree. math.Log may differ in its last bit
// between architectures (amd64 has its own assembly), which can change a
// pick only when two pods' scores lie within an ulp of each other, about
// once in 10^15 keys.
//
// It has no state and is safe for concurrent use. Cost: O(n) per pick, each
// pod hashing its name once and taking one logarithm; no allocation.
type rendezvous struct{}

// keySeed keeps key 0 (no session key) from meeting the finalizer's fixed
// point at zero.
const keySeed = 0x9e3779b97f4a7c15

// Pick implements Balancer.
func (rendezvous) Pick(key uint64, pods []Pod) int {
	switch len(pods) {
	case 0:
		return -1
	case 1:
		return 0
	}
	k := mix64(key ^ keySeed)
	best, bestScore, bestName := -1, 0.0, ""
	for i, p := range pods {
		name := p.Name()
		s := rendezvousScore(k, name, weight(p))
		if best < 0 || s > bestScore || (s == bestScore && name < bestName) {
			best, bestScore, bestName = i, s, name
		}
	}
	return best
}

// rendezvousScore returns -w / ln(u) for the pod named name, where u is drawn
// from the mixed key k and the name. The result is positive and finite.
func rendezvousScore(k uint64, name string, w int) float64 {
	x := mix64(mix64(fnv1a(name)) ^ k)
	// The top 53 bits, centred in their interval, give u strictly inside
	// (0, 1), so ln(u) is negative and finite.
	u := (float64(x>>11) + 0.5) * 0x1p-53
	return -float64(w) / math.Log(u)
}

// fnv1a returns the 64-bit FNV-1a hash of s (Fowler, Noll and Vo;
// draft-eastlake-fnv). It ranges over the string's bytes, so it does not
// allocate.
func fnv1a(s string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
}

// mix64 is SplitMix64's finalizer (Stafford's Mix13): a bijection on uint64
// in which every input bit affects every output bit.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
