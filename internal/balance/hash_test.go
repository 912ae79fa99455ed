package balance

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// fnvDigest returns the raw FNV-1a digest of s: a poor key digest, used to
// show that the balancer's own mixing copes with structured keys.
func fnvDigest(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// pickName returns the name of the pod b picks for key.
func pickName(b Balancer, key uint64, pods []Pod) string {
	i := b.Pick(key, pods)
	if i < 0 {
		return ""
	}
	return pods[i].Name()
}

func TestHashSpreadsKeysEvenly(t *testing.T) {
	const keys = 100000
	tests := []struct {
		name string
		key  func(i int) uint64
	}{
		{name: "sequential keys", key: func(i int) uint64 { return uint64(i) }},
		{name: "keys differing only in high bits", key: func(i int) uint64 { return uint64(i) << 40 }},
		{name: "fnv digests of session ids", key: func(i int) uint64 { return fnvDigest(fmt.Sprintf("session-%d", i)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, Hash)
			pods := newPods("web-0", "web-1", "web-2", "web-3", "web-4")
			counts := make([]int, len(pods))
			for i := range keys {
				counts[b.Pick(tt.key(i), pods)]++
			}
			want := keys / len(pods)
			for i, c := range counts {
				if c < want*90/100 || c > want*110/100 {
					t.Errorf("pod %d: got %d keys, want %d±10%%", i, c, want)
				}
			}
		})
	}
}

func TestHashFollowsWeights(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "weights 1:2:3:4 split keys 1:2:3:4", weights: []int{1, 2, 3, 4}},
		{name: "one heavy pod among light ones", weights: []int{10, 1, 1}},
		{name: "weights below one count as one", weights: []int{0, 1, 2}},
	}
	const keys = 100000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, Hash)
			pods := weightedPods(tt.weights...)
			counts := make([]int, len(pods))
			for i := range keys {
				counts[b.Pick(fnvDigest(fmt.Sprintf("user-%d", i)), pods)]++
			}
			total := 0
			for _, p := range pods {
				total += weight(p)
			}
			for i, p := range pods {
				want := keys * weight(p) / total
				if counts[i] < want*90/100 || counts[i] > want*110/100 {
					t.Errorf("pod %d (weight %d): got %d keys, want %d±10%%", i, weight(p), counts[i], want)
				}
			}
		})
	}
}

func TestHashIgnoresPodOrder(t *testing.T) {
	b := mustNew(t, Hash)
	pods := weightedPods(1, 3, 1, 2, 1, 5)
	reversed := slices.Clone(pods)
	slices.Reverse(reversed)
	shuffled := slices.Clone(pods)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	for i := range 20000 {
		key := uint64(i) * 0x9e3779b97f4a7c15
		want := pickName(b, key, pods)
		if got := pickName(b, key, reversed); got != want {
			t.Fatalf("key %#x over reversed pods: got %s, want %s", key, got, want)
		}
		if got := pickName(b, key, shuffled); got != want {
			t.Fatalf("key %#x over shuffled pods: got %s, want %s", key, got, want)
		}
	}
}

func TestHashRemovalMovesOnlyRemovedKeys(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "equal pods", weights: []int{1, 1, 1, 1, 1}},
		{name: "weighted pods", weights: []int{1, 4, 2, 1, 3}},
	}
	const keys = 20000
	for _, tt := range tests {
		for removed := range tt.weights {
			t.Run(fmt.Sprintf("%s, removing pod %d", tt.name, removed), func(t *testing.T) {
				b := mustNew(t, Hash)
				pods := weightedPods(tt.weights...)
				rest := slices.Delete(slices.Clone(pods), removed, removed+1)
				gone := pods[removed].Name()
				moved, onRemoved := 0, 0
				for i := range keys {
					before, after := pickName(b, uint64(i), pods), pickName(b, uint64(i), rest)
					if before == gone {
						onRemoved++
					}
					if before != after {
						moved++
						if before != gone {
							t.Fatalf("key %d moved from %s to %s, though %s was removed", i, before, after, gone)
						}
					}
				}
				if moved != onRemoved {
					t.Errorf("got %d keys moved, want the %d that were on %s", moved, onRemoved, gone)
				}
			})
		}
	}
}

func TestHashAddingMovesKeysOnlyToNewPod(t *testing.T) {
	const keys = 60000
	b := mustNew(t, Hash)
	pods := newPods("web-0", "web-1", "web-2", "web-3", "web-4")
	grown := append(slices.Clone(pods), &testPod{name: "web-5", weight: 1})
	moved := 0
	for i := range keys {
		key := fnvDigest(fmt.Sprintf("session-%d", i))
		before, after := pickName(b, key, pods), pickName(b, key, grown)
		if before != after {
			if after != "web-5" {
				t.Fatalf("key %d moved from %s to %s, want only moves to web-5", i, before, after)
			}
			moved++
		}
	}
	if want := keys / 6; moved < want*90/100 || moved > want*110/100 {
		t.Errorf("got %d keys moved to the new pod, want %d±10%%", moved, want)
	}
}

func TestHashMappingIsStable(t *testing.T) {
	// These placements pin the hash function itself: replicas running
	// different builds must agree, so a change here is a breaking change
	// that moves live sessions. They were checked against a separate
	// implementation of the same formula.
	pods := newPods("web-0", "web-1", "web-2", "web-3", "web-4")
	weighted := weightedPods(1, 2, 3)
	tests := []struct {
		name string
		key  uint64
		pods []Pod
		want string
	}{
		{name: "no key", key: 0, pods: pods, want: "web-4"},
		{name: "key 1", key: 1, pods: pods, want: "web-2"},
		{name: "a large key", key: 0xdeadbeefcafebabe, pods: pods, want: "web-0"},
		{name: "the digest of a session id", key: fnvDigest("session-42"), pods: pods, want: "web-4"},
		{name: "weighted, key 1", key: 1, pods: weighted, want: "pod-2"},
		{name: "weighted, key 6", key: 6, pods: weighted, want: "pod-1"},
		{name: "weighted, key 10", key: 10, pods: weighted, want: "pod-0"},
	}
	b := mustNew(t, Hash)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickName(b, tt.key, tt.pods); got != tt.want {
				t.Errorf("Pick(%#x): got %s, want %s", tt.key, got, tt.want)
			}
		})
	}
}

func TestHashSameNameIsSamePod(t *testing.T) {
	b := mustNew(t, Hash)
	pods := newPods("a", "b", "a")
	for key := range uint64(1000) {
		if got := b.Pick(key, pods); got == 2 {
			t.Fatalf("key %d: got the second pod named a, want the first", key)
		}
	}
}

func TestFNV1a(t *testing.T) {
	for _, s := range []string{"", "a", "web-0", strings.Repeat("long-pod-name-", 20)} {
		if got, want := fnv1a(s), fnvDigest(s); got != want {
			t.Errorf("fnv1a(%q): got %#x, want %#x", s, got, want)
		}
	}
}

// FuzzHashPick checks rendezvous hashing on arbitrary pod sets. names is a
// comma-separated list of pod names (duplicates dropped); pod i's weight is
// weights[i mod len(weights)] minus 1, so 0 and 1 both mean 1. The pick must
// be a valid index, the same pod under the permutation seeded by perm, and
// after removing pod drop mod n, unchanged unless it was that pod. The seed
// corpus is in testdata/fuzz/FuzzHashPick, described in
// testdata/fuzz/README.md.
func FuzzHashPick(f *testing.F) {
	f.Fuzz(func(t *testing.T, key uint64, names string, weights []byte, perm uint64, drop uint8) {
		var pods []Pod
		seen := map[string]bool{}
		for _, name := range strings.Split(names, ",") {
			if seen[name] || len(pods) == 64 {
				continue
			}
			seen[name] = true
			w := 1
			if len(weights) > 0 {
				w = int(weights[len(pods)%len(weights)]) - 1
			}
			pods = append(pods, &testPod{name: name, weight: w})
		}

		b := mustNew(t, Hash)
		got := b.Pick(key, pods)
		if got < 0 || got >= len(pods) {
			t.Fatalf("Pick over %d pods: got %d, want an index", len(pods), got)
		}
		want := pods[got].Name()

		shuffled := slices.Clone(pods)
		rand.New(rand.NewPCG(perm, 0)).Shuffle(len(shuffled), func(i, j int) {
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		})
		if got := pickName(b, key, shuffled); got != want {
			t.Fatalf("Pick over permuted pods: got %q, want %q", got, want)
		}

		removed := int(drop) % len(pods)
		rest := slices.Delete(slices.Clone(pods), removed, removed+1)
		after := b.Pick(key, rest)
		if len(rest) == 0 {
			if after != -1 {
				t.Fatalf("Pick over no pods: got %d, want -1", after)
			}
			return
		}
		if after < 0 || after >= len(rest) {
			t.Fatalf("Pick over %d pods: got %d, want an index", len(rest), after)
		}
		if removed != got && rest[after].Name() != want {
			t.Fatalf("removing %q moved the key from %q to %q", pods[removed].Name(), want, rest[after].Name())
		}
	})
}
