package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// checker runs active HTTP health checks on a route's pods until ctx ends,
// each in the protocol podpin speaks to the pod: HTTP/1.1, h2c, or over TLS
// verified as for requests.
func (r *route) checker(ctx context.Context, c config.Active) {
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	clients := map[string]*http.Client{
		config.PodHTTP:  r.checkClient(c, &http.Transport{DisableKeepAlives: true}),
		config.PodH2C:   r.checkClient(c, &http.Transport{DisableKeepAlives: true, Protocols: h2c}),
		config.PodHTTPS: r.checkClient(c, &http.Transport{DisableKeepAlives: true, TLSClientConfig: r.podTLS}),
	}
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		changed := false
		for _, pd := range r.pods.Load().all {
			if r.check(ctx, clients[pd.protocol], c, pd) {
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

// checkClient is a client for health checks through tr.
func (r *route) checkClient(c config.Active, tr *http.Transport) *http.Client {
	return &http.Client{
		Timeout:   c.Timeout,
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// check probes one pod and reports whether its health flipped.
func (r *route) check(ctx context.Context, client *http.Client, c config.Active, pd *pod) bool {
	ok := false
	scheme := "http://"
	if pd.protocol == config.PodHTTPS {
		scheme = "https://"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", scheme+pd.addr+c.Path, nil)
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
