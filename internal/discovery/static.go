package discovery

import "slices"

// Static is a fixed endpoint set: the backends listed in the
// configuration. It knows its endpoints without waiting, so it reports them
// before Start returns, and never again; a reload makes a new Static.
type Static struct {
	endpoints []Endpoint
}

var _ Source = (*Static)(nil)

// NewStatic returns a source that reports a copy of endpoints.
func NewStatic(endpoints []Endpoint) *Static {
	return &Static{endpoints: slices.Clone(endpoints)}
}

// Start calls update with the endpoints before it returns. Nothing runs
// afterwards, so stop has nothing to end.
func (s *Static) Start(update func([]Endpoint)) (stop func()) {
	update(slices.Clone(s.endpoints))
	return func() {}
}
