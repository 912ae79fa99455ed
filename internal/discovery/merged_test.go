package discovery

import (
	"slices"
	"testing"
)

func TestMergedSharesNewSessionsByTheSourcesWeights(t *testing.T) {
	a := NewStatic([]Endpoint{
		{Name: "a-0", Address: "10.0.0.1:80", State: Ready},
		{Name: "a-1", Address: "10.0.0.2:80", State: Ready},
		{Name: "a-2", Address: "10.0.0.3:80", State: Ready},
	})
	b := NewStatic([]Endpoint{{Name: "b-0", Address: "10.0.1.1:80", State: Ready}})
	c := NewStatic([]Endpoint{
		{Name: "c-0", Address: "10.0.2.1:80", State: Ready},
		{Name: "a-0", Address: "10.0.2.2:80", State: Ready}, // a name a has: reported once
	})
	var got []Endpoint
	stop := NewMerged([]Weighted{{a, 3}, {b, 1}, {c, 0}}).Start(func(eps []Endpoint) { got = eps })
	defer stop()

	byName := map[string]Endpoint{}
	for _, ep := range got {
		byName[ep.Name] = ep
	}
	if len(got) != 5 || byName["a-0"].Address != "10.0.0.1:80" {
		t.Fatalf("got %v, want a's three pods, b's and c-0, a-0 from a", got)
	}
	sum := func(names ...string) int {
		n := 0
		for _, name := range names {
			n += byName[name].Weight
		}
		return n
	}
	// a's three pods together take three times b's one pod.
	if a, b := sum("a-0", "a-1", "a-2"), sum("b-0"); a < 3*b-3 || a > 3*b+3 {
		t.Errorf("weights: a's pods %d together, b's %d; want 3:1", a, b)
	}
	if byName["a-0"].Weight != byName["a-1"].Weight {
		t.Errorf("a's pods weigh %d and %d, want the same", byName["a-0"].Weight, byName["a-1"].Weight)
	}
	if st := byName["c-0"].State; st != Draining {
		t.Errorf("c-0 of a source of weight 0: state %v, want draining (keeps its sessions, takes no new ones)", st)
	}
}

func TestMergedWaitsForEverySource(t *testing.T) {
	late := &manualSource{}
	var reports [][]Endpoint
	stop := NewMerged([]Weighted{{NewStatic([]Endpoint{{Name: "a-0", State: Ready}}), 1}, {late, 1}}).
		Start(func(eps []Endpoint) { reports = append(reports, eps) })
	defer stop()
	if len(reports) != 0 {
		t.Fatalf("reported %v before every source had", reports)
	}
	late.update([]Endpoint{{Name: "b-0", State: Ready}})
	if len(reports) != 1 || !slices.ContainsFunc(reports[0], func(e Endpoint) bool { return e.Name == "b-0" }) {
		t.Fatalf("reports %v, want one with a-0 and b-0", reports)
	}
}

// manualSource reports when the test calls update.
type manualSource struct{ update func([]Endpoint) }

func (s *manualSource) Start(update func([]Endpoint)) func() {
	s.update = update
	return func() {}
}
