package proxy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/place"
	"github.com/podpin/podpin/internal/store"
	"github.com/podpin/podpin/internal/table"
)

// RouteStatus is a route as the proxy runs it: its match and settings, its
// stick table's settings and counters, its pods, and the sessions moved off
// them.
type RouteStatus struct {
	Name string
	// Match is the route's match, as configured.
	Match     config.Match
	KeyHeader string
	Balancer  string
	Missing   string
	Strict    bool
	Drain     bool
	// Table holds the stick table's settings, TableStats its size and
	// counters.
	Table      config.Table
	TableStats table.Stats
	// Pods are the route's pods, in source order.
	Pods []PodStatus
	// Rebinds counts sessions moved off the route's pods, by reason.
	Rebinds map[string]uint64
}

// PodStatus is one pod of a route.
type PodStatus struct {
	Name    string
	Address string
	// State is ready, draining, not-ready, ejected or unhealthy.
	State    string
	Weight   int
	InFlight int64
	Sessions int64
	Requests uint64
	// Rebinds counts sessions moved off the pod, by reason.
	Rebinds map[string]uint64
}

// SessionQuery selects a page of a route's pinned sessions.
type SessionQuery struct {
	Pod    string        // only sessions pinned to this pod; "": any
	Prefix string        // only raw keys with this prefix (routes that keep raw keys); "": any
	MinAge time.Duration // only sessions created at least this long ago; 0: any
	MaxAge time.Duration // only sessions created at most this long ago; 0: any
	Idle   time.Duration // only sessions unused at least this long; 0: any
	Now    time.Time     // reference for ages; zero means time.Now()
	Limit  int           // most sessions on the page; below 1 counts as 1
	From   uint64        // where the listing goes on: the previous page's Next; 0 starts
}

// SessionPage is one page of a listing. A listing taken while the table
// changes is approximate (entries may be missed or repeated, as with Redis
// SCAN); a table that does not change is listed exactly once.
type SessionPage struct {
	Sessions []table.Entry
	// Next is where the listing goes on; 0 at the end.
	Next uint64
}

// maxScan bounds the entries one page examines, so a filter that matches
// little returns a partial page rather than holding the table long.
const maxScan = 100_000

func (p *Proxy) route(name string) (*route, error) {
	for _, r := range p.state.Load().routes {
		if r.Name == name {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoSuchRoute, name)
}

// Routes describes every route, in configuration order.
func (p *Proxy) Routes() []RouteStatus {
	var out []RouteStatus
	for _, r := range p.state.Load().routes {
		out = append(out, r.status())
	}
	return out
}

// Route describes one route.
func (p *Proxy) Route(name string) (RouteStatus, error) {
	r, err := p.route(name)
	if err != nil {
		return RouteStatus{}, err
	}
	return r.status(), nil
}

func (r *route) status() RouteStatus {
	st := RouteStatus{
		Name: r.Name, Match: r.matchConfig, KeyHeader: r.Key.Header, Balancer: r.balName, Missing: r.missingName,
		Strict: r.Strict, Drain: r.Drain, Table: r.tableConfig, TableStats: r.Table.Stats(),
		Rebinds: r.Rebinds.ByReason(""),
	}
	for _, pd := range r.pods.Load().all {
		st.Pods = append(st.Pods, PodStatus{
			Name: pd.name, Address: pd.addr, State: pd.stateName(), Weight: pd.weight,
			InFlight: pd.tally.InFlight(), Sessions: pd.sessions.Load(), Requests: pd.tally.Requests(),
			Rebinds: r.Rebinds.ByReason(pd.name),
		})
	}
	return st
}

// Session returns the entry of a raw key.
func (p *Proxy) Session(route, key string) (table.Entry, error) {
	r, err := p.route(route)
	if err != nil {
		return table.Entry{}, err
	}
	k := r.Digest.Key(r.Name, []byte(key))
	e, ok := r.Table.Peek(k)
	if r.shared != nil {
		if e, ok, err = r.shared.Get(k); err != nil {
			return table.Entry{}, err
		}
	}
	if !ok {
		return table.Entry{}, ErrNoSuchSession
	}
	return e, nil
}

// Pin points a raw key at pod, which must be in the route's pod set. An
// existing entry is moved (counted as a rebind with reason "admin").
func (p *Proxy) Pin(route, key, pod string) (table.Entry, error) {
	r, err := p.route(route)
	if err != nil {
		return table.Entry{}, err
	}
	if _, ok := r.pods.Load().byName[pod]; !ok {
		return table.Entry{}, fmt.Errorf("%w: %q", ErrNoSuchPod, pod)
	}
	k := r.Digest.Key(r.Name, []byte(key))
	prev, _ := r.Table.Peek(k)
	if r.shared != nil {
		if shared, ok, _ := r.shared.Get(k); ok {
			prev = shared
		}
		if err := r.shared.Pin(k, pod, []byte(key)); err != nil {
			return table.Entry{}, err
		}
	} else {
		r.Table.Store(k, pod, []byte(key))
	}
	if prev.Pod != "" && prev.Pod != pod {
		r.Rebound(prev.Pod, place.ReasonAdmin)
	}
	e, _ := r.Table.Peek(k)
	return e, nil
}

// Unpin removes a raw key's entry; false when it was not pinned.
func (p *Proxy) Unpin(route, key string) (bool, error) {
	r, err := p.route(route)
	if err != nil {
		return false, err
	}
	k := r.Digest.Key(r.Name, []byte(key))
	if r.shared != nil {
		return r.shared.Unpin(k)
	}
	return r.Table.Delete(k), nil
}

// ClearPod removes every entry pinned to pod, so its sessions rebind on
// their next request; it returns how many there were. pod need not be in
// the current pod set (entries of a pod already gone can be cleared).
func (p *Proxy) ClearPod(route, pod string) (int, error) {
	r, err := p.route(route)
	if err != nil {
		return 0, err
	}
	if r.shared != nil {
		return r.shared.ClearPod(pod)
	}
	return r.Table.DeletePod(pod), nil
}

// Sessions lists a route's pinned sessions, filtered and paged: from the
// table every replica shares when the route has one (except on Redis
// Cluster, which cannot page), else from this replica's table.
func (p *Proxy) Sessions(route string, q SessionQuery) (SessionPage, error) {
	r, err := p.route(route)
	if err != nil {
		return SessionPage{}, err
	}
	q.Limit = max(q.Limit, 1)
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	page := SessionPage{Sessions: []table.Entry{}}
	if r.shared != nil {
		page.Next, err = r.shared.List(q.From, q.Limit, func(e table.Entry) {
			if q.matches(e) {
				page.Sessions = append(page.Sessions, e)
			}
		})
		if !errors.Is(err, store.ErrClusterList) {
			return page, err
		}
	}
	scanned := 0
	page.Next = r.Table.Scan(q.From, func(e table.Entry) bool {
		scanned++
		if q.matches(e) {
			page.Sessions = append(page.Sessions, e)
		}
		return len(page.Sessions) < q.Limit && scanned < maxScan
	})
	return page, nil
}

func (q *SessionQuery) matches(e table.Entry) bool {
	age := q.Now.Sub(e.Created)
	switch {
	case q.Pod != "" && e.Pod != q.Pod:
	case q.Prefix != "" && !strings.HasPrefix(e.Raw, q.Prefix):
	case q.MinAge > 0 && age < q.MinAge:
	case q.MaxAge > 0 && age > q.MaxAge:
	case q.Idle > 0 && q.Now.Sub(e.LastUsed) < q.Idle:
	default:
		return true
	}
	return false
}
