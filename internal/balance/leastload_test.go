package balance

import (
	"fmt"
	"testing"
)

func TestLeastLoaded(t *testing.T) {
	type podLoad struct {
		weight int
		load   int64
	}
	tests := []struct {
		name string
		pods []podLoad
		// want is the set of indexes a pick may return.
		want []int
	}{
		{name: "the least loaded pod wins", pods: []podLoad{{1, 5}, {1, 2}, {1, 9}}, want: []int{1}},
		{name: "an idle pod wins over busy ones", pods: []podLoad{{1, 3}, {1, 3}, {1, 0}}, want: []int{2}},
		{name: "weight divides the load", pods: []podLoad{{1, 3}, {4, 8}}, want: []int{1}},
		{name: "equal load per unit of weight is a tie", pods: []podLoad{{1, 2}, {3, 6}, {1, 3}}, want: []int{0, 1}},
		{name: "weights below one count as one", pods: []podLoad{{0, 2}, {-1, 1}}, want: []int{1}},
		{name: "negative loads count as zero", pods: []podLoad{{1, -4}, {1, 0}}, want: []int{0, 1}},
	}
	for _, balancer := range []string{LeastConn, LeastSessions} {
		for _, tt := range tests {
			t.Run(balancer+"/"+tt.name, func(t *testing.T) {
				pods := make([]Pod, len(tt.pods))
				for i, pl := range tt.pods {
					p := &testPod{name: fmt.Sprintf("pod-%d", i), weight: pl.weight}
					// Only the load this balancer reads is set; the other
					// points the opposite way so reading it would fail.
					if balancer == LeastConn {
						p.inFlight.Store(pl.load)
						p.sessions.Store(100 - pl.load)
					} else {
						p.sessions.Store(pl.load)
						p.inFlight.Store(100 - pl.load)
					}
					pods[i] = p
				}
				b := mustNew(t, balancer)
				seen := map[int]bool{}
				for range 2 * len(tt.want) {
					seen[b.Pick(0, pods)] = true
				}
				if len(seen) != len(tt.want) {
					t.Errorf("got picks %v, want each of %v", seen, tt.want)
				}
				for _, w := range tt.want {
					if !seen[w] {
						t.Errorf("got picks %v, want %d among them", seen, w)
					}
				}
			})
		}
	}
}

func TestLeastLoadedAlternatesTies(t *testing.T) {
	tests := []struct {
		name  string
		loads []int64
		picks int
		want  []int
	}{
		{name: "two idle pods alternate", loads: []int64{0, 0}, picks: 1000, want: []int{500, 500}},
		{name: "three tied pods share evenly", loads: []int64{4, 4, 4}, picks: 3000, want: []int{1000, 1000, 1000}},
		{name: "ties rotate only among the least loaded", loads: []int64{1, 2, 1, 1}, picks: 3000, want: []int{1000, 0, 1000, 1000}},
	}
	for _, balancer := range []string{LeastConn, LeastSessions} {
		for _, tt := range tests {
			t.Run(balancer+"/"+tt.name, func(t *testing.T) {
				b := mustNew(t, balancer)
				pods := loadedPods(tt.loads...)
				if first, second := b.Pick(0, pods), b.Pick(0, pods); first == second {
					t.Errorf("two picks among tied pods: got %d then %d, want different pods", first, second)
				}
				got := countPicks(t, b, pods, tt.picks)
				for i := range got {
					if got[i] != tt.want[i] {
						t.Errorf("pod %d: got %d picks, want %d", i, got[i], tt.want[i])
					}
				}
			})
		}
	}
}

func TestLeastConnFollowsLoad(t *testing.T) {
	// Each pick opens a request that stays open, as with long polls: the
	// pods fill up evenly, in proportion to weight.
	b := mustNew(t, LeastConn)
	pods := weightedPods(1, 2, 1)
	for range 400 {
		pods[b.Pick(0, pods)].(*testPod).inFlight.Add(1)
	}
	for i, want := range []int64{100, 200, 100} {
		if got := pods[i].InFlight(); got != want {
			t.Errorf("pod %d: got %d in flight, want %d", i, got, want)
		}
	}
}
