package k8s

import (
	"context"
	"time"
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
