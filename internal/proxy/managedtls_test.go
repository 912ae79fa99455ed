package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
)

// TestManagedListenersServeTheirOwnCertificates: two TLS listeners whose
// certificates a controller sets each serve what was set for their
// address, and neither the other's nor the Ingress controller's; a name
// none of their certificates serves fails the handshake, as does every
// name before any is set; crypto/tls and curl clients alike.
func TestManagedListenersServeTheirOwnCertificates(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required (Debian package curl)")
	}
	ca := certstest.NewCA(t)
	issue := func(names ...string) *tls.Certificate {
		cp, kp := ca.Issue(t, time.Now().Add(time.Hour), names...)
		c, err := certs.Parse(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pod := newTestPod(t, "web-0", nil)
	cfg := oneRoute(pod)
	managed := func(addr string) config.Listener {
		return config.Listener{Address: addr, TLS: &config.ListenerTLS{Managed: true}}
	}
	cfg.Listeners = []config.Listener{managed("127.0.0.1:0"), managed("127.0.0.2:0")}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ingress := certs.NewSource()
	ingress.Set([]certs.HostCert{{Hosts: []string{"ingress.test"}, Cert: issue("ingress.test")}}, issue("ingress-default.test"))
	sources := certs.NewSources()
	p := New(Options{Certificates: ingress, ListenerCertificates: sources})
	t.Cleanup(p.Close)
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ls := p.NewListeners(time.Second)
	if err := ls.Set(cfg.Listeners); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ls.Close)
	bound := ls.Addrs()
	one, two := bound["127.0.0.1:0"], bound["127.0.0.2:0"]

	served := func(addr, name string) (string, error) {
		c, err := tls.Dial("tcp", addr, ca.Client(name))
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}
	if got, err := served(one, "a.test"); err == nil {
		t.Errorf("before any certificate is set: served %q, want the handshake to fail", got)
	}
	sources.For("127.0.0.1:0").Set([]certs.HostCert{{Hosts: []string{"a.test", "*.apps.test"}, Cert: issue("a.test", "*.apps.test")}}, nil)
	sources.For("127.0.0.2:0").Set([]certs.HostCert{{Hosts: []string{"b.test"}, Cert: issue("b.test")}}, nil)
	for _, c := range []struct {
		addr, name, want string // want "": the handshake fails
	}{
		{one, "a.test", "a.test"},
		{one, "x.apps.test", "a.test"},
		{one, "b.test", ""},
		{one, "ingress.test", ""},
		{one, "unknown.test", ""},
		{two, "b.test", "b.test"},
		{two, "a.test", ""},
	} {
		got, err := served(c.addr, c.name)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("%s as %q: served %q, want the handshake to fail", c.addr, c.name, got)
		case c.want != "" && (err != nil || got != c.want):
			t.Errorf("%s as %q: served %q, %v; want %q", c.addr, c.name, got, err, c.want)
		}
	}

	caFile := ca.WriteCAFile(t, t.TempDir())
	run := func(addr, name string) (string, error) {
		_, port, _ := net.SplitHostPort(addr)
		host, _, _ := net.SplitHostPort(addr)
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "--cacert", caFile,
			"--resolve", name+":"+port+":"+host, "-H", "X-Session: k", "https://"+name+":"+port+"/").CombinedOutput()
		return string(out), err
	}
	for _, addr := range []string{one, two} {
		name := map[string]string{one: "a.test", two: "b.test"}[addr]
		if out, err := run(addr, name); err != nil || out != "web-0" {
			t.Errorf("curl https://%s on %s: %q, %v; want the pod's answer", name, addr, out, err)
		}
	}
	if out, err := run(one, "b.test"); err == nil {
		t.Errorf("curl https://b.test on the listener without its certificate: %q, want a failed handshake", out)
	}
}

// TestAManagedListenerNeedsItsCertificates: a proxy without a place for
// the certificates of managed listeners does not serve one, and says why.
func TestAManagedListenerNeedsItsCertificates(t *testing.T) {
	p := New(Options{})
	t.Cleanup(p.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = p.ServeListener(context.Background(), ln, config.Listener{Address: "127.0.0.1:8443", TLS: &config.ListenerTLS{Managed: true}}, time.Second)
	if err == nil || !strings.Contains(err.Error(), "listener 127.0.0.1:8443: its certificates are set by a controller") {
		t.Errorf("got %v, want an error naming the listener", err)
	}
}

// TestMisdirectedRequestsGet421: on a listener shared by Gateway listeners
// of several hostnames, a request whose Host belongs to another of them
// than its connection's TLS server name gets 421, over HTTP/2 and
// HTTP/1.1: the cases of the conformance suite's
// HTTPRouteHTTPSListenerDetectMisdirectedRequests.
func TestMisdirectedRequestsGet421(t *testing.T) {
	ca := certstest.NewCA(t)
	cp, kp := ca.Issue(t, time.Now().Add(time.Hour), "example.org", "second-example.org", "*.wildcard.org", "unknown-example.org")
	cert, err := certs.Parse(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	v1, v2, v3 := newTestPod(t, "v1", nil), newTestPod(t, "v2", nil), newTestPod(t, "v3", nil)
	route := func(name string, m config.Match, pod *testPod) config.Route {
		return config.Route{Name: name, Match: m, Backends: []config.Backend{{Name: pod.name, URL: pod.url()}}}
	}
	cfg := &config.Config{
		Listeners: []config.Listener{{Address: "127.0.0.1:0", TLS: &config.ListenerTLS{
			Managed:   true,
			Hostnames: []string{"", "second-example.org", "*.wildcard.org", "fourth-example.wildcard.org"},
		}}},
		Routes: []config.Route{
			route("one", config.Match{Host: "example.org"}, v1),
			route("two", config.Match{Host: "second-example.org"}, v2),
			route("four", config.Match{Host: "fourth-example.wildcard.org"}, v1),
			route("three", config.Match{HostSuffix: ".wildcard.org"}, v3),
		},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sources := certs.NewSources()
	sources.For("127.0.0.1:0").Set(nil, cert)
	p := New(Options{ListenerCertificates: sources})
	t.Cleanup(p.Close)
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ls := p.NewListeners(time.Second)
	if err := ls.Set(cfg.Listeners); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ls.Close)
	addr := ls.Addrs()["127.0.0.1:0"]

	for _, h2 := range []bool{true, false} {
		for _, c := range []struct {
			serverName, host string
			code             int
			pod              string
		}{
			{"example.org", "example.org", 200, "v1"},
			{"example.org", "second-example.org", 421, ""},
			{"example.org", "unknown-example.org", 404, ""},
			{"second-example.org", "second-example.org", 200, "v2"},
			{"second-example.org", "example.org", 421, ""},
			{"second-example.org", "unknown-example.org", 421, ""},
			{"third-example.wildcard.org", "third-example.wildcard.org", 200, "v3"},
			{"third-example.wildcard.org", "fith-example.wildcard.org", 200, "v3"},
			{"third-example.wildcard.org", "fourth-example.wildcard.org", 421, ""},
			{"third-example.wildcard.org", "second-example.org", 421, ""},
			{"third-example.wildcard.org", "unknown-example.org", 421, ""},
			{"fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, "v1"},
			{"fourth-example.wildcard.org", "fith-example.wildcard.org", 421, ""},
			{"unknown-example.org", "example.org", 200, "v1"},
			{"unknown-example.org", "unknown-example.org", 404, ""},
			{"SECOND-example.org", "second-example.ORG:443", 200, "v2"},
		} {
			tr := &http.Transport{TLSClientConfig: ca.Client(c.serverName), ForceAttemptHTTP2: h2}
			if !h2 {
				tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			}
			req, _ := http.NewRequest("GET", "https://"+addr+"/detect-misdirected-requests", nil)
			req.Host = c.host
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatalf("HTTP/2 %v, %s as %s: %v", h2, c.host, c.serverName, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			tr.CloseIdleConnections()
			if resp.StatusCode != c.code || c.pod != "" && string(body) != c.pod || resp.ProtoMajor != map[bool]int{true: 2, false: 1}[h2] {
				t.Errorf("HTTP/2 %v, %s as %s: got %s %d %q, want %d %q", h2, c.host, c.serverName, resp.Proto, resp.StatusCode, body, c.code, c.pod)
			}
		}
	}
}
