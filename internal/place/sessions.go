package place

import (
	"github.com/podpin/podpin/internal/store"
	"github.com/podpin/podpin/internal/table"
)

// Sessions is where a route's pins live: its own table, or its own table in
// front of the table every replica shares. Placement uses only this.
type Sessions interface {
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
	_ Sessions = Local{}
	_ Sessions = (*store.Route)(nil)
)

// Local is a route's table alone.
type Local struct{ T *table.Table }

func (l Local) Lookup(k table.Key) (string, bool) { return l.T.Lookup(k) }
func (l Local) Degraded() bool                    { return false }

func (l Local) Claim(k table.Key, prev, pod string, raw []byte) string {
	return l.T.Claim(k, prev, pod, raw)
}
