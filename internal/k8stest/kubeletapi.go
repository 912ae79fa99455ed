package k8stest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// serveAPI runs the part of the kubelet's HTTPS API that the API server
// calls for pods/log, on a free port of 127.0.0.1, and publishes that
// address in [DefaultNode]'s status (InternalIP and kubelet port). The API
// server does not check a kubelet's certificate unless it is given a CA for
// it, so the certificate is a throwaway self-signed one. The server stops
// when stop is called.
func (k *TestKubelet) serveAPI(ctx context.Context) (stop func(), err error) {
	cert, err := selfSignedCert("127.0.0.1")
	if err != nil {
		return nil, fmt.Errorf("kubelet API certificate: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("kubelet API: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", k.containerLogs)
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.ServeTLS(l, "", "") }()

	port := l.Addr().(*net.TCPAddr).Port
	nodes := k.cp.Client.CoreV1().Nodes()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := nodes.Get(ctx, DefaultNode, metav1.GetOptions{})
		if err != nil {
			return err
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
		_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("publishing the kubelet API in node %s: %w", DefaultNode, err)
	}
	return func() { srv.Close() }, nil
}

// containerLogs answers the API server's pods/log calls with what the
// pod's program wrote with [RunningPod.Logf]: the lines of the container,
// from sinceTime or sinceSeconds if given, the last tailLines if given,
// each prefixed with its RFC 3339 time when timestamps is true. Following
// (follow=true) is not supported: the answer ends with the lines so far.
func (k *TestKubelet) containerLogs(w http.ResponseWriter, r *http.Request) {
	key := types.NamespacedName{Namespace: r.PathValue("namespace"), Name: r.PathValue("pod")}
	pod := k.Pod(key.Namespace, key.Name)
	if pod == nil {
		http.Error(w, fmt.Sprintf("pod %s is not running on this node", key), http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	var since time.Time
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			http.Error(w, "sinceTime: "+err.Error(), http.StatusBadRequest)
			return
		}
		since = t
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			http.Error(w, "sinceSeconds: "+err.Error(), http.StatusBadRequest)
			return
		}
		since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	lines := pod.logLines(r.PathValue("container"), since)
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, "tailLines: want a count", http.StatusBadRequest)
			return
		}
		if n < len(lines) {
			lines = lines[len(lines)-n:]
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	stamps := q.Get("timestamps") == "true"
	for _, l := range lines {
		if stamps {
			fmt.Fprintf(w, "%s %s\n", l.at.UTC().Format(time.RFC3339Nano), l.text)
		} else {
			fmt.Fprintln(w, l.text)
		}
	}
}

// selfSignedCert returns a certificate for ip signed by its own key, valid
// for a day.
func selfSignedCert(ip string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "podpin-test-kubelet"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP(ip)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
