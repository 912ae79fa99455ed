package k8stest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	pb "sigs.k8s.io/gateway-api-conformance-images/echo-basic/grpcechoserver"

	"github.com/podpin/podpin/internal/certstest"
)

// The namespaces of the conformance suite's base manifests.
var conformanceNamespaces = []string{
	"gateway-conformance-infra",
	"gateway-conformance-app-backend",
	"gateway-conformance-web-backend",
}

// TestTestKubeletRunsTheConformanceBackends applies the Gateway API
// conformance suite's base manifests to a control plane with the
// controller manager and a test kubelet, and checks that every backend pod
// runs, is published in its Service's EndpointSlice and answers at its own
// address as echo-basic does: HTTP, h2c, TLS with its Secret's certificate,
// WebSocket, gRPC (cleartext and TLS), TCP and UDP, with its log readable
// through pods/log. Then a deleted pod stops
// answering and its Deployment's replacement comes up at another address.
func TestTestKubeletRunsTheConformanceBackends(t *testing.T) {
	cp := Start(t)
	netns := NewNetNS(t)
	cp.StartControllerManager(t)
	crds := cp.InstallGatewayAPICRDs(t)
	for _, want := range []string{"gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io",
		"httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io",
		"referencegrants.gateway.networking.k8s.io"} {
		if !slices.Contains(crds, want) {
			t.Errorf("installed CRDs %v: %s missing", crds, want)
		}
	}
	kubelet := cp.StartTestKubelet(t, netns, KubeletOptions{})
	ctx := t.Context()

	dir, err := ModuleDir("sigs.k8s.io/gateway-api/conformance")
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := os.ReadFile(filepath.Join(dir, "base", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	createObjects(t, cp, bytes.ReplaceAll(manifests, []byte("{GATEWAY_CLASS_NAME}"), []byte("podpin")))
	// As the suite does, the Secrets the TLS backends mount come after the
	// Deployments: those pods wait for them, as with a real kubelet.
	ca := certstest.NewCA(t)
	certs := map[string][]string{
		"gateway-conformance-infra/tls-checks-certificate":                   {"abc.example.com", "other.example.com"},
		"gateway-conformance-infra/tls-passthrough-checks-certificate":       {"abc.example.com"},
		"gateway-conformance-app-backend/tls-passthrough-checks-certificate": {"abc.example.com"},
	}
	for key, names := range certs {
		ns, name, _ := strings.Cut(key, "/")
		crt, k := ca.Issue(t, time.Now().Add(time.Hour), names...)
		_, err := cp.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{"tls.crt": crt, "tls.key": k},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating secret %s: %v", key, err)
		}
	}
	pods := waitBackendsReady(t, cp, conformanceNamespaces)
	t.Logf("base manifests: %d pods running and published in %v", len(pods), time.Since(start).Round(100*time.Millisecond))

	if err := netns.CheckRoute(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, p := range pods {
		addr, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !podAddrUsable(addr) || addr == podAddr {
			t.Errorf("pod %s/%s: got IP %q, want its own address in %s", p.Namespace, p.Name, p.Status.PodIP, podNet)
		}
		if other, ok := seen[p.Status.PodIP]; ok {
			t.Errorf("pods %s and %s/%s share IP %s", other, p.Namespace, p.Name, p.Status.PodIP)
		}
		seen[p.Status.PodIP] = p.Namespace + "/" + p.Name
		if p.Spec.NodeName != DefaultNode {
			t.Errorf("pod %s/%s: got node %q, want %q", p.Namespace, p.Name, p.Spec.NodeName, DefaultNode)
		}
	}

	infra := podsOf(pods, "gateway-conformance-infra", "infra-backend-v1")
	if len(infra) != 2 {
		t.Fatalf("infra-backend-v1: got %d pods, want 2", len(infra))
	}
	t.Run("HTTP echo names the pod and echoes the request", func(t *testing.T) {
		for _, p := range infra {
			var got echoAnswer
			resp := getJSON(t, http.DefaultClient, "http://"+p.Status.PodIP+":3000/some/path?x=1", map[string]string{"X-Test": "yes"}, &got)
			if got.Pod != p.Name || got.Namespace != p.Namespace || got.Path != "/some/path?x=1" ||
				got.Method != "GET" || got.Proto != "HTTP/1.1" || got.HTTPPort != "3000" ||
				!slices.Equal(got.Headers["X-Test"], []string{"yes"}) || got.TLS != nil {
				t.Errorf("echo of %s: got %+v", p.Name, got)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
		}
		var got echoAnswer
		resp := getJSON(t, http.DefaultClient, "http://"+infra[0].Status.PodIP+":3000/", map[string]string{"X-Echo-Set-Header": "X-Foo: bar, X-Baz: 1"}, &got)
		if resp.Header.Get("X-Foo") != "bar" || resp.Header.Get("X-Baz") != "1" {
			t.Errorf("X-Echo-Set-Header: got response headers %v", resp.Header)
		}
		if code := status(t, http.DefaultClient, "http://"+infra[0].Status.PodIP+":3000/status/418"); code != http.StatusTeapot {
			t.Errorf("/status/418: got %d, want 418", code)
		}
	})

	t.Run("pods/log reads what the pod logged, through the kubelet API", func(t *testing.T) {
		p := infra[1]
		getJSON(t, http.DefaultClient, "http://"+p.Status.PodIP+":3000/logged?n=1", nil, &echoAnswer{})
		body, err := cp.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{
			Container: "infra-backend-v1",
			SinceTime: &metav1.Time{Time: start},
		}).DoRaw(ctx)
		if err != nil {
			t.Fatalf("logs of %s: %v", p.Name, err)
		}
		if !strings.Contains(string(body), "Echoing back request made to /logged?n=1 to client (10.244.0.1:") {
			t.Errorf("logs of %s: got %q, want the echo of /logged?n=1", p.Name, body)
		}
		body, err = cp.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{
			Container: "infra-backend-v1",
			SinceTime: &metav1.Time{Time: time.Now().Add(time.Hour)},
		}).DoRaw(ctx)
		if err != nil || len(body) != 0 {
			t.Errorf("logs of %s since an hour from now: got %q, %v, want nothing", p.Name, body, err)
		}
	})

	t.Run("h2c is answered on both ports, HTTP/1.1 only on the HTTP port", func(t *testing.T) {
		h2c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: h2cOnlyProtocols()}}
		for _, port := range []string{"3000", "3001"} {
			var got echoAnswer
			getJSON(t, h2c, "http://"+infra[0].Status.PodIP+":"+port+"/h2c", nil, &got)
			if got.Proto != "HTTP/2.0" || got.Pod != infra[0].Name {
				t.Errorf("h2c to port %s: got proto %q pod %q, want HTTP/2.0 %s", port, got.Proto, got.Pod, infra[0].Name)
			}
		}
		if code := status(t, http.DefaultClient, "http://"+infra[0].Status.PodIP+":3001/"); code != http.StatusBadRequest {
			t.Errorf("HTTP/1.1 to the h2c port: got %d, want 400", code)
		}
	})

	t.Run("the TLS backend serves its Secret's certificate", func(t *testing.T) {
		p := podsOf(pods, "gateway-conformance-infra", "tls-backend")[0]
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: ca.Client("abc.example.com"), ForceAttemptHTTP2: true}}
		var got echoAnswer
		getJSON(t, client, "https://"+p.Status.PodIP+":8443/tls", nil, &got)
		if got.TLS == nil || got.TLS.ServerName != "abc.example.com" || got.Pod != p.Name || got.Proto != "HTTP/2.0" {
			t.Errorf("TLS echo: got %+v tls %+v", got, got.TLS)
		}
	})

	t.Run("WebSocket frames are echoed", func(t *testing.T) {
		addr := infra[1].Status.PodIP + ":3000"
		ws, err := websocket.Dial("ws://"+addr+"/ws", "", "http://"+addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if err := websocket.Message.Send(ws, "hello"); err != nil {
			t.Fatal(err)
		}
		var got string
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := websocket.Message.Receive(ws, &got); err != nil || got != "hello" {
			t.Errorf("websocket echo: got %q, %v, want hello", got, err)
		}
	})

	t.Run("gRPC echo names the pod, in cleartext and over TLS", func(t *testing.T) {
		p := podsOf(pods, "gateway-conformance-infra", "grpc-infra-backend-v1")[0]
		for _, tc := range []struct {
			port      string
			creds     credentials.TransportCredentials
			authority string
		}{
			{"3000", insecure.NewCredentials(), p.Status.PodIP + ":3000"},
			// The client sends the name it checks the certificate against.
			{"8443", credentials.NewTLS(ca.Client("abc.example.com")), "abc.example.com"},
		} {
			conn, err := grpc.NewClient(p.Status.PodIP+":"+tc.port, grpc.WithTransportCredentials(tc.creds))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := pb.NewGrpcEchoClient(conn).Echo(cctx, &pb.EchoRequest{})
			cancel()
			if err != nil {
				t.Fatalf("Echo on port %s: %v", tc.port, err)
			}
			a := resp.GetAssertions()
			if a.GetContext().GetPod() != p.Name || a.GetContext().GetNamespace() != p.Namespace ||
				a.GetFullyQualifiedMethod() != "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo" ||
				a.GetAuthority() != tc.authority || (tc.port == "8443") != (a.GetTlsAssertions() != nil) {
				t.Errorf("Echo on port %s: got %v", tc.port, a)
			}
		}
	})

	t.Run("TCP and UDP echo name the pod", func(t *testing.T) {
		p := podsOf(pods, "gateway-conformance-infra", "tcp-backend")[0]
		conn, err := net.DialTimeout("tcp", p.Status.PodIP+":3000", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(conn)
		if line, err := r.ReadString('\n'); err != nil || line != "Gateway API Test TCP Server\n" {
			t.Fatalf("greeting: got %q, %v", line, err)
		}
		io.WriteString(conn, "TEST\n")
		line, err := r.ReadString('\n')
		var got struct{ Pod, Namespace, TCPPort string }
		if err != nil || json.Unmarshal([]byte(line), &got) != nil || got.Pod != p.Name || got.TCPPort != "3000" {
			t.Errorf("TEST: got %q, %v", line, err)
		}

		u := podsOf(pods, "gateway-conformance-infra", "udp")[0]
		uc, err := net.Dial("udp", u.Status.PodIP+":8080")
		if err != nil {
			t.Fatal(err)
		}
		defer uc.Close()
		uc.SetDeadline(time.Now().Add(5 * time.Second))
		uc.Write([]byte("ping"))
		buf := make([]byte, 1024)
		n, err := uc.Read(buf)
		var ugot struct{ Request, Pod, Service string }
		if err != nil || json.Unmarshal(buf[:n], &ugot) != nil || ugot.Request != "ping" || ugot.Pod != u.Name || ugot.Service != "udp-echo" {
			t.Errorf("UDP echo: got %q, %v", buf[:n], err)
		}
	})

	t.Run("a pod of another image answers on its declared ports", func(t *testing.T) {
		createDeployment(t, cp, "gateway-conformance-web-backend", "web", corev1.Container{
			Name:  "web",
			Image: "podpin.test/web:1",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
		}, nil)
		p := waitRunningPod(t, cp, "gateway-conformance-web-backend", "app=web")
		var got echoAnswer
		getJSON(t, http.DefaultClient, "http://"+p.Status.PodIP+":8080/", nil, &got)
		if got.Pod != p.Name || got.Namespace != p.Namespace || got.HTTPPort != "8080" {
			t.Errorf("echo of %s: got pod %q namespace %q httpPort %q", p.Name, got.Pod, got.Namespace, got.HTTPPort)
		}
	})

	t.Run("client certificates are checked against TLS_CLIENT_CACERTS from a ConfigMap", func(t *testing.T) {
		ns := "gateway-conformance-web-backend"
		clientCA := certstest.NewCA(t)
		_, err := cp.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "client-ca"},
			Data:       map[string]string{"ca.crt": string(clientCA.PEM)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		crt, key := ca.Issue(t, time.Now().Add(time.Hour), "mtls.example.com")
		_, err = cp.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "mtls-cert"},
			Data:       map[string][]byte{"tls.crt": crt, "tls.key": key},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		createDeployment(t, cp, ns, "mtls", corev1.Container{
			Name:  "mtls",
			Image: "registry.k8s.io/gateway-api/conformance/echo-basic:v0.1.0",
			Env: []corev1.EnvVar{
				{Name: "TLS_SERVER_CERT", Value: "/etc/server/tls.crt"},
				{Name: "TLS_SERVER_PRIVKEY", Value: "/etc/server/tls.key"},
				{Name: "TLS_CLIENT_CACERTS", Value: "/etc/client/ca"},
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "server", MountPath: "/etc/server"}, {Name: "client", MountPath: "/etc/client"}},
		}, []corev1.Volume{
			{Name: "server", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "mtls-cert"}}},
			{Name: "client", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "client-ca"},
				Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca"}},
			}}},
		})
		p := waitRunningPod(t, cp, ns, "app=mtls")
		addr := p.Status.PodIP + ":8443"

		// Without a certificate the client is let in, as echo-basic does.
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: ca.Client("mtls.example.com")}}
		var got echoAnswer
		getJSON(t, client, "https://"+addr+"/", nil, &got)
		if got.TLS == nil || len(got.TLS.PeerCertificates) != 0 || got.Pod != p.Name {
			t.Errorf("echo without a client certificate: got %+v", got)
		}
		// A certificate of a CA the pod does not trust is refused.
		stranger := certstest.NewCA(t).Server(t, "client.example.com").Certificates
		cfg := ca.Client("mtls.example.com")
		cfg.Certificates = stranger
		conn, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			err = conn.Handshake()
			if err == nil {
				// TLS 1.3 reports the server's refusal on the first read.
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = conn.Read(make([]byte, 1))
			}
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("client certificate of another CA: got %v, want a refused certificate", err)
		}
	})

	t.Run("a deleted pod stops serving and its replacement comes up", func(t *testing.T) {
		gone := infra[0]
		err := cp.Client.CoreV1().Pods(gone.Namespace).Delete(ctx, gone.Name, metav1.DeleteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := cp.Client.CoreV1().Pods(gone.Namespace).Get(ctx, gone.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Fatalf("pod %s was not removed: %v", gone.Name, err)
		}
		if kubelet.Pod(gone.Namespace, gone.Name) != nil {
			t.Errorf("the kubelet still runs %s", gone.Name)
		}
		c, err := net.DialTimeout("tcp", gone.Status.PodIP+":3000", 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s:3000 still accepts connections after %s was deleted", gone.Status.PodIP, gone.Name)
		}
		now := waitBackendsReady(t, cp, []string{"gateway-conformance-infra"})
		after := podsOf(now, "gateway-conformance-infra", "infra-backend-v1")
		if len(after) != 2 || slices.ContainsFunc(after, func(p corev1.Pod) bool { return p.Name == gone.Name }) {
			t.Fatalf("infra-backend-v1 after the deletion: got %v", podNames(after))
		}
		for _, p := range after {
			var got echoAnswer
			getJSON(t, http.DefaultClient, "http://"+p.Status.PodIP+":3000/", nil, &got)
			if got.Pod != p.Name {
				t.Errorf("pod %s at %s: answered as %q", p.Name, p.Status.PodIP, got.Pod)
			}
		}
	})
}

func TestTestKubeletFailsClearlyWhenAddressesRunOut(t *testing.T) {
	k := &TestKubelet{used: map[netip.Addr]bool{}, next: podAddr}
	var got []netip.Addr
	for {
		a, err := k.allocate()
		if err != nil {
			if want := "no pod address left: all 253 addresses of 10.244.0.0/24 other than 10.244.0.1 are in use, " +
				"by running pods and by the test itself"; err.Error() != want {
				t.Errorf("error: got %q, want %q", err, want)
			}
			break
		}
		got = append(got, a)
	}
	if len(got) != 253 || got[0] != podAddr || got[252] != netip.MustParseAddr("10.244.0.254") {
		t.Fatalf("allocated %d addresses from %v to %v, want 253 from 10.244.0.2 to 10.244.0.254", len(got), got[0], got[len(got)-1])
	}
	// A released address is handed out again, the oldest release first.
	k.releaseAddr(got[7])
	k.releaseAddr(got[3])
	for _, want := range []netip.Addr{got[7], got[3]} {
		if a, err := k.allocate(); err != nil || a != want {
			t.Errorf("after releases: got %v, %v, want %v", a, err, want)
		}
	}
}

// createDeployment creates a one-replica Deployment ns/name of container,
// with volumes, labelled app=name.
func createDeployment(t *testing.T, cp *ControlPlane, ns, name string, c corev1.Container, volumes []corev1.Volume) {
	t.Helper()
	labels := map[string]string{"app": name}
	_, err := cp.Client.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{c}, Volumes: volumes},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating deployment %s/%s: %v", ns, name, err)
	}
}

// waitRunningPod waits until one pod matching selector in ns is running and
// ready, and returns it.
func waitRunningPod(t *testing.T, cp *ControlPlane, ns, selector string) corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil || len(list.Items) != 1 {
			return false, nil
		}
		pod = list.Items[0]
		return pod.Status.Phase == corev1.PodRunning && podReady(&pod), nil
	})
	if err != nil {
		t.Fatalf("no running pod matching %q in %s: %v", selector, ns, err)
	}
	return pod
}

// waitBackendsReady waits until every Deployment in namespaces has its
// replicas ready, every pod there is running and ready, and every Service with a selector there lists exactly its ready
// pods' addresses in its EndpointSlices, and returns the pods.
func waitBackendsReady(t *testing.T, cp *ControlPlane, namespaces []string) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	var waiting string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods = pods[:0]
		for _, ns := range namespaces {
			list, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			if len(list.Items) == 0 {
				waiting = "no pods in " + ns
				return false, nil
			}
			deps, err := cp.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, d := range deps.Items {
				want := int32(1)
				if d.Spec.Replicas != nil {
					want = *d.Spec.Replicas
				}
				if d.Status.ObservedGeneration < d.Generation || d.Status.ReadyReplicas != want || d.Status.Replicas != want {
					waiting = fmt.Sprintf("deployment %s/%s has %d of %d replicas ready", ns, d.Name, d.Status.ReadyReplicas, want)
					return false, nil
				}
			}
			ips := map[string]bool{}
			for _, p := range list.Items {
				if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !podReady(&p) {
					waiting = "pod " + ns + "/" + p.Name + " is not running and ready"
					return false, nil
				}
				ips[p.Status.PodIP] = true
				pods = append(pods, p)
			}
			svcs, err := cp.Client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, s := range svcs.Items {
				if len(s.Spec.Selector) == 0 {
					continue
				}
				want := 0
				for _, p := range list.Items {
					if matches(s.Spec.Selector, p.Labels) {
						want++
					}
				}
				eps, err := cp.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
					LabelSelector: discoveryv1.LabelServiceName + "=" + s.Name})
				if err != nil {
					return false, err
				}
				got := 0
				for _, sl := range eps.Items {
					for _, e := range sl.Endpoints {
						if e.Conditions.Ready != nil && *e.Conditions.Ready && ips[e.Addresses[0]] && e.TargetRef != nil {
							got++
						}
					}
				}
				if got != want {
					waiting = fmt.Sprintf("service %s/%s has %d ready endpoints, want %d", ns, s.Name, got, want)
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("backends not ready: %s (%v)", waiting, err)
	}
	return slices.Clone(pods)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// podsOf returns the pods in ns whose label app is app, sorted by name.
func podsOf(pods []corev1.Pod, ns, app string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Namespace == ns && p.Labels["app"] == app {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func podNames(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	return names
}

func h2cOnlyProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// getJSON GETs url with headers and decodes the 200 answer into v.
func getJSON(t *testing.T, client *http.Client, url string, headers map[string]string, v any) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, val := range headers {
		req.Header.Set(k, val)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d %q, %v, want 200", url, resp.StatusCode, body, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %q", url, err, body)
	}
	return resp
}

// status returns the status code of a GET of url.
func status(t *testing.T, client *http.Client, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// createObjects creates each object of the multi-document YAML data
// through the administrator's client, in order.
func createObjects(t *testing.T, cp *ControlPlane, data []byte) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cp.Client.Discovery()))
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 {
			continue
		}
		o := &unstructured.Unstructured{Object: m}
		gvk := o.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", gvk.Kind, o.GetName(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
		}
		if _, err := ri.Create(t.Context(), o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
}
