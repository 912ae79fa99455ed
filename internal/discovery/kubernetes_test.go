package discovery

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/podpin/podpin/internal/k8stest"
)

// These tests run against a real kube-apiserver, shared by the subtests;
// each subtest works in a namespace of its own. EndpointSlices are written
// directly, as a controller would, so every case is exact.
func TestKubernetes(t *testing.T) {
	cp := k8stest.Start(t)
	tests := []struct {
		name string
		fn   func(*testing.T, *k8stest.ControlPlane, string)
	}{
		{"FirstReportIsCompleteAndComesAfterSync", testFirstReportIsComplete},
		{"ReportsEveryChange", testReportsEveryChange},
		{"SourcesOfOneServiceShareItsInformers", testSourcesShareInformers},
		{"AppProtocolGivesThePodsProtocol", testAppProtocol},
		{"ServicesShareNewSessionsByWeight", testWeightedServices},
		{"WaitsForPermissionToSync", testWaitsForPermission},
		// Last: it restarts the API server under the others' feet.
		{"SurvivesAPIServerRestart", testSurvivesRestart},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := "test-" + string(rune('a'+i))
			_, err := cp.Client.CoreV1().Namespaces().Create(t.Context(),
				&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("creating namespace %q: %v", ns, err)
			}
			tt.fn(t, cp, ns)
		})
	}
}

func createService(t *testing.T, client kubernetes.Interface, ns, name string) {
	t.Helper()
	_, err := client.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			{Name: "admin", Port: 9000, TargetPort: intstr.FromInt32(9000)},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service %s/%s: %v", ns, name, err)
	}
}

// writeSlice creates or replaces the slice of the Service ns/service.
func writeSlice(t *testing.T, client kubernetes.Interface, ns, service string, s *discoveryv1.EndpointSlice) {
	t.Helper()
	s = s.DeepCopy()
	s.Namespace = ns
	s.Labels = map[string]string{
		discoveryv1.LabelServiceName: service,
		discoveryv1.LabelManagedBy:   "podpin-test",
	}
	api := client.DiscoveryV1().EndpointSlices(ns)
	old, err := api.Get(t.Context(), s.Name, metav1.GetOptions{})
	if err == nil {
		s.ResourceVersion = old.ResourceVersion
		_, err = api.Update(t.Context(), s, metav1.UpdateOptions{})
	} else {
		_, err = api.Create(t.Context(), s, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("writing endpoint slice %s/%s: %v", ns, s.Name, err)
	}
}

// runKubernetes runs k until the test ends.
func runKubernetes(t *testing.T, k *Kubernetes) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Kubernetes.Run: %v", err)
		}
	})
}

// waitFor returns the first report equal to want, failing the test if
// none comes within 30 seconds.
func waitFor(t *testing.T, updates <-chan []Endpoint, want []Endpoint) {
	t.Helper()
	var got []Endpoint
	timeout := time.After(30 * time.Second)
	for {
		select {
		case got = <-updates:
			if slices.Equal(got, want) {
				return
			}
		case <-timeout:
			t.Fatalf("last report %v, want %v", got, want)
		}
	}
}

func testFirstReportIsComplete(t *testing.T, cp *k8stest.ControlPlane, ns string) {
	createService(t, cp.Client, ns, "web")
	port := []discoveryv1.EndpointPort{slicePortOf("http", 8080), slicePortOf("admin", 9000)}
	writeSlice(t, cp.Client, ns, "web", sliceOf("web-a", port, podAt("10.244.0.2", "web-0"), podAt("10.244.0.3", "web-1")))
	writeSlice(t, cp.Client, ns, "web", sliceOf("web-b", port, podAt("10.244.0.4", "web-2"),
		// Also in web-a, less ready: one endpoint, ready.
		withConditions(podAt("10.244.0.2", "web-0"), new(false), new(false), new(false))))
	writeSlice(t, cp.Client, ns, "web", ipv6(sliceOf("web-c", port, podAt("fd00::5", "web-3"))))
	// Another Service's slice in the namespace is not ours.
	writeSlice(t, cp.Client, ns, "other", sliceOf("other-a", port, podAt("10.244.0.9", "other-0")))

	k := NewKubernetes(cp.Client, nil)
	// The source runs before Kubernetes.Run: nothing is reported until the
	// informers run and sync.
	updates := runSource(t, k.Service(ns, "web", "http"))
	noUpdate(t, updates, 200*time.Millisecond)
	runKubernetes(t, k)

	want := []Endpoint{
		endpoint("web-0", "10.244.0.2:8080", Ready),
		endpoint("web-1", "10.244.0.3:8080", Ready),
		endpoint("web-2", "10.244.0.4:8080", Ready),
		endpoint("web-3", "[fd00::5]:8080", Ready),
	}
	if got := nextUpdate(t, updates); !slices.Equal(got, want) {
		t.Fatalf("first report: got %v, want the complete set %v", got, want)
	}
}

func testReportsEveryChange(t *testing.T, cp *k8stest.ControlPlane, ns string) {
	createService(t, cp.Client, ns, "web")
	port := []discoveryv1.EndpointPort{slicePortOf("http", 8080)}
	writeSlice(t, cp.Client, ns, "web", sliceOf("web-a", port, podAt("10.244.0.2", "web-0"), podAt("10.244.0.3", "web-1")))
	k := NewKubernetes(cp.Client, nil)
	runKubernetes(t, k)
	updates := runSource(t, k.Service(ns, "web", "80"))
	waitFor(t, updates, []Endpoint{
		endpoint("web-0", "10.244.0.2:8080", Ready),
		endpoint("web-1", "10.244.0.3:8080", Ready),
	})

	// web-1 terminates, still serving: it drains.
	writeSlice(t, cp.Client, ns, "web", sliceOf("web-a", port, podAt("10.244.0.2", "web-0"),
		withConditions(podAt("10.244.0.3", "web-1"), new(false), new(true), new(true))))
	waitFor(t, updates, []Endpoint{
		endpoint("web-0", "10.244.0.2:8080", Ready),
		endpoint("web-1", "10.244.0.3:8080", Draining),
	})

	// web-1 comes back with a new IP in another slice; its old one goes.
	writeSlice(t, cp.Client, ns, "web", sliceOf("web-b", port, podAt("10.244.0.7", "web-1")))
	writeSlice(t, cp.Client, ns, "web", sliceOf("web-a", port, podAt("10.244.0.2", "web-0")))
	waitFor(t, updates, []Endpoint{
		endpoint("web-0", "10.244.0.2:8080", Ready),
		endpoint("web-1", "10.244.0.7:8080", Ready),
	})

	if err := cp.Client.DiscoveryV1().EndpointSlices(ns).Delete(t.Context(), "web-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, updates, []Endpoint{endpoint("web-1", "10.244.0.7:8080", Ready)})

	// The Service goes: no port to resolve, no endpoints, though the slice
	// stays. It comes back: the endpoints with it.
	if err := cp.Client.CoreV1().Services(ns).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, updates, []Endpoint{})
	createService(t, cp.Client, ns, "web")
	waitFor(t, updates, []Endpoint{endpoint("web-1", "10.244.0.7:8080", Ready)})
}

func testAppProtocol(t *testing.T, cp *k8stest.ControlPlane, ns string) {
	h2c := "kubernetes.io/h2c"
	_, err := cp.Client.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "grpc"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "grpc", Port: 50051, TargetPort: intstr.FromString("grpc"), AppProtocol: &h2c},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The EndpointSlice controller copies the Service port's appProtocol
	// to the slice port; the API server keeps it as written.
	port := withApp(slicePortOf("grpc", 50051), h2c)
	writeSlice(t, cp.Client, ns, "grpc", sliceOf("grpc-a", []discoveryv1.EndpointPort{port}, podAt("10.244.0.2", "grpc-0")))
	k := NewKubernetes(cp.Client, nil)
	runKubernetes(t, k)
	updates := runSource(t, k.Service(ns, "grpc", "grpc"))
	waitFor(t, updates, []Endpoint{withProtocol(endpoint("grpc-0", "10.244.0.2:50051", Ready), "h2c")})

	// The port turns to TLS: the same pod, now spoken to over https.
	writeSlice(t, cp.Client, ns, "grpc", sliceOf("grpc-a",
		[]discoveryv1.EndpointPort{withApp(slicePortOf("grpc", 50051), "grpcs")}, podAt("10.244.0.2", "grpc-0")))
	waitFor(t, updates, []Endpoint{withProtocol(endpoint("grpc-0", "10.244.0.2:50051", Ready), "https")})
}

func testSourcesShareInformers(t *testing.T, cp *k8stest.ControlPlane, ns string) {
	createService(t, cp.Client, ns, "web")
	writeSlice(t, cp.Client, ns, "web", sliceOf("web-a",
		[]discoveryv1.EndpointPort{slicePortOf("http", 8080), slicePortOf("admin", 9000)},
		podAt("10.244.0.2", "web-0")))
	k := NewKubernetes(cp.Client, nil)
	runKubernetes(t, k)

	run := func(port string) (<-chan []Endpoint, func()) {
		updates := make(chan []Endpoint, 10)
		return updates, k.Service(ns, "web", port).Start(func(eps []Endpoint) { updates <- eps })
	}
	httpUpdates, stopHTTP := run("http")
	adminUpdates, stopAdmin := run("admin")
	waitFor(t, httpUpdates, []Endpoint{endpoint("web-0", "10.244.0.2:8080", Ready)})
	waitFor(t, adminUpdates, []Endpoint{endpoint("web-0", "10.244.0.2:9000", Ready)})
	if got, want := k.watching(), []string{ns + "/web"}; !slices.Equal(got, want) {
		t.Errorf("informers with two sources of one Service: got %v, want %v", got, want)
	}
	stopHTTP()
	if got, want := k.watching(), []string{ns + "/web"}; !slices.Equal(got, want) {
		t.Errorf("informers after one source stopped: got %v, want %v", got, want)
	}
	stopAdmin()
	if got := k.watching(); len(got) != 0 {
		t.Errorf("informers after the last source stopped: got %v, want none", got)
	}

	// A source started after that gets new informers and a full report.
	updates, stop := run("http")
	defer stop()
	waitFor(t, updates, []Endpoint{endpoint("web-0", "10.244.0.2:8080", Ready)})
}

// testWaitsForPermission runs as podpin's service account: until RBAC
// grants it get, list and watch on Services and EndpointSlices, the caches
// cannot sync and the source reports nothing; then that grant is enough.
func testWaitsForPermission(t *testing.T, cp *k8stest.ControlPlane, ns string) {
	createService(t, cp.Client, ns, "web")
	writeSlice(t, cp.Client, ns, "web", sliceOf("web-a", []discoveryv1.EndpointPort{slicePortOf("http", 8080)},
		podAt("10.244.0.2", "web-0")))
	client, err := kubernetes.NewForConfig(cp.ConfigFor(cp.PodpinToken))
	if err != nil {
		t.Fatal(err)
	}
	k := NewKubernetes(client, nil)
	runKubernetes(t, k)
	updates := runSource(t, k.Service(ns, "web", "http"))
	noUpdate(t, updates, time.Second)

	ctx := t.Context()
	_, err = cp.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "podpin"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cp.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "podpin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "podpin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "podpin-system", Name: "podpin"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, updates, []Endpoint{endpoint("web-0", "10.244.0.2:8080", Ready)})
}

func testSurvivesRestart(t *testing.T, cp *k8stest.ControlPlane, ns string) {
	createService(t, cp.Client, ns, "web")
	port := []discoveryv1.EndpointPort{slicePortOf("http", 8080)}
	writeSlice(t, cp.Client, ns, "web", sliceOf("web-a", port, podAt("10.244.0.2", "web-0")))
	k := NewKubernetes(cp.Client, nil)
	runKubernetes(t, k)
	updates := runSource(t, k.Service(ns, "web", "http"))
	waitFor(t, updates, []Endpoint{endpoint("web-0", "10.244.0.2:8080", Ready)})

	start := time.Now()
	cp.RestartAPIServer(t)
	writeSlice(t, cp.Client, ns, "web", sliceOf("web-b", port, podAt("10.244.0.3", "web-1")))
	waitFor(t, updates, []Endpoint{
		endpoint("web-0", "10.244.0.2:8080", Ready),
		endpoint("web-1", "10.244.0.3:8080", Ready),
	})
	t.Logf("a change made after the API server restarted arrived %v after the restart began", time.Since(start).Round(time.Millisecond))
}

func TestDeletedSliceTombstoneIsForgotten(t *testing.T) {
	w := newServiceWatch(serviceKey{"shop", "web"}, slog.New(slog.DiscardHandler))
	w.setService(svcWith(svcPort("http", 80, intstr.FromString("http"))))
	port := []discoveryv1.EndpointPort{slicePortOf("http", 8080)}
	a := sliceOf("web-a", port, podAt("10.0.0.1", "web-0"))
	w.setSlice(a)
	w.setSlice(sliceOf("web-b", port, podAt("10.0.0.2", "web-1")))
	w.synced = true

	// The watch missed the deletion; the re-list found web-a gone.
	w.deleteSlice(cache.DeletedFinalStateUnknown{Key: "shop/web-a", Obj: a})
	// A tombstone whose last known state is gone still names the slice.
	w.deleteSlice(cache.DeletedFinalStateUnknown{Key: "shop/web-b"})

	svc, ss, ok := w.snapshot()
	if !ok {
		t.Fatal("snapshot: not synced")
	}
	if got, _ := translate(svc, ss, "http"); len(got) != 0 {
		t.Errorf("after tombstones for both slices: got %v, want no endpoints", got)
	}
}

// watching returns the Services whose informers exist, sorted.
func (k *Kubernetes) watching() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var names []string
	for key := range k.watches {
		names = append(names, key.String())
	}
	slices.Sort(names)
	return names
}

func testWeightedServices(t *testing.T, cp *k8stest.ControlPlane, ns string) {
	createService(t, cp.Client, ns, "stable")
	createService(t, cp.Client, ns, "canary")
	port := []discoveryv1.EndpointPort{slicePortOf("http", 8080)}
	writeSlice(t, cp.Client, ns, "stable", sliceOf("stable-a", port, podAt("10.244.0.2", "stable-0"), podAt("10.244.0.3", "stable-1"), podAt("10.244.0.4", "stable-2")))
	writeSlice(t, cp.Client, ns, "canary", sliceOf("canary-a", port, podAt("10.244.0.5", "canary-0")))
	k := NewKubernetes(cp.Client, nil)
	runKubernetes(t, k)
	f := &Factory{Kube: k}
	src, err := f.Source("web", Spec{Services: []WeightedService{
		{Service: Service{Namespace: ns, Name: "stable", Port: "http"}, Weight: 9},
		{Service: Service{Namespace: ns, Name: "canary", Port: "http"}, Weight: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := nextUpdate(t, runSource(t, src))
	weights := map[string]int{}
	for _, ep := range got {
		weights[ep.Name] = ep.Weight
	}
	stable := weights["stable-0"] + weights["stable-1"] + weights["stable-2"]
	if len(got) != 4 || stable < 9*weights["canary-0"]-9 || stable > 9*weights["canary-0"]+9 {
		t.Errorf("got %v, want stable's three pods together nine times canary's one", got)
	}
}
