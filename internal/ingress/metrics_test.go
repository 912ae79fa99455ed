package ingress

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/k8stest"
	"github.com/podpin/podpin/internal/metrics"
)

// value returns the value of the metric name without labels in reg, or -1
// when it is absent.
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return -1
}

func TestFailedAppliesAndRejectedIngressesAreMetrics(t *testing.T) {
	cp := k8stest.Start(t)
	ctx := t.Context()
	create(t, cp.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, ingressClass("podpin", ControllerName),
		classed("app", new("podpin"), map[string]string{AnnotationStickyHeader: "X-Cart"}))
	reg := prometheus.NewRegistry()
	var failing atomic.Bool
	var routes atomic.Int64
	c, err := New(Options{
		Client:  cp.Client,
		Metrics: metrics.New(reg, nil),
		Apply: func(cfg *config.Config) error {
			if failing.Load() {
				return errors.New("the store cannot change without a restart")
			}
			routes.Store(int64(len(cfg.Routes)))
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	const (
		errorsTotal = "podpin_ingress_apply_errors_total"
		lastApplied = "podpin_ingress_last_apply_success_timestamp_seconds"
		rejected    = "podpin_ingress_rejected"
	)
	waitFor(t, "the first sync", closed(c.Synced()))
	first := value(t, reg, lastApplied)
	if first <= 0 || value(t, reg, errorsTotal) != 0 || value(t, reg, rejected) != 0 {
		t.Fatalf("after the first apply: got %s %v, %s %v, %s %v; want a time, 0, 0",
			lastApplied, first, errorsTotal, value(t, reg, errorsTotal), rejected, value(t, reg, rejected))
	}

	// A bad annotation rejects the Ingress's new version.
	update := func(name, header string) {
		t.Helper()
		ing, err := cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ing.Annotations[AnnotationStickyHeader] = header
		if _, err := cp.Client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	update("app", "X Cart")
	waitFor(t, rejected+" 1", func() bool { return value(t, reg, rejected) == 1 })

	// A new Ingress that podpin fails to apply counts errors, and its
	// retries keep counting, until the apply succeeds.
	failing.Store(true)
	create(t, cp.Client, classed("other", new("podpin"), nil))
	waitFor(t, errorsTotal+" above 0", func() bool { return value(t, reg, errorsTotal) > 0 })
	if got := value(t, reg, lastApplied); got != first {
		t.Errorf("%s after a failed apply: got %v, want still %v", lastApplied, got, first)
	}
	failing.Store(false)
	waitFor(t, "the retry to apply both Ingresses", func() bool { return routes.Load() == 2 })
	if got := value(t, reg, lastApplied); got < first {
		t.Errorf("%s after the retry: got %v, want at least %v", lastApplied, got, first)
	}
	failed := value(t, reg, errorsTotal)

	// Fixed, the Ingress is no longer rejected.
	update("app", "X-Basket")
	waitFor(t, rejected+" 0", func() bool { return value(t, reg, rejected) == 0 })
	if got := value(t, reg, errorsTotal); got != failed {
		t.Errorf("%s after good applies: got %v, want still %v", errorsTotal, got, failed)
	}
}
