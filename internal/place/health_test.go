package place

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/metrics"
)

// healthRoute is a route that ejects after 3 failures in a row (or 2 5xx),
// for ejection long, at most half its pods at once. It counts the
// rebuilds Done asks for; returned receives a value each time an ejection
// ends.
func healthRoute(t *testing.T, ejection time.Duration) (r *Route, rebuilds *atomic.Int32, returned chan struct{}) {
	r = newTestRoute(t, prometheus.NewRegistry())
	r.Passive = NewPassive(config.Passive{ConsecutiveFailures: 3, Consecutive5xx: 2, BaseEjection: ejection, MaxEjection: 4 * ejection, MaxEjectedPercent: 50})
	r.Log = slog.New(slog.DiscardHandler)
	rebuilds = new(atomic.Int32)
	returned = make(chan struct{}, 4)
	r.Rebuild = func() { rebuilds.Add(1) }
	r.Refresh = func() { returned <- struct{}{} }
	return r, rebuilds, returned
}

func TestDoneEjectsAPodFailingInARow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outcomes []Outcome
		ejected  bool
	}{
		{"three failures in a row eject", []Outcome{{Failed: true}, {Failed: true}, {Failed: true}}, true},
		{"an answer between failures resets the count", []Outcome{{Failed: true}, {Failed: true}, {Status: 200}, {Failed: true}}, false},
		{"two 5xx in a row eject", []Outcome{{Status: 503}, {Status: 500}}, true},
		{"a 4xx answer is health", []Outcome{{Status: 500}, {Status: 404}, {Status: 500}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, rebuilds, _ := healthRoute(t, time.Hour)
			a, b := &testPod{name: "a"}, &testPod{name: "b"}
			pods := newTestPods(a, b)
			for _, o := range tc.outcomes {
				r.Done(pods, a, o)
			}
			got := a.Health().Out(time.Now()) == ReasonEjected
			if got != tc.ejected {
				t.Fatalf("ejected: got %v, want %v", got, tc.ejected)
			}
			if want := map[bool]int32{true: 1, false: 0}[tc.ejected]; rebuilds.Load() != want {
				t.Errorf("rebuilds: got %d, want %d", rebuilds.Load(), want)
			}
			if out := b.Health().Out(time.Now()); out != "" {
				t.Errorf("the other pod is out (%q), want it untouched", out)
			}
		})
	}
}

func TestDoneEjectsNoMoreThanTheShareAllowed(t *testing.T) {
	r, rebuilds, _ := healthRoute(t, time.Hour)
	a, b := &testPod{name: "a"}, &testPod{name: "b"}
	pods := newTestPods(a, b)
	for _, p := range []*testPod{a, b} {
		for range 3 {
			r.Done(pods, p, Outcome{Failed: true})
		}
	}
	now := time.Now()
	if a.Health().Out(now) != ReasonEjected || b.Health().Out(now) != "" {
		t.Fatalf("got a %q, b %q; want a ejected and b kept (half of two pods is one)", a.Health().Out(now), b.Health().Out(now))
	}
	if rebuilds.Load() != 1 {
		t.Errorf("rebuilds: got %d, want 1", rebuilds.Load())
	}
}

func TestAnEjectedPodComesBack(t *testing.T) {
	r, _, returned := healthRoute(t, 50*time.Millisecond)
	a := &testPod{name: "a"}
	pods := newTestPods(a, &testPod{name: "b"})
	for range 3 {
		r.Done(pods, a, Outcome{Failed: true})
	}
	if a.Health().Out(time.Now()) != ReasonEjected {
		t.Fatal("not ejected after three failures")
	}
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the ejection never ended")
	}
	if out := a.Health().Out(time.Now()); out != "" {
		t.Errorf("after its ejection the pod is %q, want healthy", out)
	}
}

func TestCheckedTurnsAfterThresholds(t *testing.T) {
	var h Health
	steps := []struct {
		ok        bool
		turned    bool
		unhealthy bool
	}{
		{false, false, false},
		{false, true, true}, // the second failure in a row turns it
		{true, false, true},
		{false, false, true}, // a failure resets the passes
		{true, false, true},
		{true, false, true},
		{true, true, false}, // the third pass in a row turns it back
	}
	for i, s := range steps {
		turned := h.Checked(s.ok, 3, 2)
		if turned != s.turned || h.Unhealthy() != s.unhealthy {
			t.Fatalf("step %d: turned %v, unhealthy %v; want %v, %v", i, turned, h.Unhealthy(), s.turned, s.unhealthy)
		}
	}
	h.Checked(false, 3, 1)
	if out := h.Out(time.Now()); out != ReasonUnhealthy {
		t.Errorf("Out: got %q, want %q", out, ReasonUnhealthy)
	}
}

// latencyCount reads how many answers podpin_proxy_upstream_latency_seconds
// has seen.
func latencyCount(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == "podpin_proxy_upstream_latency_seconds" {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func TestDoneCountsTheAnswersTheClientGot(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, _, _ := healthRoute(t, time.Hour)
	a := &testPod{name: "a"}
	a.tally.Metrics = metrics.New(reg, nil).Pod("web", "a")
	pods := newTestPods(a, &testPod{name: "b"})

	a.Tally().Start()
	if got := a.InFlight(); got != 1 {
		t.Fatalf("in flight after Start: got %d, want 1", got)
	}
	a.Tally().Stop()
	r.Done(pods, a, Outcome{Status: 200, Seconds: 0.01})
	r.Done(pods, a, Outcome{Failed: true})                   // moved on to another pod: not an answer
	r.Done(pods, a, Outcome{ClientFault: true, Status: 408}) // the client's fault: an answer, not a failure
	r.Done(pods, a, Outcome{Failed: true, Status: 502})
	if got := latencyCount(t, reg); got != 3 {
		t.Errorf("answers counted: got %d, want 3", got)
	}
	if got, want := a.Tally().Requests(), uint64(1); got != want || a.InFlight() != 0 {
		t.Errorf("requests %d, in flight %d; want %d and 0", got, a.InFlight(), want)
	}
	r.Done(pods, a, Outcome{ClientFault: true, Status: 400})
	r.Done(pods, a, Outcome{ClientFault: true, Status: 400})
	if out := a.Health().Out(time.Now()); out != "" {
		t.Errorf("after two failures and the client's faults the pod is %q, want healthy (three failures eject)", out)
	}
	r.Done(pods, a, Outcome{Failed: true})
	if out := a.Health().Out(time.Now()); out != ReasonEjected {
		t.Errorf("after three failures the pod is %q, want ejected", out)
	}
}
