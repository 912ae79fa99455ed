// Package h2 is podpin's HTTP/2 server: the connection, its frames and its
// streams (RFC 9113), built on the frame reader and writer and the HPACK
// coder of golang.org/x/net/http2. It knows nothing of what a stream asks
// for: each stream goes to a Handler as a Stream, with its pseudo-header
// fields, its header fields as decoded and its body as it arrives.
//
// What it does that a general-purpose server does not: the frames of every
// stream that is ready go out together, in one write to the socket, rather
// than one write per answer, as HAProxy's multiplexer writes them; a
// stream costs one goroutine, which serves the connection's next queued
// stream when its own ends; and nothing is parsed into maps or copied that
// the handler does not ask for.
package h2

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Settings bound a server's connections. Zero values take the defaults
// given.
type Settings struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS, and the
	// number of a connection's handlers that run at once (default 100).
	MaxConcurrentStreams uint32
	// MaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE, in bytes as
	// HTTP/2 counts them (32 per field); a longer header list reaches the
	// handler as Stream.Truncated, and a single field longer than this
	// closes the connection with COMPRESSION_ERROR (default 1 MiB).
	MaxHeaderListSize uint32
	// WindowSize is the flow-control window of each stream's request
	// body, in bytes (default 1 MiB).
	WindowSize uint32
	// ConnWindowSize is the window of all of a connection's request
	// bodies together (default WindowSize). Larger than WindowSize, a
	// stream whose body its handler does not read cannot hold back the
	// others' bodies alone.
	ConnWindowSize uint32
	// PrefaceTimeout bounds the wait for a connection's preface (default
	// 10s).
	PrefaceTimeout time.Duration
	// IdleTimeout closes a connection with no stream for this long, after
	// a GOAWAY (zero: never).
	IdleTimeout time.Duration
	// PingInterval sends a PING on a connection silent for this long, and
	// PingTimeout closes it when no answer comes within that (zero: no
	// PINGs).
	PingInterval, PingTimeout time.Duration
	// WriteTimeout closes a connection whose socket takes no bytes for
	// this long while podpin has some for it: a client that stopped
	// reading (zero: no bound).
	WriteTimeout time.Duration
}

func (s *Settings) defaults() {
	if s.MaxConcurrentStreams == 0 {
		s.MaxConcurrentStreams = 100
	}
	if s.MaxHeaderListSize == 0 {
		s.MaxHeaderListSize = 1 << 20
	}
	if s.WindowSize == 0 {
		s.WindowSize = 1 << 20
	}
	if s.ConnWindowSize == 0 {
		s.ConnWindowSize = s.WindowSize
	}
	if s.PrefaceTimeout == 0 {
		s.PrefaceTimeout = 10 * time.Second
	}
}

// Handler serves the streams of a server's connections.
type Handler interface {
	// ServeStream answers s. It runs in a goroutine of the stream's
	// own; when it returns, a response not yet ended is ended, and the
	// stream is closed.
	ServeStream(s *Stream)
}

// HandlerFunc is a function as a Handler.
type HandlerFunc func(*Stream)

func (f HandlerFunc) ServeStream(s *Stream) { f(s) }

// Server serves HTTP/2 connections. Set its fields before Serve; safe for
// concurrent use afterwards.
type Server struct {
	Handler  Handler
	Settings Settings
	// Log takes protocol errors of clients, at debug level (nil: none).
	Log *slog.Logger
	// ConnContext returns the context of a connection's streams (nil:
	// context.Background()).
	ConnContext func(net.Conn) context.Context

	// guards conns, shutdown and closed
	mu       sync.Mutex
	conns    map[*conn]struct{}
	lns      []net.Listener
	shutdown bool
	closed   bool
	// connsDone receives (without blocking) each time a connection ends,
	// for Shutdown.
	connsDone chan struct{}
	serving   sync.WaitGroup
	// workers run the streams' handlers; sweeping ends with stopSweep.
	workers   workers
	stopSweep chan struct{}
}

// ErrServerClosed is what Serve returns after Shutdown or Close.
var ErrServerClosed = errors.New("h2: server closed")

// Serve serves the connections ln accepts until ln fails or the server
// is shut down or closed.
func (srv *Server) Serve(ln net.Listener) error {
	srv.mu.Lock()
	if srv.shutdown || srv.closed {
		srv.mu.Unlock()
		return ErrServerClosed
	}
	srv.lns = append(srv.lns, ln)
	srv.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			if srv.stopped() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		srv.ServeConn(c)
	}
}

// ServeConn serves c in goroutines of its own, which end with it.
func (srv *Server) ServeConn(nc net.Conn) {
	c := srv.add(func() *conn { return newConn(srv, nc) })
	if c == nil {
		nc.Close()
		return
	}
	go func() {
		c.serve()
		srv.remove(c)
	}()
}

// add makes a connection (mk) and counts it among the server's, unless
// the server is shut down or closed: then it returns nil.
func (srv *Server) add(mk func() *conn) *conn {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.shutdown || srv.closed {
		return nil
	}
	if srv.conns == nil {
		srv.conns = map[*conn]struct{}{}
		srv.connsDone = make(chan struct{}, 1)
		srv.stopSweep = make(chan struct{})
		srv.serving.Go(srv.sweep)
	}
	c := mk()
	srv.conns[c] = struct{}{}
	srv.serving.Add(1)
	return c
}

// remove forgets c, which ended.
func (srv *Server) remove(c *conn) {
	srv.mu.Lock()
	delete(srv.conns, c)
	srv.mu.Unlock()
	select {
	case srv.connsDone <- struct{}{}:
	default:
	}
	srv.serving.Done()
}

// sweep ends the workers that stay idle, until the server stops.
func (srv *Server) sweep() {
	t := time.NewTicker(workerIdle)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			srv.workers.sweep()
		case <-srv.stopSweep:
			srv.workers.stop()
			return
		}
	}
}

// endSweepLocked stops sweep, which stops the workers.
func (srv *Server) endSweepLocked() {
	if srv.stopSweep != nil {
		select {
		case <-srv.stopSweep:
		default:
			close(srv.stopSweep)
		}
	}
}

func (srv *Server) stopped() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.shutdown || srv.closed
}

// Shutdown sends every connection a GOAWAY, lets the streams in flight
// finish and closes each connection when its last one has, until ctx ends;
// then it closes what is left and returns ctx's error.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	srv.shutdown = true
	srv.closeListenersLocked()
	for c := range srv.conns {
		c.goAway()
	}
	srv.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		srv.mu.Lock()
		n := len(srv.conns)
		done := srv.connsDone
		srv.mu.Unlock()
		if n == 0 {
			srv.mu.Lock()
			srv.endSweepLocked()
			srv.mu.Unlock()
			srv.serving.Wait()
			return nil
		}
		select {
		case <-done:
		case <-tick.C:
		case <-ctx.Done():
			srv.Close()
			return ctx.Err()
		}
	}
}

// Close closes every connection at once and waits for their goroutines
// to see it. Handlers still running end by themselves: their stream's
// context has ended and its writes fail.
func (srv *Server) Close() error {
	srv.mu.Lock()
	srv.closed = true
	srv.closeListenersLocked()
	srv.endSweepLocked()
	for c := range srv.conns {
		c.mu.Lock()
		c.dropLocked()
		c.mu.Unlock()
	}
	srv.mu.Unlock()
	srv.serving.Wait()
	return nil
}

func (srv *Server) closeListenersLocked() {
	for _, ln := range srv.lns {
		ln.Close()
	}
	srv.lns = nil
}
