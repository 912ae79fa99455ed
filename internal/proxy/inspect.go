package proxy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podpin/podpin/internal/store"
	"github.com/podpin/podpin/internal/table"
)

// Errors of the inspection API; the admin API maps them to 404 and 400.
var (
	ErrNoSuchRoute   = errors.New("no such route")
	ErrNoSuchPod     = errors.New("no such pod in the route")
	ErrNoSuchSession = errors.New("key is not pinned")
	ErrBadCursor     = errors.New("invalid cursor")
)

// RouteInfo describes one route for operators.
type RouteInfo struct {
	Name      string            `json:"name"`
	Host      string            `json:"host,omitempty"`
	Prefix    string            `json:"pathPrefix,omitempty"`
	Path      string            `json:"path,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	KeyHeader string            `json:"keyHeader"`
	Balancer  string            `json:"balancer"`
	Missing   string            `json:"missing"`
	Strict    bool              `json:"strict"`
	Drain     bool              `json:"drain"`
	Pods      int               `json:"pods"`
	Table     TableInfo         `json:"table"`
	// Rebinds counts sessions moved off the route's pods, by reason.
	Rebinds map[string]uint64 `json:"rebinds"`
}

// TableInfo is a stick table's size, settings and counters.
type TableInfo struct {
	Entries         int     `json:"entries"`
	MaxEntries      int     `json:"maxEntries"`
	IdleTimeout     string  `json:"idleTimeout"`
	AbsoluteTimeout string  `json:"absoluteTimeout,omitempty"`
	RawKeys         bool    `json:"rawKeys"`
	Hits            uint64  `json:"hits"`
	Misses          uint64  `json:"misses"`
	Inserts         uint64  `json:"inserts"`
	Evictions       uint64  `json:"evictions"`
	IdleExpired     uint64  `json:"idleExpired"`
	AbsoluteExpired uint64  `json:"absoluteExpired"`
	HitRatio        float64 `json:"hitRatio"`
}

// PodInfo describes one pod of a route.
type PodInfo struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is ready, draining, not-ready or ejected.
	State    string            `json:"state"`
	Weight   int               `json:"weight"`
	InFlight int64             `json:"inFlight"`
	Sessions int64             `json:"sessions"`
	Requests uint64            `json:"requests"`
	Rebinds  map[string]uint64 `json:"rebinds"`
}

// Session is one pinned key.
type Session struct {
	// Key is the raw key, present only when the route keeps raw keys.
	Key string `json:"key,omitempty"`
	// Digest is the 128-bit digest the table stores, in hex.
	Digest   string    `json:"digest"`
	Pod      string    `json:"pod"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"lastUsed"`
	Hits     uint64    `json:"hits"`
}

// SessionQuery filters and pages a session listing.
type SessionQuery struct {
	Pod       string        // only sessions pinned to this pod
	Prefix    string        // only raw keys with this prefix (routes that keep raw keys)
	MinAge    time.Duration // only sessions created at least this long ago
	MaxAge    time.Duration // only sessions created at most this long ago; 0: any
	IdleOver  time.Duration // only sessions unused at least this long
	Limit     int           // most sessions returned; 0 means 100; at most 1000
	Cursor    string        // from the previous page's Next; "" starts
	Now       time.Time     // reference for ages; zero means time.Now()
	scanLimit int           // entries examined before returning a partial page
}

// SessionPage is one page of a listing. Next is "" at the end. A listing
// taken while the table changes is approximate (entries may be missed or
// repeated, as with Redis SCAN); a table that does not change is listed
// exactly once.
type SessionPage struct {
	Sessions []Session `json:"sessions"`
	Next     string    `json:"next,omitempty"`
}

func (p *Proxy) route(name string) (*route, error) {
	for _, r := range p.state.Load().routes {
		if r.name == name {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoSuchRoute, name)
}

// Routes describes every route, in configuration order.
func (p *Proxy) Routes() []RouteInfo {
	var out []RouteInfo
	for _, r := range p.state.Load().routes {
		out = append(out, r.info())
	}
	return out
}

// Route describes one route.
func (p *Proxy) Route(name string) (RouteInfo, error) {
	r, err := p.route(name)
	if err != nil {
		return RouteInfo{}, err
	}
	return r.info(), nil
}

func (r *route) info() RouteInfo {
	s := r.table.Stats()
	tc := r.tableConfig
	ti := TableInfo{
		Entries: s.Entries, MaxEntries: tc.MaxEntries, IdleTimeout: tc.IdleTimeout.String(),
		RawKeys: tc.KeepRawKeys, Hits: s.Hits, Misses: s.Misses, Inserts: s.Inserts,
		Evictions: s.Evictions, IdleExpired: s.IdleExpired, AbsoluteExpired: s.AbsoluteExpired,
	}
	if tc.AbsoluteTimeout > 0 {
		ti.AbsoluteTimeout = tc.AbsoluteTimeout.String()
	}
	if n := s.Hits + s.Misses; n > 0 {
		ti.HitRatio = float64(s.Hits) / float64(n)
	}
	info := RouteInfo{
		Name: r.name, Host: string(r.host), Prefix: string(r.pathPrefix), Path: string(r.path),
		KeyHeader: r.key.header, Balancer: r.balName, Missing: r.missingName,
		Strict: r.strict, Drain: r.drain, Pods: len(r.pods.Load().all),
		Table: ti, Rebinds: r.rebinds.byReason(""),
	}
	if len(r.headers) > 0 {
		info.Headers = map[string]string{}
		for _, h := range r.headers {
			info.Headers[h.name] = string(h.value)
		}
	}
	return info
}

// Pods describes the pods of a route, in source order.
func (p *Proxy) Pods(route string) ([]PodInfo, error) {
	r, err := p.route(route)
	if err != nil {
		return nil, err
	}
	var out []PodInfo
	for _, pd := range r.pods.Load().all {
		out = append(out, PodInfo{
			Name: pd.name, Address: pd.addr, State: pd.stateName(), Weight: pd.weight,
			InFlight: pd.inFlight.Load(), Sessions: pd.sessions.Load(), Requests: pd.requests.Load(),
			Rebinds: r.rebinds.byReason(pd.name),
		})
	}
	return out, nil
}

// Session returns the entry of a raw key.
func (p *Proxy) Session(route, key string) (Session, error) {
	r, err := p.route(route)
	if err != nil {
		return Session{}, err
	}
	k := r.digest.Key(r.name, []byte(key))
	e, ok := r.table.Peek(k)
	if r.shared != nil {
		if e, ok, err = r.shared.Get(k); err != nil {
			return Session{}, err
		}
	}
	if !ok {
		return Session{}, ErrNoSuchSession
	}
	return session(e), nil
}

// Pin points a raw key at pod, which must be in the route's pod set. An
// existing entry is moved (counted as a rebind with reason "admin").
func (p *Proxy) Pin(route, key, pod string) (Session, error) {
	r, err := p.route(route)
	if err != nil {
		return Session{}, err
	}
	if _, ok := r.pods.Load().byName[pod]; !ok {
		return Session{}, fmt.Errorf("%w: %q", ErrNoSuchPod, pod)
	}
	k := r.digest.Key(r.name, []byte(key))
	prev, _ := r.table.Peek(k)
	if r.shared != nil {
		if shared, ok, _ := r.shared.Get(k); ok {
			prev = shared
		}
		if err := r.shared.Pin(k, pod, []byte(key)); err != nil {
			return Session{}, err
		}
	} else {
		r.table.Store(k, pod, []byte(key))
	}
	if prev.Pod != "" && prev.Pod != pod {
		r.rebound(prev.Pod, reasonAdmin)
	}
	e, _ := r.table.Peek(k)
	return session(e), nil
}

// Unpin removes a raw key's entry; false when it was not pinned.
func (p *Proxy) Unpin(route, key string) (bool, error) {
	r, err := p.route(route)
	if err != nil {
		return false, err
	}
	k := r.digest.Key(r.name, []byte(key))
	if r.shared != nil {
		return r.shared.Unpin(k)
	}
	return r.table.Delete(k), nil
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
	return r.table.DeletePod(pod), nil
}

// Sessions lists a route's pinned sessions, filtered and paged.
func (p *Proxy) Sessions(route string, q SessionQuery) (SessionPage, error) {
	r, err := p.route(route)
	if err != nil {
		return SessionPage{}, err
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	if q.scanLimit == 0 {
		q.scanLimit = 100_000
	}
	if r.shared != nil {
		page, err := q.sharedPage(r.shared)
		if !errors.Is(err, store.ErrClusterList) {
			return page, err
		}
	}
	var cursor uint64
	if q.Cursor != "" {
		if _, err := fmt.Sscanf(q.Cursor, "%x", &cursor); err != nil || cursor == 0 {
			return SessionPage{}, ErrBadCursor
		}
	}
	page := SessionPage{Sessions: []Session{}}
	scanned := 0
	next := r.table.Scan(cursor, func(e table.Entry) bool {
		scanned++
		if q.matches(e) {
			page.Sessions = append(page.Sessions, session(e))
		}
		return len(page.Sessions) < q.Limit && scanned < q.scanLimit
	})
	if next != 0 {
		page.Next = fmt.Sprintf("%x", next)
	}
	return page, nil
}

// sharedPage lists from Redis: the shared table, not this replica's copy.
func (q *SessionQuery) sharedPage(sr *store.Route) (SessionPage, error) {
	page := SessionPage{Sessions: []Session{}}
	next, err := sr.List(q.Cursor, q.Limit, func(e table.Entry) {
		if q.matches(e) {
			page.Sessions = append(page.Sessions, session(e))
		}
	})
	page.Next = next
	return page, err
}

func (q *SessionQuery) matches(e table.Entry) bool {
	age := q.Now.Sub(e.Created)
	switch {
	case q.Pod != "" && e.Pod != q.Pod:
	case q.Prefix != "" && !strings.HasPrefix(e.Raw, q.Prefix):
	case q.MinAge > 0 && age < q.MinAge:
	case q.MaxAge > 0 && age > q.MaxAge:
	case q.IdleOver > 0 && q.Now.Sub(e.LastUsed) < q.IdleOver:
	default:
		return true
	}
	return false
}

func session(e table.Entry) Session {
	var d [16]byte
	for i := range 8 {
		d[i] = byte(e.Key.Hi >> (56 - 8*i))
		d[8+i] = byte(e.Key.Lo >> (56 - 8*i))
	}
	return Session{
		Key: e.Raw, Digest: hex.EncodeToString(d[:]), Pod: e.Pod,
		Created: e.Created, LastUsed: e.LastUsed, Hits: e.Hits,
	}
}

// rebindCounts counts rebinds per pod and reason. Safe for concurrent use.
type rebindCounts struct {
	// guards n
	mu sync.Mutex
	n  map[[2]string]*atomic.Uint64 // {pod, reason}
}

func (c *rebindCounts) add(pod, reason string) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[[2]string]*atomic.Uint64{}
	}
	ctr := c.n[[2]string{pod, reason}]
	if ctr == nil {
		ctr = new(atomic.Uint64)
		c.n[[2]string{pod, reason}] = ctr
	}
	c.mu.Unlock()
	ctr.Add(1)
}

// snapshot copies the counters, for a route that replaces this one.
func (c *rebindCounts) snapshot() map[[2]string]*atomic.Uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[[2]string]*atomic.Uint64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// byReason sums the counts of pod ("" for every pod) by reason.
func (c *rebindCounts) byReason(pod string) map[string]uint64 {
	out := map[string]uint64{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.n {
		if pod == "" || k[0] == pod {
			out[k[1]] += v.Load()
		}
	}
	return out
}
