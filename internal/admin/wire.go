package admin

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/podpin/podpin/internal/proxy"
	"github.com/podpin/podpin/internal/table"
)

// The API's JSON: what it answers and what it reads, field names and
// cursors as clients see them. The proxy reports in its own terms
// (proxy.RouteStatus, table.Entry); the functions at the end of this file
// translate.

// RouteList is the answer of GET /api/v1/routes.
type RouteList struct {
	Routes []Route `json:"routes"`
}

// Route is the answer of GET /api/v1/routes/{route}: one route for
// operators.
type Route struct {
	Name    string            `json:"name"`
	Host    string            `json:"host,omitempty"`
	Prefix  string            `json:"pathPrefix,omitempty"`
	Path    string            `json:"path,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// HostSuffix, PathRegex, Methods, HeaderRegex, Query and QueryRegex
	// are the rest of the route's match (configuration reference:
	// routes[].match).
	HostSuffix  string            `json:"hostSuffix,omitempty"`
	PathRegex   string            `json:"pathRegex,omitempty"`
	Methods     []string          `json:"methods,omitempty"`
	HeaderRegex map[string]string `json:"headerRegex,omitempty"`
	Query       map[string]string `json:"query,omitempty"`
	QueryRegex  map[string]string `json:"queryRegex,omitempty"`
	KeyHeader   string            `json:"keyHeader"`
	Balancer    string            `json:"balancer"`
	Missing     string            `json:"missing"`
	Strict      bool              `json:"strict"`
	Drain       bool              `json:"drain"`
	Pods        int               `json:"pods"`
	Table       Table             `json:"table"`
	// Rebinds counts sessions moved off the route's pods, by reason.
	Rebinds map[string]uint64 `json:"rebinds"`
}

// Table is a stick table's size, settings and counters. Durations are Go
// durations ("30m0s").
type Table struct {
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

// PodList is the answer of GET /api/v1/routes/{route}/pods.
type PodList struct {
	Route string `json:"route"`
	Pods  []Pod  `json:"pods"`
}

// Pod is one pod of a route.
type Pod struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is ready, draining, not-ready, ejected or unhealthy.
	State    string            `json:"state"`
	Weight   int               `json:"weight"`
	InFlight int64             `json:"inFlight"`
	Sessions int64             `json:"sessions"`
	Requests uint64            `json:"requests"`
	Rebinds  map[string]uint64 `json:"rebinds"`
}

// Session is one pinned key: the answer of GET and PUT
// /api/v1/routes/{route}/sessions/{key}.
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

// SessionPage is the answer of GET /api/v1/routes/{route}/sessions: one
// page of a listing. Next is "" at the end; otherwise it is the cursor of
// the next page.
type SessionPage struct {
	Sessions []Session `json:"sessions"`
	Next     string    `json:"next,omitempty"`
}

// SessionQuery is the query of GET /api/v1/routes/{route}/sessions: its
// filters and where the page starts. Zero fields are left out.
type SessionQuery struct {
	Pod    string        // only sessions pinned to this pod
	Prefix string        // only keys starting with this (routes that keep raw keys)
	MinAge time.Duration // only sessions created at least this long ago
	MaxAge time.Duration // only sessions created at most this long ago
	Idle   time.Duration // only sessions unused for at least this long
	Limit  int           // most sessions per page, 1 to 1000; 0: 100
	Cursor string        // the Next of the previous page; "": the first page
}

// defaultLimit and maxLimit bound the sessions of one page.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// PinRequest is the body of PUT /api/v1/routes/{route}/sessions/{key}.
type PinRequest struct {
	Pod string `json:"pod"`
}

// Cleared is the answer of DELETE /api/v1/routes/{route}/sessions?pod=P.
type Cleared struct {
	Cleared int `json:"cleared"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

// Values encodes q as the URL query of a listing.
func (q SessionQuery) Values() url.Values {
	v := url.Values{}
	for name, s := range map[string]string{"pod": q.Pod, "prefix": q.Prefix, "cursor": q.Cursor} {
		if s != "" {
			v.Set(name, s)
		}
	}
	for name, d := range map[string]time.Duration{"minAge": q.MinAge, "maxAge": q.MaxAge, "idle": q.Idle} {
		if d != 0 {
			v.Set(name, d.String())
		}
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// ParseSessionQuery reads the query of a listing; an error names the
// parameter at fault.
func ParseSessionQuery(v url.Values) (SessionQuery, error) {
	var q SessionQuery
	for name, vals := range v {
		if len(vals) > 1 {
			return q, fmt.Errorf("%s: given %d times, want once", name, len(vals))
		}
		val := vals[0]
		var err error
		switch name {
		case "pod":
			q.Pod = val
		case "prefix":
			q.Prefix = val
		case "cursor":
			q.Cursor = val
		case "minAge":
			q.MinAge, err = parseDuration(val)
		case "maxAge":
			q.MaxAge, err = parseDuration(val)
		case "idle":
			q.Idle, err = parseDuration(val)
		case "limit":
			q.Limit, err = strconv.Atoi(val)
			if err != nil || q.Limit < 1 || q.Limit > maxLimit {
				err = fmt.Errorf("%q must be a number from 1 to %d", val, maxLimit)
			}
		default:
			return q, fmt.Errorf("%s: unknown parameter; use pod, prefix, minAge, maxAge, idle, limit or cursor", name)
		}
		if err != nil {
			return q, fmt.Errorf("%s: %w", name, err)
		}
	}
	return q, nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q must be a non-negative duration such as 90s, 5m or 2h", v)
	}
	return d, nil
}

// proxyQuery turns a listing's query into the proxy's, the cursor decoded:
// a cursor is the listing's position in hex, never 0 (which is the start).
func (q SessionQuery) proxyQuery(now time.Time) (proxy.SessionQuery, error) {
	pq := proxy.SessionQuery{
		Pod: q.Pod, Prefix: q.Prefix, MinAge: q.MinAge, MaxAge: q.MaxAge, Idle: q.Idle,
		Now: now, Limit: q.Limit,
	}
	if pq.Limit == 0 {
		pq.Limit = defaultLimit
	}
	if q.Cursor != "" {
		if _, err := fmt.Sscanf(q.Cursor, "%x", &pq.From); err != nil || pq.From == 0 {
			return pq, errBadCursor
		}
	}
	return pq, nil
}

func pageOf(p proxy.SessionPage) SessionPage {
	page := SessionPage{Sessions: make([]Session, len(p.Sessions))}
	for i, e := range p.Sessions {
		page.Sessions[i] = sessionOf(e)
	}
	if p.Next != 0 {
		page.Next = fmt.Sprintf("%x", p.Next)
	}
	return page
}

func sessionOf(e table.Entry) Session {
	var d [16]byte
	binary.BigEndian.PutUint64(d[:8], e.Key.Hi)
	binary.BigEndian.PutUint64(d[8:], e.Key.Lo)
	return Session{
		Key: e.Raw, Digest: hex.EncodeToString(d[:]), Pod: e.Pod,
		Created: e.Created, LastUsed: e.LastUsed, Hits: e.Hits,
	}
}

func routeOf(rs proxy.RouteStatus) Route {
	st, tc, m := rs.TableStats, rs.Table, rs.Match
	t := Table{
		Entries: st.Entries, MaxEntries: tc.MaxEntries, IdleTimeout: tc.IdleTimeout.String(),
		RawKeys: tc.KeepRawKeys, Hits: st.Hits, Misses: st.Misses, Inserts: st.Inserts,
		Evictions: st.Evictions, IdleExpired: st.IdleExpired, AbsoluteExpired: st.AbsoluteExpired,
	}
	if tc.AbsoluteTimeout > 0 {
		t.AbsoluteTimeout = tc.AbsoluteTimeout.String()
	}
	if n := st.Hits + st.Misses; n > 0 {
		t.HitRatio = float64(st.Hits) / float64(n)
	}
	return Route{
		Name: rs.Name, Host: m.Host, Prefix: m.PathPrefix, Path: m.Path, Headers: m.Headers,
		HostSuffix: m.HostSuffix, PathRegex: m.PathRegex, Methods: m.Methods, HeaderRegex: m.HeaderRegex, Query: m.Query, QueryRegex: m.QueryRegex,
		KeyHeader: rs.KeyHeader, Balancer: rs.Balancer, Missing: rs.Missing,
		Strict: rs.Strict, Drain: rs.Drain, Pods: len(rs.Pods), Table: t, Rebinds: rs.Rebinds,
	}
}

func podsOf(ps []proxy.PodStatus) []Pod {
	out := make([]Pod, len(ps))
	for i, p := range ps {
		out[i] = Pod{
			Name: p.Name, Address: p.Address, State: p.State, Weight: p.Weight,
			InFlight: p.InFlight, Sessions: p.Sessions, Requests: p.Requests, Rebinds: p.Rebinds,
		}
	}
	return out
}
