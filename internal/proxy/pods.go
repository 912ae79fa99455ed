package proxy

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/podpin/podpin/internal/balance"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/h2"
	"github.com/podpin/podpin/internal/place"
)

// backend is the long-lived part of a pod: its connection pool and counters.
// It outlives endpoint snapshots so a pod that only changes state keeps its
// keep-alive connections and its in-flight count. Safe for concurrent use.
type backend struct {
	name  string
	nameV []byte // name as a header value
	addr  string
	// protocol is what podpin speaks to the pod: config.PodHTTP, PodH2C
	// or PodHTTPS.
	protocol string
	client   *podClient
	// h2 are the HTTP/2 connections to a pod that speaks h2c; nil for
	// the others.
	h2 *h2.Pool
	// ip is the pod's address when it is an IP literal (the zero
	// AddrPort when not), for the event loops, which connect without
	// resolving.
	ip       netip.AddrPort
	sessions *atomic.Int64 // live entries pinned to this pod, owned by the table
	tally    place.Tally
	health   place.Health
}

// pod is one member of an endpoint snapshot: a backend with the state,
// weight and health that snapshot gives it. Immutable.
type pod struct {
	*backend
	state  discovery.State
	weight int
	// out is why the pod takes no traffic although its source says it may
	// ("" when it does): place.ReasonEjected or place.ReasonUnhealthy.
	out string
}

var (
	_ place.Pod  = (*pod)(nil)
	_ place.Pods = (*podSet)(nil)
)

func (p *pod) Name() string    { return p.name }
func (p *pod) Weight() int     { return p.weight }
func (p *pod) InFlight() int64 { return p.tally.InFlight() }
func (p *pod) Sessions() int64 { return p.sessions.Load() }
func (p *pod) takesNew() bool  { return p.state == discovery.Ready && p.out == "" }

func (p *pod) State() discovery.State { return p.state }
func (p *pod) Out() string            { return p.out }
func (p *pod) Health() *place.Health  { return &p.health }
func (p *pod) Tally() *place.Tally    { return &p.tally }
func (p *pod) String() string         { return p.name }

// stateName is the state operators see: the source's, or why the pod is out.
func (p *pod) stateName() string {
	if p.out != "" && p.state != discovery.NotReady {
		return p.out
	}
	return p.state.String()
}

// podSet is an immutable snapshot of a route's pods. The request path loads
// it once per request.
type podSet struct {
	byName map[string]*pod
	all    []*pod        // in source order
	fresh  []balance.Pod // pods that take new sessions, for the balancer
	// http1: every pod speaks HTTP/1.1 (in cleartext or over TLS), so
	// an HTTP/2 stream that is not gRPC may go the short way
	// (forwardStream).
	http1 bool
	// h2c: every pod speaks h2c, so that every HTTP/2 stream goes to its
	// pod over the pod's own HTTP/2 connections (forwardH2).
	h2c bool
	// loop: an event loop forwards to every pod itself (podServed);
	// h2cLoop: every pod speaks h2c at an IP address, and an event loop
	// forwards HTTP/2 streams to them itself (h2cServed).
	loop, h2cLoop bool
}

func newPodSet(pods []*pod) *podSet {
	s := &podSet{byName: make(map[string]*pod, len(pods)), all: pods, http1: true, h2c: len(pods) > 0, loop: true, h2cLoop: len(pods) > 0}
	for _, p := range pods {
		s.byName[p.name] = p
		s.loop = s.loop && podServed(p)
		s.h2cLoop = s.h2cLoop && h2cServed(p)
		if p.protocol == config.PodH2C {
			s.http1 = false
		} else {
			s.h2c = false
		}
		if p.takesNew() {
			s.fresh = append(s.fresh, p)
		}
	}
	return s
}

// Pod returns the pod named name.
func (s *podSet) Pod(name string) (place.Pod, bool) {
	if p := s.byName[name]; p != nil {
		return p, true
	}
	return nil, false
}

// Fresh returns the pods that take new sessions.
func (s *podSet) Fresh() []balance.Pod { return s.fresh }

// All returns every pod, in source order, as placement sees them.
func (s *podSet) All() []place.Pod {
	out := make([]place.Pod, len(s.all))
	for i, p := range s.all {
		out[i] = p
	}
	return out
}

// Without returns the candidates for new sessions other than skip, which
// may come from an older snapshot: pods are the same when their backend is.
func (s *podSet) Without(skip place.Pod) []balance.Pod {
	sb := skip.(*pod).backend
	out := make([]balance.Pod, 0, len(s.fresh))
	for _, c := range s.fresh {
		if c.(*pod).backend != sb {
			out = append(out, c)
		}
	}
	return out
}

// upstreamSettings shapes every pod's connection pool.
type upstreamSettings struct {
	connectTimeout  time.Duration
	readTimeout     time.Duration
	idleConnTimeout time.Duration
	maxConns        int
}

// dialError marks a failure to connect: nothing of the request was sent, so
// another pod may be tried.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connecting: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func isDialError(err error) bool {
	var de *dialError
	return errors.As(err, &de)
}

// podServed reports whether an event loop forwards to pd itself: a
// cleartext HTTP/1.1 pod at an IP address.
func podServed(pd *pod) bool {
	return pd.protocol == config.PodHTTP && pd.ip.IsValid()
}

// h2cServed reports whether a loop forwards to pd over its own HTTP/2
// connections: pd speaks h2c at an IP address.
func h2cServed(pd *pod) bool { return pd.h2 != nil && pd.ip.IsValid() }

// ipOf is addr as an IP address and port, or the zero AddrPort when its
// host is a name.
func ipOf(addr string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
