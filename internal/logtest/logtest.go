// Package logtest captures what a component logs, for tests that read the
// log while the component's goroutines write it. Production code never
// imports it.
package logtest

import (
	"bytes"
	"log/slog"
	"sync"
)

// Buffer is a log destination safe for concurrent writers and readers.
type Buffer struct {
	// guards b
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// New returns a logger that writes text lines (slog.TextHandler, every
// level from Info) to a new Buffer, and the Buffer.
func New() (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}
