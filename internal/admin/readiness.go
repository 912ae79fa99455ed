package admin

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// ReadyWhen makes /readyz answer ok once each of synced, in order, gives a
// closed channel: a controller's first sync, then every route having its
// pods (at once for static routes, once the Kubernetes caches synced or
// the first DNS answer came for the others). Each is asked for its channel
// only once the one before it is closed, so the proxy's is that of the
// configuration the controller applied. When all are closed already, the
// server is ready before ReadyWhen returns; otherwise g waits for them
// until ctx ends. Until then the server is not ready, so no Service sends
// podpin traffic it would answer with 503.
func (s *Server) ReadyWhen(ctx context.Context, g *errgroup.Group, synced ...func() <-chan struct{}) {
	for len(synced) > 0 && isClosed(synced[0]()) {
		synced = synced[1:]
	}
	if len(synced) == 0 {
		s.SetReady(true)
		return
	}
	g.Go(func() error {
		for _, ch := range synced {
			select {
			case <-ctx.Done():
				return nil
			case <-ch():
			}
		}
		s.SetReady(true)
		// Shutdown may have begun and turned readiness off just before; it
		// must stay off.
		if ctx.Err() != nil {
			s.SetReady(false)
		}
		return nil
	})
}

// isClosed reports whether c is closed, without waiting.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
