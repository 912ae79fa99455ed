package snapshot

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Tables are the stick tables a Keeper saves and restores: the proxy's.
type Tables interface {
	// Snapshot copies every table's live entries.
	Snapshot() *State
	// Restore loads a snapshot's entries into the tables; it returns how
	// many it loaded and how many it dropped, or an error when none of the
	// snapshot can be used.
	Restore(*State) (loaded, dropped int, err error)
}

// SaveCounter counts saves by outcome.
type SaveCounter interface {
	Saved(ok bool)
}

// KeeperOptions are a Keeper's settings and dependencies.
type KeeperOptions struct {
	// File is where the tables are saved and restored from. Empty: the
	// Keeper keeps nothing, and each of its methods returns at once.
	File string
	// Interval is the time between periodic saves while Run runs; a crash
	// loses at most this much of new sessions. Zero: no periodic save, only
	// Save.
	Interval time.Duration
	// Tables are saved and restored. Required when File is set.
	Tables Tables
	// Metrics counts saves; nil counts nothing.
	Metrics SaveCounter
	// Logger receives restores and failed saves; nil discards.
	Logger *slog.Logger
}

// Keeper saves stick tables to a file periodically and when asked (at
// shutdown), and restores them at start. A file that cannot be used is
// reported and ignored: podpin starts with empty tables rather than not at
// all. Safe for concurrent use.
type Keeper struct {
	file     string
	interval time.Duration
	tables   Tables
	metrics  SaveCounter
	log      *slog.Logger

	// guards saving: one save at a time, so the last to run, whose
	// snapshot is the newest, is the one the file keeps
	mu sync.Mutex
}

// NewKeeper returns a Keeper as o says.
func NewKeeper(o KeeperOptions) *Keeper {
	k := &Keeper{file: o.File, interval: o.Interval, tables: o.Tables, metrics: o.Metrics, log: o.Logger}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	return k
}

// Restore loads the file into the tables. A missing file is the first
// start; an unreadable, corrupt or foreign one is logged and ignored.
func (k *Keeper) Restore() {
	if k.file == "" {
		return
	}
	st, err := Load(k.file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		k.log.Info("no state file yet; starting with empty tables", "file", k.file)
		return
	case err != nil:
		k.log.Error("state file ignored; starting with empty tables", "file", k.file, "error", err)
		return
	}
	loaded, dropped, err := k.tables.Restore(st)
	if err != nil {
		k.log.Error("state file ignored; starting with empty tables", "file", k.file, "error", err)
		return
	}
	k.log.Info("stick tables restored", "file", k.file, "sessions", loaded, "dropped", dropped)
}

// Run saves the tables every Interval until ctx ends, and returns nil. It
// does not save when ctx ends: the owner calls Save once the last requests
// are done.
func (k *Keeper) Run(ctx context.Context) error {
	if k.file == "" || k.interval <= 0 {
		return nil
	}
	t := time.NewTicker(k.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			k.Save()
		}
	}
}

// Save writes the tables to the file now. A failure is logged and counted;
// the previous file stays.
func (k *Keeper) Save() {
	if k.file == "" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	err := Save(k.file, k.tables.Snapshot())
	if k.metrics != nil {
		k.metrics.Saved(err == nil)
	}
	if err != nil {
		k.log.Error("saving stick tables failed", "file", k.file, "error", err)
	}
}
