package proxy

import (
	"github.com/podpin/podpin/internal/store"
	"github.com/podpin/podpin/internal/table"
)

// sessions is where a route's pins live: its own table, or its own table in
// front of the table every replica shares. The request path uses only this.
type sessions interface {
	// Lookup returns the pod k is pinned to.
	Lookup(k table.Key) (pod string, ok bool)
	// Claim pins k to pod unless it is pinned to a pod other than prev
	// ("" when k was not pinned); it returns the pod that holds k.
	Claim(k table.Key, prev, pod string, raw []byte) (winner string)
	// Degraded reports that a shared table is out of reach, so new keys
	// must be placed the same way by every replica.
	Degraded() bool
}

var (
	_ sessions = localSessions{}
	_ sessions = (*store.Route)(nil)
)

// localSessions is a route's table alone.
type localSessions struct{ t *table.Table }

func (l localSessions) Lookup(k table.Key) (string, bool) { return l.t.Lookup(k) }
func (l localSessions) Degraded() bool                    { return false }

func (l localSessions) Claim(k table.Key, _, pod string, raw []byte) string {
	l.t.Store(k, pod, raw)
	return pod
}
