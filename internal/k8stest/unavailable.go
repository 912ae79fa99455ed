package k8stest

import (
	"fmt"
	"os"
	"testing"
)

// unavailable ends a test whose prerequisites are missing on this machine: it
// skips locally, but fails when the CI environment variable is set, because a
// CI run that skipped the real control plane would prove nothing.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	t.Skip(msg)
}
