package k8stest

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

func TestInformerSurvivesAPIServerRestart(t *testing.T) {
	cp := Start(t)
	createNamespace(t, cp, "shop")
	ctx := t.Context()

	factory := informers.NewSharedInformerFactoryWithOptions(cp.Client, 0,
		informers.WithNamespace("shop"),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelManagedBy + "=podpin-test"
		}))
	informer := factory.Discovery().V1().EndpointSlices().Informer()
	added := make(chan string, 10)
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
				added <- s.Name
			}
		},
	})
	if err != nil {
		t.Fatalf("adding event handler: %v", err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(factory.Shutdown)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatal("informer cache never synced")
	}

	createSlice(t, cp, "before")
	waitAdded(t, added, "before")

	start := time.Now()
	cp.RestartAPIServer(t)
	t.Logf("API server restarted in %v", time.Since(start).Round(time.Millisecond))

	createSlice(t, cp, "after")
	waitAdded(t, added, "after")
	t.Logf("informer saw a slice created after the restart %v after it", time.Since(start).Round(time.Millisecond))
}

func createSlice(t *testing.T, cp *ControlPlane, name string) {
	t.Helper()
	_, err := cp.Client.DiscoveryV1().EndpointSlices("shop").Create(t.Context(), &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: "web",
				discoveryv1.LabelManagedBy:   "podpin-test",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses: []string{"10.244.0.2"},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-0"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating endpoint slice %q: %v", name, err)
	}
}

func waitAdded(t *testing.T, added <-chan string, want string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case got := <-added:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("informer: no add event for %q within a minute", want)
		}
	}
}
