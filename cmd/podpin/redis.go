package main

import (
	"context"
	"log/slog"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/store"
)

// sharedStore connects to Redis when a route keeps its table there; it
// returns nil when none does. The returned run owns the store's goroutines.
func sharedStore(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*store.Redis, func(context.Context) error, error) {
	if !cfg.UsesRedis() {
		return nil, func(context.Context) error { return nil }, nil
	}
	s, err := store.New(cfg.Store.Redis, log.With("component", "store"), m)
	if err != nil {
		return nil, nil, err
	}
	return s, func(ctx context.Context) error {
		defer s.Close()
		return s.Run(ctx)
	}, nil
}
