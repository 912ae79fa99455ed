package config

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"time"
)

// Applier makes a configuration the running one: the proxy, or the Ingress
// controller, which merges it with the Ingress routes.
type Applier interface {
	Apply(*Config) error
}

// ApplierFunc is a function as an Applier.
type ApplierFunc func(*Config) error

func (f ApplierFunc) Apply(c *Config) error { return f(c) }

// ReloadCounter counts reloads by outcome, and the settings that wait for
// a restart.
type ReloadCounter interface {
	Reloaded(applied bool)
	RestartPending(settings int)
}

// ReloaderOptions are a Reloader's settings and dependencies.
type ReloaderOptions struct {
	// File is the configuration file, polled for changes. Required.
	File string
	// Load reads the configuration again. Nil: Load(File).
	Load func() (*Config, error)
	// Apply receives each configuration that loads. Required.
	Apply Applier
	// Running is the configuration the process started with. A reload
	// applies only what Live lets through: each setting of RestartOnly
	// that differs keeps its running value and is logged with a warning
	// that names it. Nil: reloads apply the whole configuration.
	Running *Config
	// Signals ask for a reload now, whatever the file holds (SIGHUP). Nil:
	// only file changes reload.
	Signals <-chan os.Signal
	// Interval is how often the file is read for changes. Default 1s.
	Interval time.Duration
	// Metrics counts reloads applied and rejected, and the settings that
	// wait for a restart; nil counts nothing.
	Metrics ReloadCounter
	// Logger receives every reload, and every error of a rejected one with
	// its field path; nil discards.
	Logger *slog.Logger
}

// DefaultReloadInterval is the default of ReloaderOptions.Interval.
const DefaultReloadInterval = time.Second

// Reloader applies a new configuration when a signal asks for it and when
// the file's content changes, or that of a file it names which is read
// when it is applied (a route's pods.tls.caFile). It polls the file rather than watching it,
// which also follows the symlink swaps of a Kubernetes ConfigMap volume. A
// configuration that does not load or apply is logged with every error and
// the running one stays. Only Run uses it: it is not safe for concurrent
// use.
type Reloader struct {
	o   ReloaderOptions
	log *slog.Logger
	// files are the other files the configuration last loaded reads when
	// it is applied (the pods' CA bundles): a change to one reloads too.
	files []string
	seen  [32]byte // digest of the content of the file and files last tried
}

// NewReloader returns a Reloader as o says. It reads the file once: that
// content counts as the running configuration's.
func NewReloader(o ReloaderOptions) *Reloader {
	if o.Load == nil {
		o.Load = func() (*Config, error) { return Load(o.File) }
	}
	if o.Interval <= 0 {
		o.Interval = DefaultReloadInterval
	}
	r := &Reloader{o: o, log: o.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if o.Running != nil {
		r.files = o.Running.appliedFiles()
	}
	r.seen, _ = r.digest()
	return r
}

// Run reloads on each signal and each change of the file until ctx ends,
// then returns nil. The file's content when the Reloader was made counts as
// applied.
func (r *Reloader) Run(ctx context.Context) error {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case sig := <-r.o.Signals:
			r.reload(signalName(sig))
		case <-t.C:
			if d, ok := r.digest(); ok && d != r.seen {
				r.reload("file changed")
			}
		}
	}
}

// digest sums the content of the file and of r.files; a file of r.files
// that cannot be read counts as empty, so its return is a change. ok is
// false when the configuration file cannot be read.
func (r *Reloader) digest() (sum [32]byte, ok bool) {
	data, err := os.ReadFile(r.o.File)
	if err != nil {
		return [32]byte{}, false
	}
	h := sha256.New()
	h.Write(data)
	for _, f := range r.files {
		content, _ := os.ReadFile(f)
		fmt.Fprintf(h, "\x00%s\x00%d\x00", f, len(content))
		h.Write(content)
	}
	h.Sum(sum[:0])
	return sum, true
}

func (r *Reloader) reload(why string) {
	r.seen, _ = r.digest()
	cfg, err := r.o.Load()
	var pending []string
	if err == nil {
		if files := cfg.appliedFiles(); !slices.Equal(files, r.files) {
			r.files = files
			r.seen, _ = r.digest()
		}
		if r.o.Running != nil {
			cfg, pending = Live(r.o.Running, cfg)
		}
		err = r.o.Apply.Apply(cfg)
	}
	if r.o.Metrics != nil {
		r.o.Metrics.Reloaded(err == nil)
	}
	if err != nil {
		var errs Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				r.log.Error("configuration rejected, the running one stays", "trigger", why, "field", e.Path, "error", e.Msg)
			}
			return
		}
		r.log.Error("configuration rejected, the running one stays", "trigger", why, "error", err)
		return
	}
	for _, s := range pending {
		r.log.Warn(s+" changed: needs a restart; the running value stays until then", "trigger", why, "setting", s)
	}
	if r.o.Metrics != nil {
		r.o.Metrics.RestartPending(len(pending))
	}
	r.log.Info("configuration reloaded", "trigger", why, "routes", len(cfg.Routes))
}

// signalName names a signal as operators write it: "SIGHUP" rather than
// its description, "hangup".
func signalName(s os.Signal) string {
	if s == syscall.SIGHUP {
		return "SIGHUP"
	}
	return s.String()
}
