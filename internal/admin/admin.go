// Package admin serves podpin's operators' listener: health probes, the
// Prometheus metrics, a JSON API over the stick tables (routes, pods,
// sessions: list, get, pin, unpin, clear), the runtime profiler and a web
// console. See README.md for the API with examples.
//
// Access rules, checked before any handler runs:
//
//   - /healthz and /readyz are always open, for probes.
//   - A request whose Origin header is not the origin it was sent to, or,
//     on a loopback listener, whose Host is neither the listener address
//     nor localhost, 127.0.0.1 or [::1], is refused with 403: a web page in
//     an operator's browser cannot drive the API (cross-site requests, DNS
//     rebinding).
//   - /metrics is open when Options.OpenMetrics is set, so Prometheus
//     scrapes it without a secret.
//   - With a token configured, every other request but the console's static
//     files must carry "Authorization: Bearer <token>", or the read-only
//     token, or gets 401. The read-only token reads (GET and HEAD) the API,
//     the metrics and the console; a change (PUT, DELETE) or the profiler
//     with it gets 403 with the reason.
//
// Reads are GET; changes are PUT and DELETE. Errors are JSON objects
// {"error": "one line"}.
//
// The package owns the API's JSON (wire.go): the proxy reports in its own
// terms through Reader and Editor, and the API translates. Clients decode
// the same types (internal/adminclient).
package admin

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/podpin/podpin/internal/proxy"
	"github.com/podpin/podpin/internal/table"
)

// Reader reads the proxy's routes, pods and sessions, in the proxy's terms;
// the API translates them into its JSON (wire.go).
type Reader interface {
	Routes() []proxy.RouteStatus
	Route(name string) (proxy.RouteStatus, error)
	Sessions(route string, q proxy.SessionQuery) (proxy.SessionPage, error)
	Session(route, key string) (table.Entry, error)
}

// Editor moves and drops the proxy's sessions.
type Editor interface {
	Pin(route, key, pod string) (table.Entry, error)
	Unpin(route, key string) (bool, error)
	ClearPod(route, pod string) (int, error)
}

// Inspector is what the API and the console serve: reads and edits.
type Inspector interface {
	Reader
	Editor
}

var _ Inspector = (*proxy.Proxy)(nil)

// Options are the admin server's settings and dependencies.
type Options struct {
	// Address is the address the admin listener is bound to (host:port, as
	// net.Listener.Addr reports it). It decides the Host check: on a
	// loopback address, requests must name it or a localhost alias. Empty
	// or not loopback: no Host check (the token protects the listener).
	Address string
	// Token, when not empty, must be sent as "Authorization: Bearer
	// <token>" with every request but the probes and the console's static
	// files. Empty: no token (allowed on loopback listeners only, which
	// the caller checks).
	Token string
	// ReadToken, when not empty, is a second bearer token that reads the
	// API, the metrics and the console, and is refused for changes and the
	// profiler. It has no effect without Token.
	ReadToken string
	// OpenMetrics serves /metrics without a token. False: /metrics needs
	// the token or the read-only token, like the API.
	OpenMetrics bool
	// Gatherer serves /metrics; nil answers 404 there.
	Gatherer prometheus.Gatherer
	// Inspector serves the JSON API and the console; nil answers 404 there.
	Inspector Inspector
	// Logger receives changes made through the API and internal errors;
	// nil discards.
	Logger *slog.Logger
	// Now is the clock for session ages in listings; nil uses time.Now.
	Now func() time.Time
}

// Server is the admin HTTP handler. Safe for concurrent use.
type Server struct {
	mux    *http.ServeMux
	access access
	proxy  Inspector
	log    *slog.Logger
	now    func() time.Time
	ready  atomic.Bool
}

// New returns an admin server that is not ready until SetReady(true).
func New(o Options) *Server {
	s := &Server{
		mux:    http.NewServeMux(),
		access: newAccess(o.Address, o.Token, o.ReadToken, o.OpenMetrics),
		proxy:  o.Inspector,
		log:    o.Logger,
		now:    o.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if o.Gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	// The profiler is mounted here explicitly; podpin never serves
	// http.DefaultServeMux, where the pprof package also registers itself.
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if s.proxy != nil {
		s.routeAPI()
		s.routeConsole()
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such page: "+r.URL.Path)
	})
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

// ServeHTTP applies the access rules, then serves the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
		s.mux.ServeHTTP(w, r)
		return
	}
	if msg := s.access.foreign(r); msg != "" {
		writeError(w, http.StatusForbidden, msg)
		return
	}
	if isConsoleFile(r) || r.URL.Path == "/metrics" && s.access.openMetrics {
		s.mux.ServeHTTP(w, r)
		return
	}
	switch s.access.level(r) {
	case levelNone:
		w.Header().Set("WWW-Authenticate", `Bearer realm="podpin admin"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	case levelRead:
		if msg := readOnlyRefusal(r); msg != "" {
			writeError(w, http.StatusForbidden, msg)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}
