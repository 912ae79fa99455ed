package discovery

import (
	"context"
	"slices"
)

// Static is a fixed endpoint set from the configuration.
type Static struct {
	endpoints []Endpoint
}

var _ Source = (*Static)(nil)

// NewStatic returns a source that reports endpoints once.
func NewStatic(endpoints []Endpoint) *Static {
	return &Static{endpoints: slices.Clone(endpoints)}
}

// Run reports the endpoints once and waits for ctx to end.
func (s *Static) Run(ctx context.Context, update func([]Endpoint)) error {
	update(slices.Clone(s.endpoints))
	<-ctx.Done()
	return nil
}
