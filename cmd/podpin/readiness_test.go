package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// readiness records what startReadiness sets.
type readiness struct {
	// guards ready and sets
	mu    sync.Mutex
	ready bool
	sets  int
}

func (r *readiness) set(v bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready, r.sets = v, r.sets+1
}

func (r *readiness) get() (ready bool, sets int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready, r.sets
}

func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func TestReadinessComesFromTheSyncs(t *testing.T) {
	t.Run("ready before it returns when everything synced", func(t *testing.T) {
		var r readiness
		var g errgroup.Group
		startReadiness(t.Context(), &g, r.set, closedChan, closedChan)
		if ready, _ := r.get(); !ready {
			t.Error("not ready when startReadiness returned, with every channel closed")
		}
		g.Wait()
	})

	t.Run("the proxy is asked once the Ingress controller synced", func(t *testing.T) {
		var r readiness
		var g errgroup.Group
		ingress, proxy, asked := make(chan struct{}), make(chan struct{}), make(chan struct{})
		startReadiness(t.Context(), &g, r.set,
			func() <-chan struct{} { return ingress },
			func() <-chan struct{} { close(asked); return proxy })
		select {
		case <-asked:
			t.Fatal("the proxy's channel was asked for before the Ingress controller synced")
		default:
		}
		close(ingress)
		select {
		case <-asked:
		case <-time.After(10 * time.Second):
			t.Fatal("the proxy's channel was not asked for after the Ingress controller synced")
		}
		if ready, _ := r.get(); ready {
			t.Error("ready before the proxy synced")
		}
		close(proxy)
		g.Wait()
		if ready, _ := r.get(); !ready {
			t.Error("not ready after both synced")
		}
	})

	t.Run("shutdown before the sync keeps readiness off", func(t *testing.T) {
		var r readiness
		var g errgroup.Group
		ctx, cancel := context.WithCancel(t.Context())
		synced := make(chan struct{})
		startReadiness(ctx, &g, r.set, func() <-chan struct{} { return synced })
		cancel()
		close(synced)
		g.Wait()
		if ready, sets := r.get(); ready {
			t.Errorf("ready after shutdown began (%d sets), want off", sets)
		}
	})
}
