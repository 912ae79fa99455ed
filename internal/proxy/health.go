package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/podpin/podpin/internal/config"
)

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
			r.Refresh()
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
	if !pd.health.Checked(ok, c.HealthyThreshold, c.UnhealthyThreshold) {
		return false
	}
	if ok {
		r.Log.Info("pod passed health checks", "pod", pd.name)
	} else {
		r.Log.Warn("pod failed health checks", "pod", pd.name, "path", c.Path)
	}
	return true
}
