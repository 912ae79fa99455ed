package place

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// Health is one pod's passive and active health. Its owner keeps it across
// endpoint snapshots, so a pod that only changes state keeps it. The zero
// value is healthy; safe for concurrent use.
type Health struct {
	fails    atomic.Int32 // connect failures, resets and timeouts in a row
	fails5xx atomic.Int32 // 5xx answers in a row

	// guards ejections, ejectedUntil, returned
	mu           sync.Mutex
	ejections    int       // ejections since the pod last stayed healthy for the longest ejection
	ejectedUntil time.Time // zero when not ejected
	returned     time.Time // when the last ejection ended

	unhealthy        atomic.Bool  // failed active checks
	passes, failures atomic.Int32 // active check results in a row
}

// Out is why the pod takes no new traffic at now for its health:
// ReasonUnhealthy, ReasonEjected, or "" when it is healthy.
func (h *Health) Out(now time.Time) string {
	switch {
	case h.unhealthy.Load():
		return ReasonUnhealthy
	case h.ejectedAt(now):
		return ReasonEjected
	}
	return ""
}

// ejectedAt reports whether the pod is ejected at now.
func (h *Health) ejectedAt(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Before(h.ejectedUntil)
}

// Checked records one active health check: ok when the pod passed. The pod
// turns unhealthy after unhealthy failures in a row and healthy again after
// healthy passes in a row; Checked reports whether it turned.
func (h *Health) Checked(ok bool, healthy, unhealthy int) (turned bool) {
	if ok {
		h.failures.Store(0)
		if h.passes.Add(1) >= int32(healthy) && h.unhealthy.Load() {
			h.unhealthy.Store(false)
			return true
		}
		return false
	}
	h.passes.Store(0)
	if h.failures.Add(1) >= int32(unhealthy) && !h.unhealthy.Load() {
		h.unhealthy.Store(true)
		return true
	}
	return false
}

// Unhealthy reports whether the pod failed its active checks.
func (h *Health) Unhealthy() bool { return h.unhealthy.Load() }

// Passive is a route's outlier detection: how many failures in a row eject
// a pod, for how long, and at most what share of the pods at once.
type Passive struct {
	failures   int32 // 0: off
	fails5xx   int32 // 0: off
	base, max  time.Duration
	maxPercent int
}

// NewPassive returns the outlier detection c configures (c has its
// defaults).
func NewPassive(c config.Passive) Passive {
	return Passive{
		failures:   int32(max(c.ConsecutiveFailures, 0)),
		fails5xx:   int32(c.Consecutive5xx),
		base:       c.BaseEjection,
		max:        c.MaxEjection,
		maxPercent: c.MaxEjectedPercent,
	}
}

// Outcome is what came of forwarding one request to its pod.
type Outcome struct {
	// Failed: the pod gave no answer at all (connecting failed, the
	// connection broke, no answer in time). It counts against the pod's
	// health.
	Failed bool
	// ClientFault: the client stopped the exchange (its body stalled, was
	// too large or badly framed). Nothing counts against the pod's
	// health.
	ClientFault bool
	// Status is what the client got for the exchange: the pod's status,
	// or the one the front end answered for it (502, 504, 408...). 0: the
	// request moved on to another pod, and this exchange is not counted
	// in the pod's metrics.
	Status int
	// Seconds is how long the exchange took.
	Seconds float64
}

// Done takes note of what came of forwarding a request to p, one of pods:
// it counts the answer in p's metrics, and keeps p's passive health: enough
// failures (or, if configured, 5xx answers) in a row eject p from new
// placements for a growing period.
func (r *Route) Done(pods Pods, p Pod, o Outcome) {
	if m := p.Tally().Metrics; m != nil && o.Status != 0 {
		m.Done(o.Status, o.Seconds)
	}
	if o.ClientFault {
		return
	}
	h := p.Health()
	var trip bool
	switch {
	case o.Failed:
		trip = r.Passive.failures > 0 && h.fails.Add(1) >= r.Passive.failures
	case o.Status >= 500:
		if h.fails.Load() != 0 {
			h.fails.Store(0)
		}
		trip = r.Passive.fails5xx > 0 && h.fails5xx.Add(1) >= r.Passive.fails5xx
	default:
		// Loads first: a healthy pod's answers then write nothing shared.
		if h.fails.Load() != 0 {
			h.fails.Store(0)
		}
		if h.fails5xx.Load() != 0 {
			h.fails5xx.Store(0)
		}
	}
	if trip {
		r.eject(pods, p)
	}
}

// eject takes p out of new placements for a growing period, unless that
// would put more than the allowed share of the route's pods out at once.
func (r *Route) eject(pods Pods, p Pod) {
	r.ejectMu.Lock()
	defer r.ejectMu.Unlock()
	now := time.Now()
	h := p.Health()
	all := pods.All()
	out := 0
	for _, o := range all {
		if o.Health() != h && o.Health().ejectedAt(now) {
			out++
		}
	}
	limit := max(1, len(all)*r.Passive.maxPercent/100)
	h.fails.Store(0)
	h.fails5xx.Store(0)
	if out+1 > limit {
		r.Log.Warn("pod failing but not ejected: too many pods already out", "pod", p.Name(), "ejected", out, "limit", limit)
		return
	}
	h.mu.Lock()
	if now.Before(h.ejectedUntil) {
		h.mu.Unlock()
		return
	}
	if !h.returned.IsZero() && now.Sub(h.returned) > r.Passive.max {
		h.ejections = 0
	}
	h.ejections++
	d := min(r.Passive.base*time.Duration(h.ejections), r.Passive.max)
	h.ejectedUntil = now.Add(d)
	ejections := h.ejections
	h.mu.Unlock()
	r.Log.Warn("pod ejected", "pod", p.Name(), "for", d, "ejections", ejections)
	r.Rebuild()
	name := p.Name()
	time.AfterFunc(d, func() {
		h.mu.Lock()
		h.returned = time.Now()
		h.mu.Unlock()
		r.Log.Info("pod back from ejection", "pod", name)
		r.Refresh()
	})
}
