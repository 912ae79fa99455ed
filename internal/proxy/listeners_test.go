package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
)

// getVia sends a GET for path to scheme://addr and returns the body, or the
// error.
func getVia(addr string, client *http.Client, scheme string, path ...string) (string, error) {
	resp, err := client.Get(scheme + "://" + addr + "/" + strings.Join(path, ""))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestListenersFollowTheConfiguration: Set binds new listeners, stops the
// ones no longer wanted while their requests finish, rebinds one whose
// settings changed, and leaves everything as it was when an address cannot
// be bound.
func TestListenersFollowTheConfiguration(t *testing.T) {
	release := make(chan struct{})
	slow := newTestPod(t, "web-0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "web-0")
	})
	cfg := oneRoute(slow)
	cfg.SetDefaults()
	p := New(Options{})
	t.Cleanup(p.Close)
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ls := p.NewListeners(5 * time.Second)
	t.Cleanup(ls.Close)
	a, b := freeAddr(t), freeAddr(t)
	if err := ls.Set([]config.Listener{{Address: a}}); err != nil {
		t.Fatal(err)
	}
	plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if body, err := getVia(a, plain, "http"); err != nil || body != "web-0" {
		t.Fatalf("first listener: %q, %v", body, err)
	}

	// A second listener joins; the first serves on.
	if err := ls.Set([]config.Listener{{Address: a}, {Address: b}}); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{a, b} {
		if body, err := getVia(addr, plain, "http"); err != nil || body != "web-0" {
			t.Errorf("%s after adding %s: %q, %v", addr, b, body, err)
		}
	}

	// An address that cannot be bound changes nothing.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = ls.Set([]config.Listener{{Address: taken.Addr().String()}})
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Errorf("binding a taken address: %v, want an error naming it", err)
	}
	for _, addr := range []string{a, b} {
		if _, err := getVia(addr, plain, "http"); err != nil {
			t.Errorf("%s after a failed Set: %v", addr, err)
		}
	}

	// b goes while a request is in flight on it: the request finishes, new
	// connections are refused.
	inFlight := make(chan string)
	go func() {
		body, err := getVia(b, plain, "http", "slow")
		if err != nil {
			body = err.Error()
		}
		inFlight <- body
	}()
	waitInFlight(t, p, 1)
	if err := ls.Set([]config.Listener{{Address: a}}); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", b, time.Second); err == nil {
		t.Errorf("%s still accepts connections after it was removed", b)
	}
	close(release)
	if body := <-inFlight; body != "web-0" {
		t.Errorf("the request in flight on the removed listener got %q, want web-0", body)
	}

	// a becomes a TLS listener on the same address.
	ca := certstest.NewCA(t)
	c, k := ca.WriteFiles(t, t.TempDir(), "podpin", "podpin.test")
	if err := ls.Set([]config.Listener{{Address: a, TLS: &config.ListenerTLS{Certificates: []config.Certificate{{CertFile: c, KeyFile: k}}, MinVersion: config.TLS12}}}); err != nil {
		t.Fatal(err)
	}
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.Client("podpin.test"), DisableKeepAlives: true}}
	if body, err := getVia(a, tlsClient, "https"); err != nil || body != "web-0" {
		t.Errorf("%s as a TLS listener: %q, %v", a, body, err)
	}
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

// waitInFlight waits until the proxy's pods have n requests in flight.
func waitInFlight(t *testing.T, p *Proxy, n int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var got int64
		for _, rs := range p.RouteStats() {
			for _, v := range rs.InFlight {
				got += v
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("in flight: %d, want %d", got, n)
		}
	}
}

// TestRoutesServeTheirListeners: a route scoped to one listener serves
// only the requests that came in on it, over HTTP/1.1 and HTTP/2.
func TestRoutesServeTheirListeners(t *testing.T) {
	internal, public := newTestPod(t, "internal-0", nil), newTestPod(t, "public-0", nil)
	a, b := freeAddr(t), freeAddr(t)
	cfg := &config.Config{
		Listeners: []config.Listener{{Address: a}, {Address: b}},
		Routes: []config.Route{
			{Name: "internal", Match: config.Match{Listeners: []string{b}}, Backends: []config.Backend{{Name: "internal-0", URL: internal.url()}}},
			{Name: "public", Backends: []config.Backend{{Name: "public-0", URL: public.url()}}},
		},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := New(Options{})
	t.Cleanup(p.Close)
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ls := p.NewListeners(time.Second)
	t.Cleanup(ls.Close)
	if err := ls.Set(cfg.Listeners); err != nil {
		t.Fatal(err)
	}
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	for _, client := range []*http.Client{{}, {Transport: &http.Transport{Protocols: &h2c}}} {
		for addr, want := range map[string]string{a: "public-0", b: "internal-0"} {
			if body, err := getVia(addr, client, "http"); err != nil || body != want {
				t.Errorf("via %s: %q, %v; want %s", addr, body, err, want)
			}
		}
	}
}
