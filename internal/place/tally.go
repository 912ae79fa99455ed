package place

import (
	"sync/atomic"

	"github.com/podpin/podpin/internal/metrics"
)

// Tally is one pod's request counts, kept across snapshots by the pod's
// owner: the requests in flight (which least-conn balances on), every
// request sent, and the pod's metrics. Safe for concurrent use.
type Tally struct {
	inFlight atomic.Int64
	requests atomic.Uint64
	// Metrics counts the pod's answers and their latency; nil: not
	// counted.
	Metrics *metrics.Pod
}

// Start counts a request sent to the pod, in flight until Stop.
func (t *Tally) Start() {
	t.inFlight.Add(1)
	t.requests.Add(1)
}

// Stop ends a request Start counted: the pod answered, or failed to.
func (t *Tally) Stop() { t.inFlight.Add(-1) }

// InFlight is the number of requests the pod has now.
func (t *Tally) InFlight() int64 { return t.inFlight.Load() }

// Requests is the number of requests ever sent to the pod.
func (t *Tally) Requests() uint64 { return t.requests.Load() }
