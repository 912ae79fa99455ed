// Package proxy is podpin's data plane: its two front ends and the owner of
// its routes. Each request is checked at the edge, placed by package place
// (which pod serves it), and forwarded to that pod, streaming both bodies
// and tunnelling upgraded connections. The package builds the routes from
// the configuration, keeps their pods and connection pools, runs their
// active health checks, tells placement what came of each request, and
// answers placement's refusals in the client's protocol.
//
// HTTP/1.1 is served by fasthttp: its server and its request and response
// types cost a fraction of net/http's CPU per request, which is what lets
// podpin stand beside HAProxy. The connections to each pod are a pool of
// its own (podClient), over TLS to a pod that speaks https: verified with
// the route's pods.tls, built once per Apply (podtls.go). HTTP/2 (h2 by
// ALPN, h2c by prior knowledge) is served by net/http's server and
// forwarded with httputil.ReverseProxy (h2.go), which passes trailers and
// streams as gRPC needs; so are HTTP/1.1 requests to pods that speak only
// h2c (forwardh2c.go). Every listener serves both protocols on one port
// (server.go).
package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http/httputil"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/balance"
	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/place"
	"github.com/podpin/podpin/internal/store"
	"github.com/podpin/podpin/internal/table"
)

// Proxy routes requests to pods by session key. Safe for concurrent use.
type Proxy struct {
	log        *slog.Logger
	metrics    *metrics.Metrics
	certSource *certs.Source // nil without Options.Certificates
	// listenerCerts are the certificates of managed listeners, by
	// address; nil without Options.ListenerCertificates
	listenerCerts *certs.Sources
	digest        table.Digester
	discoverer    Discoverer
	shared        *store.Redis

	state   atomic.Pointer[state]
	tunnels tunnels
	// h2 forwards the streams of the HTTP/2 front end.
	h2 *httputil.ReverseProxy
	// bufs are the buffers HTTP/2 bodies are copied through.
	bufs bufferPool
	// keyBufs holds *[256]byte buffers that session keys are copied into,
	// one per request in flight: the key must outlive the header rewrite of
	// forwarding, and a pooled buffer keeps that copy off the heap.
	keyBufs sync.Pool

	// clock is the route tables' coarse clock; Close stops it.
	clock *table.Clock
	// budget bounds the entries of every route's table together.
	budget *table.Budget
	// memLimit is Go's memory limit in bytes, which a zero
	// limits.tableEntries derives the budget from.
	memLimit int64

	// guards Apply and stop
	mu sync.Mutex
	// stop ends the endpoint sources and health checks of the routes now
	// serving; nil before the first Apply and after Close.
	stop func()

	// guards loops and loopFronts
	loopMu sync.Mutex
	// loops run while any listener is served by them: loopFronts counts
	// those listeners.
	loops      *eventLoops
	loopFronts int

	// guards synced and syncedClosed
	syncMu sync.Mutex
	// synced is closed once every route of the running configuration has
	// had its first endpoint set (see Synced).
	synced       chan struct{}
	syncedClosed bool
}

// state is one applied configuration. Immutable; swapped whole.
type state struct {
	routes    []*route
	podHeader []byte // the pod header's canonical name; nil when off
	podField  string // the pod header's name in lower case, for HTTP/2
	upstream  upstreamSettings
	limits    limitSettings
}

// Options are a Proxy's dependencies.
type Options struct {
	// Logger receives state changes; nil discards.
	Logger *slog.Logger
	// Metrics counts requests; nil builds unregistered metrics.
	Metrics *metrics.Metrics
	// KeySecret keys the digest of session keys; empty uses a fixed key.
	KeySecret []byte
	// Discoverer makes the endpoint source of every route. Nil: a
	// discovery.Factory without a Kubernetes client, which serves static
	// backends and DNS names and refuses routes that name a Service.
	Discoverer Discoverer
	// Shared is the Redis store for routes whose store is redis; nil
	// refuses such routes.
	Shared *store.Redis
	// MemoryLimit is Go's memory limit in bytes, which a zero
	// limits.tableEntries derives the tables' total budget from (see
	// table.EntriesFor). 0: the runtime's limit, as GOMEMLIMIT or
	// debug.SetMemoryLimit set it.
	MemoryLimit int64
	// Certificates, when not nil, is a source of certificates every TLS
	// listener serves before its own files (the Secrets of Ingresses), and
	// of the hosts whose cleartext requests get a redirect to https.
	Certificates *certs.Source
	// ListenerCertificates, when not nil, holds the certificates of the
	// TLS listeners whose certificates a controller sets
	// (config.ListenerTLS.Managed): each serves the Source For its
	// address, and neither files nor Certificates. Nil: such listeners
	// do not start.
	ListenerCertificates *certs.Sources
}

// Discoverer makes the endpoint source of the route named route, whose pods
// come from where s says.
type Discoverer interface {
	Source(route string, s discovery.Spec) (discovery.Source, error)
}

// New returns a proxy with no routes: every request gets 404 until Apply.
// Close stops the goroutines it starts.
func New(o Options) *Proxy {
	p := &Proxy{
		log:           o.Logger,
		metrics:       o.Metrics,
		digest:        table.NewDigester(o.KeySecret),
		discoverer:    o.Discoverer,
		shared:        o.Shared,
		clock:         table.NewClock(),
		budget:        table.NewBudget(0),
		memLimit:      o.MemoryLimit,
		certSource:    o.Certificates,
		listenerCerts: o.ListenerCertificates,
		synced:        make(chan struct{}),
	}
	if p.memLimit == 0 {
		p.memLimit = debug.SetMemoryLimit(-1)
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.discoverer == nil {
		p.discoverer = &discovery.Factory{Log: p.log}
	}
	if p.metrics == nil {
		p.metrics = metrics.New(nil, nil)
	}
	p.state.Store(&state{limits: newLimitSettings(config.Limits{})})
	p.keyBufs.New = func() any { return new([256]byte) }
	p.h2 = p.newH2Forwarder()
	return p
}

// Apply makes cfg the running configuration; it is how a reload takes
// effect. cfg must be valid (Validate). Requests in flight finish on the
// configuration they started with. Routes that keep their name keep their
// stick table, so no session is lost; pods that keep their name and address
// keep their connections, counters and health. Static backends are in place
// when Apply returns; a route whose pods are found keeps its predecessor's
// until its source reports. When Apply fails, the running routes stay as
// they were.
func (p *Proxy) Apply(cfg *config.Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := map[string]*route{}
	for _, r := range p.state.Load().routes {
		old[r.Name] = r
	}
	st := &state{
		podHeader: canonicalName(cfg.PodHeaderName()),
		podField:  strings.ToLower(cfg.PodHeaderName()),
		limits:    newLimitSettings(cfg.Limits),
		upstream: upstreamSettings{
			connectTimeout:  cfg.Upstream.ConnectTimeout,
			readTimeout:     cfg.Upstream.ResponseTimeout,
			idleConnTimeout: cfg.Upstream.IdleConnTimeout,
			maxConns:        cfg.Upstream.MaxConnsPerPod,
		},
	}
	for _, rc := range cfg.Routes {
		r, err := p.newRoute(rc, old[rc.Name], st.upstream)
		if err != nil {
			return err
		}
		st.routes = append(st.routes, r)
	}
	// Nothing running is touched before every route is built, so a failed
	// Apply leaves the running routes as they were. A route keeps its
	// predecessor's pods until its source reports.
	for _, r := range st.routes {
		prev := old[r.Name]
		if prev != nil && prev.upstream == r.upstream && prev.Table == r.Table &&
			prev.protocol == r.protocol && samePodTLS(prev.podTLS, r.podTLS) {
			prev.mu.Lock()
			r.pods.Store(prev.pods.Load())
			r.eps = prev.eps
			prev.mu.Unlock()
			r.synced.Store(prev.synced.Load())
		}
		if r.pods.Load() == nil {
			r.pods.Store(newPodSet(nil))
		}
	}
	// The sources start before the routes serve: a static route has its
	// pods when its source's Start returns. They start before their
	// predecessors stop, so a Service's shared informer lives on across a
	// reload instead of being torn down and listed again.
	stopSources := make([]func(), len(st.routes))
	for i, r := range st.routes {
		stopSources[i] = r.source.Start(r.onEndpoints)
	}
	p.state.Store(st)
	p.setBudget(cfg, st.routes)
	for name := range old {
		if !slices.ContainsFunc(cfg.Routes, func(rc config.Route) bool { return rc.Name == name }) {
			p.log.Info("route removed", "route", name)
		}
	}
	stopChecks := startChecks(st.routes)
	if p.stop != nil {
		p.stop()
	}
	p.stop = func() {
		stopChecks()
		for _, stop := range stopSources {
			stop()
		}
	}
	p.noteSynced()
	return nil
}

// setBudget makes the tables of routes, and only those, share the total
// entry budget: limits.tableEntries, or when 0 the budget derived from the
// memory limit and the longest raw keys kept.
func (p *Proxy) setBudget(cfg *config.Config, routes []*route) {
	limit := cfg.Limits.TableEntries
	if limit == 0 {
		raw := 0
		for _, rc := range cfg.Routes {
			if rc.Table.KeepRawKeys {
				raw = max(raw, rc.Sticky.MaxKeyBytes)
			}
		}
		limit = table.EntriesFor(p.memLimit, raw)
	}
	tables := make([]*table.Table, len(routes))
	for i, r := range routes {
		tables[i] = r.Table
	}
	p.budget.SetTables(tables)
	if limit != p.budget.Limit() {
		p.log.Info("stick table budget", "entries", limit, "memoryLimitBytes", p.memLimit)
		p.budget.SetLimit(limit)
	}
	p.metrics.TableBudget(limit)
}

// startChecks starts the active health checks of routes, and returns the
// function that stops them and waits for them to end.
func startChecks(routes []*route) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range routes {
		if r.active.Path != "" {
			wg.Go(func() { r.checker(ctx, r.active) })
		}
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// Close stops every goroutine the proxy started: the routes' endpoint
// sources and health checks, and the tables' clock, after which the tables
// no longer see time pass. It does not close listeners; Serve does that
// when its context ends. A closed proxy is not applied again.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		p.stop()
		p.stop = nil
	}
	p.clock.Stop()
}

// sourceSpec is where rc's pods come from, for discovery. rc must be valid.
func sourceSpec(rc config.Route) discovery.Spec {
	var s discovery.Spec
	for _, b := range rc.Backends {
		addr, protocol, _ := config.BackendURL(b.URL)
		st := discovery.Ready
		switch b.State {
		case "draining":
			st = discovery.Draining
		case "not-ready":
			st = discovery.NotReady
		}
		s.Backends = append(s.Backends, discovery.Endpoint{Name: b.Name, Address: addr, Weight: b.Weight, State: st, Protocol: protocol})
	}
	if svc := rc.Service; svc != nil {
		s.Service = &discovery.Service{Namespace: svc.Namespace, Name: svc.Name, Port: svc.Port}
	}
	for _, ws := range rc.Services {
		s.Services = append(s.Services, discovery.WeightedService{
			Service: discovery.Service{Namespace: ws.Namespace, Name: ws.Name, Port: ws.Port},
			Weight:  ws.WeightOrDefault(),
		})
	}
	if d := rc.DNS; d != nil {
		s.DNS = &discovery.DNS{Name: d.Name, Port: d.Port, Interval: d.Interval}
	}
	return s
}

func (p *Proxy) newRoute(rc config.Route, prev *route, us upstreamSettings) (*route, error) {
	bal, err := balance.New(rc.Balancer)
	if err != nil {
		return nil, err
	}
	var requestTimeout, backendTimeout time.Duration
	if t := rc.Timeouts.Request; t != nil {
		requestTimeout = *t
	}
	if t := rc.Timeouts.BackendRequest; t != nil {
		// The route's bound on each attempt replaces the global wait for
		// a pod's answer; 0 lifts both.
		backendTimeout, us.readTimeout = *t, *t
	}
	r := &route{
		Route: place.Route{
			Name:  rc.Name,
			Match: place.NewMatch(rc.Match),
			Key: place.KeySource{
				Header:   rc.Sticky.Header,
				Cookie:   rc.Sticky.Cookie,
				Query:    rc.Sticky.Query,
				ClientIP: rc.Sticky.ClientIP,
				MaxBytes: rc.Sticky.MaxKeyBytes,
			},
			LearnKeys: rc.Sticky.Learn,
			Digest:    p.digest,
			Placer: place.Placer{
				Balancer:    bal,
				NewSessions: place.NewSessionLimiter(rc.Sticky.NewSessionsPerIP, rc.Sticky.NewSessionsBurst),
				Drain:       rc.DrainEnabled(),
				Strict:      rc.Strict,
				Rebinds:     new(place.RebindCounts),
				Metrics:     p.metrics.Route(rc.Name),
			},
		},
		matchConfig:    rc.Match,
		cookie:         newSessionCookie(rc.Sticky),
		filters:        newFilters(rc),
		respond:        respondStatus(rc.Respond),
		requestTimeout: requestTimeout,
		backendTimeout: backendTimeout,
		missingName:    rc.Sticky.Missing,
		keyField:       strings.ToLower(rc.Sticky.Header),
		active:         rc.Health.Active,
		balName:        rc.Balancer,
		upstream:       us,
		protocol:       rc.Pods.Protocol,
	}
	if r.podTLS, err = newPodTLS(rc); err != nil {
		return nil, err
	}
	r.Passive = place.NewPassive(rc.Health.Passive)
	r.Log = p.log.With("route", rc.Name)
	r.Rebuild = r.rebuild
	if rc.Redirect != nil || rc.Respond != nil {
		// A route that redirects or responds by itself forwards nothing:
		// it has no pods.
		r.source = discovery.NewStatic(nil)
	} else if r.source, err = p.discoverer.Source(rc.Name, sourceSpec(rc)); err != nil {
		return nil, fmt.Errorf("route %q: %w", rc.Name, err)
	}
	r.Refresh = func() {
		if cur, err := p.route(r.Name); err == nil {
			cur.rebuild()
		}
	}
	r.onEndpoints = func(eps []discovery.Endpoint) {
		p.updatePods(r, eps)
		if !r.synced.Load() {
			r.synced.Store(true)
			p.noteSynced()
		}
	}
	r.newBackend = func(ep discovery.Endpoint) *backend {
		protocol := podProtocol(r.protocol, ep.Protocol)
		var tc *tls.Config
		if protocol == config.PodHTTPS {
			tc = r.podTLS
			if tc == nil {
				// A source reported https where the configuration
				// foresaw none: verify against the system's roots.
				tc = &tls.Config{MinVersion: tls.VersionTLS12}
			}
		}
		b := &backend{
			name:     ep.Name,
			nameV:    []byte(ep.Name),
			addr:     ep.Address,
			ip:       ipOf(ep.Address),
			protocol: protocol,
			client:   newPodClient(ep.Address, us, tc),
			sessions: r.Table.SessionCounter(ep.Name),
			tally:    place.Tally{Metrics: p.metrics.Pod(r.Name, ep.Name)},
		}
		if protocol == config.PodH2C {
			b.h2 = newPodPool(ep.Address, us)
		}
		return b
	}
	if prev != nil {
		r.Rebinds.Continue(prev.Rebinds)
	}
	if prev != nil && prev.upstream == us && samePodTLS(prev.podTLS, r.podTLS) {
		r.transports = prev.transports
	} else {
		r.transports = newPodTransports(us, r.podTLS)
	}
	switch rc.Sticky.Missing {
	case config.MissingAssign:
		r.Missing = place.MissingAssign
	case config.MissingReject:
		r.Missing = place.MissingReject
	}
	tc := table.Config{
		MaxEntries:      rc.Table.MaxEntries,
		IdleTimeout:     rc.Table.IdleTimeout,
		AbsoluteTimeout: rc.Table.AbsoluteTimeout,
		KeepRawKeys:     rc.Table.KeepRawKeys,
		Clock:           p.clock,
	}
	switch {
	case prev != nil && prev.tableConfig == rc.Table:
		r.Table = prev.Table
	case prev != nil:
		// The new table joins the budget only when the configuration is
		// applied (setBudget): until then Restore evicts nothing, and
		// so takes no other table's lock while Range holds prev's.
		r.Table = table.New(tc)
		prev.Table.Range(func(e table.Entry) bool {
			r.Table.Restore(e)
			return true
		})
		r.Log.Info("stick table resized", "entries", r.Table.Len())
	default:
		r.Table = table.New(tc)
	}
	r.tableConfig = rc.Table
	r.Fallback, _ = balance.New(balance.Hash)
	r.Sessions = place.Local{T: r.Table}
	if rc.Store == config.StoreRedis {
		if p.shared == nil {
			return nil, fmt.Errorf("route %q: store redis needs a restart: podpin started without a Redis connection (store.type or a route's store, with store.redis)", rc.Name)
		}
		r.shared = p.shared.Route(rc.Name, r.Table, rc.Table.IdleTimeout, rc.Table.AbsoluteTimeout, rc.Table.KeepRawKeys)
		r.Sessions = r.shared
	}
	return r, nil
}

// Synced returns a channel that is closed once every route of the running
// configuration has its pods: a static route at once, a route that names a
// Service once the Kubernetes caches synced, a DNS route at the first
// answer. A configuration applied before then takes over: the channel
// waits for its routes instead. Once closed, the channel stays closed; a
// later Apply that brings a route without pods makes Synced return a new
// one. Readiness waits on it.
func (p *Proxy) Synced() <-chan struct{} {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	return p.synced
}

// noteSynced closes the synced channel when every route of the running
// configuration has its pods, or replaces a closed one when not. It runs
// after each Apply and each route's first report; reading the state under
// syncMu makes the last of them decide.
func (p *Proxy) noteSynced() {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	all := !slices.ContainsFunc(p.state.Load().routes, func(r *route) bool { return !r.synced.Load() })
	switch {
	case all && !p.syncedClosed:
		close(p.synced)
		p.syncedClosed = true
	case !all && p.syncedClosed:
		p.synced = make(chan struct{})
		p.syncedClosed = false
	}
}

// updatePods installs a route's endpoint set, logging pods that come and go.
func (p *Proxy) updatePods(r *route, eps []discovery.Endpoint) {
	before := map[string]discovery.State{}
	if cur := r.pods.Load(); cur != nil {
		for _, pd := range cur.all {
			before[pd.name] = pd.state
		}
	}
	r.setPods(eps)
	for _, ep := range eps {
		st, ok := before[ep.Name]
		switch {
		case !ok:
			r.Log.Info("pod added", "pod", ep.Name, "address", ep.Address, "state", ep.State, "protocol", podProtocol(r.protocol, ep.Protocol))
		case st != ep.State:
			r.Log.Info("pod state changed", "pod", ep.Name, "from", st, "to", ep.State)
		}
		delete(before, ep.Name)
	}
	for name := range before {
		r.Log.Info("pod removed", "pod", name)
		p.metrics.ForgetPod(r.Name, name)
	}
}

// Run expires idle table entries until ctx ends.
func (p *Proxy) Run(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			for _, r := range p.state.Load().routes {
				r.Table.Expire()
			}
		}
	}
}

// RouteStats reports every route's table and pods for the metrics
// collector.
func (p *Proxy) RouteStats() []metrics.RouteStats {
	var out []metrics.RouteStats
	for _, r := range p.state.Load().routes {
		s := r.Table.Stats()
		rs := metrics.RouteStats{
			Route:           r.Name,
			Entries:         s.Entries,
			MaxEntries:      r.Table.MaxEntries(),
			Evictions:       s.Evictions,
			BudgetEvictions: s.BudgetEvictions,
			IdleExpired:     s.IdleExpired,
			AbsoluteExpired: s.AbsoluteExpired,
			Sessions:        map[string]int64{},
			InFlight:        map[string]int64{},
		}
		for _, pd := range r.pods.Load().all {
			rs.Sessions[pd.name] = pd.sessions.Load()
			rs.InFlight[pd.name] = pd.tally.InFlight()
		}
		out = append(out, rs)
	}
	return out
}

// Handler returns the fasthttp request handler.
func (p *Proxy) Handler() fasthttp.RequestHandler { return p.serve }

// canonicalName returns a header name in the form fasthttp keeps names in,
// for setting it without normalizing it on every request; nil for "".
func canonicalName(name string) []byte {
	if name == "" {
		return nil
	}
	return fasthttp.AppendNormalizedHeaderKey(nil, name)
}
