package admin_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/proxy"
)

// env is a running proxy with its admin server, both on loopback ports.
type env struct {
	t         *testing.T
	proxy     *proxy.Proxy
	admin     *httptest.Server
	proxyAddr string
	token     string
}

// startEnv applies cfg (after defaults) to a real proxy serving on a free
// port, with metrics on a fresh registry, and serves its admin API. o's
// Address, Gatherer and Inspector are filled in.
func startEnv(t *testing.T, cfg *config.Config, o admin.Options) *env {
	t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	reg := prometheus.NewRegistry()
	var p *proxy.Proxy
	m := metrics.New(reg, func() []metrics.RouteStats { return p.RouteStats() })
	p = proxy.New(proxy.Options{Metrics: m})
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served, ran := make(chan error, 1), make(chan error, 1)
	go func() { served <- p.Serve(ctx, ln, 5*time.Second) }()
	go func() { ran <- p.Run(ctx) }()

	srv := httptest.NewUnstartedServer(nil)
	o.Address = srv.Listener.Addr().String()
	o.Gatherer, o.Inspector = reg, p
	adm := admin.New(o)
	adm.SetReady(true)
	srv.Config.Handler = adm
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		<-ran
		p.Close()
	})
	return &env{t: t, proxy: p, admin: srv, proxyAddr: ln.Addr().String(), token: o.Token}
}

// call sends a request to the admin API, with the env's token when it has
// one, and returns the status and body.
func (e *env) call(method, path, body string) (int, string) {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.admin.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, string) {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// send sends a request through the proxy with the session key (none when
// key is ""); it returns the status and the pod that answered.
func (e *env) send(key string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+e.proxyAddr+"/", nil)
	if key != "" {
		req.Header.Set("X-Session", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// namedPod is a real HTTP server answering with its name.
func namedPod(t *testing.T, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, name)
	}))
	t.Cleanup(s.Close)
	return s.URL
}
