package config_test

import (
	"slices"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
)

func defaulted(c config.Config) *config.Config {
	c.SetDefaults()
	return &c
}

func TestLiveKeepsEveryRestartOnlySettingAndNamesIt(t *testing.T) {
	route := config.Route{Name: "web", Backends: []config.Backend{{Name: "web-0", URL: "http://127.0.0.1:9001"}}}
	started := defaulted(config.Config{Routes: []config.Route{route}})
	for _, tt := range []struct {
		name    string
		change  func(*config.Config)
		pending []string
		live    func(*config.Config) bool // holds on the live configuration
	}{
		{
			name:   "a new listener applies",
			change: func(c *config.Config) { c.Listeners = []config.Listener{{Address: "0.0.0.0:80"}} },
			live:   func(c *config.Config) bool { return c.Listeners[0].Address == "0.0.0.0:80" },
		},
		{
			name: "a Redis store waits, and so does each route that would use it",
			change: func(c *config.Config) {
				c.Store.Type, c.Store.Redis.URL, c.Routes[0].Store = "redis", "redis://r:6379", "redis"
			},
			pending: []string{"store.type", "store.redis", "routes[web].store"},
			live:    func(c *config.Config) bool { return c.Store.Type == "memory" && c.Routes[0].Store == "memory" },
		},
		{
			name:    "a new header timeout waits, a new body timeout applies",
			change:  func(c *config.Config) { c.Limits.HeaderTimeout, c.Limits.BodyTimeout = time.Second, time.Minute*5 },
			pending: []string{"limits.headerTimeout"},
			live: func(c *config.Config) bool {
				return c.Limits.HeaderTimeout == config.DefaultHeaderTimeout && c.Limits.BodyTimeout == 5*time.Minute
			},
		},
		{
			name: "routes, upstream and the pod header apply",
			change: func(c *config.Config) {
				c.Routes[0].Balancer, c.Upstream.ConnectTimeout, c.PodHeader = "hash", time.Second, new(string)
			},
			pending: nil,
			live: func(c *config.Config) bool {
				return c.Routes[0].Balancer == "hash" && c.Upstream.ConnectTimeout == time.Second && c.PodHeaderName() == ""
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			next := defaulted(config.Config{Routes: []config.Route{route}})
			tt.change(next)
			before := *next
			before.Routes = slices.Clone(next.Routes)
			live, pending := config.Live(started, next)
			if !slices.Equal(pending, tt.pending) {
				t.Errorf("pending: got %q, want %q", pending, tt.pending)
			}
			if !tt.live(live) {
				t.Errorf("live configuration does not hold: %+v", live)
			}
			if next.Routes[0].Store != before.Routes[0].Store || next.Store.Type != before.Store.Type || next.Limits != before.Limits {
				t.Errorf("Live modified its argument")
			}
		})
	}
}

func TestRestartOnlyNamesTheSettingsLiveChecks(t *testing.T) {
	started := defaulted(config.Config{})
	next := defaulted(config.Config{
		Admin:     config.Admin{Address: "0.0.0.0:9901", TokenFile: "/t"},
		Log:       config.Log{Format: config.LogJSON},
		KeySecret: config.KeySecret{Env: "K"},
		Shutdown:  config.Shutdown{Delay: time.Second},
		State:     config.State{File: "/s"},
		Store:     config.Store{Type: "redis", Redis: config.Redis{URL: "redis://r"}},
		Limits: config.Limits{HeaderTimeout: 1, IdleTimeout: 1, MaxHeaderBytes: 2048, MaxConnections: 1,
			MaxConnsPerIP: 1, MaxConcurrentStreams: 7},
	})
	_, pending := config.Live(started, next)
	if !slices.Equal(pending, config.RestartOnly) {
		t.Errorf("every restart-only setting changed: got pending %q, want %q", pending, config.RestartOnly)
	}
}
