// Package place decides where a request goes, apart from any HTTP library:
// it matches a request to a route, reads its session key, looks the key up
// in the route's stick table, keeps its pod or picks a new one (a rebind,
// counted with its reason), and learns from what the pod did: its answer's
// key, its failures (passive health: ejection), its refusal to connect (a
// rebind to another pod). It keeps the counts of every pod (Tally: the
// requests in flight that least-conn balances on, the answers by status and
// their latency) and of every route (lookups by result, rebinds by reason).
//
// Each protocol front end fills a Request view from its own request type,
// calls Route.Decide, renders a refusal in its own protocol (Class),
// forwards the request, and reports back what it saw: Route.Done with the
// outcome, Route.Rebind when the pod refused the connection, Route.Learn
// with the key header of the answer.
//
// The package imports neither net/http nor fasthttp; nothing on the hit
// path allocates.
package place

import (
	"bytes"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/table"
)

// Request is what placement reads of one request. A front end implements it
// over its own request type, typically as a pointer conversion so that
// passing it costs no allocation. Returned slices are valid until the
// request ends and are not modified by placement.
type Request interface {
	// Host is the request's host (Host field or :authority), possibly with
	// a port.
	Host() []byte
	// Method is the request's method.
	Method() []byte
	// Path is the request target's path.
	Path() []byte
	// Header returns the values of the field name, in the order received.
	Header(name string) [][]byte
	// Cookie returns the value of the cookie name; nil when absent.
	Cookie(name string) []byte
	// Query returns the value of the query parameter name; nil when
	// absent.
	Query(name string) []byte
	// Listener names the listener the request came in on (its configured
	// address).
	Listener() string
	// ClientAddr is the client's IP address (behind trusted proxies, the
	// one they name); invalid when unknown.
	ClientAddr() netip.Addr
}

// Missing is what a route does with a request that carries no session key.
type Missing int

// Missing-key policies.
const (
	// MissingBalance places the request by the balancer alone, with no
	// entry.
	MissingBalance Missing = iota
	// MissingAssign mints a key, pins it and hands it to the client.
	MissingAssign
	// MissingReject refuses the request (ErrMissingKey).
	MissingReject
)

// Route is one route as placement sees it: how requests match it, where
// their key comes from, and how they are placed. Its fields are set once,
// before the route serves; afterwards it is safe for concurrent use.
type Route struct {
	Name    string
	Match   Match
	Key     KeySource
	Missing Missing
	// LearnKeys pins a key the pod's answer sets in the key header.
	LearnKeys bool
	Digest    table.Digester
	// Table is the route's own stick table (Sessions may front it with a
	// shared one); Learn stores into it.
	Table *table.Table
	Placer

	// Passive ejects pods that fail in a row (Done).
	Passive Passive
	// Log receives health changes; it must not be nil.
	Log *slog.Logger
	// Rebuild rebuilds this route's pod snapshot after a pod's health
	// changed; Refresh does the same for the route now serving under this
	// name, which a reload may have replaced.
	Rebuild, Refresh func()

	// guards the decision to eject, so that two pods failing at once do
	// not both pass the limit on pods out
	ejectMu sync.Mutex
}

// Decision is where a request goes and how it got there. A refused request
// has Err set and no Pod.
type Decision struct {
	Pod Pod
	// Key is Raw's digest; zero when Raw is nil.
	Key table.Key
	// Raw is the session key, in the buffer passed to Decide; nil when the
	// request has none and was balanced.
	Raw []byte
	// Assigned reports that Raw was minted for this request: the front
	// end sets it in the key header of the request and of the answer.
	Assigned bool
	// Result is metrics.LookupHit, LookupMiss, LookupRebind or LookupNone.
	Result int
	// From and Reason name the pod a rebind moved the key from and why.
	From, Reason string
	// Err is why the request is refused; Class(Err) is how to answer.
	Err error
}

// Decide places one request that matched r, on one of pods. The session
// key is copied into buf (its capacity should be at least
// r.Key.MaxBytes): forwarding may rewrite the headers it was read from. A
// placed request's lookup is counted; a refusal is counted by the front
// end, which knows its status.
func (r *Route) Decide(req Request, pods Pods, buf []byte) Decision {
	raw, err := r.Key.Read(req, buf[:0])
	if err != nil {
		return Decision{Err: err}
	}
	assigned := false
	if raw == nil {
		switch r.Missing {
		case MissingReject:
			return Decision{Err: ErrMissingKey}
		case MissingBalance:
			r.Metrics.Lookup(metrics.LookupNone)
			pd := r.Pick(pods.Fresh(), 0)
			if pd == nil {
				return Decision{Err: ErrNoPod}
			}
			return Decision{Pod: pd, Result: metrics.LookupNone}
		case MissingAssign:
			raw = NewKey(buf[:0])
			assigned = true
		}
	}
	k := r.Digest.Key(r.Name, raw)
	var client netip.Addr
	if r.NewSessions != nil {
		client = req.ClientAddr()
	}
	d := r.Place(pods, k, raw, client)
	d.Key, d.Raw, d.Assigned = k, raw, assigned
	if d.Err == nil {
		r.Metrics.Lookup(d.Result)
	}
	return d
}

// Rebind moves the key of d off failed, a pod that refused the
// connection, onto another of pods; it returns nil when none is left. A
// request without a key, or on a strict route, is not moved.
func (r *Route) Rebind(pods Pods, d *Decision, failed Pod) Pod {
	if d.Raw == nil || r.Strict {
		return nil
	}
	return r.rebind(pods, d.Key, d.Raw, failed)
}

// Learn takes note of the key header value v that pod's answer to d
// carried: when the route learns, a new, valid key is pinned to pod.
func (r *Route) Learn(d *Decision, pod string, v []byte) {
	if !r.LearnKeys || len(v) == 0 || bytes.Equal(v, d.Raw) {
		return
	}
	if v, err := r.Key.Check(v); err == nil {
		r.Table.Store(r.Digest.Key(r.Name, v), pod, v)
	}
}
