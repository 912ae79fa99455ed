package main

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	xv1alpha1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"

	"github.com/podpin/podpin/internal/k8stest"
)

// The Gateway API conformance run: podpin's GatewayClass, the prefix its
// Gateways take addresses from, and the tests it leaves out.
const (
	conformanceGatewayClass = "podpin"
	conformanceController   = "podpin.io/gateway-controller"
	conformanceAddresses    = "127.0.1.0/24"
)

// conformanceSkipTests are the conformance tests (by short name, such as
// "HTTPRouteSimpleSameNamespace") that TestGatewayConformance does not run,
// each with the reason. A skipped core test makes the report partial, so
// this list is where a known gap is written down, not hidden. It is empty.
var conformanceSkipTests = []string{}

// TestGatewayConformance runs the official Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance, the version in go.mod) against
// podpin on a real control plane: kube-apiserver and the controller manager
// from internal/k8stest, the suite's backend pods run by k8stest's test
// kubelet at their own addresses, and podpin serve --gateway as its own
// service account under the chart's RBAC. Profile GATEWAY-HTTP, and
// GATEWAY-GRPC when podpin's GatewayClass declares GRPCRoute; the features
// tested beyond core are those podpin declares in the GatewayClass status.
//
// Settings, read from the environment:
//
//   - PODPIN_CONFORMANCE_REPORT: a file to write the suite's report (YAML) to.
//   - PODPIN_CONFORMANCE_RUN_TEST: run only this test (a short name such as
//     HTTPRouteSimpleSameNamespace), with the same supported features.
//   - PODPIN_CONFORMANCE_DEBUG: when set, the suite logs every request and
//     response.
func TestGatewayConformance(t *testing.T) {
	cp := k8stest.Start(t)
	netns := k8stest.NewNetNS(t)
	cp.StartControllerManager(t)
	cp.InstallGatewayAPICRDs(t)
	cp.StartTestKubelet(t, netns, k8stest.KubeletOptions{})

	c := conformanceClient(t, cp.Config)
	gwc := &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: conformanceGatewayClass},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: conformanceController},
	}
	if err := c.Create(t.Context(), gwc); err != nil {
		t.Fatalf("creating GatewayClass %s: %v", conformanceGatewayClass, err)
	}

	startPodpin(t, "--gateway", "--gateway-addresses", conformanceAddresses,
		"--kubeconfig", gatewayKubeconfig(t, cp),
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")

	// The suite reads the supported features from the GatewayClass status
	// once, when it starts: wait until podpin has written them.
	supported := waitGatewayClassAccepted(t, c)
	profiles := []suite.ConformanceProfileName{suite.GatewayHTTPConformanceProfileName}
	if slices.Contains(supported, features.SupportGRPCRoute) {
		profiles = append(profiles, suite.GatewayGRPCConformanceProfileName)
	}
	t.Logf("GatewayClass %s supports %v; profiles %v", conformanceGatewayClass, supported, profiles)

	// The suite infers the features from the GatewayClass only when it runs
	// every test; for one test, they are given.
	runTest := os.Getenv("PODPIN_CONFORMANCE_RUN_TEST")
	var given []features.FeatureName
	if runTest != "" {
		given = supported
	}

	// The suite may not log through controller-runtime before a logger is set.
	ctrllog.SetLogger(logr.Discard())
	conformance.RunConformanceWithOptions(t, suite.ConformanceOptions{
		ConfigurableOptions: suite.ConfigurableOptions{
			RunTest:              runTest,
			SupportedFeatures:    given,
			Debug:                os.Getenv("PODPIN_CONFORMANCE_DEBUG") != "",
			GatewayClassName:     conformanceGatewayClass,
			CleanupBaseResources: true,
			CleanupTestResources: true,
			Mode:                 "default",
			ConformanceProfiles:  profiles,
			TimeoutConfig:        conformanceTimeouts(),
			SkipTests:            conformanceSkipTests,
			ReportOutputPath:     os.Getenv("PODPIN_CONFORMANCE_REPORT"),
			Implementation: confv1.Implementation{
				Organization: "podpin",
				Project:      "podpin",
				URL:          "https://github.com/podpin/podpin",
				Version:      podpinVersion(t),
				Contact:      []string{"https://github.com/podpin/podpin"},
			},
			// For GatewayStaticAddresses: an address podpin can take, from
			// --gateway-addresses, and one it cannot.
			UsableNetworkAddresses: []gatewayv1.GatewaySpecAddress{
				{Type: new(gatewayv1.IPAddressType), Value: "127.0.1.250"}},
			UnusableNetworkAddresses: []gatewayv1.GatewaySpecAddress{
				{Type: new(gatewayv1.IPAddressType), Value: "192.0.2.1"}},
		},
		Client: c,
		// The suite makes a client of its own for each test from these.
		ClientOptions: client.Options{Scheme: c.Scheme()},
		Clientset:     cp.Client,
		RestConfig:    rest.CopyConfig(cp.Config), // the suite changes its user agent per test
	})
}

// conformanceTimeouts are the suite's default timeouts. Changes go here,
// with the reason; none of the defaults that the suite marks as the
// maximum for a conformant implementation (MaxTimeToConsistency) may grow.
func conformanceTimeouts() config.TimeoutConfig {
	return config.DefaultTimeoutConfig()
}

// conformanceClient is a controller-runtime client that knows the Gateway
// API types and CRDs, as the suite's own DefaultOptions makes it.
func conformanceClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, gatewayv1.Install, xv1alpha1.Install, apiextensionsv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(rest.CopyConfig(cfg), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// gatewayKubeconfig returns a kubeconfig for podpin: its own service
// account, bound to the RBAC objects of the chart rendered with
// gateway.enabled and nothing else, which proves that RBAC.
func gatewayKubeconfig(t *testing.T, cp *k8stest.ControlPlane) string {
	t.Helper()
	// The Gateway's port 80 is the Ingress listener's Service port by
	// default: that one moves aside, as the chart asks.
	values := "gateway:\n  enabled: true\nservice:\n  port: 8080\n"
	var rbac []*unstructured.Unstructured
	covered := false
	for _, o := range renderAgainst(t, cp.Kubeconfig(t, cp.AdminToken), "podpin", "podpin-system", values) {
		switch o.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			rbac = append(rbac, o)
		}
		if o.GetKind() == "ClusterRole" && grants(o, "gateway.networking.k8s.io", "gatewayclasses") {
			covered = true
		}
	}
	if !covered {
		t.Fatal("the chart with gateway.enabled grants no ClusterRole rule on the Gateway API")
	}
	install(t, cp, rbac, false)
	return cp.Kubeconfig(t, cp.PodpinToken)
}

// grants reports whether the ClusterRole role has a rule for resource in
// group.
func grants(role *unstructured.Unstructured, group, resource string) bool {
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		groups, _, _ := unstructured.NestedStringSlice(rule, "apiGroups")
		resources, _, _ := unstructured.NestedStringSlice(rule, "resources")
		if slices.Contains(groups, group) && slices.Contains(resources, resource) {
			return true
		}
	}
	return false
}

// waitGatewayClassAccepted waits until podpin has accepted the GatewayClass
// and listed its supported features, and returns them.
func waitGatewayClassAccepted(t *testing.T, c client.Client) []features.FeatureName {
	t.Helper()
	var gwc gatewayv1.GatewayClass
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, types.NamespacedName{Name: conformanceGatewayClass}, &gwc); err != nil {
			return false, nil
		}
		accepted := meta.IsStatusConditionTrue(gwc.Status.Conditions, string(gatewayv1.GatewayClassConditionStatusAccepted))
		return accepted && len(gwc.Status.SupportedFeatures) > 0, nil
	})
	if err != nil {
		t.Fatalf("GatewayClass %s: not Accepted with supported features within a minute: conditions %v, features %v",
			conformanceGatewayClass, gwc.Status.Conditions, gwc.Status.SupportedFeatures)
	}
	var names []features.FeatureName
	for _, f := range gwc.Status.SupportedFeatures {
		names = append(names, features.FeatureName(f.Name))
	}
	return names
}

// podpinVersion is the version the podpin binary under test reports.
func podpinVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(binary, "version").Output()
	if err != nil {
		t.Fatalf("podpin version: %v", err)
	}
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "podpin"))
	if v == "(devel)" {
		// A test build has no release version: the commit names it.
		if rev, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
			v = "devel-" + strings.TrimSpace(string(rev))
		}
	}
	return v
}

func TestGrantsFindsARuleForAResourceOfAGroup(t *testing.T) {
	role := &unstructured.Unstructured{Object: map[string]any{
		"kind": "ClusterRole",
		"rules": []any{
			map[string]any{"apiGroups": []any{""}, "resources": []any{"services"}, "verbs": []any{"list"}},
			map[string]any{"apiGroups": []any{"gateway.networking.k8s.io"}, "resources": []any{"gateways", "gatewayclasses"}, "verbs": []any{"list"}},
		},
	}}
	for _, tc := range []struct {
		group, resource string
		want            bool
	}{
		{"gateway.networking.k8s.io", "gatewayclasses", true},
		{"gateway.networking.k8s.io", "httproutes", false},
		{"", "gatewayclasses", false},
		{"", "services", true},
	} {
		if got := grants(role, tc.group, tc.resource); got != tc.want {
			t.Errorf("grants(%q, %q): got %t, want %t", tc.group, tc.resource, got, tc.want)
		}
	}
}
