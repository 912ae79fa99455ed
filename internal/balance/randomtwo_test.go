package balance

import "testing"

func TestRandomTwoNeverPicksTheMostLoaded(t *testing.T) {
	tests := []struct {
		name    string
		loads   []int64
		weights []int
		// never is the index that must not be picked.
		never int
	}{
		{name: "the busiest of three is never picked", loads: []int64{0, 5, 10}, weights: []int{1, 1, 1}, never: 2},
		{name: "the busiest may sit first", loads: []int64{9, 1, 2}, weights: []int{1, 1, 1}, never: 0},
		{name: "load is measured per unit of weight", loads: []int64{4, 6, 9}, weights: []int{1, 3, 3}, never: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pods := loadedPods(tt.loads...)
			for i, w := range tt.weights {
				pods[i].(*testPod).weight = w
			}
			got := countPicks(t, mustNew(t, RandomTwo), pods, 10000)
			if got[tt.never] != 0 {
				t.Errorf("pod %d: got %d picks, want 0; all picks %v", tt.never, got[tt.never], got)
			}
		})
	}
}

func TestRandomTwoFavoursLowLoad(t *testing.T) {
	// With loads 0 < 5 < 10, pod 0 wins whenever it is drawn (2/3 of the
	// pairs) and pod 1 wins the remaining pair {1, 2} (1/3).
	const picks = 30000
	got := countPicks(t, mustNew(t, RandomTwo), loadedPods(0, 5, 10), picks)
	wants := []float64{2.0 / 3, 1.0 / 3, 0}
	for i, want := range wants {
		share := float64(got[i]) / picks
		if share < want-0.02 || share > want+0.02 {
			t.Errorf("pod %d: got share %.3f, want %.3f±0.02", i, share, want)
		}
	}
}

func TestRandomTwoDrawsDistinctPods(t *testing.T) {
	// Of two pods, one idle, the idle pod is always one of the two draws,
	// so it wins every pick. Were both draws allowed to land on the busy
	// pod, it would win about a quarter of them.
	const picks = 20000
	got := countPicks(t, mustNew(t, RandomTwo), loadedPods(3, 0), picks)
	if got[1] != picks {
		t.Errorf("idle pod of two: got %d picks, want all %d", got[1], picks)
	}
}

func TestRandomTwoSplitsEqualPods(t *testing.T) {
	const picks = 20000
	got := countPicks(t, mustNew(t, RandomTwo), loadedPods(3, 3, 3, 3), picks)
	for i, c := range got {
		if c < picks/4*90/100 || c > picks/4*110/100 {
			t.Errorf("pod %d: got %d picks, want %d±10%%", i, c, picks/4)
		}
	}
}
