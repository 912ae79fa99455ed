package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/k8stest"
)

// kubeEnv is one real control plane with the controller manager's
// EndpointSlice and StatefulSet controllers, and a network namespace whose
// addresses are the pods' IPs. The test plays the kubelet: it gives each pod
// an address of its own, serves HTTP there (answering the pod's name) and
// reports the pod running and ready.
type kubeEnv struct {
	cp         *k8stest.ControlPlane
	netns      *k8stest.NetNS
	kubeconfig string                  // the administrator's
	nextIP     int                     // last octet of the next pod IP
	servers    map[string]*http.Server // by namespace/pod
}

// TestKubeServiceEndToEnd runs podpin processes with --service against a
// StatefulSet. The subtests share the control plane; each has a namespace,
// a StatefulSet and a podpin of its own.
func TestKubeServiceEndToEnd(t *testing.T) {
	env := &kubeEnv{cp: k8stest.Start(t), nextIP: 2, servers: map[string]*http.Server{}}
	env.netns = k8stest.NewNetNS(t)
	env.cp.StartControllerManager(t)
	env.cp.CreateNode(t, k8stest.DefaultNode)
	env.kubeconfig = env.cp.Kubeconfig(t, env.cp.AdminToken)

	t.Run("ScaleUpMovesNoSession", env.testScaleUp)
	t.Run("ScaleDownMovesOnlyTheRemovedPodsSessions", env.testScaleDown)
	t.Run("ReplacedPodGetsItsSessionsBackAtItsNewIP", env.testReplacement)
	t.Run("TerminatingPodKeepsItsSessionsUntilItStopsServing", env.testTerminating)
	t.Run("NotReadyUntilTheCachesSync", env.testReadiness)
	// Last: it restarts the API server under the others' feet.
	t.Run("WatchSurvivesAPIServerRestart", env.testRestart)
}

func (env *kubeEnv) testScaleUp(t *testing.T) {
	ns := env.statefulSet(t, 2)
	p := env.podpin(t, ns+"/web:http")
	p.waitPods(t, "web-0 ready", "web-1 ready")
	before := pinKeys(p, "user", 60)

	env.scale(t, ns, 3)
	p.waitPods(t, "web-0 ready", "web-1 ready", "web-2 ready")
	expectSamePods(t, p, before)
	// New sessions reach the new pod.
	if n := countOn(pinKeys(p, "new", 30), "web-2"); n == 0 {
		t.Error("no new session went to web-2")
	}
}

func (env *kubeEnv) testScaleDown(t *testing.T) {
	ns := env.statefulSet(t, 3)
	p := env.podpin(t, ns+"/web:http")
	p.waitPods(t, "web-0 ready", "web-1 ready", "web-2 ready")
	before := pinKeys(p, "user", 90)

	// The StatefulSet deletes web-2 gracefully: it drains, keeping its
	// sessions, until its containers stop.
	env.scale(t, ns, 2)
	p.waitPods(t, "web-0 ready", "web-1 ready", "web-2 draining")
	expectSamePods(t, p, before)

	env.stopPod(t, ns, "web-2")
	p.waitPods(t, "web-0 ready", "web-1 ready")
	moved := 0
	for key, was := range before {
		got := p.podOf(key)
		switch {
		case was != "web-2" && got != was:
			t.Errorf("key %q: went to %s, want %s (only web-2's sessions move)", key, got, was)
		case was == "web-2" && got == "web-2":
			t.Errorf("key %q: still on web-2 after it went", key)
		case was == "web-2":
			moved++
		}
	}
	if moved == 0 {
		t.Error("no session was on web-2 to move")
	}
}

func (env *kubeEnv) testReplacement(t *testing.T) {
	ns := env.statefulSet(t, 2)
	p := env.podpin(t, ns+"/web:http")
	p.waitPods(t, "web-0 ready", "web-1 ready")
	oldIP := env.podIP(t, ns, "web-1")
	before := pinKeys(p, "user", 60)

	// A rolling replacement of web-1: it is deleted, its containers stop,
	// and the StatefulSet creates it again, which comes up at a new IP. No
	// request for its sessions comes in between.
	env.cp.TerminatePod(t, ns, "web-1")
	p.waitPods(t, "web-0 ready", "web-1 draining")
	env.stopPod(t, ns, "web-1")
	p.waitPods(t, "web-0 ready")
	env.runPods(t, ns, 2)
	p.waitPods(t, "web-0 ready", "web-1 ready")
	if newIP := env.podIP(t, ns, "web-1"); newIP == oldIP {
		t.Fatalf("web-1 came back at its old IP %s, want a new one", oldIP)
	}
	// The old address serves nothing now, so an answer from web-1 proves
	// podpin sent the session to the new one.
	expectSamePods(t, p, before)
}

func (env *kubeEnv) testTerminating(t *testing.T) {
	ns := env.statefulSet(t, 2)
	p := env.podpin(t, ns+"/web:http")
	p.waitPods(t, "web-0 ready", "web-1 ready")
	before := pinKeys(p, "user", 60)

	env.cp.TerminatePod(t, ns, "web-1")
	p.waitPods(t, "web-0 ready", "web-1 draining")
	expectSamePods(t, p, before)
	if n := countOn(pinKeys(p, "new", 30), "web-1"); n != 0 {
		t.Errorf("%d new sessions went to the draining web-1, want none", n)
	}

	// web-1 stops serving (its readiness probe fails while it shuts down):
	// its sessions rebind, and stay where they went.
	env.cp.SetPodReady(t, ns, "web-1", false)
	p.waitPods(t, "web-0 ready", "web-1 not-ready")
	for key, was := range before {
		if got := p.podOf(key); got != "web-0" {
			t.Errorf("key %q (was on %s): went to %s, want web-0", key, was, got)
		}
	}
	env.cp.SetPodReady(t, ns, "web-1", true)
	p.waitPods(t, "web-0 ready", "web-1 draining")
	for key := range before {
		if got := p.podOf(key); got != "web-0" {
			t.Errorf("key %q after web-1 served again: went to %s, want web-0 where it was rebound", key, got)
		}
	}
}

// testReadiness runs podpin as its own service account, which RBAC grants
// nothing at first: the caches cannot sync, and /readyz must say so. Then the
// grant the package README lists (get, list, watch on Services and
// EndpointSlices) is enough.
func (env *kubeEnv) testReadiness(t *testing.T) {
	ns := env.statefulSet(t, 1)
	p := startPodpin(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--service", ns+"/web:80", "--kubeconfig", env.cp.Kubeconfig(t, env.cp.PodpinToken))
	for range 10 {
		if code, err := httpGet("http://" + p.admin + "/readyz"); err != nil || code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz before the caches synced: got %d %v, want 503", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body, err := p.get("k"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("request before the caches synced: got %d %q %v, want 503", code, body, err)
	}

	ctx := t.Context()
	_, err := env.cp.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "podpin"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.cp.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "podpin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "podpin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "podpin-system", Name: "podpin"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "/readyz answers 200", func() bool {
		code, err := httpGet("http://" + p.admin + "/readyz")
		return err == nil && code == http.StatusOK
	})
	// Ready means synced: the pods are there at once.
	if got := p.podStates(t); !slices.Equal(got, []string{"web-0 ready"}) {
		t.Errorf("pods when ready: got %v, want [web-0 ready]", got)
	}
	if got := p.podOf("k"); got != "web-0" {
		t.Errorf("request when ready: got %q, want web-0", got)
	}
}

func (env *kubeEnv) testRestart(t *testing.T) {
	ns := env.statefulSet(t, 1)
	p := env.podpin(t, ns+"/web:http")
	p.waitPods(t, "web-0 ready")
	before := pinKeys(p, "user", 20)

	start := time.Now()
	env.cp.RestartAPIServer(t)
	env.scale(t, ns, 2)
	p.waitPods(t, "web-0 ready", "web-1 ready")
	t.Logf("a pod added after the API server restarted reached podpin %v after the restart began",
		time.Since(start).Round(time.Millisecond))
	expectSamePods(t, p, before)
	if n := countOn(pinKeys(p, "new", 10), "web-1"); n == 0 {
		t.Error("no new session went to web-1")
	}
}

// statefulSet creates a namespace with the Service web (port http, 80, to
// the named container port http, 8080) and the StatefulSet web with n
// running pods, and returns the namespace.
func (env *kubeEnv) statefulSet(t *testing.T, n int32) string {
	t.Helper()
	ctx := t.Context()
	ns := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	ns = ns[max(0, len(ns)-63):]
	ns = strings.TrimLeft(ns, "-")
	cs := env.cp.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %q: %v", ns, err)
	}
	labels := map[string]string{"app": "web"}
	_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}
	_, err = cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            new(n),
			ServiceName:         "web",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
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
		t.Fatalf("creating statefulset: %v", err)
	}
	env.runPods(t, ns, int(n))
	return ns
}

// runPods waits for the StatefulSet to have n pods that are not
// terminating, and runs those that do not run yet, each at a new IP.
func (env *kubeEnv) runPods(t *testing.T, ns string, n int) {
	t.Helper()
	for _, pod := range env.cp.WaitPods(t, ns, "app=web", n) {
		if pod.Status.PodIP != "" {
			continue
		}
		ip := fmt.Sprintf("10.244.0.%d", env.nextIP)
		env.nextIP++
		env.netns.AddAddr(t, ip)
		l, err := env.netns.Listen("tcp", ip+":8080")
		if err != nil {
			t.Fatal(err)
		}
		name := pod.Name
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, name)
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		env.servers[ns+"/"+name] = srv
		env.cp.RunPod(t, ns, pod.Name, ip)
	}
	if err := env.netns.CheckRoute(); err != nil {
		t.Fatal(err)
	}
}

// stopPod finishes a pod's deletion as its kubelet would once its
// containers stopped: its server closes and the pod object goes.
func (env *kubeEnv) stopPod(t *testing.T, ns, name string) {
	t.Helper()
	// The namespace keeps the address, with nothing listening.
	env.servers[ns+"/"+name].Close()
	env.cp.ForceDeletePod(t, ns, name)
}

func (env *kubeEnv) podIP(t *testing.T, ns, name string) string {
	t.Helper()
	pod, err := env.cp.Client.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting pod %s/%s: %v", ns, name, err)
	}
	return pod.Status.PodIP
}

func (env *kubeEnv) scale(t *testing.T, ns string, n int) {
	t.Helper()
	patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n)
	_, err := env.cp.Client.AppsV1().StatefulSets(ns).Patch(t.Context(), "web", types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("scaling statefulset %s/web to %d: %v", ns, n, err)
	}
	env.runPods(t, ns, n)
}

// podpin starts podpin on service and waits until it is ready.
func (env *kubeEnv) podpin(t *testing.T, service string) *process {
	t.Helper()
	p := startPodpin(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--service", service, "--kubeconfig", env.kubeconfig)
	waitUntil(t, "/readyz answers 200", func() bool {
		code, err := httpGet("http://" + p.admin + "/readyz")
		return err == nil && code == http.StatusOK
	})
	return p
}

// podStates returns podpin's pods of the default route as "name state",
// sorted, from the admin API.
func (p *process) podStates(t *testing.T) []string {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/api/v1/routes/" + config.DefaultRoute + "/pods")
	if err != nil {
		t.Fatalf("listing pods: %v", err)
	}
	defer resp.Body.Close()
	var list struct {
		Pods []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"pods"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("listing pods: %s %v", resp.Status, err)
	}
	var got []string
	for _, pod := range list.Pods {
		got = append(got, pod.Name+" "+pod.State)
	}
	slices.Sort(got)
	return got
}

// waitPods waits until podpin's pods are exactly want ("name state").
func (p *process) waitPods(t *testing.T, want ...string) {
	t.Helper()
	var got []string
	waitUntil(t, fmt.Sprintf("podpin's pods are %v", want), func() bool {
		got = p.podStates(t)
		return slices.Equal(got, want)
	})
}

// waitUntil polls cond for up to 30 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
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

// pinKeys sends n new keys prefix-0... and returns the pod of each.
func pinKeys(p *process, prefix string, n int) map[string]string {
	p.t.Helper()
	pods := map[string]string{}
	for i := range n {
		key := fmt.Sprintf("%s-%d", prefix, i)
		pods[key] = p.podOf(key)
	}
	return pods
}

func expectSamePods(t *testing.T, p *process, before map[string]string) {
	t.Helper()
	for key, want := range before {
		if got := p.podOf(key); got != want {
			t.Errorf("key %q: went to %s, want %s", key, got, want)
		}
	}
}

func countOn(pods map[string]string, pod string) int {
	n := 0
	for _, got := range pods {
		if got == pod {
			n++
		}
	}
	return n
}

func TestKubeQuickFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		service *config.Service
		dns     *config.DNS
		err     string
	}{
		{
			name:    "A service with namespace and named port.",
			args:    []string{"--service", "shop/web:http"},
			service: &config.Service{Namespace: "shop", Name: "web", Port: "http"},
		},
		{
			name:    "A service without namespace is in default.",
			args:    []string{"--service", "web:8080"},
			service: &config.Service{Namespace: "default", Name: "web", Port: "8080"},
		},
		{
			name: "A service without port is refused.",
			args: []string{"--service", "shop/web"},
			err:  `--service "shop/web": want NAMESPACE/NAME:PORT`,
		},
		{
			name: "A service with an empty namespace is refused.",
			args: []string{"--service", "/web:http"},
			err:  `--service "/web:http": want NAMESPACE/NAME:PORT`,
		},
		{
			name: "A DNS name and port resolve A and AAAA records.",
			args: []string{"--dns", "web.shop.svc.cluster.local:8080"},
			dns:  &config.DNS{Name: "web.shop.svc.cluster.local", Port: 8080, Interval: config.DefaultDNSInterval},
		},
		{
			name: "An SRV name needs no port.",
			args: []string{"--dns", "_http._tcp.web.shop.svc.cluster.local"},
			dns:  &config.DNS{Name: "_http._tcp.web.shop.svc.cluster.local", Interval: config.DefaultDNSInterval},
		},
		{
			name: "A DNS name without port is refused.",
			args: []string{"--dns", "web.shop.svc.cluster.local"},
			err:  `--dns "web.shop.svc.cluster.local": want NAME:PORT`,
		},
		{
			name: "Backends and a service together are refused.",
			args: []string{"--backend", "web-0=http://127.0.0.1:9001", "--service", "shop/web:http"},
			err:  "give only one of --backend, --service and --dns",
		},
		{
			name: "No pods at all are refused.",
			args: nil,
			err:  "no pods: give --config FILE, or one of --backend",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseServeFlags(tt.args, io.Discard)
			if err != nil {
				t.Fatalf("parsing flags: %v", err)
			}
			cfg, err := f.load()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			r := cfg.Routes[0]
			if !reflect.DeepEqual(r.Service, tt.service) {
				t.Errorf("service: got %+v, want %+v", r.Service, tt.service)
			}
			if !reflect.DeepEqual(r.DNS, tt.dns) {
				t.Errorf("dns: got %+v, want %+v", r.DNS, tt.dns)
			}
		})
	}
}

func TestKubeServiceWithoutKubeconfigFailsClearly(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	err := run(t.Context(), []string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--service", "shop/web:http"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "give --kubeconfig") {
		t.Errorf("got %v, want an error asking for --kubeconfig", err)
	}
}
