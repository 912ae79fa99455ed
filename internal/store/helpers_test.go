package store

import (
	"context"
	"testing"
)

func contextWithCleanup(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
