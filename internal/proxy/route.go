package proxy

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/balance"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/store"
	"github.com/podpin/podpin/internal/table"
)

// missing-key policies, resolved from config.
const (
	missingBalance = iota
	missingAssign
	missingReject
)

// route is one configured route, ready for the request path. Its settings
// are immutable; its pod set is swapped atomically. Safe for concurrent use.
type route struct {
	name string

	host       []byte // lower case; empty: any
	pathPrefix []byte // element-wise; empty: any
	path       []byte // exact; empty: any
	headers    []headerMatch

	key         keySource
	missing     int
	missingName string
	// newSessions caps new entries per client address; nil: no cap.
	newSessions *sessionLimiter
	learn       bool
	drain       bool // draining pods keep their sessions
	strict      bool // never rebind
	passive     passive
	active      config.Active

	bal         balance.Balancer
	fallback    balance.Balancer // hash: places keys while the shared table is out of reach
	balName     string
	sessions    sessions
	shared      *store.Route // nil for a memory store
	table       *table.Table
	tableConfig config.Table // what table was built from
	digest      table.Digester
	upstream    upstreamSettings // what pod connections were built with

	pods    atomic.Pointer[podSet]
	rebinds rebindCounts
	m       *metrics.Route
	log     *slog.Logger

	// refresh rebuilds the pod set of the route now serving under this name
	// (a reload may have replaced this one), after a pod's health changed.
	refresh func()

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

type headerMatch struct {
	name  string
	value []byte
}

// matches reports whether the request belongs to this route.
func (r *route) matches(ctx *fasthttp.RequestCtx) bool {
	if len(r.host) > 0 && !hostEqual(ctx.Request.Header.Host(), r.host) {
		return false
	}
	if len(r.pathPrefix) > 0 && !pathHasPrefix(ctx.Path(), r.pathPrefix) {
		return false
	}
	if len(r.path) > 0 && !bytes.Equal(ctx.Path(), r.path) {
		return false
	}
	for _, h := range r.headers {
		if !bytes.Equal(ctx.Request.Header.Peek(h.name), h.value) {
			return false
		}
	}
	return true
}

// pathHasPrefix reports whether prefix starts path element by element:
// "/api" starts "/api" and "/api/v1" but not "/apis" (Gateway API
// PathPrefix, Ingress pathType Prefix). A prefix ending in '/' starts
// everything under it.
func pathHasPrefix(path, prefix []byte) bool {
	if !bytes.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// hostEqual compares a Host header, ignoring any port and case, with want.
// A want of "*.example.com" matches one label in front of "example.com".
func hostEqual(host, want []byte) bool {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && !bytes.HasSuffix(host, []byte("]")) {
		host = host[:i]
	}
	if suffix, ok := bytes.CutPrefix(want, []byte("*")); ok {
		i := bytes.IndexByte(host, '.')
		return i > 0 && bytes.EqualFold(host[i:], suffix)
	}
	return bytes.EqualFold(host, want)
}

// decision is where a request goes and how it got there.
type decision struct {
	pod    *pod
	result int // metrics.LookupHit...
	from   string
	reason string
	err    error
}

// placeFor finds the pod for a request with key k from client: its pinned
// pod when that pod can serve it, else a new one from the balancer, claimed
// in the table. When the route caps new sessions per address, a key that
// would create an entry over client's allowance is refused with
// errNewSessions.
func (r *route) placeFor(set *podSet, k table.Key, raw []byte, client netip.Addr) decision {
	var d decision
	name, ok := r.sessions.Lookup(k)
	if !ok && r.newSessions != nil && client.IsValid() && !r.newSessions.allow(client, time.Now()) {
		d.err = errNewSessions
		return d
	}
	if ok {
		p := set.byName[name]
		switch {
		case p == nil:
			d.reason = reasonGone
		case p.state == discovery.NotReady:
			d.reason = reasonUnready
		case p.out != "":
			d.reason = p.out
		case p.state == discovery.Ready || r.drain:
			return decision{pod: p, result: metrics.LookupHit}
		default:
			d.reason = reasonDraining
		}
		d.from = name
		if r.strict {
			d.err = errStrict
			return d
		}
	}
	d.pod = r.pick(set.fresh, k.Lo)
	if d.pod == nil {
		d.err = errNoPod
		return d
	}
	d.result = metrics.LookupMiss
	if winner := r.sessions.Claim(k, d.from, d.pod.name, raw); winner != d.pod.name {
		// Another replica placed the key first: follow it when its pod can
		// take the request here.
		if p := set.byName[winner]; p != nil && (p.takesNew() || (p.state == discovery.Draining && r.drain && p.out == "")) {
			return decision{pod: p, result: metrics.LookupHit}
		}
	}
	if d.from != "" {
		d.result = metrics.LookupRebind
		r.rebound(d.from, d.reason)
	}
	return d
}

// rebind moves key k off a pod that refused the connection, onto another
// candidate. It returns nil when none is left.
func (r *route) rebind(set *podSet, k table.Key, raw []byte, failed *pod) *pod {
	p := r.pick(set.without(failed), k.Lo)
	if p == nil {
		return nil
	}
	if winner := r.sessions.Claim(k, failed.name, p.name, raw); winner != p.name {
		if w := set.byName[winner]; w != nil && w.takesNew() {
			p = w
		}
	}
	r.rebound(failed.name, reasonConnectFailed)
	return p
}

// rebound counts a session moved off pod.
func (r *route) rebound(pod, reason string) {
	r.rebinds.add(pod, reason)
	r.m.Rebound(pod, reason)
}

func (r *route) pick(candidates []balance.Pod, key uint64) *pod {
	bal := r.bal
	if r.sessions.Degraded() {
		bal = r.fallback
	}
	i := bal.Pick(key, candidates)
	if i < 0 {
		return nil
	}
	return candidates[i].(*pod)
}

// setPods installs a new endpoint set from the route's source.
func (r *route) setPods(eps []discovery.Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.eps = eps
	r.rebuildLocked()
}

// rebuildLocked swaps in a pod set built from r.eps and the current health
// of each pod, reusing the backends of pods that kept their name and
// address. r.mu must be held.
func (r *route) rebuildLocked() {
	old := map[string]*backend{}
	if cur := r.pods.Load(); cur != nil {
		for _, p := range cur.all {
			old[p.name+"\x00"+p.addr] = p.backend
		}
	}
	now := time.Now()
	pods := make([]*pod, 0, len(r.eps))
	for _, ep := range r.eps {
		b := old[ep.Name+"\x00"+ep.Address]
		if b == nil {
			b = r.newBackend(ep)
		}
		p := &pod{backend: b, state: ep.State, weight: max(ep.Weight, 1)}
		switch {
		case b.health.unhealthy.Load():
			p.out = reasonUnhealthy
		case b.health.ejectedAt(now):
			p.out = reasonEjected
		}
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

func lower(s string) []byte { return []byte(strings.ToLower(s)) }
