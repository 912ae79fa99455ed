package certs

import "sync"

// Sources holds one Source per listener address, for listeners whose
// certificates a controller sets (a Gateway's HTTPS listeners).
type Sources struct {
	mu sync.Mutex
	m  map[string]*Source
}

// NewSources returns an empty registry.
func NewSources() *Sources { return &Sources{m: map[string]*Source{}} }

// For returns the Source of address, created empty on first use.
func (s *Sources) For(address string) *Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.m[address]
	if src == nil {
		src = NewSource()
		s.m[address] = src
	}
	return src
}
