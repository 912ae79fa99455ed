package k8s

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// A sync that failed is tried again after MinRetry, doubling while it
// keeps failing, up to MaxRetry.
const (
	MinRetry = time.Second
	MaxRetry = 30 * time.Second
)

// SyncLoop runs a controller's syncs until ctx ends: one at once, then
// one after each burst of kicks, gathered for debounce, and another after
// a backoff while sync reports that something should be tried again.
// first, when not nil, is called after the first sync.
func SyncLoop(ctx context.Context, kick <-chan struct{}, debounce time.Duration, sync func(context.Context) (retry bool), first func()) {
	var fire, again <-chan time.Time
	delay := MinRetry
	backoff := func(failed bool) {
		switch {
		case !failed:
			delay = MinRetry
		case again == nil:
			again = time.After(delay)
			delay = min(2*delay, MaxRetry)
		}
	}
	backoff(sync(ctx))
	if first != nil {
		first()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
			if fire == nil {
				fire = time.After(debounce)
			}
		case <-again:
			again = nil
			if fire == nil {
				fire = time.After(0)
			}
		case <-fire:
			fire = nil
			backoff(sync(ctx))
		}
	}
}

// OnChange is an informer event handler that calls kick on every change:
// the controller rebuilds from its caches, so it needs no more than that.
// A resync (an update that changes no resource version) is not a change.
// deleted, when not nil, is told of each deleted object, the last state
// known when the watch missed the deletion.
func OnChange(kick func(), deleted func(metav1.Object)) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { kick() },
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(metav1.Object)
			n, ok2 := cur.(metav1.Object)
			if ok1 && ok2 && o.GetResourceVersion() == n.GetResourceVersion() {
				return
			}
			kick()
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if m, ok := obj.(metav1.Object); ok && deleted != nil {
				deleted(m)
			}
			kick()
		},
	}
}
