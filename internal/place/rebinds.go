package place

import (
	"sync"
	"sync/atomic"
)

// RebindCounts counts rebinds per pod and reason. The zero value is ready;
// safe for concurrent use.
type RebindCounts struct {
	// guards n
	mu sync.Mutex
	n  map[[2]string]*atomic.Uint64 // {pod, reason}
}

// Add counts one session moved off pod for reason.
func (c *RebindCounts) Add(pod, reason string) {
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

// Continue makes c go on from prev's counts, for a route that replaces
// prev's. c must not be in use yet.
func (c *RebindCounts) Continue(prev *RebindCounts) {
	prev.mu.Lock()
	defer prev.mu.Unlock()
	c.n = make(map[[2]string]*atomic.Uint64, len(prev.n))
	for k, v := range prev.n {
		c.n[k] = v
	}
}

// ByReason sums the counts of pod ("" for every pod) by reason.
func (c *RebindCounts) ByReason(pod string) map[string]uint64 {
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
