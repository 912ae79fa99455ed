package ingress

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/k8stest"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/proxy"
)

func tlsSecret(name string, certPEM, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}
}

// withTLS is an Ingress for host name.example whose spec.tls names secret.
func withTLS(name, secret string, ann map[string]string) *networkingv1.Ingress {
	i := classed(name, new("podpin"), ann)
	i.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{name + ".example"}, SecretName: secret}}
	return i
}

// expiry is the expiry metric of the Secret certificate name, 0 when it
// has none.
func expiry(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "podpin_tls_certificate_expiry_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["listener"] == "ingress" && labels["name"] == name {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func TestIngressTLSSecretsAreServedBySNIAndFollowTheirSecrets(t *testing.T) {
	cp := k8stest.Start(t)
	ctx := t.Context()
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	fileCert, fileKey := ca.WriteFiles(t, dir, "file", "file-default.test")
	defCert, defKey := ca.Issue(t, time.Now().Add(48*time.Hour), "secret-default.test")
	create(t, cp.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, ingressClass("podpin", ControllerName),
		tlsSecret("default-tls", defCert, defKey),
		withTLS("app", "app-tls", nil),
		withTLS("plain", "plain-tls", map[string]string{AnnotationSSLRedirect: "false"}),
		classed("open", new("podpin"), nil))

	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clearLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	static := &config.Config{Listeners: []config.Listener{
		{Address: tlsLn.Addr().String(), TLS: &config.ListenerTLS{Certificates: []config.Certificate{{CertFile: fileCert, KeyFile: fileKey}}}},
		{Address: clearLn.Addr().String()},
	}}
	static.SetDefaults()

	reg := prometheus.NewRegistry()
	m := metrics.New(reg, nil)
	src := certs.NewSource()
	kube := discovery.NewKubernetes(cp.Client, nil)
	go kube.Run(ctx)
	p := proxy.New(proxy.Options{Discoverer: &discovery.Factory{Kube: kube}, Certificates: src, Metrics: m})
	t.Cleanup(p.Close)
	if err := p.Apply(static); err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 2)
	go func() { served <- p.ServeListener(serveCtx, tlsLn, static.Listeners[0], time.Second) }()
	go func() { served <- p.ServeListener(serveCtx, clearLn, static.Listeners[1], time.Second) }()
	t.Cleanup(func() { stop(); <-served; <-served })

	c, err := New(Options{Client: cp.Client, Static: static, Apply: p.Apply, Certificates: src,
		DefaultTLSSecret: "shop/default-tls", CertMetrics: m})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitFor(t, "the first sync", closed(c.Synced()))

	// leaf is the certificate a TLS client asking for name is served; the
	// client checks the chain, not the name.
	leaf := func(name string) []byte {
		cfg := ca.Client("")
		cfg.ServerName = name
		conn, err := tls.Dial("tcp", tlsLn.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("TLS as %q: %v", name, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	der := func(certPEM []byte) []byte {
		b, _ := pem.Decode(certPEM)
		return b.Bytes
	}
	servedIs := func(name string, certPEM []byte) func() bool {
		return func() bool { return bytes.Equal(leaf(name), der(certPEM)) }
	}
	events := func(ingress, reason string) []corev1.Event {
		list, err := cp.Client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + ingress + ",reason=" + reason})
		if err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	eventWith := func(ingress, reason, text string, count int32) func() bool {
		return func() bool {
			for _, e := range events(ingress, reason) {
				if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, text) && e.Count >= count {
					return true
				}
			}
			return false
		}
	}

	// The Secret does not exist yet: the default Secret's certificate, and
	// an Event naming the Secret.
	waitFor(t, "app.example served the default Secret's certificate", servedIs("app.example", defCert))
	waitFor(t, "the Event naming shop/app-tls", eventWith("app", ReasonTLSSecret, "Secret shop/app-tls not found", 1))
	if !bytes.Equal(leaf("nobody.test"), der(defCert)) {
		t.Errorf("nobody.test is not served the default Secret's certificate")
	}
	if bytes.Equal(leaf("file-default.test"), der(defCert)) {
		t.Errorf("file-default.test is served the default Secret's certificate, want the file's own")
	}
	if expiry(t, reg, "shop/default-tls") == 0 {
		t.Errorf("no expiry metric for the default Secret shop/default-tls")
	}

	// Created late: served without a restart.
	v1Cert, v1Key := ca.Issue(t, time.Now().Add(time.Hour), "app.example")
	if _, err := cp.Client.CoreV1().Secrets("shop").Create(ctx, tlsSecret("app-tls", v1Cert, v1Key), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "app.example served its own certificate", servedIs("app.example", v1Cert))
	if got := expiry(t, reg, "shop/app-tls"); got == 0 {
		t.Errorf("no expiry metric for shop/app-tls")
	}

	// Rotated: the new certificate is served.
	v2Cert, v2Key := ca.Issue(t, time.Now().Add(2*time.Hour), "app.example")
	if _, err := cp.Client.CoreV1().Secrets("shop").Update(ctx, tlsSecret("app-tls", v2Cert, v2Key), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "app.example served the rotated certificate", servedIs("app.example", v2Cert))

	// Deleted: back to the default, and the Event again.
	if err := cp.Client.CoreV1().Secrets("shop").Delete(ctx, "app-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "app.example back to the default certificate", servedIs("app.example", defCert))
	waitFor(t, "the Event for the deleted Secret", eventWith("app", ReasonTLSSecret, "Secret shop/app-tls not found", 2))
	waitFor(t, "the expiry metric of shop/app-tls removed", func() bool { return expiry(t, reg, "shop/app-tls") == 0 })

	// Malformed: an Event saying why, and still the default.
	_, otherKey := ca.Issue(t, time.Now().Add(time.Hour), "other.example")
	if _, err := cp.Client.CoreV1().Secrets("shop").Create(ctx, tlsSecret("app-tls", v1Cert, otherKey), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Event for the malformed Secret", eventWith("app", ReasonTLSSecret, "Secret shop/app-tls does not hold a certificate and its key", 1))
	if !servedIs("app.example", defCert)() {
		t.Errorf("app.example with a malformed Secret: not served the default certificate")
	}

	// Redirects on the cleartext listener: app (TLS) gets a 308 to https,
	// plain (TLS, redirect off) and open (no TLS) do not.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(host string) *http.Response {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+clearLn.Addr().String()+"/cart/items?id=7&x=%2F", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get("app.example"); r.StatusCode != http.StatusPermanentRedirect || r.Header.Get("Location") != "https://app.example/cart/items?id=7&x=%2F" {
		t.Errorf("app.example over cleartext: got %d Location %q, want 308 to https://app.example/cart/items?id=7&x=%%2F", r.StatusCode, r.Header.Get("Location"))
	}
	if r := get("APP.example:8080"); r.StatusCode != http.StatusPermanentRedirect || r.Header.Get("Location") != "https://app.example/cart/items?id=7&x=%2F" {
		t.Errorf("APP.example:8080 over cleartext: got %d Location %q, want 308 to https://app.example/...", r.StatusCode, r.Header.Get("Location"))
	}
	for _, host := range []string{"plain.example", "open.example"} {
		if r := get(host); r.StatusCode == http.StatusPermanentRedirect || r.Header.Get("Location") != "" {
			t.Errorf("%s over cleartext: got %d Location %q, want no redirect", host, r.StatusCode, r.Header.Get("Location"))
		}
	}
	// Over TLS, app.example is not redirected.
	tr := &http.Transport{TLSClientConfig: func() *tls.Config { c := ca.Client(""); c.ServerName = "app.example"; return c }()}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+tlsLn.Addr().String()+"/cart", nil)
	req.Host = "app.example"
	resp, err := (&http.Client{Transport: tr, CheckRedirect: client.CheckRedirect}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusPermanentRedirect {
		t.Errorf("app.example over TLS: redirected to %q", resp.Header.Get("Location"))
	}

	// Turning the redirect off for app takes effect; a bad value is an
	// Event and keeps the last good setting.
	setRedirect := func(v string) {
		ing, err := cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ing.Annotations == nil {
			ing.Annotations = map[string]string{}
		}
		ing.Annotations[AnnotationSSLRedirect] = v
		if _, err := cp.Client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setRedirect("maybe")
	waitFor(t, "the InvalidAnnotation Event", eventWith("app", ReasonInvalidAnnotation, `podpin.io/ssl-redirect: "maybe" must be true or false`, 1))
	if r := get("app.example"); r.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("app.example with a bad ssl-redirect: got %d, want the last good 308", r.StatusCode)
	}
	setRedirect("false")
	waitFor(t, "app.example no longer redirected", func() bool { return get("app.example").StatusCode != http.StatusPermanentRedirect })
}

func TestIngressTLSWithoutATLSListenerIsAnEvent(t *testing.T) {
	cp := k8stest.Start(t)
	create(t, cp.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, ingressClass("podpin", ControllerName),
		withTLS("app", "app-tls", nil))
	src := certs.NewSource()
	c, a := runController(t, cp.Client, Options{Certificates: src})
	waitFor(t, "the first sync", closed(c.Synced()))
	waitFor(t, "app served", func() bool { return len(a.routes()) == 1 })
	var msg string
	waitFor(t, "the Unsupported Event", func() bool {
		list, err := cp.Client.CoreV1().Events("shop").List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=app,reason=" + ReasonUnsupported})
		if err != nil || len(list.Items) == 0 {
			return false
		}
		msg = list.Items[0].Message
		return true
	})
	if !strings.Contains(msg, "podpin has no TLS listener") {
		t.Errorf("event: %q, want one saying podpin has no TLS listener", msg)
	}
	if src.Redirects([]byte("app.example")) {
		t.Errorf("app.example is redirected to https, which podpin cannot serve")
	}
}
