package main

import (
	"log/slog"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/store"
)

// newStore connects to Redis when a route keeps its table there; it returns
// nil when none does.
func newStore(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*store.Redis, error) {
	if !cfg.UsesRedis() {
		return nil, nil
	}
	r := &cfg.Store.Redis
	password, err := r.Password()
	if err != nil {
		return nil, err
	}
	roots, err := r.RootCAs()
	if err != nil {
		return nil, err
	}
	return store.New(store.Options{
		URL: r.URL, Addrs: r.Addrs, MasterName: r.MasterName, Cluster: r.Cluster,
		Username: r.Username, Password: password, DB: r.DB,
		TLS: r.TLS, RootCAs: roots, TLSServerName: r.TLSServerName,
		KeyPrefix: r.KeyPrefix, Timeout: r.Timeout, DialTimeout: r.DialTimeout,
		Logger: log.With("component", "store"), Metrics: m,
	})
}
