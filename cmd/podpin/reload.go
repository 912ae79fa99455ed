package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/metrics"
)

// reloader applies a new configuration on SIGHUP and when the file's
// content changes. It polls the file rather than watching it, which also
// follows the symlink swaps of a Kubernetes ConfigMap volume. An invalid
// configuration is logged with every error and the running one stays.
type reloader struct {
	file    string
	load    func() (*config.Config, error)
	p       applier
	m       *metrics.Metrics
	log     *slog.Logger
	running *config.Config
	seen    [32]byte // digest of the file content last tried
}

// applier makes a configuration the running one: the proxy, or the Ingress
// controller, which merges it with the Ingress routes.
type applier interface {
	Apply(*config.Config) error
}

// pollInterval is how often the configuration file is read for changes.
const pollInterval = time.Second

func (r *reloader) run(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	r.seen, _ = r.digest()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			r.reload("SIGHUP")
		case <-t.C:
			if d, ok := r.digest(); ok && d != r.seen {
				r.reload("file changed")
			}
		}
	}
}

func (r *reloader) digest() ([32]byte, bool) {
	data, err := os.ReadFile(r.file)
	if err != nil {
		return [32]byte{}, false
	}
	return sha256.Sum256(data), true
}

func (r *reloader) reload(why string) {
	r.seen, _ = r.digest()
	cfg, err := r.load()
	if err == nil {
		err = r.p.Apply(cfg)
	}
	if err != nil {
		r.m.Reloaded(false)
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				r.log.Error("configuration rejected, the running one stays", "trigger", why, "field", e.Path, "error", e.Msg)
			}
			return
		}
		r.log.Error("configuration rejected, the running one stays", "trigger", why, "error", err)
		return
	}
	r.m.Reloaded(true)
	if !slices.Equal(cfg.Listeners, r.running.Listeners) || cfg.Admin != r.running.Admin || cfg.State != r.running.State || cfg.Shutdown != r.running.Shutdown {
		r.log.Warn("listeners, admin, state and shutdown settings change only at restart", "trigger", why)
	}
	r.running = cfg
	r.log.Info("configuration reloaded", "trigger", why, "routes", len(cfg.Routes))
}
