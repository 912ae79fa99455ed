package certs

import "sync"

// Sources holds one Source per listener address, for the listeners whose
// certificates a controller sets (a Gateway's HTTPS listeners, each with
// its own certificateRefs): the controller calls Set on the Source For
// the listener's address, and the listener's Store takes that Source and
// nothing else. Safe for concurrent use.
type Sources struct {
	// guards bySocket
	mu       sync.Mutex
	bySocket map[string]*Source
}

// NewSources returns a registry with no Source yet.
func NewSources() *Sources { return &Sources{bySocket: map[string]*Source{}} }

// For returns the Source of the listener at address (as configured,
// "host:port"), created empty on first use: the controller and the
// listener get the same one, whichever asks first. A nil Sources returns
// nil.
func (s *Sources) For(address string) *Source {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.bySocket[address]
	if !ok {
		src = NewSource()
		s.bySocket[address] = src
	}
	return src
}
