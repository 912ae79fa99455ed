package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/proxy"
	"github.com/podpin/podpin/internal/snapshot"
)

// stateKeeper saves the stick tables to the state file periodically and at
// shutdown, and restores them at start. A state file that cannot be read is
// reported and ignored: podpin starts with empty tables rather than not at
// all.
type stateKeeper struct {
	file string // "" keeps no state
	p    *proxy.Proxy
	m    *metrics.Metrics
	log  *slog.Logger
}

func (s *stateKeeper) restore() {
	if s.file == "" {
		return
	}
	st, err := snapshot.Load(s.file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.log.Info("no state file yet; starting with empty tables", "file", s.file)
		return
	case err != nil:
		s.log.Error("state file ignored; starting with empty tables", "file", s.file, "error", err)
		return
	}
	loaded, dropped, err := s.p.Restore(st)
	if err != nil {
		s.log.Error("state file ignored; starting with empty tables", "file", s.file, "error", err)
		return
	}
	s.log.Info("stick tables restored", "file", s.file, "sessions", loaded, "dropped", dropped)
}

func (s *stateKeeper) run(ctx context.Context, every time.Duration) error {
	if s.file == "" {
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.save()
		}
	}
}

func (s *stateKeeper) save() {
	if s.file == "" {
		return
	}
	if err := snapshot.Save(s.file, s.p.Snapshot()); err != nil {
		s.m.Saved(false)
		s.log.Error("saving stick tables failed", "file", s.file, "error", err)
		return
	}
	s.m.Saved(true)
}
