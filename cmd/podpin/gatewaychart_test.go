package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"

	"github.com/podpin/podpin/internal/k8stest"
)

// gatewayChartValues turn the Gateway API controller on with the CRDs, the
// Ingress listener's Service port moved off the Gateway's 80.
const gatewayChartValues = "gateway: {enabled: true, installCRDs: true}\nservice: {port: 8000}\n"

// ingressGrants is what the chart's ClusterRole grants the Ingress
// controller, as "group/resource verb" ("" is the core group).
var ingressGrants = []string{
	"networking.k8s.io/ingresses get", "networking.k8s.io/ingresses list", "networking.k8s.io/ingresses watch",
	"networking.k8s.io/ingressclasses get", "networking.k8s.io/ingressclasses list", "networking.k8s.io/ingressclasses watch",
	"networking.k8s.io/ingresses/status update",
	"/services get", "/services list", "/services watch",
	"/secrets list", "/secrets watch",
	"discovery.k8s.io/endpointslices get", "discovery.k8s.io/endpointslices list", "discovery.k8s.io/endpointslices watch",
	"/events create", "/events patch",
}

// gatewayGrants is what gateway.enabled adds: the Gateway API controller
// lists and watches the objects it serves and Namespaces, and writes their
// status (Services, EndpointSlices, Secrets and Events it shares with the
// Ingress controller).
var gatewayGrants = []string{
	"gateway.networking.k8s.io/gatewayclasses list", "gateway.networking.k8s.io/gatewayclasses watch",
	"gateway.networking.k8s.io/gateways list", "gateway.networking.k8s.io/gateways watch",
	"gateway.networking.k8s.io/httproutes list", "gateway.networking.k8s.io/httproutes watch",
	"gateway.networking.k8s.io/grpcroutes list", "gateway.networking.k8s.io/grpcroutes watch",
	"gateway.networking.k8s.io/referencegrants list", "gateway.networking.k8s.io/referencegrants watch",
	"/namespaces list", "/namespaces watch",
	"gateway.networking.k8s.io/gatewayclasses/status update", "gateway.networking.k8s.io/gatewayclasses/status patch",
	"gateway.networking.k8s.io/gateways/status update", "gateway.networking.k8s.io/gateways/status patch",
	"gateway.networking.k8s.io/httproutes/status update", "gateway.networking.k8s.io/httproutes/status patch",
	"gateway.networking.k8s.io/grpcroutes/status update", "gateway.networking.k8s.io/grpcroutes/status patch",
}

// renderChart renders the chart with tools/chart, with values (YAML, may be
// empty) over the defaults and the extra flags args; it returns the
// objects, or the command's output as an error.
func renderChart(t *testing.T, values string, args ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "out.yaml")
	args = append([]string{"run", ".", "-o", out}, args...)
	if values != "" {
		f := filepath.Join(dir, "values.yaml")
		if err := os.WriteFile(f, []byte(values), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-f", f)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = "../../tools/chart"
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, b)
	}
	return manifestObjects(t, out), nil
}

// mustRenderChart is renderChart that fails the test on an error.
func mustRenderChart(t *testing.T, values string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := renderChart(t, values, args...)
	if err != nil {
		t.Fatalf("rendering the chart with %q: %v", values, err)
	}
	return objs
}

// clusterRoleGrants flattens the rules of the rendering's only ClusterRole
// into "group/resource verb" strings, sorted, and checks the rendering
// binds it, and nothing else, to podpin's ServiceAccount.
func clusterRoleGrants(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	var grants []string
	var roles, bindings int
	for _, o := range objs {
		switch o.GetKind() {
		case "Role", "RoleBinding":
			t.Errorf("the chart renders a %s %s: podpin's permissions are the ClusterRole's alone", o.GetKind(), o.GetName())
		case "ClusterRoleBinding":
			bindings++
			ref, _, _ := unstructured.NestedStringMap(o.Object, "roleRef")
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			if ref["kind"] != "ClusterRole" || ref["name"] != "podpin" || len(subjects) != 1 ||
				fmt.Sprint(subjects[0]) != "map[kind:ServiceAccount name:podpin namespace:podpin-system]" {
				t.Errorf("ClusterRoleBinding: roleRef %v subjects %v, want ClusterRole podpin bound to podpin-system/podpin alone", ref, subjects)
			}
		case "ClusterRole":
			roles++
			rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
			for _, r := range rules {
				rule := r.(map[string]any)
				for k := range rule {
					if k != "apiGroups" && k != "resources" && k != "verbs" {
						t.Errorf("ClusterRole rule %v has %s: want groups, resources and verbs only", rule, k)
					}
				}
				groups, _, _ := unstructured.NestedStringSlice(rule, "apiGroups")
				resources, _, _ := unstructured.NestedStringSlice(rule, "resources")
				verbs, _, _ := unstructured.NestedStringSlice(rule, "verbs")
				for _, g := range groups {
					for _, res := range resources {
						for _, v := range verbs {
							grants = append(grants, g+"/"+res+" "+v)
						}
					}
				}
			}
		}
	}
	if roles != 1 || bindings != 1 {
		t.Errorf("the rendering has %d ClusterRoles and %d ClusterRoleBindings, want one of each", roles, bindings)
	}
	slices.Sort(grants)
	return grants
}

// The chart's ClusterRole grants every permission podpin's controllers use
// and nothing more: the Ingress controller's by default, the Gateway API
// controller's too with gateway.enabled (and whatever else is on).
func TestChartClusterRoleGrantsExactlyWhatPodpinUses(t *testing.T) {
	both := append(slices.Clone(ingressGrants), gatewayGrants...)
	for _, tc := range []struct {
		name string
		objs []*unstructured.Unstructured
		want []string
	}{
		{"the default manifests", manifestObjects(t, manifestsFile), ingressGrants},
		{"gateway.enabled", mustRenderChart(t, "gateway: {enabled: true}\nservice: {port: 8000}\n"), both},
		{"gateway.enabled with its CRDs, an address prefix and a class of its own",
			mustRenderChart(t, "gateway: {enabled: true, installCRDs: true, addresses: 10.9.0.0/24, gatewayClass: {name: edge}}\nservice: {port: 8000}\n"), both},
		{"gateway.installCRDs alone", mustRenderChart(t, "gateway: {installCRDs: true}\n"), ingressGrants},
	} {
		got := clusterRoleGrants(t, tc.objs)
		want := slices.Sorted(slices.Values(tc.want))
		var missing, extra []string
		for _, g := range want {
			if !slices.Contains(got, g) {
				missing = append(missing, g)
			}
		}
		for _, g := range got {
			if !slices.Contains(want, g) {
				extra = append(extra, g)
			}
		}
		if len(got) != len(slices.Compact(slices.Clone(got))) {
			t.Errorf("%s: a grant is given twice: %v", tc.name, got)
		}
		if len(missing) > 0 || len(extra) > 0 {
			t.Errorf("%s: ClusterRole lacks %v and grants more: %v", tc.name, missing, extra)
		}
	}
}

// TestChartGatewayRBACOnTheAPIServer installs the chart with gateway.enabled
// and its CRDs on a real API server, then checks, as podpin's service
// account, that the ClusterRole lets the Gateway API controller read what
// it reads and write the status it writes, and nothing else tried. The
// Gateway and HTTPRoute of the Kubernetes guide are created on the way, so
// the guide's example holds for the chart's CRDs (the experimental channel,
// which has sessionPersistence). Rendered against the cluster before the
// CRDs are there, the chart fails and says how to install them.
func TestChartGatewayRBACOnTheAPIServer(t *testing.T) {
	cp := k8stest.Start(t)
	ctx := t.Context()
	kubeconfig := cp.Kubeconfig(t, cp.AdminToken)
	waitUntilTrue(t, "namespace kube-system exists", func() bool {
		_, err := cp.Client.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		return err == nil
	})

	t.Run("without the CRDs the chart says how to install them", func(t *testing.T) {
		_, err := renderChart(t, "gateway: {enabled: true}\nservice: {port: 8000}\n", "-kubeconfig", kubeconfig)
		if err == nil || !strings.Contains(err.Error(), "helm show crds") {
			t.Errorf("rendering with gateway.enabled against a cluster without the CRDs: got %v, want an error naming helm show crds", err)
		}
	})

	objs := mustRenderChart(t, gatewayChartValues, "-include-crds")
	var crds, rest []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition":
			crds = append(crds, o)
		default:
			rest = append(rest, o)
		}
	}
	if len(crds) != 11 {
		t.Fatalf("the rendering with gateway.installCRDs has %d Namespace and CRD objects, want the Namespace and 10 CRDs", len(crds))
	}
	install(t, cp, crds, false)
	gv := schema.GroupVersion{Group: "gateway.networking.k8s.io", Version: "v1"}
	waitUntilTrue(t, "the Gateway API resources are served", func() bool {
		list, err := cp.Client.Discovery().ServerResourcesForGroupVersion(gv.String())
		if err != nil {
			return false
		}
		n := 0
		for _, r := range list.APIResources {
			if slices.Contains([]string{"gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants"}, r.Name) {
				n++
			}
		}
		return n == 5
	})
	if _, err := renderChart(t, "gateway: {enabled: true}\nservice: {port: 8000}\n", "-kubeconfig", kubeconfig); err != nil {
		t.Errorf("rendering with gateway.enabled against a cluster with the CRDs: %v", err)
	}
	install(t, cp, rest, false, "Deployment")

	admin, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	podpin, err := dynamic.NewForConfig(cp.ConfigFor(cp.PodpinToken))
	if err != nil {
		t.Fatal(err)
	}
	res := func(name string) schema.GroupVersionResource { return gv.WithResource(name) }

	createNamespace(t, cp.Client, "shop")
	guide := guideGatewayObjects(t)
	for _, o := range guide {
		r := res(strings.ToLower(o.GetKind()) + "s")
		if _, err := admin.Resource(r).Namespace(o.GetNamespace()).Create(ctx, o, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("creating the guide's %s %s/%s with the chart's CRDs: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	grpc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gv.String(), "kind": "GRPCRoute",
		"metadata": map[string]any{"name": "orders", "namespace": "shop"},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "web"}},
			"rules":      []any{map[string]any{"backendRefs": []any{map[string]any{"name": "orders", "port": int64(50051)}}}},
		},
	}}
	if _, err := admin.Resource(res("grpcroutes")).Namespace("shop").Create(ctx, grpc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// What the controller does is allowed...
	for _, r := range []schema.GroupVersionResource{
		res("gatewayclasses"), res("gateways"), res("httproutes"), res("grpcroutes"), res("referencegrants"),
		{Version: "v1", Resource: "namespaces"},
	} {
		if _, err := podpin.Resource(r).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("listing %s as podpin: %v", r.Resource, err)
		}
		if w, err := podpin.Resource(r).Watch(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("watching %s as podpin: %v", r.Resource, err)
		} else {
			w.Stop()
		}
	}
	accepted := func(generation int64) map[string]any {
		return map[string]any{
			"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
			"observedGeneration": generation, "lastTransitionTime": "2026-01-02T03:04:05Z",
		}
	}
	statuses := []struct {
		resource, namespace, name string
		status                    map[string]any
	}{
		{"gatewayclasses", "", "podpin", map[string]any{"conditions": []any{accepted(1)}}},
		{"gateways", "shop", "web", map[string]any{"conditions": []any{accepted(1)}}},
		{"httproutes", "shop", "cart", map[string]any{"parents": []any{map[string]any{
			"parentRef":      map[string]any{"name": "web"},
			"controllerName": "podpin.io/gateway-controller",
			"conditions":     []any{accepted(1)},
		}}}},
		{"grpcroutes", "shop", "orders", map[string]any{"parents": []any{map[string]any{
			"parentRef":      map[string]any{"name": "web"},
			"controllerName": "podpin.io/gateway-controller",
			"conditions":     []any{accepted(1)},
		}}}},
	}
	for _, s := range statuses {
		// update: the object as the administrator reads it, the status set.
		cur, err := admin.Resource(res(s.resource)).Namespace(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedMap(cur.Object, s.status, "status"); err != nil {
			t.Fatal(err)
		}
		if _, err := podpin.Resource(res(s.resource)).Namespace(s.namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Errorf("updating the status of %s %s as podpin: %v", s.resource, s.name, err)
		}
		// patch: a merge patch of the status subresource.
		patch, err := json.Marshal(map[string]any{"status": s.status})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := podpin.Resource(res(s.resource)).Namespace(s.namespace).Patch(ctx, s.name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			t.Errorf("patching the status of %s %s as podpin: %v", s.resource, s.name, err)
		}
	}

	// ...and nothing else it was tried with.
	spec := []byte(`{"spec":{"hostnames":["evil.example"]}}`)
	denied := []struct {
		what string
		do   func() error
	}{
		{"getting a gateway (the controller lists and watches)", func() error {
			_, err := podpin.Resource(res("gateways")).Namespace("shop").Get(ctx, "web", metav1.GetOptions{})
			return err
		}},
		{"creating a gateway", func() error {
			g := guide[0].DeepCopy()
			g.SetName("other")
			g.SetResourceVersion("")
			_, err := podpin.Resource(res("gateways")).Namespace("shop").Create(ctx, g, metav1.CreateOptions{})
			return err
		}},
		{"changing a gateway's spec", func() error {
			_, err := podpin.Resource(res("gateways")).Namespace("shop").Patch(ctx, "web", types.MergePatchType,
				[]byte(`{"spec":{"gatewayClassName":"other"}}`), metav1.PatchOptions{})
			return err
		}},
		{"changing a gatewayclass's spec", func() error {
			_, err := podpin.Resource(res("gatewayclasses")).Patch(ctx, "podpin", types.MergePatchType,
				[]byte(`{"spec":{"description":"other"}}`), metav1.PatchOptions{})
			return err
		}},
		{"changing a grpcroute's spec", func() error {
			_, err := podpin.Resource(res("grpcroutes")).Namespace("shop").Patch(ctx, "orders", types.MergePatchType, spec, metav1.PatchOptions{})
			return err
		}},
		{"changing an httproute's spec", func() error {
			_, err := podpin.Resource(res("httproutes")).Namespace("shop").Patch(ctx, "cart", types.MergePatchType, spec, metav1.PatchOptions{})
			return err
		}},
		{"deleting an httproute", func() error {
			return podpin.Resource(res("httproutes")).Namespace("shop").Delete(ctx, "cart", metav1.DeleteOptions{})
		}},
		{"deleting the gatewayclass", func() error {
			return podpin.Resource(res("gatewayclasses")).Delete(ctx, "podpin", metav1.DeleteOptions{})
		}},
		{"creating a referencegrant", func() error {
			g := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": gv.String(), "kind": "ReferenceGrant",
				"metadata": map[string]any{"name": "x", "namespace": "shop"},
				"spec": map[string]any{
					"from": []any{map[string]any{"group": gv.Group, "kind": "HTTPRoute", "namespace": "evil"}},
					"to":   []any{map[string]any{"group": "", "kind": "Service"}},
				},
			}}
			_, err := podpin.Resource(res("referencegrants")).Namespace("shop").Create(ctx, g, metav1.CreateOptions{})
			return err
		}},
		{"listing tlsroutes (a kind podpin does not serve)", func() error {
			_, err := podpin.Resource(res("tlsroutes")).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"listing listenersets", func() error {
			_, err := podpin.Resource(res("listenersets")).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"changing a namespace", func() error {
			_, err := podpin.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Patch(ctx, "shop",
				types.MergePatchType, []byte(`{"metadata":{"labels":{"evil":"yes"}}}`), metav1.PatchOptions{})
			return err
		}},
		{"deleting a CRD", func() error {
			return podpin.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
				Delete(ctx, "gateways.gateway.networking.k8s.io", metav1.DeleteOptions{})
		}},
	}
	for _, d := range denied {
		if err := d.do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as podpin: got %v, want forbidden", d.what, err)
		}
	}
}

// guideGatewayObjects are the Gateway and the HTTPRoute of the "Gateway
// API" section of docs/kubernetes.md, the Gateway first, read from the
// guide's YAML blocks that hold them.
func guideGatewayObjects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	doc, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, block := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1) {
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(block[1]), 4096)
		for {
			var m map[string]any
			if dec.Decode(&m) != nil {
				break
			}
			o := &unstructured.Unstructured{Object: m}
			if o.GetAPIVersion() == "gateway.networking.k8s.io/v1" && (o.GetKind() == "Gateway" || o.GetKind() == "HTTPRoute") {
				objs = append(objs, o)
			}
		}
	}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return strings.Compare(a.GetKind(), b.GetKind()) // Gateway before HTTPRoute
	})
	if len(objs) != 2 || objs[0].GetKind() != "Gateway" || objs[0].GetName() != "web" || objs[1].GetName() != "cart" {
		t.Fatalf("docs/kubernetes.md: got %d Gateway API objects, want the Gateway web and the HTTPRoute cart", len(objs))
	}
	for _, o := range objs {
		if o.GetNamespace() != "shop" {
			t.Fatalf("docs/kubernetes.md: %s %s is in namespace %q, want shop", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	return objs
}

// runHelm runs Helm's own command line (helm.sh/helm/v4, the version
// tools/chart builds with: go -C tools/chart tool helm) with args against
// the cluster of kubeconfig, and stdin as its input; Helm keeps its cache
// and configuration in a folder of the test's. It returns the output.
func runHelm(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command("go", append([]string{"tool", "helm", "--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = "../../tools/chart"
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestChartGatewayCRDsThroughHelm runs helm install and uninstall, Helm's
// own, against a real API server and follows the Gateway API CRDs through
// them: none without gateway.installCRDs; with it, the CRDs installed first
// and the GatewayClass beside them in one install; left, with the user's
// Gateways, by helm uninstall; and, already present, used by an install
// without gateway.installCRDs. The guide's commands, kubectl apply of helm
// show crds among them, run as the guide writes them.
func TestChartGatewayCRDsThroughHelm(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl (Debian package kubernetes-client) is not installed: scripts/test installs it")
	}
	cp := k8stest.Start(t)
	ctx := t.Context()
	kubeconfig := cp.Kubeconfig(t, cp.AdminToken)
	chart, err := filepath.Abs("../../deploy/helm/podpin")
	if err != nil {
		t.Fatal(err)
	}
	waitUntilTrue(t, "namespace kube-system exists", func() bool {
		_, err := cp.Client.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		return err == nil
	})
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	crdRes := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	gatewayCRDs := func() []string {
		t.Helper()
		list, err := dyn.Resource(crdRes).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range list.Items {
			if strings.HasSuffix(c.GetName(), ".gateway.networking.k8s.io") {
				names = append(names, c.GetName())
				if c.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
					t.Errorf("CRD %s: annotations %v, want helm.sh/resource-policy keep", c.GetName(), c.GetAnnotations())
				}
			}
		}
		return names
	}
	gv := schema.GroupVersion{Group: "gateway.networking.k8s.io", Version: "v1"}
	gatewayClass := func() (*unstructured.Unstructured, error) {
		return dyn.Resource(gv.WithResource("gatewayclasses")).Get(ctx, "podpin", metav1.GetOptions{})
	}
	installArgs := []string{"install", "podpin", chart, "-n", "podpin-system", "--create-namespace"}
	gatewayArgs := []string{"--set", "gateway.enabled=true", "--set", "service.port=8080"}

	t.Run("the defaults install no CRD", func(t *testing.T) {
		if out, err := runHelm(t, kubeconfig, installArgs...); err != nil {
			t.Fatalf("helm install: %v\n%s", err, out)
		}
		if crds := gatewayCRDs(); len(crds) > 0 {
			t.Errorf("the default install made CRDs %v, want none", crds)
		}
		if out, err := runHelm(t, kubeconfig, "uninstall", "podpin", "-n", "podpin-system"); err != nil {
			t.Fatalf("helm uninstall: %v\n%s", err, out)
		}
	})

	t.Run("gateway.enabled without the CRDs stops, saying how to install them", func(t *testing.T) {
		out, err := runHelm(t, kubeconfig, append(installArgs, gatewayArgs...)...)
		if err == nil || !strings.Contains(out, "helm show crds deploy/helm/podpin | kubectl apply --server-side -f -") {
			t.Errorf("helm install with gateway.enabled and no CRDs: got %v\n%s\nwant a failure naming the command that installs them", err, out)
		}
		if crds := gatewayCRDs(); len(crds) > 0 {
			t.Errorf("the failed install made CRDs %v, want none", crds)
		}
	})

	t.Run("one install makes the CRDs and the GatewayClass", func(t *testing.T) {
		out, err := runHelm(t, kubeconfig, append(installArgs, append(gatewayArgs, "--set", "gateway.installCRDs=true")...)...)
		if err != nil {
			t.Fatalf("helm install with gateway.installCRDs: %v\n%s", err, out)
		}
		if crds := gatewayCRDs(); len(crds) != 10 {
			t.Errorf("CRDs after the install: %v, want the chart's 10", crds)
		}
		gc, err := gatewayClass()
		if err != nil {
			t.Fatalf("the GatewayClass of the install: %v", err)
		}
		if name, _, _ := unstructured.NestedString(gc.Object, "spec", "controllerName"); name != "podpin.io/gateway-controller" {
			t.Errorf("GatewayClass controllerName %q, want podpin.io/gateway-controller", name)
		}
		// The release record holds the chart, CRDs included: it must stay
		// well within a Secret's 1 MiB.
		s, err := cp.Client.CoreV1().Secrets("podpin-system").Get(ctx, "sh.helm.release.v1.podpin.v1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the release record is %d bytes", len(s.Data["release"]))
		if n := len(s.Data["release"]); n > 512<<10 {
			t.Errorf("the release record is %d bytes, want at most half a Secret's 1 MiB", n)
		}
	})

	createNamespace(t, cp.Client, "shop")
	for _, o := range guideGatewayObjects(t) {
		if _, err := dyn.Resource(gv.WithResource(strings.ToLower(o.GetKind())+"s")).Namespace("shop").Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("helm uninstall leaves the CRDs and the Gateways", func(t *testing.T) {
		if out, err := runHelm(t, kubeconfig, "uninstall", "podpin", "-n", "podpin-system"); err != nil {
			t.Fatalf("helm uninstall: %v\n%s", err, out)
		}
		if crds := gatewayCRDs(); len(crds) != 10 {
			t.Errorf("CRDs after the uninstall: %v, want the chart's 10", crds)
		}
		if _, err := dyn.Resource(gv.WithResource("gateways")).Namespace("shop").Get(ctx, "web", metav1.GetOptions{}); err != nil {
			t.Errorf("the Gateway after the uninstall: %v", err)
		}
		if _, err := gatewayClass(); !apierrors.IsNotFound(err) {
			t.Errorf("the GatewayClass after the uninstall: got %v, want it gone with the release", err)
		}
	})

	t.Run("helm show crds applies server-side over the CRDs", func(t *testing.T) {
		show := exec.Command("go", "tool", "helm", "show", "crds", chart)
		show.Dir = "../../tools/chart"
		crds, err := show.Output()
		if err != nil {
			t.Fatalf("helm show crds: %v", err)
		}
		if n := strings.Count(string(crds), "\nkind: CustomResourceDefinition\n"); n != 10 {
			t.Errorf("helm show crds printed %d CRDs, want 10", n)
		}
		apply := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", "-")
		apply.Stdin = bytes.NewReader(crds)
		if out, err := apply.CombinedOutput(); err != nil {
			t.Errorf("kubectl apply --server-side of helm show crds: %v\n%s", err, out)
		}
	})

	t.Run("with the CRDs present an install needs no installCRDs", func(t *testing.T) {
		if out, err := runHelm(t, kubeconfig, append(installArgs, gatewayArgs...)...); err != nil {
			t.Fatalf("helm install with gateway.enabled over present CRDs: %v\n%s", err, out)
		}
		if _, err := gatewayClass(); err != nil {
			t.Errorf("the GatewayClass: %v", err)
		}
	})
}
