package proxy

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// health is a backend's passive and active health. Safe for concurrent use.
type health struct {
	fails    atomic.Int32 // connect failures, resets and timeouts in a row
	fails5xx atomic.Int32 // 5xx answers in a row

	// guards ejections, ejectedUntil, returned
	mu           sync.Mutex
	ejections    int       // ejections since the pod last stayed healthy for maxEjection
	ejectedUntil time.Time // zero when not ejected
	returned     time.Time // when the last ejection ended

	unhealthy        atomic.Bool  // failed active checks
	passes, failures atomic.Int32 // active check results in a row
}

// ejectedAt reports whether the backend is ejected at now.
func (h *health) ejectedAt(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Before(h.ejectedUntil)
}

// passive holds a route's outlier detection settings.
type passive struct {
	failures   int32 // 0: off
	fails5xx   int32 // 0: off
	base, max  time.Duration
	maxPercent int
}

func newPassive(c config.Passive) passive {
	return passive{
		failures:   int32(max(c.ConsecutiveFailures, 0)),
		fails5xx:   int32(c.Consecutive5xx),
		base:       c.BaseEjection,
		max:        c.MaxEjection,
		maxPercent: c.MaxEjectedPercent,
	}
}

// observe records the outcome of one request to pd: failed when podpin got
// no answer at all, else the pod's status. Enough failures in a row eject it.
func (r *route) observe(pd *pod, failed bool, status int) {
	h := &pd.health
	var trip bool
	switch {
	case failed:
		trip = r.passive.failures > 0 && h.fails.Add(1) >= r.passive.failures
	case status >= 500:
		if h.fails.Load() != 0 {
			h.fails.Store(0)
		}
		trip = r.passive.fails5xx > 0 && h.fails5xx.Add(1) >= r.passive.fails5xx
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
		r.eject(pd)
	}
}

// eject takes pd out of new placements for a growing period, unless that
// would put more than the allowed share of the route's pods out at once.
func (r *route) eject(pd *pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	set := r.pods.Load()
	out := 0
	for _, p := range set.all {
		if p.backend != pd.backend && p.health.ejectedAt(now) {
			out++
		}
	}
	limit := max(1, len(set.all)*r.passive.maxPercent/100)
	h := &pd.health
	h.fails.Store(0)
	h.fails5xx.Store(0)
	if out+1 > limit {
		r.log.Warn("pod failing but not ejected: too many pods already out", "pod", pd.name, "ejected", out, "limit", limit)
		return
	}
	h.mu.Lock()
	if now.Before(h.ejectedUntil) {
		h.mu.Unlock()
		return
	}
	if !h.returned.IsZero() && now.Sub(h.returned) > r.passive.max {
		h.ejections = 0
	}
	h.ejections++
	d := min(r.passive.base*time.Duration(h.ejections), r.passive.max)
	h.ejectedUntil = now.Add(d)
	h.mu.Unlock()
	r.log.Warn("pod ejected", "pod", pd.name, "for", d, "ejections", h.ejections)
	r.rebuildLocked()
	time.AfterFunc(d, func() {
		h.mu.Lock()
		h.returned = time.Now()
		h.mu.Unlock()
		r.log.Info("pod back from ejection", "pod", pd.name)
		r.refresh()
	})
}

// checker runs active HTTP health checks on a route's pods until ctx ends.
func (r *route) checker(ctx context.Context, c config.Active) {
	client := &http.Client{
		Timeout:   c.Timeout,
		Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		changed := false
		for _, pd := range r.pods.Load().all {
			if r.check(ctx, client, c, pd) {
				changed = true
			}
		}
		if changed {
			r.refresh()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check probes one pod and reports whether its health flipped.
func (r *route) check(ctx context.Context, client *http.Client, c config.Active, pd *pod) bool {
	ok := false
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+pd.addr+c.Path, nil)
	if err == nil {
		req.Header.Set("User-Agent", "podpin-health-check")
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			ok = resp.StatusCode < 400
		}
	}
	if ctx.Err() != nil {
		return false
	}
	h := &pd.health
	if ok {
		h.failures.Store(0)
		if h.passes.Add(1) >= int32(c.HealthyThreshold) && h.unhealthy.Load() {
			h.unhealthy.Store(false)
			r.log.Info("pod passed health checks", "pod", pd.name)
			return true
		}
		return false
	}
	h.passes.Store(0)
	if h.failures.Add(1) >= int32(c.UnhealthyThreshold) && !h.unhealthy.Load() {
		h.unhealthy.Store(true)
		r.log.Warn("pod failed health checks", "pod", pd.name, "path", c.Path)
		return true
	}
	return false
}
