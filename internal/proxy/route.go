package proxy

import (
	"crypto/tls"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/place"
	"github.com/podpin/podpin/internal/store"
)

// route is one configured route, ready for the request path: placement's
// view of it (place.Route) and the pods it forwards to. Its settings are
// immutable; its pod set is swapped atomically. Safe for concurrent use.
type route struct {
	place.Route

	matchConfig config.Match // what Match was built from
	// cookie hands minted keys out as a cookie; nil: in the key header only
	cookie *sessionCookie
	// filters edit requests and answers, or redirect; nil: none
	filters *filters
	// respond is the status the route answers every request with by
	// itself (routes[].respond); 0: it forwards.
	respond     int
	missingName string
	// keyField is Key.Header as HTTP/2 writes it, in lower case.
	keyField string
	active   config.Active

	// requestTimeout bounds a whole exchange, backendTimeout each attempt
	// with a pod (routes[].timeouts); 0: no bound.
	requestTimeout, backendTimeout time.Duration

	balName     string
	shared      *store.Route     // nil for a memory store
	tableConfig config.Table     // what Table was built from
	upstream    upstreamSettings // what pod connections were built with

	// protocol is pods.protocol: what every pod speaks, "" for what each
	// pod's source says.
	protocol string
	// podTLS verifies the route's https pods: built once when the
	// configuration is applied, shared by their connection pools and by
	// any other client of the route's pods. nil when no pod of the route
	// can speak https. Its ServerName is empty unless pods.tls.serverName
	// is set: each pod's host is checked then. Read-only.
	podTLS *tls.Config

	pods atomic.Pointer[podSet]
	// transports are the clients of the HTTP/2 front end to the pods.
	transports *podTransports

	// guards eps and the rebuilding of pods
	mu  sync.Mutex
	eps []discovery.Endpoint // as the source last reported them
	// newBackend makes the backend of a pod not seen before.
	newBackend func(discovery.Endpoint) *backend

	// source reports the pods: static backends, a Service's or a DNS
	// name's.
	source discovery.Source
	// synced is set once the route has had its first endpoint set.
	synced atomic.Bool
	// onEndpoints installs an endpoint set reported by source.
	onEndpoints func([]discovery.Endpoint)
}

// setPods installs a new endpoint set from the route's source.
func (r *route) setPods(eps []discovery.Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.eps = eps
	r.rebuildLocked()
}

// rebuildLocked swaps in a pod set built from r.eps and the current health
// of each pod, reusing the backends of pods that kept their name, address
// and protocol. r.mu must be held.
func (r *route) rebuildLocked() {
	old := map[string]*backend{}
	if cur := r.pods.Load(); cur != nil {
		for _, p := range cur.all {
			old[p.name+"\x00"+p.addr+"\x00"+p.protocol] = p.backend
		}
	}
	now := time.Now()
	pods := make([]*pod, 0, len(r.eps))
	for _, ep := range r.eps {
		b := old[ep.Name+"\x00"+ep.Address+"\x00"+podProtocol(r.protocol, ep.Protocol)]
		if b == nil {
			b = r.newBackend(ep)
		}
		p := &pod{backend: b, state: ep.State, weight: max(ep.Weight, 1), out: b.health.Out(now)}
		pods = append(pods, p)
	}
	r.pods.Store(newPodSet(pods))
}

// rebuild is rebuildLocked for callers without the lock.
func (r *route) rebuild() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rebuildLocked()
}

// deadline is when an attempt with a pod that starts at now must end, for
// a request that podpin had at start: the earlier of the route's request
// and backend bounds; zero when it has neither.
func (r *route) deadline(start, now time.Time) time.Time {
	var d time.Time
	if r.requestTimeout > 0 {
		d = start.Add(r.requestTimeout)
	}
	if r.backendTimeout > 0 {
		if b := now.Add(r.backendTimeout); d.IsZero() || b.Before(d) {
			d = b
		}
	}
	return d
}
