package gateway

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/k8stest"
)

// takenPort is a listener address the test's apply cannot bind, as a port
// another process holds.
type takenPort struct{ address string }

func (e *takenPort) Error() string {
	return "listening for clients on " + e.address + ": address already in use"
}
func (e *takenPort) ListenerAddress() string { return e.address }

// TestControllerLeavesOutASocketItCannotBind runs the controller against a
// real API server with an apply that cannot bind one Gateway's port: the
// other Gateway is served, the first one's listener says it is not
// programmed, and its routes are left out.
func TestControllerLeavesOutASocketItCannotBind(t *testing.T) {
	cp := k8stest.Start(t)
	cp.InstallGatewayAPICRDs(t)
	gws, err := gwclient.NewForConfig(cp.ConfigFor(cp.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := gws.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "podpin"},
		Spec:       gwv1.GatewayClassSpec{ControllerName: ControllerName},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*gwv1.Gateway{
		gateway("default", "free", 0, httpListener("http", 8080, "")),
		gateway("default", "taken", 1, httpListener("http", 8081, "")),
	} {
		g.ObjectMeta = metav1.ObjectMeta{Namespace: g.Namespace, Name: g.Name}
		if _, err := gws.GatewayV1().Gateways("default").Create(ctx, g, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	var running []config.Listener
	apply := func(c *config.Config) error {
		for _, l := range c.Listeners {
			if l.Address == "127.0.1.2:8081" {
				return &takenPort{l.Address}
			}
		}
		mu.Lock()
		running = slices.Clone(c.Listeners)
		mu.Unlock()
		return nil
	}
	bound := func(addr string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(running, func(l config.Listener) bool { return l.Address == addr })
	}
	c, err := New(Options{
		Client: cp.Client, Gateways: gws, Apply: apply, Bound: bound,
		Addresses:    netip.MustParsePrefix("127.0.1.0/24"),
		Certificates: func(string, []certs.HostCert, *tls.Certificate) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(ctx)

	listenerProgrammed := func(name string) *metav1.Condition {
		g, err := gws.GatewayV1().Gateways("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(g.Status.Listeners) != 1 {
			return nil
		}
		return meta.FindStatusCondition(g.Status.Listeners[0].Conditions, "Programmed")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		free, taken := listenerProgrammed("free"), listenerProgrammed("taken")
		if free != nil && free.Status == metav1.ConditionTrue && taken != nil && taken.Status == metav1.ConditionFalse {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listener Programmed conditions: free %+v, taken %+v; want True and False", free, taken)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(running); !slices.ContainsFunc(running, func(l config.Listener) bool { return l.Address == "127.0.1.1:8080" }) {
		t.Fatalf("running listeners %s, want the free Gateway's 127.0.1.1:8080", got)
	}
}
