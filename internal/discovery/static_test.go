package discovery

import (
	"slices"
	"testing"
)

func TestStaticReportsItsEndpointsBeforeStartReturns(t *testing.T) {
	eps := []Endpoint{endpoint("web-0", "10.0.0.1:80", Ready), endpoint("web-1", "10.0.0.2:80", Draining)}
	src := NewStatic(eps)
	eps[0].Address = "10.9.9.9:80" // the source keeps its own copy

	var reports [][]Endpoint
	stop := src.Start(func(got []Endpoint) { reports = append(reports, got) })
	want := []Endpoint{endpoint("web-0", "10.0.0.1:80", Ready), endpoint("web-1", "10.0.0.2:80", Draining)}
	if len(reports) != 1 || !slices.Equal(reports[0], want) {
		t.Fatalf("reports when Start returned: got %v, want one report of %v", reports, want)
	}
	reports[0][1].State = NotReady // the receiver may keep and change its copy
	stop()
	if len(reports) != 1 {
		t.Errorf("reports after stop: got %d, want the one", len(reports))
	}

	var again []Endpoint
	src.Start(func(got []Endpoint) { again = got })()
	if !slices.Equal(again, want) {
		t.Errorf("a second start: got %v, want %v", again, want)
	}
}

func TestFactoryMakesAStaticSourceOfBackends(t *testing.T) {
	backends := []Endpoint{endpoint("web-0", "10.0.0.1:80", Ready)}
	src, err := (&Factory{}).Source("web", Spec{Backends: backends})
	if err != nil {
		t.Fatalf("static route: got %v, want a source", err)
	}
	var got []Endpoint
	src.Start(func(eps []Endpoint) { got = eps })()
	if !slices.Equal(got, backends) {
		t.Errorf("static route reported %v, want %v", got, backends)
	}
}
