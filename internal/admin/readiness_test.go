package admin

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func TestReadinessComesFromTheSyncs(t *testing.T) {
	t.Run("ready before it returns when everything synced", func(t *testing.T) {
		s := New(Options{})
		var g errgroup.Group
		s.ReadyWhen(t.Context(), &g, closedChan, closedChan)
		if !s.ready.Load() {
			t.Error("not ready when ReadyWhen returned, with every channel closed")
		}
		g.Wait()
	})

	t.Run("the proxy is asked once the controller synced", func(t *testing.T) {
		s := New(Options{})
		var g errgroup.Group
		ingress, proxy, asked := make(chan struct{}), make(chan struct{}), make(chan struct{})
		s.ReadyWhen(t.Context(), &g,
			func() <-chan struct{} { return ingress },
			func() <-chan struct{} { close(asked); return proxy })
		select {
		case <-asked:
			t.Fatal("the proxy's channel was asked for before the controller synced")
		default:
		}
		close(ingress)
		select {
		case <-asked:
		case <-time.After(10 * time.Second):
			t.Fatal("the proxy's channel was not asked for after the controller synced")
		}
		if s.ready.Load() {
			t.Error("ready before the proxy synced")
		}
		close(proxy)
		g.Wait()
		if !s.ready.Load() {
			t.Error("not ready after both synced")
		}
	})

	t.Run("shutdown before the sync keeps readiness off", func(t *testing.T) {
		s := New(Options{})
		var g errgroup.Group
		ctx, cancel := context.WithCancel(t.Context())
		synced := make(chan struct{})
		s.ReadyWhen(ctx, &g, func() <-chan struct{} { return synced })
		cancel()
		close(synced)
		g.Wait()
		if s.ready.Load() {
			t.Error("ready after shutdown began, want off")
		}
	})
}
