package discovery

import (
	"slices"
	"sync"
)

// Weighted is one of several sources of a route's pods, with the share of
// new sessions its pods take together.
type Weighted struct {
	Source
	// Weight is the source's share, relative to the others'. 0: its pods
	// keep their sessions and take no new ones.
	Weight int
}

// weightScale is what a source's weight is multiplied by before it is
// shared among its pods, so that the integer weights of pods keep the
// sources' ratio to about one part in a million.
const weightScale = 1 << 20

// Merged reports the pods of several sources as one set (Gateway API's
// backendRefs with weights): each pod's weight is scaled so that the pods
// of a source take its Weight's share of new sessions together, whatever
// their number; the ready pods of a source of weight 0 are reported
// Draining. A pod named by two sources is reported once, from the first.
// Merged reports nothing until every source has reported once.
type Merged struct {
	sources []Weighted
}

var _ Source = (*Merged)(nil)

// NewMerged returns the source of the pods of sources together.
func NewMerged(sources []Weighted) *Merged { return &Merged{sources: slices.Clone(sources)} }

// Start starts every source and reports their union whenever one of them
// changes.
func (m *Merged) Start(update func([]Endpoint)) (stop func()) {
	var mu sync.Mutex // serializes reports: the sources report from goroutines of their own
	latest := make([][]Endpoint, len(m.sources))
	reported := make([]bool, len(m.sources))
	stops := make([]func(), len(m.sources))
	for i, s := range m.sources {
		stops[i] = s.Start(func(eps []Endpoint) {
			mu.Lock()
			defer mu.Unlock()
			latest[i], reported[i] = eps, true
			if !slices.Contains(reported, false) {
				update(m.merge(latest))
			}
		})
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// merge is the union of the sets of each source, weights scaled.
func (m *Merged) merge(sets [][]Endpoint) []Endpoint {
	var out []Endpoint
	seen := map[string]bool{}
	for i, eps := range sets {
		total := 0
		for _, ep := range eps {
			total += max(ep.Weight, 1)
		}
		for _, ep := range eps {
			if seen[ep.Name] {
				continue
			}
			seen[ep.Name] = true
			w := m.sources[i].Weight
			if w == 0 {
				if ep.State == Ready {
					ep.State = Draining
				}
				w = 1
			}
			ep.Weight = max(1, max(ep.Weight, 1)*w*weightScale/total)
			out = append(out, ep)
		}
	}
	return out
}
