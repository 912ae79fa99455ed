package place

import (
	"net/netip"
	"time"

	"github.com/podpin/podpin/internal/balance"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/table"
)

// Pod is a pod as placement sees it: a balancer candidate with the state its
// source gives it.
type Pod interface {
	balance.Pod
	// State is the pod's state as its source reports it.
	State() discovery.State
	// Out is why the pod takes no traffic although its source says it may
	// (ReasonEjected, ReasonUnhealthy); "" when it does.
	Out() string
	// Health is the pod's health, the same across snapshots.
	Health() *Health
	// Tally is the pod's request counts, the same across snapshots.
	Tally() *Tally
}

// Pods is an immutable snapshot of a route's pods.
type Pods interface {
	// Pod returns the pod named name.
	Pod(name string) (Pod, bool)
	// Fresh returns the pods that take new sessions, for the balancer.
	Fresh() []balance.Pod
	// Without returns Fresh without skip (matched by identity across
	// snapshots, not by name alone).
	Without(skip Pod) []balance.Pod
	// All returns every pod, in source order. It allocates: it is for
	// the rare paths (ejection).
	All() []Pod
}

// takesNew reports whether p takes new sessions.
func takesNew(p Pod) bool { return p.State() == discovery.Ready && p.Out() == "" }

// Placer places session keys on pods. Its fields are set once, before it
// serves; afterwards it is safe for concurrent use.
type Placer struct {
	Sessions Sessions
	Balancer balance.Balancer
	// Fallback places keys while a shared table is out of reach
	// (Sessions.Degraded), the same way on every replica.
	Fallback balance.Balancer
	// NewSessions caps new entries per client address; nil: no cap.
	NewSessions *SessionLimiter
	// Drain keeps sessions on draining pods.
	Drain bool
	// Strict never rebinds: a pinned pod that cannot serve refuses.
	Strict bool
	// Rebinds counts sessions moved, by pod and reason, for the admin API.
	Rebinds *RebindCounts
	// Metrics counts lookups and rebinds.
	Metrics *metrics.Route
}

// Place finds the pod for a request with key k (raw in clear) from client:
// its pinned pod when that pod can serve it, else a new one from the
// balancer, claimed in the table. When new sessions are capped, a key that
// would create an entry over client's allowance is refused with
// ErrNewSessions. Place counts rebinds, not lookups.
func (pl *Placer) Place(pods Pods, k table.Key, raw []byte, client netip.Addr) Decision {
	var d Decision
	name, ok := pl.Sessions.Lookup(k)
	if !ok && pl.NewSessions != nil && client.IsValid() && !pl.NewSessions.Allow(client, time.Now()) {
		d.Err = ErrNewSessions
		return d
	}
	if ok {
		p, found := pods.Pod(name)
		switch {
		case !found:
			d.Reason = ReasonGone
		case p.State() == discovery.NotReady:
			d.Reason = ReasonUnready
		case p.Out() != "":
			d.Reason = p.Out()
		case p.State() == discovery.Ready || pl.Drain:
			return Decision{Pod: p, Result: metrics.LookupHit}
		default:
			d.Reason = ReasonDraining
		}
		d.From = name
		if pl.Strict {
			d.Err = ErrStrict
			return d
		}
	}
	d.Pod = pl.Pick(pods.Fresh(), k.Lo)
	if d.Pod == nil {
		d.Err = ErrNoPod
		return d
	}
	d.Result = metrics.LookupMiss
	if winner := pl.Sessions.Claim(k, d.From, d.Pod.Name(), raw); winner != d.Pod.Name() {
		// Another replica placed the key first: follow it when its pod can
		// take the request here.
		if p, found := pods.Pod(winner); found && (takesNew(p) || (p.State() == discovery.Draining && pl.Drain && p.Out() == "")) {
			return Decision{Pod: p, Result: metrics.LookupHit}
		}
	}
	if d.From != "" {
		d.Result = metrics.LookupRebind
		pl.Rebound(d.From, d.Reason)
	}
	return d
}

// rebind moves key k off a pod that refused the connection, onto another
// candidate. It returns nil when none is left.
func (pl *Placer) rebind(pods Pods, k table.Key, raw []byte, failed Pod) Pod {
	p := pl.Pick(pods.Without(failed), k.Lo)
	if p == nil {
		return nil
	}
	if winner := pl.Sessions.Claim(k, failed.Name(), p.Name(), raw); winner != p.Name() {
		if w, found := pods.Pod(winner); found && takesNew(w) {
			p = w
		}
	}
	pl.Rebound(failed.Name(), ReasonConnectFailed)
	return p
}

// Rebound counts a session moved off pod for reason.
func (pl *Placer) Rebound(pod, reason string) {
	pl.Rebinds.Add(pod, reason)
	pl.Metrics.Rebound(pod, reason)
}

// Pick asks the balancer (the fallback while a shared table is out of
// reach) for one of candidates; nil when there are none.
func (pl *Placer) Pick(candidates []balance.Pod, key uint64) Pod {
	bal := pl.Balancer
	if pl.Sessions.Degraded() {
		bal = pl.Fallback
	}
	i := bal.Pick(key, candidates)
	if i < 0 {
		return nil
	}
	return candidates[i].(Pod)
}
