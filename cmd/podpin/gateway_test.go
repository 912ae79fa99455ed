package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/podpin/podpin/internal/k8stest"
)

// gatewayCluster is a control plane with the Gateway API CRDs, a test
// kubelet that runs pods as echo servers, and podpin serving Gateways.
type gatewayCluster struct {
	cp      *k8stest.ControlPlane
	netns   *k8stest.NetNS
	gw      gwclient.Interface
	kubelet *k8stest.TestKubelet
	podpin  *process
}

func startGatewayCluster(t *testing.T, namespaces ...string) *gatewayCluster {
	t.Helper()
	cp := k8stest.Start(t)
	cp.StartControllerManager(t)
	netns := k8stest.NewNetNS(t)
	// Addresses of pods the test serves by hand, taken before the test
	// kubelet hands out the others.
	for _, ip := range handPods {
		netns.AddAddr(t, ip)
	}
	cp.InstallGatewayAPICRDs(t)
	for _, ns := range namespaces {
		createNamespace(t, cp.Client, ns)
	}
	c := &gatewayCluster{cp: cp, netns: netns}
	c.kubelet = cp.StartTestKubelet(t, netns, k8stest.KubeletOptions{Namespaces: namespaces})
	var err error
	if c.gw, err = gwclient.NewForConfig(cp.ConfigFor(cp.AdminToken)); err != nil {
		t.Fatal(err)
	}
	_, err = c.gw.GatewayV1().GatewayClasses().Create(t.Context(), &gwv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "podpin"},
		Spec:       gwv1.GatewayClassSpec{ControllerName: "podpin.io/gateway-controller"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.podpin = startPodpin(t, "--gateway", "--gateway-addresses=127.0.1.0/24", "--listen=127.0.0.1:0", "--admin=127.0.0.1:0",
		"--kubeconfig="+cp.Kubeconfig(t, cp.AdminToken))
	return c
}

// handPods are the addresses of the pods a test serves by hand, with an
// EndpointSlice it writes (servePods).
var handPods = []string{"10.244.0.250", "10.244.0.251"}

// echoDeployment runs replicas pods of echo servers ns/name behind the
// Service ns/name, port 8080.
func (c *gatewayCluster) echoDeployment(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	_, err := c.cp.Client.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "echo",
					Image: "registry.k8s.io/gateway-api/conformance/echo-basic:v0.1.0",
					Ports: []corev1.ContainerPort{{ContainerPort: 3000}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.cp.Client.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(3000)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// scale sets the replicas of Deployment ns/name.
func (c *gatewayCluster) scale(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	s, err := c.cp.Client.AppsV1().Deployments(ns).GetScale(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas = replicas
	if _, err := c.cp.Client.AppsV1().Deployments(ns).UpdateScale(t.Context(), name, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// gatewayAddress waits until Gateway ns/name is Programmed and returns
// its address.
func (c *gatewayCluster) gatewayAddress(t *testing.T, ns, name string) string {
	t.Helper()
	var addr string
	waitUntilTrue(t, "gateway "+ns+"/"+name+" programmed", func() bool {
		g, err := c.gw.GatewayV1().Gateways(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil || !meta.IsStatusConditionTrue(g.Status.Conditions, string(gwv1.GatewayConditionProgrammed)) || len(g.Status.Addresses) == 0 {
			return false
		}
		addr = g.Status.Addresses[0].Value
		return true
	})
	return addr
}

// echo is what the echo servers answer.
type echo struct {
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
	Path      string `json:"path"`
}

// send sends GET url with headers (name, value pairs) and returns the
// response and the echo; the response body is read.
func send(t *testing.T, url string, headers ...string) (*http.Response, echo) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e echo
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("GET %s: %v in %q", url, err, body)
		}
	}
	return resp, e
}

// TestGatewaySessionPersistence proves the HTTPRoute sessionPersistence
// podpin implements, on a real API server with pods of a Deployment: a
// header the client chooses, or one podpin hands out, or a cookie, keeps
// a session on its pod; scaling up moves no session; deleting a pod moves
// only its sessions; a terminating pod that still serves keeps its
// sessions and takes no new ones.
func TestGatewaySessionPersistence(t *testing.T) {
	c := startGatewayCluster(t, "shop")
	c.echoDeployment(t, "shop", "web", 3)
	ctx := t.Context()
	_, err := c.gw.GatewayV1().Gateways("shop").Create(ctx, &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "gw"},
		Spec: gwv1.GatewaySpec{GatewayClassName: "podpin", Listeners: []gwv1.Listener{{
			Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType,
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	backend := []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
		Name: "web", Port: new(gwv1.PortNumber(8080)),
	}}}}
	prefix := func(p string) []gwv1.HTTPRouteMatch {
		return []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: new(gwv1.PathMatchPathPrefix), Value: new(p)}}}
	}
	_, err = c.gw.GatewayV1().HTTPRoutes("shop").Create(ctx, &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
			Rules: []gwv1.HTTPRouteRule{{
				Matches:     prefix("/header"),
				BackendRefs: backend,
				SessionPersistence: &gwv1.SessionPersistence{
					Type:   new(gwv1.HeaderBasedSessionPersistence),
					Header: &gwv1.HeaderConfig{Name: "Session-A"},
				},
			}, {
				Matches:     prefix("/cookie"),
				BackendRefs: backend,
				SessionPersistence: &gwv1.SessionPersistence{
					Type:   new(gwv1.CookieBasedSessionPersistence),
					Cookie: &gwv1.CookieConfig{Name: new(gwv1.CookieName("sid"))},
				},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + c.gatewayAddress(t, "shop", "gw")
	waitUntilTrue(t, "three pods answer", func() bool {
		seen := map[string]bool{}
		for i := range 12 {
			resp, e := send(t, base+"/header", "Session-A", fmt.Sprint("probe-", i))
			if resp.StatusCode == http.StatusOK {
				seen[e.Pod] = true
			}
		}
		return len(seen) == 3
	})
	waitUntilTrue(t, "route accepted", func() bool {
		r, err := c.gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && len(r.Status.Parents) == 1 && meta.IsStatusConditionTrue(r.Status.Parents[0].Conditions, "Accepted") &&
			meta.IsStatusConditionTrue(r.Status.Parents[0].Conditions, "ResolvedRefs")
	})

	t.Run("header chosen by the client", func(t *testing.T) {
		// As Envoy Gateway's e2e test checks it: many requests, one pod.
		_, first := send(t, base+"/header", "Session-A", "alice")
		for range 50 {
			if _, e := send(t, base+"/header", "Session-A", "alice"); e.Pod != first.Pod || e.Namespace != "shop" {
				t.Fatalf("Session-A alice: answered by %s/%s, then by %s/%s", first.Namespace, first.Pod, e.Namespace, e.Pod)
			}
		}
	})
	t.Run("header handed out by podpin", func(t *testing.T) {
		resp, first := send(t, base+"/header")
		id := resp.Header.Get("Session-A")
		if id == "" {
			t.Fatalf("no Session-A header in the answer to a request without one: %v", resp.Header)
		}
		for range 20 {
			if _, e := send(t, base+"/header", "Session-A", id); e.Pod != first.Pod {
				t.Fatalf("echoed session id %q: answered by %s, then by %s", id, first.Pod, e.Pod)
			}
		}
	})
	t.Run("cookie", func(t *testing.T) {
		resp, first := send(t, base+"/cookie")
		var sid *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == "sid" {
				sid = ck
			}
		}
		if sid == nil {
			t.Fatalf("no sid cookie set: %v", resp.Header.Values("Set-Cookie"))
		}
		raw := strings.ToLower(strings.Join(resp.Header.Values("Set-Cookie"), "; "))
		if strings.Contains(raw, "max-age") || strings.Contains(raw, "expires") || sid.Path != "/" {
			t.Fatalf("a Session cookie has no Max-Age or Expires and the path /: %q", raw)
		}
		for range 20 {
			if _, e := send(t, base+"/cookie", "Cookie", "sid="+sid.Value); e.Pod != first.Pod {
				t.Fatalf("cookie sid: answered by %s, then by %s", first.Pod, e.Pod)
			}
		}
	})

	// 60 sessions spread over the three pods.
	pods := map[string]string{}
	for i := range 60 {
		key := fmt.Sprint("user-", i)
		_, e := send(t, base+"/header", "Session-A", key)
		pods[key] = e.Pod
	}
	checkPinned := func(t *testing.T, gone string) (moved int) {
		t.Helper()
		for key, pod := range pods {
			_, e := send(t, base+"/header", "Session-A", key)
			switch {
			case pod == gone && e.Pod != gone:
				moved++
			case pod != gone && e.Pod != pod:
				t.Errorf("session %s moved from %s to %s", key, pod, e.Pod)
			}
			pods[key] = e.Pod
		}
		return moved
	}

	t.Run("scale-up moves nothing", func(t *testing.T) {
		c.scale(t, "shop", "web", 5)
		var seen map[string]int
		waitUntilTrue(t, "five pods answer new sessions", func() bool {
			seen = map[string]int{}
			for i := range 30 {
				resp, e := send(t, base+"/header", "Session-A", fmt.Sprintf("scale-%d-%d", time.Now().UnixNano(), i))
				seen[fmt.Sprint(resp.StatusCode, " ", e.Pod)]++
			}
			return len(seen) == 5
		})
		checkPinned(t, "")
	})
	t.Run("a deleted pod moves only its sessions", func(t *testing.T) {
		var victim string
		for _, pod := range pods {
			victim = pod
			break
		}
		if err := c.cp.Client.CoreV1().Pods("shop").Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUntilTrue(t, "pod "+victim+" gone", func() bool {
			_, err := c.cp.Client.CoreV1().Pods("shop").Get(ctx, victim, metav1.GetOptions{})
			return err != nil
		})
		had := 0
		for _, pod := range pods {
			if pod == victim {
				had++
			}
		}
		if moved := checkPinned(t, victim); moved != had {
			t.Errorf("%d of the %d sessions of %s moved", moved, had, victim)
		}
	})

	t.Run("a terminating pod keeps its sessions", func(t *testing.T) {
		// Pods served by hand, so that one can be left terminating, as a
		// kubelet leaves a pod during its grace period: the EndpointSlice
		// says serving but not ready.
		createNamespace(t, c.cp.Client, "drain")
		servePods(t, c.cp, c.netns, "drain", "cart", "cart-0="+handPods[0], "cart-1="+handPods[1])
		if _, err := c.gw.GatewayV1().Gateways("drain").Create(ctx, &gwv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Name: "gw"},
			Spec: gwv1.GatewaySpec{GatewayClassName: "podpin", Listeners: []gwv1.Listener{{
				Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType,
			}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.gw.GatewayV1().HTTPRoutes("drain").Create(ctx, &gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: "cart"},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
				Rules: []gwv1.HTTPRouteRule{{
					BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
						Name: "cart", Port: new(gwv1.PortNumber(80)),
					}}}},
					SessionPersistence: &gwv1.SessionPersistence{
						Type:   new(gwv1.HeaderBasedSessionPersistence),
						Header: &gwv1.HeaderConfig{Name: "Session-A"},
					},
				}},
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		url := "http://" + c.gatewayAddress(t, "drain", "gw") + "/"
		podOf := func(key string) string {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Session-A", key)
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
		waitUntilTrue(t, "both cart pods answer", func() bool {
			seen := map[string]bool{}
			for i := range 8 {
				seen[podOf(fmt.Sprint("probe-", i))] = true
			}
			return seen["cart-0"] && seen["cart-1"]
		})
		draining := map[string]bool{}
		for i := range 20 {
			key := fmt.Sprint("cart-user-", i)
			if podOf(key) == "cart-0" {
				draining[key] = true
			}
		}
		if len(draining) == 0 {
			t.Fatal("no session landed on cart-0")
		}
		slices := c.cp.Client.DiscoveryV1().EndpointSlices("drain")
		es, err := slices.Get(ctx, "cart-pods", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range es.Endpoints {
			if es.Endpoints[i].TargetRef.Name == "cart-0" {
				es.Endpoints[i].Conditions = discoveryv1.EndpointConditions{Ready: new(false), Serving: new(true), Terminating: new(true)}
			}
		}
		if _, err := slices.Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUntilTrue(t, "new sessions avoid the terminating pod", func() bool {
			for i := range 10 {
				if podOf(fmt.Sprintf("after-%d-%d", time.Now().UnixNano(), i)) != "cart-1" {
					return false
				}
			}
			return true
		})
		for key := range draining {
			if got := podOf(key); got != "cart-0" {
				t.Errorf("session %s on the terminating cart-0 moved to %q", key, got)
			}
		}
	})
}
