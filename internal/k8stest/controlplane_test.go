package k8stest

import (
	"context"
	"slices"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestStartServesEndpointSlicesWrittenDirectly(t *testing.T) {
	cp := Start(t)
	ctx := t.Context()

	v, err := cp.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Errorf("server version: got %q, want v1.37.2", v.GitVersion)
	}

	createNamespace(t, cp, "shop")
	_, err = cp.Client.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}

	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-direct",
			Labels: map[string]string{
				discoveryv1.LabelServiceName: "web",
				discoveryv1.LabelManagedBy:   "podpin-test",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.244.0.2"},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-0"},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}},
	}
	if _, err := cp.Client.DiscoveryV1().EndpointSlices("shop").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating endpoint slice: %v", err)
	}

	list, err := cp.Client.DiscoveryV1().EndpointSlices("shop").List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=web",
	})
	if err != nil {
		t.Fatalf("listing endpoint slices: %v", err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("endpoint slices for web: got %d, want 1", len(list.Items))
	}
	got := list.Items[0]
	if got.Labels[discoveryv1.LabelManagedBy] != "podpin-test" {
		t.Errorf("managed-by: got %q, want podpin-test", got.Labels[discoveryv1.LabelManagedBy])
	}
	if len(got.Endpoints) != 1 {
		t.Fatalf("endpoints: got %d, want 1", len(got.Endpoints))
	}
	ep := got.Endpoints[0]
	if !slices.Equal(ep.Addresses, []string{"10.244.0.2"}) {
		t.Errorf("addresses: got %v, want [10.244.0.2]", ep.Addresses)
	}
	if ep.TargetRef == nil || ep.TargetRef.Name != "web-0" {
		t.Errorf("targetRef: got %+v, want pod web-0", ep.TargetRef)
	}
	if len(got.Ports) != 1 || got.Ports[0].Port == nil || *got.Ports[0].Port != 8080 {
		t.Errorf("ports: got %+v, want 8080", got.Ports)
	}
}

func TestPodpinTokenHasOnlyWhatRBACGrants(t *testing.T) {
	cp := Start(t)
	ctx := t.Context()
	createNamespace(t, cp, "podpin-system")
	createNamespace(t, cp, "shop")

	// Through a kubeconfig file, as podpin run outside a cluster would be.
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig(t, cp.PodpinToken))
	if err != nil {
		t.Fatalf("loading podpin kubeconfig: %v", err)
	}
	podpin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("creating podpin client: %v", err)
	}

	review, err := podpin.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject review: %v", err)
	}
	if got := review.Status.UserInfo.Username; got != PodpinUser {
		t.Errorf("user: got %q, want %q", got, PodpinUser)
	}
	if got := review.Status.UserInfo.Groups; !slices.Contains(got, "system:serviceaccounts:podpin-system") {
		t.Errorf("groups: got %v, want system:serviceaccounts:podpin-system among them", got)
	}

	_, err = podpin.CoreV1().Secrets("podpin-system").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("listing secrets as podpin: got %v, want forbidden", err)
	}
	_, err = podpin.DiscoveryV1().EndpointSlices("shop").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("listing endpoint slices as podpin before binding: got %v, want forbidden", err)
	}

	_, err = cp.Client.RbacV1().Roles("shop").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "podpin-discovery"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"discovery.k8s.io"},
			Resources: []string{"endpointslices"},
			Verbs:     []string{"get", "list", "watch"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating role: %v", err)
	}
	_, err = cp.Client.RbacV1().RoleBindings("shop").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "podpin-discovery"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "podpin-discovery"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "podpin-system", Name: "podpin"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating role binding: %v", err)
	}

	// The authorizer reads bindings from an informer, so a grant lands a
	// moment after it is written.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := podpin.DiscoveryV1().EndpointSlices("shop").List(ctx, metav1.ListOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("listing endpoint slices as podpin after binding: still denied: %v", err)
	}
	_, err = podpin.CoreV1().Secrets("shop").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets as podpin after binding: got %v, want forbidden", err)
	}
	_, err = podpin.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("listing endpoint slices outside the bound namespace: got %v, want forbidden", err)
	}
}

func createNamespace(t *testing.T, cp *ControlPlane, name string) {
	t.Helper()
	_, err := cp.Client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %q: %v", name, err)
	}
}
