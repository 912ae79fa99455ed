package main

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podpin/podpin/internal/k8stest"
	"github.com/podpin/podpin/internal/redistest"
)

// TestChartDefaultsPinEachKeyToOnePodAcrossReplicas installs the chart as
// its default values render it and runs podpin's replicas as its
// Deployment says, with the bundled store played by a real redis-server
// started with the bundled store's own arguments. Each of 200 keys is sent
// through every replica, as a Service spreads a client's requests, and must
// reach one pod; after the app is scaled from 2 to 4 pods and podpin from
// 2 to 4 replicas, no key has moved and new keys again reach one pod each.
func TestChartDefaultsPinEachKeyToOnePodAcrossReplicas(t *testing.T) {
	cp := k8stest.Start(t)
	netns := k8stest.NewNetNS(t)
	for _, a := range []string{"10.244.0.3", "10.244.0.4", "10.244.0.5"} {
		netns.AddAddr(t, a)
	}
	objs := manifestObjects(t, manifestsFile)
	install(t, cp, objs, false, "Deployment")
	store := startBundledStore(t, objs)
	createNamespace(t, cp.Client, "shop")
	servePods(t, cp, netns, "shop", "cart", "cart-0=10.244.0.2", "cart-1=10.244.0.3")
	ing := newIngress("cart", "shop.example", "/", "cart", intstr.FromString("http"),
		map[string]string{"podpin.io/sticky-header": "X-Session"})
	if _, err := cp.Client.NetworkingV1().Ingresses("shop").Create(t.Context(), ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := netns.CheckRoute(); err != nil {
		t.Fatal(err)
	}

	var reps []*process
	addReplicas := func(n int) {
		for range n {
			p, _ := startChartPodpin(t, cp, objs, store.Addr)
			waitUntilTrue(t, "a new replica serves shop.example", func() bool {
				code, _ := request(p, "shop.example", "/", nil)
				return code == http.StatusOK
			})
			reps = append(reps, p)
		}
	}
	replicas := chartReplicas(t, objs)
	if replicas < 2 {
		t.Fatalf("the chart's default replicaCount is %d; this test is about more than one", replicas)
	}
	addReplicas(replicas)

	// pods sends each key's requests through every replica, starting with a
	// different one for each key, and returns the pod each key reached; a
	// key that reaches two pods fails the test.
	pods := func(keys []string) map[string]string {
		t.Helper()
		got := map[string]string{}
		for i, k := range keys {
			for j := range reps {
				ri := (i + j) % len(reps)
				code, body := request(reps[ri], "shop.example", "/", []string{"X-Session", k})
				if code != http.StatusOK {
					t.Fatalf("key %q through replica %d: got %d %q, want 200", k, ri, code, body)
				}
				if first, ok := got[k]; !ok {
					got[k] = body
				} else if body != first {
					t.Errorf("key %q reached %s, then %s through replica %d", k, first, body, ri)
				}
			}
		}
		return got
	}
	keysOf := func(prefix string) []string {
		var keys []string
		for i := range 200 {
			keys = append(keys, fmt.Sprintf("%s-%d", prefix, i))
		}
		return keys
	}
	spread := func(pinned map[string]string) map[string]int {
		n := map[string]int{}
		for _, p := range pinned {
			n[p]++
		}
		return n
	}
	same := func(when string, got, want map[string]string) {
		t.Helper()
		moved := 0
		for k, p := range want {
			if got[k] != p {
				moved++
				if moved <= 5 {
					t.Errorf("%s: key %q moved from %s to %s", when, k, p, got[k])
				}
			}
		}
		if moved > 0 {
			t.Errorf("%s: %d of %d keys moved, want none", when, moved, len(want))
		}
	}

	keys := keysOf("user")
	before := pods(keys)
	if n := spread(before); len(n) != 2 {
		t.Errorf("200 keys reached %v, want both pods", n)
	}

	// The new pods serve until the test ends, not only the subtest.
	addPods(t, cp, netns, "shop", "cart", "cart-2=10.244.0.4", "cart-3=10.244.0.5")
	t.Run("the app scaled from 2 to 4 pods moves no key", func(t *testing.T) {
		for ri, p := range reps {
			n := 0
			waitUntilTrue(t, fmt.Sprintf("replica %d places new keys on the new pods", ri), func() bool {
				n++
				_, body := request(p, "shop.example", "/", []string{"X-Session", fmt.Sprintf("warm-%d-%d", ri, n)})
				return body == "cart-2" || body == "cart-3"
			})
		}
		same("after the app's scale-up", pods(keys), before)
	})

	t.Run("podpin scaled from 2 to 4 replicas moves no key", func(t *testing.T) {
		addReplicas(4 - len(reps))
		same("after podpin's scale-up", pods(keys), before)
		fresh := pods(keysOf("new"))
		if n := spread(fresh); len(n) != 4 {
			t.Errorf("200 new keys reached %v, want all four pods", n)
		}
	})

	if n, err := strconv.Atoi(strings.TrimPrefix(store.Do("DBSIZE"), ":")); err != nil || n < 400 {
		t.Errorf("the store holds %d keys (%v), want at least the 400 sessions", n, err)
	}
	for ri, p := range reps {
		if strings.Contains(p.logText(), "redis unavailable") {
			t.Errorf("replica %d lost the store during the test:\n%s", ri, p.logText())
		}
	}
}

// TestChartKeepsTheAdminTokenAcrossUpgrades renders the chart against a
// real API server (tools/chart -kubeconfig, as helm upgrade --install
// renders), so the chart's lookups read the cluster: the first rendering
// generates a token, a later one without admin.token.value keeps it, and a
// Secret of the user's is used as it is, its checksum on the pods.
func TestChartKeepsTheAdminTokenAcrossUpgrades(t *testing.T) {
	cp := k8stest.Start(t)
	kubeconfig := cp.Kubeconfig(t, cp.AdminToken)
	// The chart reads the cluster when it finds kube-system, which the API
	// server creates just after it is ready.
	waitUntilTrue(t, "namespace kube-system exists", func() bool {
		_, err := cp.Client.CoreV1().Namespaces().Get(t.Context(), "kube-system", metav1.GetOptions{})
		return err == nil
	})

	first := renderAgainst(t, kubeconfig, "podpin", "podpin-system", "")
	token := adminTokenOf(t, first)
	if len(token) < 32 {
		t.Fatalf("generated token %q: want at least 32 characters", token)
	}
	if got, want := podAnnotation(t, first, "checksum/admin-token"), fmt.Sprintf("%x", sha256.Sum256([]byte(token))); got != want {
		t.Errorf("checksum/admin-token: got %s, want the token's %s", got, want)
	}
	install(t, cp, first, false, "Deployment")

	t.Run("an upgrade without the token keeps it", func(t *testing.T) {
		again := renderAgainst(t, kubeconfig, "podpin", "podpin-system", "")
		if got := adminTokenOf(t, again); got != token {
			t.Errorf("token after the upgrade: got %q, want %q", got, token)
		}
		for _, a := range []string{"checksum/admin-token", "checksum/config"} {
			if got, want := podAnnotation(t, again, a), podAnnotation(t, first, a); got != want {
				t.Errorf("%s changed from %s to %s: the upgrade would roll the pods for nothing", a, want, got)
			}
		}
	})

	t.Run("an upgrade with a token sets it", func(t *testing.T) {
		set := renderAgainst(t, kubeconfig, "podpin", "podpin-system", "admin: {token: {value: chosen}}\n")
		if got := adminTokenOf(t, set); got != "chosen" {
			t.Errorf("token: got %q, want chosen", got)
		}
		if podAnnotation(t, set, "checksum/admin-token") == podAnnotation(t, first, "checksum/admin-token") {
			t.Errorf("a new token left checksum/admin-token unchanged")
		}
	})

	t.Run("a Secret of the user's is left alone and its checksum follows it", func(t *testing.T) {
		createNamespace(t, cp.Client, "edge")
		secrets := cp.Client.CoreV1().Secrets("edge")
		mine := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "podpin-admin-token"},
			Data:       map[string][]byte{"token": []byte("mine")},
		}
		if _, err := secrets.Create(t.Context(), mine, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out := renderAgainst(t, kubeconfig, "edge", "edge", "")
		if slices.ContainsFunc(out, func(o *unstructured.Unstructured) bool { return o.GetKind() == "Secret" }) {
			t.Errorf("the chart renders a Secret over the user's")
		}
		sum := podAnnotation(t, out, "checksum/admin-token")
		mine.Data["token"] = []byte("rotated")
		if _, err := secrets.Update(t.Context(), mine, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if podAnnotation(t, renderAgainst(t, kubeconfig, "edge", "edge", ""), "checksum/admin-token") == sum {
			t.Errorf("a rotated token left checksum/admin-token unchanged: helm upgrade would not restart the pods")
		}
	})
}

// renderAgainst renders the chart with tools/chart against the cluster of
// kubeconfig, for release name in namespace, with values (YAML, may be
// empty) over the defaults.
func renderAgainst(t *testing.T, kubeconfig, name, namespace, values string) []*unstructured.Unstructured {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "out.yaml")
	args := []string{"run", ".", "-kubeconfig", kubeconfig, "-name", name, "-namespace", namespace, "-o", out}
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
		t.Fatalf("rendering the chart against the API server: %v\n%s", err, b)
	}
	return manifestObjects(t, out)
}

// adminTokenOf is the token of the rendered admin Secret.
func adminTokenOf(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Secret" && o.GetName() == "podpin-admin-token" {
			var s corev1.Secret
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &s); err != nil {
				t.Fatal(err)
			}
			return string(s.Data["token"])
		}
	}
	t.Fatal("no Secret podpin-admin-token in the rendering")
	return ""
}

// podAnnotation is an annotation of podpin's pod template.
func podAnnotation(t *testing.T, objs []*unstructured.Unstructured, name string) string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Deployment" && !strings.HasSuffix(o.GetName(), "-store") {
			v, _, _ := unstructured.NestedString(o.Object, "spec", "template", "metadata", "annotations", name)
			return v
		}
	}
	t.Fatal("no podpin Deployment in the rendering")
	return ""
}

// containerArgs returns the arguments of the first container of the
// Deployment named name.
func containerArgs(t *testing.T, objs []*unstructured.Unstructured, name string) []string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "Deployment" || o.GetName() != name {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if len(containers) == 0 {
			break
		}
		c, _ := containers[0].(map[string]any)
		args, _, _ := unstructured.NestedStringSlice(c, "args")
		return args
	}
	t.Fatalf("no Deployment %s with a container in the manifests", name)
	return nil
}

// chartReplicas is the replica count of podpin's Deployment.
func chartReplicas(t *testing.T, objs []*unstructured.Unstructured) int {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Deployment" && o.GetName() == "podpin" {
			n, ok, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas")
			switch n := n.(type) {
			case int64:
				return int(n)
			case float64:
				return int(n)
			}
			t.Fatalf("podpin's Deployment: replicas %v (found %t), want a number", n, ok)
		}
	}
	t.Fatal("no Deployment podpin in the manifests")
	return 0
}

// startBundledStore runs a real redis-server with the arguments of the
// bundled store's Deployment (valkey-server's, which redis-server reads
// the same way) on a free loopback port in place of its port 6379: a
// memory cap or eviction policy it does not accept fails the start.
func startBundledStore(t *testing.T, objs []*unstructured.Unstructured) *redistest.Server {
	t.Helper()
	args := containerArgs(t, objs, "podpin-store")
	if len(args) == 0 || args[0] != "valkey-server" {
		t.Fatalf("bundled store args: got %v, want valkey-server ...", args)
	}
	var extra []string
	for i := 1; i < len(args); i++ {
		if args[i] == "--port" {
			i++
			continue
		}
		extra = append(extra, args[i])
	}
	if !slices.Contains(extra, "--maxmemory") {
		t.Fatalf("bundled store args %v: no --maxmemory", args)
	}
	return redistest.Start(t, extra...)
}

// addPods serves more pods (name=IP) in netns and adds them to the
// EndpointSlice servePods made for Service name, as a scale-up does.
func addPods(t *testing.T, cp *k8stest.ControlPlane, netns *k8stest.NetNS, ns, name string, pods ...string) {
	t.Helper()
	client := cp.Client.DiscoveryV1().EndpointSlices(ns)
	slice, err := client.Get(t.Context(), name+"-pods", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		pod, addr, _ := strings.Cut(p, "=")
		l, err := netns.Listen("tcp", addr+":8080")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, pod)
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{addr},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
		})
	}
	if _, err := client.Update(t.Context(), slice, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("adding pods to the endpoint slice of %s: %v", name, err)
	}
}
