package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe to write and read at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDemoServesHTTPSOverBothProtocols runs 'podpin demo --tls' as a user
// would and follows its guide: the certificate it names verifies the
// listener, and a key keeps its pod over HTTP/2 and HTTP/1.1.
func TestDemoServesHTTPSOverBothProtocols(t *testing.T) {
	listen, admin := freeAddr(t), freeAddr(t)
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- demoCmd(ctx, []string{"--tls", "--listen", listen, "--admin", admin}, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v (stderr: %s)", err, stderr.String())
		}
	}()
	caLine := regexp.MustCompile(`curl --cacert (\S+) -H 'X-Session: alice' https://` + regexp.QuoteMeta(listen) + `/`)
	var caFile string
	for deadline := time.Now().Add(20 * time.Second); caFile == ""; time.Sleep(20 * time.Millisecond) {
		if m := caLine.FindStringSubmatch(stdout.String()); m != nil {
			caFile = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no guide with a certificate after 20s: %q (stderr: %s)", stdout.String(), stderr.String())
		}
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	var pods []string
	for _, h2 := range []bool{true, false, true} {
		var protos http.Protocols
		protos.SetHTTP1(!h2)
		protos.SetHTTP2(h2)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: &protos}}
		req, _ := http.NewRequest("GET", "https://"+listen+"/", nil)
		req.Header.Set("X-Session", "alice")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if want := map[bool]int{true: 2, false: 1}[h2]; resp.ProtoMajor != want || resp.StatusCode != 200 {
			t.Fatalf("HTTP/%d client: %s %d", want, resp.Proto, resp.StatusCode)
		}
		pods = append(pods, resp.Header.Get("X-Podpin-Pod"))
	}
	if pods[0] == "" || pods[0] != pods[1] || pods[1] != pods[2] {
		t.Errorf("alice reached %q over HTTP/2, HTTP/1.1 and HTTP/2, want one pod", pods)
	}
}
