package balance

import (
	"strings"
	"sync"
	"testing"
)

func TestRoundRobinEqualWeights(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		picks   int
		want    []int
	}{
		{name: "three equal pods share 30000 picks exactly", weights: []int{1, 1, 1}, picks: 30000, want: []int{10000, 10000, 10000}},
		{name: "equal weights above one use the same turn", weights: []int{5, 5, 5}, picks: 30000, want: []int{10000, 10000, 10000}},
		{name: "weights below one count as one", weights: []int{0, -3, 1}, picks: 300, want: []int{100, 100, 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := countPicks(t, mustNew(t, RoundRobin), weightedPods(tt.weights...), tt.picks)
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("pod %d: got %d picks, want %d", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestRoundRobinTakesTurns(t *testing.T) {
	b := mustNew(t, RoundRobin)
	pods := newPods("a", "b", "c")
	var got strings.Builder
	for range 7 {
		got.WriteString(pods[b.Pick(0, pods)].Name())
	}
	if want := "abcabca"; got.String() != want {
		t.Errorf("got sequence %s, want %s", got.String(), want)
	}
}

func TestRoundRobinWeighted(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		picks   int
		want    []int
		// wantSeq is the first cycle of picks, by index.
		wantSeq string
	}{
		{name: "weights 1:3 give 1000:3000 over 4000 picks, interleaved", weights: []int{1, 3}, picks: 4000, want: []int{1000, 3000}, wantSeq: "1011"},
		{name: "weights 5:1:1 spread the heavy pod out", weights: []int{5, 1, 1}, picks: 7000, want: []int{5000, 1000, 1000}, wantSeq: "0010200"},
		{name: "weights 2:3:5 split 10000 picks exactly", weights: []int{2, 3, 5}, picks: 10000, want: []int{2000, 3000, 5000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, RoundRobin)
			pods := weightedPods(tt.weights...)
			total := 0
			for _, w := range tt.weights {
				total += w
			}

			var seq strings.Builder
			counts := make([]int, len(pods))
			for i := range tt.picks {
				j := b.Pick(0, pods)
				counts[j]++
				if i < total {
					seq.WriteByte(byte('0' + j))
				}
				// Every full cycle gives each pod exactly its weight.
				if (i+1)%total == 0 {
					for k, w := range tt.weights {
						if want := (i + 1) / total * w; counts[k] != want {
							t.Fatalf("after %d picks pod %d: got %d, want %d", i+1, k, counts[k], want)
						}
					}
				}
			}
			for i := range counts {
				if counts[i] != tt.want[i] {
					t.Errorf("pod %d: got %d picks, want %d", i, counts[i], tt.want[i])
				}
			}
			if tt.wantSeq != "" && seq.String() != tt.wantSeq {
				t.Errorf("first cycle: got %s, want %s", seq.String(), tt.wantSeq)
			}
		})
	}
}

func TestRoundRobinWeightedNeverBursts(t *testing.T) {
	// Smooth weighted round robin never gives the weight-3 pod more than 3
	// picks in a row, and the weight-1 pod appears in every 4 consecutive
	// picks once the first cycle has passed.
	b := mustNew(t, RoundRobin)
	pods := weightedPods(1, 3)
	var seq []int
	for range 400 {
		seq = append(seq, b.Pick(0, pods))
	}
	run := 0
	for i, j := range seq {
		if j == 1 {
			run++
		} else {
			run = 0
		}
		if run > 3 {
			t.Fatalf("pick %d: got %d picks of the weight-3 pod in a row, want at most 3", i, run)
		}
		if i >= 3 {
			window := seq[i-3 : i+1]
			light := 0
			for _, k := range window {
				if k == 0 {
					light++
				}
			}
			if light != 1 {
				t.Fatalf("picks %d..%d = %v: got %d picks of the weight-1 pod, want 1", i-3, i, window, light)
			}
		}
	}
}

func TestRoundRobinChangingSet(t *testing.T) {
	tests := []struct {
		name   string
		before []int
		after  []int
	}{
		{name: "a weighted set that shrinks", before: []int{1, 3, 2}, after: []int{1, 3}},
		{name: "a weighted set that grows", before: []int{1, 3}, after: []int{1, 3, 2, 4}},
		{name: "an equal set that shrinks", before: []int{1, 1, 1, 1}, after: []int{1, 1}},
		{name: "an equal set that becomes weighted", before: []int{2, 2, 2}, after: []int{1, 2, 3}},
		{name: "a weighted set that becomes equal", before: []int{1, 2, 3}, after: []int{4, 4}},
		{name: "a weighted set of the same size with new weights", before: []int{1, 3, 2}, after: []int{5, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, RoundRobin)
			countPicks(t, b, weightedPods(tt.before...), 17)

			pods := weightedPods(tt.after...)
			total := 0
			for _, w := range tt.after {
				total += w
			}
			// The set is stable from here: once the state from the old set
			// has worked through, each cycle gives each pod its weight.
			countPicks(t, b, pods, 10*total)
			got := countPicks(t, b, pods, 100*total)
			for i, w := range tt.after {
				if want := 100 * w; got[i] < want-total || got[i] > want+total {
					t.Errorf("pod %d: got %d picks, want %d±%d", i, got[i], want, total)
				}
			}
		})
	}
}

func TestRoundRobinConcurrentIsExact(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "equal weights from many goroutines stay exact", weights: []int{1, 1, 1}},
		{name: "unequal weights from many goroutines stay exact", weights: []int{1, 3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const goroutines, picksEach = 8, 1200 // 9600 picks, a multiple of 3 and of 6
			b := mustNew(t, RoundRobin)
			pods := weightedPods(tt.weights...)
			var mu sync.Mutex
			counts := make([]int, len(pods))
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					local := make([]int, len(pods))
					for range picksEach {
						local[b.Pick(0, pods)]++
					}
					mu.Lock()
					defer mu.Unlock()
					for i, c := range local {
						counts[i] += c
					}
				})
			}
			wg.Wait()
			total := 0
			for _, w := range tt.weights {
				total += w
			}
			for i, w := range tt.weights {
				if want := goroutines * picksEach / total * w; counts[i] != want {
					t.Errorf("pod %d: got %d picks, want %d", i, counts[i], want)
				}
			}
		})
	}
}
