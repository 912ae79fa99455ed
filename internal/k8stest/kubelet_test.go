package k8stest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// endpoint is the part of an EndpointSlice endpoint these tests compare.
type endpoint struct {
	addr        string
	pod         string
	ready       bool
	serving     bool
	terminating bool
}

func (e endpoint) String() string {
	return fmt.Sprintf("%s(%s ready=%t serving=%t terminating=%t)", e.pod, e.addr, e.ready, e.serving, e.terminating)
}

func TestControllerManagerPublishesPodsRunByTheTest(t *testing.T) {
	cp := Start(t)
	netns := NewNetNS(t)
	netns.AddAddr(t, "10.244.0.3")
	cp.StartControllerManager(t)
	cp.CreateNode(t, DefaultNode)
	createNamespace(t, cp, "shop")
	ctx := t.Context()

	_, err := cp.Client.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}
	labels := map[string]string{"app": "web"}
	_, err = cp.Client.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "web",
					Image: "podpin.test/web:1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating deployment: %v", err)
	}

	pods := cp.WaitPods(t, "shop", "app=web", 2)
	var want []endpoint
	for i, pod := range pods {
		addr := netns.Addrs()[i].String()
		cp.RunPod(t, "shop", pod.Name, addr)
		serveName(t, netns, addr+":8080", pod.Name)
		want = append(want, endpoint{addr: addr, pod: pod.Name, ready: true, serving: true})
	}
	eps := waitEndpoints(t, cp, "shop", "web", want)

	// Each published address reaches the pod it names.
	if err := netns.CheckRoute(); err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if got := get(t, "http://"+net.JoinHostPort(ep.addr, "8080")); got != ep.pod {
			t.Errorf("GET %s: got %q, want %q", ep.addr, got, ep.pod)
		}
	}

	cp.TerminatePod(t, "shop", pods[0].Name)
	want[0] = endpoint{addr: want[0].addr, pod: want[0].pod, serving: true, terminating: true}
	waitEndpoints(t, cp, "shop", "web", want)

	// The ReplicaSet replaces the pod, but its replacement is pending, with
	// no address to publish.
	cp.ForceDeletePod(t, "shop", pods[0].Name)
	waitEndpoints(t, cp, "shop", "web", want[1:])

	cp.SetPodReady(t, "shop", pods[1].Name, false)
	waitEndpoints(t, cp, "shop", "web", []endpoint{{addr: want[1].addr, pod: want[1].pod}})
}

func TestControllerManagerPublishesStatefulSetPods(t *testing.T) {
	cp := Start(t)
	netns := NewNetNS(t)
	netns.AddAddr(t, "10.244.0.3")
	cp.StartControllerManager(t)
	createNamespace(t, cp, "db")
	ctx := t.Context()

	labels := map[string]string{"app": "db"}
	_, err := cp.Client.CoreV1().Services("db").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  labels,
			Ports:     []corev1.ServicePort{{Name: "http", Port: 8080}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}
	_, err = cp.Client.AppsV1().StatefulSets("db").Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            new(int32(2)),
			ServiceName:         "db",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "db",
					Image: "podpin.test/db:1",
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating statefulset: %v", err)
	}

	pods := cp.WaitPods(t, "db", "app=db", 2)
	if pods[0].Name != "db-0" || pods[1].Name != "db-1" {
		t.Fatalf("pods: got %s and %s, want db-0 and db-1", pods[0].Name, pods[1].Name)
	}
	var want []endpoint
	for i, pod := range pods {
		addr := netns.Addrs()[i].String()
		cp.RunPod(t, "db", pod.Name, addr)
		want = append(want, endpoint{addr: addr, pod: pod.Name, ready: true, serving: true})
	}
	waitEndpoints(t, cp, "db", "db", want)
}

// waitEndpoints waits until the EndpointSlices of service ns/name hold
// exactly want, in any order, and returns them.
func waitEndpoints(t *testing.T, cp *ControlPlane, ns, service string, want []endpoint) []endpoint {
	t.Helper()
	var got []endpoint
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cp.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=" + service,
		})
		if err != nil {
			return false, err
		}
		got = got[:0]
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				ep := endpoint{
					addr:        strings.Join(e.Addresses, ","),
					ready:       e.Conditions.Ready != nil && *e.Conditions.Ready,
					serving:     e.Conditions.Serving != nil && *e.Conditions.Serving,
					terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
				}
				if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
					ep.pod = e.TargetRef.Name
				}
				got = append(got, ep)
			}
		}
		slices.SortFunc(got, func(a, b endpoint) int { return strings.Compare(a.pod, b.pod) })
		return slices.Equal(got, want), nil
	})
	if err != nil {
		t.Fatalf("endpoints of %s/%s: got %v, want %v (%v)", ns, service, got, want, err)
	}
	return got
}

// serveName serves HTTP inside netns on addr, answering every request with
// name, until the test ends.
func serveName(t *testing.T, netns *NetNS, addr, name string) {
	t.Helper()
	l, err := netns.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// get returns the body of a GET of url.
func get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got status %d, want 200", url, resp.StatusCode)
	}
	return string(body)
}
