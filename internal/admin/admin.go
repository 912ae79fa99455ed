// Package admin serves podpin's operators' listener: /healthz (the process
// is alive), /readyz (configuration loaded and not shutting down) and
// /metrics (Prometheus text format).
package admin

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the admin HTTP handler. Safe for concurrent use.
type Server struct {
	mux   *http.ServeMux
	ready atomic.Bool
}

// Options are the admin server's dependencies.
type Options struct {
	// Gatherer serves /metrics; nil answers 404 there.
	Gatherer prometheus.Gatherer
}

// New returns an admin server that is not ready until SetReady(true).
func New(o Options) *Server {
	s := &Server{mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if o.Gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	return s
}

// SetReady sets what /readyz answers.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }
