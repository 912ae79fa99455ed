package balance

import (
	"cmp"
	"fmt"
	"math/bits"
	"strings"
)

// Pod is what a balancer knows of a candidate pod. Implementations are safe
// for concurrent use; balancers call these methods on every Pick, so each
// should be a field or atomic load, not a computation.
type Pod interface {
	// Name is the pod's stable identity (its pod name). Hash scores it.
	Name() string
	// Weight is the pod's relative capacity, at least 1. Balancers treat a
	// smaller value as 1.
	Weight() int
	// InFlight is the number of requests in flight to the pod now. LeastConn
	// and RandomTwo read it.
	InFlight() int64
	// Sessions is the number of live sessions pinned to the pod. LeastSessions
	// reads it.
	Sessions() int64
}

// Balancer picks one pod among candidates for a new session. Implementations
// are safe for concurrent use.
type Balancer interface {
	// Pick returns the index in pods of the chosen pod, or -1 when pods is
	// empty. key is a 64-bit digest of the session key (0 when the request
	// has none); only Hash depends on it. Every pod in pods is allowed to take
	// new sessions. Pick does not retain pods.
	Pick(key uint64, pods []Pod) int
}

// Balancer names, as written in configuration.
const (
	RoundRobin    = "round-robin"
	LeastConn     = "least-conn"
	LeastSessions = "least-sessions"
	RandomTwo     = "random-two"
	Hash          = "hash"
)

// Names returns the valid balancer names in a fixed order, for validation
// messages. The caller owns the returned slice.
func Names() []string {
	return []string{RoundRobin, LeastConn, LeastSessions, RandomTwo, Hash}
}

// New returns a new balancer of the named kind, with its own state. The empty
// name means RoundRobin. An unknown name yields an error wrapping ErrUnknown
// that quotes the name and lists the valid ones.
func New(name string) (Balancer, error) {
	switch name {
	case "", RoundRobin:
		return &roundRobin{}, nil
	case LeastConn:
		return &leastLoaded{load: Pod.InFlight}, nil
	case LeastSessions:
		return &leastLoaded{load: Pod.Sessions}, nil
	case RandomTwo:
		return randomTwo{}, nil
	case Hash:
		return rendezvous{}, nil
	}
	return nil, fmt.Errorf("%w %q: want one of %s", ErrUnknown, name, strings.Join(Names(), ", "))
}

// weight returns p's weight, treating values below 1 as 1 so that no
// balancer divides by zero or starves a misconfigured pod.
func weight(p Pod) int {
	if w := p.Weight(); w > 1 {
		return w
	}
	return 1
}

// compareLoad compares the weighted loads l1/w1 and l2/w2 and returns -1, 0
// or +1. It cross-multiplies in 128 bits, so it is exact for every int64 load
// and positive weight; negative loads count as zero.
func compareLoad(l1 int64, w1 int, l2 int64, w2 int) int {
	hi1, lo1 := bits.Mul64(uint64(max(l1, 0)), uint64(w2))
	hi2, lo2 := bits.Mul64(uint64(max(l2, 0)), uint64(w1))
	if c := cmp.Compare(hi1, hi2); c != 0 {
		return c
	}
	return cmp.Compare(lo1, lo2)
}
