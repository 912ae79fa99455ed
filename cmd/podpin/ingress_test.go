package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/k8stest"
)

// manifestsFile is the chart rendered with its default values.
const manifestsFile = "../../deploy/manifests/podpin.yaml"

// TestIngressControllerUnderTheChartsRBAC runs podpin as the chart deploys
// it: with the chart's arguments and configuration file, as its own service
// account bound to the chart's ClusterRole and nothing else, against a real
// API server. Ingresses are created, changed, broken and deleted while
// requests go through podpin to pods that answer their names.
func TestIngressControllerUnderTheChartsRBAC(t *testing.T) {
	cp := k8stest.Start(t)
	netns := k8stest.NewNetNS(t)
	netns.AddAddr(t, "10.244.0.3")
	netns.AddAddr(t, "10.244.0.4")
	ctx := t.Context()

	objs := manifestObjects(t, manifestsFile)
	install(t, cp, objs, false, "Deployment")
	createNamespace(t, cp.Client, "shop")
	servePods(t, cp, netns, "shop", "cart", "cart-0=10.244.0.2", "cart-1=10.244.0.3")
	servePods(t, cp, netns, "shop", "web", "web-0=10.244.0.4")

	p, cfgFile := startChartPodpin(t, cp, objs, startBundledStore(t, objs).Addr)
	waitUntilTrue(t, "podpin is ready", func() bool {
		code, err := httpGet("http://" + p.admin + "/readyz")
		return err == nil && code == http.StatusOK
	})
	if err := netns.CheckRoute(); err != nil {
		t.Fatal(err)
	}

	ingresses := cp.Client.NetworkingV1().Ingresses("shop")
	cart := newIngress("cart", "shop.example", "/cart", "cart", intstr.FromString("http"),
		map[string]string{"podpin.io/sticky-header": "X-Cart"})
	web := newIngress("web", "web.example", "/", "web", intstr.FromInt32(80), nil)
	for _, ing := range []*networkingv1.Ingress{cart, web} {
		if _, err := ingresses.Create(ctx, ing, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating ingress %s: %v", ing.Name, err)
		}
	}

	t.Run("requests are routed by host and path", func(t *testing.T) {
		// A new route answers 503 until its Service's pods are known.
		waitUntilTrue(t, "shop.example/cart and web.example are served", func() bool {
			code1, _ := request(p, "shop.example", "/cart/items", nil)
			code2, _ := request(p, "web.example", "/", nil)
			return code1 == http.StatusOK && code2 == http.StatusOK
		})
		if code, body := request(p, "web.example", "/anything", nil); code != http.StatusOK || body != "web-0" {
			t.Errorf("web.example/anything: got %d %q, want 200 web-0", code, body)
		}
		if code, body := request(p, "shop.example", "/", nil); code != http.StatusNotFound {
			t.Errorf("shop.example/ (no path matches): got %d %q, want 404", code, body)
		}
		if code, body := request(p, "other.example", "/cart", nil); code != http.StatusNotFound {
			t.Errorf("other.example/cart (no host matches): got %d %q, want 404", code, body)
		}
	})

	// Keys pinned under the first header name, to follow across the change.
	pinned := map[string]string{}
	t.Run("the sticky header pins each session to one pod", func(t *testing.T) {
		seen := map[string]bool{}
		for i := range 12 {
			key := fmt.Sprintf("user-%d", i)
			pod := podFor(t, p, "X-Cart", key)
			for range 3 {
				if again := podFor(t, p, "X-Cart", key); again != pod {
					t.Fatalf("key %q went to %s, then %s", key, pod, again)
				}
			}
			pinned[key] = pod
			seen[pod] = true
		}
		if !seen["cart-0"] || !seen["cart-1"] {
			t.Errorf("sessions went to %v, want both cart-0 and cart-1", seen)
		}
	})

	t.Run("the status names the publish service's address", func(t *testing.T) {
		svc, err := cp.Client.CoreV1().Services("podpin-system").Get(ctx, "podpin", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitUntilTrue(t, "the status of ingress cart is written", func() bool {
			ing, err := ingresses.Get(ctx, "cart", metav1.GetOptions{})
			lb := ing.Status.LoadBalancer.Ingress
			return err == nil && len(lb) == 1 && lb[0].IP == svc.Spec.ClusterIP
		})
	})

	t.Run("a renamed sticky header pins and the table is kept", func(t *testing.T) {
		updateIngress(t, cp.Client, "shop", "cart", func(ing *networkingv1.Ingress) {
			ing.Annotations["podpin.io/sticky-header"] = "X-Basket"
		})
		// Before the change X-Basket is not read, and round-robin
		// alternates between the two pods.
		waitUntilTrue(t, "X-Basket pins sessions", func() bool {
			first := podFor(t, p, "X-Basket", "probe")
			for range 3 {
				if podFor(t, p, "X-Basket", "probe") != first {
					return false
				}
			}
			return true
		})
		for key, want := range pinned {
			if got := podFor(t, p, "X-Basket", key); got != want {
				t.Errorf("key %q under the new header: went to %s, want %s where it was pinned", key, got, want)
			}
		}
		var got []string
		for range 4 {
			got = append(got, podFor(t, p, "X-Cart", "user-0"))
		}
		if got[0] == got[1] && got[1] == got[2] && got[2] == got[3] {
			t.Errorf("the old header X-Cart still pins: %v", got)
		}
		if strings.Contains(p.logText(), `msg="route removed"`) {
			t.Errorf("a route was removed by the change; its table would be lost")
		}
	})

	t.Run("a bad annotation is reported and breaks nothing", func(t *testing.T) {
		updateIngress(t, cp.Client, "shop", "cart", func(ing *networkingv1.Ingress) {
			ing.Annotations["podpin.io/idle-timeout"] = "ten minutes"
		})
		ev := waitEvent(t, cp.Client, "shop", "cart", "InvalidAnnotation")
		if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "podpin.io/idle-timeout") ||
			!strings.Contains(ev.Message, `"ten minutes" is not a duration`) {
			t.Errorf("event: got %s %q, want a Warning naming podpin.io/idle-timeout and the problem", ev.Type, ev.Message)
		}
		// A never-valid Ingress beside it: reported, not served.
		broken := newIngress("broken", "broken.example", "/", "web", intstr.FromInt32(80),
			map[string]string{"podpin.io/balancer": "fastest"})
		if _, err := ingresses.Create(ctx, broken, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ev = waitEvent(t, cp.Client, "shop", "broken", "InvalidAnnotation")
		if !strings.Contains(ev.Message, "podpin.io/balancer") || !strings.Contains(ev.Message, "not served") {
			t.Errorf("event: got %q, want one naming podpin.io/balancer, saying the Ingress is not served", ev.Message)
		}
		if code, body := request(p, "broken.example", "/", nil); code != http.StatusNotFound {
			t.Errorf("broken.example: got %d %q, want 404", code, body)
		}
		// cart keeps its last good configuration: X-Basket, its table.
		for key, want := range pinned {
			if got := podFor(t, p, "X-Basket", key); got != want {
				t.Errorf("key %q: went to %s, want %s", key, got, want)
			}
		}
		if code, body := request(p, "web.example", "/", nil); code != http.StatusOK || body != "web-0" {
			t.Errorf("web.example/: got %d %q, want 200 web-0", code, body)
		}
	})

	t.Run("the chart's metrics need no token and count rejected Ingresses", func(t *testing.T) {
		// cart's current version and broken are rejected; the applies
		// before them succeeded.
		want := []string{
			"podpin_ingress_rejected 2",
			"podpin_ingress_apply_errors_total 0",
		}
		var metrics string
		waitUntilTrue(t, "/metrics without a token shows 2 rejected Ingresses", func() bool {
			resp, err := http.Get("http://" + p.admin + "/metrics")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			metrics = string(b)
			return resp.StatusCode == http.StatusOK && strings.Contains(metrics, want[0])
		})
		for _, w := range want[1:] {
			if !strings.Contains(metrics, w) {
				t.Errorf("/metrics lacks %q", w)
			}
		}
		if !regexp.MustCompile(`(?m)^podpin_table_max_entries\{route="shop-cart[^"]*"\} 1e\+06$`).MatchString(metrics) {
			t.Errorf("/metrics lacks the default capacity of cart's table, podpin_table_max_entries 1e+06")
		}
		if m := regexp.MustCompile(`(?m)^podpin_ingress_last_apply_success_timestamp_seconds (\S+)$`).FindStringSubmatch(metrics); m == nil || m[1] == "0" {
			t.Errorf("podpin_ingress_last_apply_success_timestamp_seconds: got %v, want the time of the last apply", m)
		}
		if code, err := httpGet("http://" + p.admin + "/api/v1/routes"); err != nil || code != http.StatusUnauthorized {
			t.Errorf("/api/v1/routes without the token: got %d %v, want 401", code, err)
		}
	})

	t.Run("a reloaded configuration file keeps the Ingress routes", func(t *testing.T) {
		cfg, err := os.ReadFile(cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		static := "routes:\n  - name: static\n    match: {host: static.example}\n    backends: [{name: web-0, url: \"http://10.244.0.4:8080\"}]\n"
		cfg = bytes.Replace(cfg, []byte("routes: []\n"), []byte(static), 1)
		if err := os.WriteFile(cfgFile, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		waitUntilTrue(t, "the static route is served", func() bool {
			code, body := request(p, "static.example", "/", nil)
			return code == http.StatusOK && body == "web-0"
		})
		for key, want := range pinned {
			if got := podFor(t, p, "X-Basket", key); got != want {
				t.Errorf("key %q after the reload: went to %s, want %s", key, got, want)
			}
		}
		if code, body := request(p, "web.example", "/", nil); code != http.StatusOK || body != "web-0" {
			t.Errorf("web.example/ after the reload: got %d %q, want 200 web-0", code, body)
		}
	})

	t.Run("a deleted Ingress is no longer served", func(t *testing.T) {
		if err := ingresses.Delete(ctx, "cart", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUntilTrue(t, "shop.example/cart answers 404", func() bool {
			code, _ := request(p, "shop.example", "/cart", nil)
			return code == http.StatusNotFound
		})
		if code, body := request(p, "web.example", "/", nil); code != http.StatusOK || body != "web-0" {
			t.Errorf("web.example/: got %d %q, want 200 web-0", code, body)
		}
	})

	t.Run("a TLS Secret named in spec.tls is read under the chart's role", func(t *testing.T) {
		ca := certstest.NewCA(t)
		crt, key := ca.Issue(t, time.Now().Add(time.Hour), "web.example")
		if _, err := cp.Client.CoreV1().Secrets("shop").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "web-tls"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		updateIngress(t, cp.Client, "shop", "web", func(ing *networkingv1.Ingress) {
			ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"web.example"}, SecretName: "web-tls"}}
		})
		// Its expiry is a metric once podpin has read it through its watch.
		want := `podpin_tls_certificate_expiry_timestamp_seconds{listener="ingress",name="shop/web-tls"}`
		waitUntilTrue(t, "/metrics shows the expiry of shop/web-tls", func() bool {
			resp, err := http.Get("http://" + p.admin + "/metrics")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return strings.Contains(string(b), want)
		})
		// The chart's listener is cleartext: web.example is still served
		// there, not redirected to an https podpin cannot serve.
		if code, body := request(p, "web.example", "/", nil); code != http.StatusOK || body != "web-0" {
			t.Errorf("web.example/ with spec.tls and no TLS listener: got %d %q, want 200 web-0", code, body)
		}
	})
}

// TestChartRBACDeniesWritesPodpinDoesNotNeed binds the chart's ClusterRole
// and checks, as podpin's service account, what it may not do.
func TestChartRBACDeniesWritesPodpinDoesNotNeed(t *testing.T) {
	cp := k8stest.Start(t)
	ctx := t.Context()
	install(t, cp, manifestObjects(t, manifestsFile), false, "Deployment")
	createNamespace(t, cp.Client, "shop")
	ing, err := cp.Client.NetworkingV1().Ingresses("shop").Create(ctx,
		newIngress("web", "web.example", "/", "web", intstr.FromInt32(80), nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podpin := clientFor(t, cp.Kubeconfig(t, cp.PodpinToken))

	// What podpin does is allowed...
	if _, err := podpin.NetworkingV1().Ingresses("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("listing ingresses: %v", err)
	}
	st := ing.DeepCopy()
	st.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.1"}}
	if _, err := podpin.NetworkingV1().Ingresses("shop").UpdateStatus(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Errorf("updating an ingress status: %v", err)
	}
	// Secrets of type kubernetes.io/tls are listed and watched, as podpin's
	// informer does.
	tlsOnly := metav1.ListOptions{FieldSelector: "type=kubernetes.io/tls"}
	if _, err := podpin.CoreV1().Secrets("").List(ctx, tlsOnly); err != nil {
		t.Errorf("listing TLS secrets: %v", err)
	}
	if w, err := podpin.CoreV1().Secrets("").Watch(ctx, tlsOnly); err != nil {
		t.Errorf("watching TLS secrets: %v", err)
	} else {
		w.Stop()
	}
	// ...and nothing else it was tried with.
	denied := []struct {
		what string
		do   func() error
	}{
		{"creating a secret", func() error {
			_, err := podpin.CoreV1().Secrets("podpin-system").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		}},
		{"getting a secret", func() error {
			_, err := podpin.CoreV1().Secrets("podpin-system").Get(ctx, "podpin-read-token", metav1.GetOptions{})
			return err
		}},
		{"updating a secret", func() error {
			_, err := podpin.CoreV1().Secrets("podpin-system").Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "podpin-read-token"}}, metav1.UpdateOptions{})
			return err
		}},
		{"deleting a secret", func() error {
			return podpin.CoreV1().Secrets("podpin-system").Delete(ctx, "podpin-read-token", metav1.DeleteOptions{})
		}},
		{"updating an ingress spec", func() error {
			cur, err := cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Spec.Rules[0].Host = "evil.example"
			_, err = podpin.NetworkingV1().Ingresses("shop").Update(ctx, cur, metav1.UpdateOptions{})
			return err
		}},
		{"deleting an ingress", func() error {
			return podpin.NetworkingV1().Ingresses("shop").Delete(ctx, "web", metav1.DeleteOptions{})
		}},
		{"creating an endpoint slice", func() error {
			_, err := podpin.DiscoveryV1().EndpointSlices("shop").Create(ctx, &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Name: "x"}, AddressType: discoveryv1.AddressTypeIPv4,
			}, metav1.CreateOptions{})
			return err
		}},
		{"updating a service", func() error {
			_, err := podpin.CoreV1().Services("podpin-system").Update(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "podpin"}}, metav1.UpdateOptions{})
			return err
		}},
		{"listing pods", func() error {
			_, err := podpin.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"deleting events", func() error {
			return podpin.CoreV1().Events("shop").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		}},
	}
	for _, d := range denied {
		if err := d.do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as podpin: got %v, want forbidden", d.what, err)
		}
	}
}

// TestManifestsPassServerSideDryRun sends every rendered object to the API
// server with dryRun=All: admission and validation run, nothing is stored.
// Besides the default rendering, the chart rendered with every optional part
// turned on goes the same way.
func TestManifestsPassServerSideDryRun(t *testing.T) {
	cp := k8stest.Start(t)
	defaults := manifestObjects(t, manifestsFile)
	ns := defaults[0]
	if ns.GetKind() != "Namespace" {
		t.Fatalf("first object: got %s, want the Namespace", ns.GetKind())
	}
	install(t, cp, defaults[:1], true)
	install(t, cp, defaults[:1], false)
	install(t, cp, defaults[1:], true)

	values := filepath.Join(t.TempDir(), "values.yaml")
	err := os.WriteFile(values, []byte(`
ingressClass: {name: sticky, default: true}
admin:
  token: {value: s3cret}
  metrics: token
  readToken: {secretName: podpin-read-token, value: r3ader}
logFormat: json
metrics: {service: {enabled: true}}
dashboard: {enabled: true}
store:
  type: redis
  redis:
    addrs: ["sentinel-0:26379", "sentinel-1:26379"]
    masterName: main
    username: podpin
    db: 2
    passwordSecret: {name: redis, key: password}
    tls: {enabled: true, caSecret: {name: redis-ca}, serverName: redis.internal}
podHeader: ""
limits: {headerTimeout: 5s, maxConnections: 5000, maxBodyBytes: 10485760}
upstream: {connectTimeout: 1s, responseTimeout: 30s}
keySecret: {secretName: podpin-digest}
autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 6, targetMemoryUtilizationPercentage: 80}
priorityClassName: system-cluster-critical
topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway,
     labelSelector: {matchLabels: {app.kubernetes.io/name: podpin}}}
staticRoutes:
  - name: canary
    match: {headers: {X-Canary: "1"}}
    service: {namespace: shop, name: web-canary, port: http}
service: {type: ClusterIP}
listener:
  trustedProxies: ["10.0.0.0/8"]
  proxyProtocol: true
  proxyProtocolSources: ["10.0.0.0/8", "192.0.2.7"]
podDisruptionBudget: {enabled: false}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app.kubernetes.io/name: podpin}}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	custom := filepath.Join(t.TempDir(), "custom.yaml")
	// tools/chart renders with Helm's own packages, in a module of its own;
	// its default chart folder is ../../deploy/helm/podpin from there.
	cmd := exec.Command("go", "run", ".", "-f", values, "-o", custom)
	cmd.Dir = "../../tools/chart"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rendering the chart with custom values: %v\n%s", err, out)
	}
	objs := manifestObjects(t, custom)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	if !slices.Contains(kinds, "Secret") || !slices.Contains(kinds, "HorizontalPodAutoscaler") ||
		slices.Contains(kinds, "PodDisruptionBudget") || slices.Contains(kinds, "NetworkPolicy") {
		t.Errorf("custom rendering: got kinds %v, want a Secret and an HPA, no PodDisruptionBudget and no bundled store", kinds)
	}
	names := map[string]bool{}
	for _, o := range objs {
		names[o.GetKind()+"/"+o.GetName()] = true
	}
	for _, want := range []string{"Service/podpin-metrics", "ConfigMap/podpin-dashboard", "Secret/podpin-read-token"} {
		if !names[want] {
			t.Errorf("custom rendering: no %s", want)
		}
	}
	install(t, cp, objs[1:], true)

	for name, o := range map[string][]*unstructured.Unstructured{"default": defaults, "custom": objs} {
		cfg := chartConfig(t, o)
		// An Ingress controller's file may have no routes.
		c, err := config.Rules{RoutesOptional: true}.Parse([]byte(cfg))
		if err != nil {
			t.Errorf("%s rendering: the configuration file does not load: %v\n%s", name, err, cfg)
		}
		if name == "custom" && (c == nil || c.Store.Redis.MasterName != "main" || c.Store.Redis.PasswordEnv != "REDIS_PASSWORD" ||
			c.Store.Redis.Username != "podpin" || c.Store.Redis.DB != 2 || !c.Store.Redis.TLS || c.Store.Redis.TLSCAFile == "" ||
			c.PodHeader == nil || *c.PodHeader != "" || c.KeySecret.Env == "" || c.Limits.MaxConnections != 5000 ||
			c.Upstream.ConnectTimeout != time.Second) {
			t.Errorf("custom rendering: settings not in the configuration file:\n%s", cfg)
		}
		if name == "default" && (c == nil || c.Store.Type != "redis" || c.State.File == "" || c.Store.Redis.URL == "") {
			t.Errorf("default rendering: want the bundled store and a state file:\n%s", cfg)
		}
		if name == "custom" && (c == nil || c.Admin.Metrics != config.MetricsToken || c.Admin.ReadTokenFile == "" || c.Log.Format != config.LogJSON) {
			t.Errorf("custom rendering: metrics, read-only token and log settings not in the configuration file:\n%s", cfg)
		}
		if name == "default" && (c == nil || c.Admin.Metrics != config.MetricsOpen) {
			t.Errorf("default rendering: /metrics is not open:\n%s", cfg)
		}
		if name == "custom" && c != nil {
			l := c.Listeners[0]
			if !slices.Equal(l.TrustedProxies, []string{"10.0.0.0/8"}) || !l.ProxyProtocol || !slices.Equal(l.ProxyProtocolSources, []string{"10.0.0.0/8", "192.0.2.7"}) {
				t.Errorf("custom rendering: listener settings not in the configuration file:\n%s", cfg)
			}
		}
	}
}

// manifestObjects reads a multi-document YAML file of objects.
func manifestObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	return objs
}

// install creates objs through the administrator's client, in order; with
// dryRun the API server checks them and stores nothing. Objects of the
// kinds in skip are left out.
func install(t *testing.T, cp *k8stest.ControlPlane, objs []*unstructured.Unstructured, dryRun bool, skip ...string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cp.Client.Discovery()))
	opts := metav1.CreateOptions{FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, o := range objs {
		if slices.Contains(skip, o.GetKind()) {
			continue
		}
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", gvk.Kind, o.GetName(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if _, err := ri.Create(t.Context(), o, opts); err != nil {
			t.Fatalf("creating %s %s/%s (dry run %t): %v", gvk.Kind, o.GetNamespace(), o.GetName(), dryRun, err)
		}
	}
}

// chartConfig returns podpin's configuration file from the rendered
// ConfigMap.
func chartConfig(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" {
			if cfg, ok, _ := unstructured.NestedString(o.Object, "data", "podpin.yaml"); ok {
				return cfg
			}
		}
	}
	t.Fatal("no ConfigMap with podpin.yaml in the manifests")
	return ""
}

// startChartPodpin runs podpin with the Deployment's arguments and the
// ConfigMap's configuration file, changing only what a test process must:
// loopback listeners on free ports, a token file of its own, the
// kubeconfig of podpin's service account in place of the in-cluster one,
// the bundled store's address (the Service podpin-store) replaced by
// storeAddr, and the state volume by a folder of its own.
// It returns the process and its configuration file.
func startChartPodpin(t *testing.T, cp *k8stest.ControlPlane, objs []*unstructured.Unstructured, storeAddr string) (*process, string) {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "podpin.yaml")
	tokenFile := filepath.Join(dir, "token")
	cfg := strings.NewReplacer(
		"redis://podpin-store.podpin-system.svc:6379", "redis://"+storeAddr,
		"/var/lib/podpin/", dir+"/",
	).Replace(chartConfig(t, objs))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := containerArgs(t, objs, "podpin")
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("deployment args: got %v, want serve ...", args)
	}
	var run []string
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "--config=") {
			a = "--config=" + cfgFile
		}
		run = append(run, a)
	}
	run = append(run, "--listen=127.0.0.1:0", "--admin=127.0.0.1:0", "--admin-token-file="+tokenFile,
		"--kubeconfig="+cp.Kubeconfig(t, cp.PodpinToken))
	return startPodpin(t, run...), cfgFile
}

// servePods makes a Service name (port "http" 80 to 8080) whose
// EndpointSlice lists pods, given as name=IP: each is served in netns at
// IP:8080 and answers its name.
func servePods(t *testing.T, cp *k8stest.ControlPlane, netns *k8stest.NetNS, ns, name string, pods ...string) {
	t.Helper()
	ctx := t.Context()
	_, err := cp.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service %s: %v", name, err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-pods",
			Labels: map[string]string{
				discoveryv1.LabelServiceName: name,
				discoveryv1.LabelManagedBy:   "podpin-test",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}},
	}
	for _, p := range pods {
		pod, addr, _ := strings.Cut(p, "=")
		l, err := netns.Listen("tcp", addr+":8080")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, pod)
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{addr},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
		})
	}
	if _, err := cp.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating endpoint slice of %s: %v", name, err)
	}
}

func newIngress(name, host, path, service string, port intstr.IntOrString, ann map[string]string) *networkingv1.Ingress {
	backend := networkingv1.IngressServiceBackend{Name: service}
	if port.Type == intstr.String {
		backend.Port.Name = port.StrVal
	} else {
		backend.Port.Number = port.IntVal
	}
	if ann == nil {
		ann = map[string]string{}
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: networkingv1.IngressSpec{
			IngressClassName: new("podpin"),
			Rules: []networkingv1.IngressRule{{
				Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     path,
						PathType: new(networkingv1.PathTypePrefix),
						Backend:  networkingv1.IngressBackend{Service: &backend},
					}},
				}},
			}},
		},
	}
}

func updateIngress(t *testing.T, client kubernetes.Interface, ns, name string, change func(*networkingv1.Ingress)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ing, err := client.NetworkingV1().Ingresses(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(ing)
		_, err = client.NetworkingV1().Ingresses(ns).Update(t.Context(), ing, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("updating ingress %s/%s: %v", ns, name, err)
	}
}

// waitEvent waits for an Event with reason on the object ns/name.
func waitEvent(t *testing.T, client kubernetes.Interface, ns, name, reason string) corev1.Event {
	t.Helper()
	var ev corev1.Event
	waitUntilTrue(t, "event "+reason+" on "+ns+"/"+name, func() bool {
		list, err := client.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + name + ",reason=" + reason,
		})
		if err != nil || len(list.Items) == 0 {
			return false
		}
		ev = list.Items[len(list.Items)-1]
		return true
	})
	return ev
}

func createNamespace(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	_, err := client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

func clientFor(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// request sends GET path with Host host and headers (name, value pairs) to
// podpin; it returns the status and body, or 0 when the request failed.
func request(p *process, host, path string, headers []string) (int, string) {
	req, _ := http.NewRequest("GET", "http://"+p.addr+path, nil)
	req.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// podFor sends a request for shop.example/cart with the key in header and
// returns the pod that answered.
func podFor(t *testing.T, p *process, header, key string) string {
	t.Helper()
	code, body := request(p, "shop.example", "/cart", []string{header, key})
	if code != http.StatusOK {
		t.Fatalf("%s: %s: got %d %q, want 200", header, key, code, body)
	}
	return body
}

// waitUntilTrue polls cond for up to 30 seconds.
func waitUntilTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waited 30s until %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
