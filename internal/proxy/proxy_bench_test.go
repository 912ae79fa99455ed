package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"golang.org/x/net/http2"

	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/redistest"
	"github.com/podpin/podpin/internal/store"
)

// benchRoute is a route over four pods that no request reaches: placement
// only.
func benchRoute(b *testing.B, p *Proxy, storeType string) *route {
	b.Helper()
	c := &config.Config{Routes: []config.Route{{Name: "default", Store: storeType}}}
	if storeType == config.StoreRedis {
		c.Store.Redis.URL = "redis://unused"
	}
	for i := range 4 {
		c.Routes[0].Backends = append(c.Routes[0].Backends, config.Backend{Name: fmt.Sprintf("web-%d", i), URL: fmt.Sprintf("http://127.0.0.1:%d", 1+i)})
	}
	c.SetDefaults()
	if err := p.Apply(c); err != nil {
		b.Fatal(err)
	}
	r, _ := p.route("default")
	return r
}

// benchPlaceHit measures a session hit: digest, lookup, pod check.
func benchPlaceHit(b *testing.B, r *route) {
	const keys = 10_000
	client := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	raw := make([][]byte, keys)
	for i := range raw {
		raw[i] = fmt.Appendf(nil, "session-%d", i)
		r.Place(r.pods.Load(), r.Digest.Key(r.Name, raw[i]), raw[i], client)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		k := raw[i%keys]
		if d := r.Place(r.pods.Load(), r.Digest.Key(r.Name, k), k, client); d.Result != 0 {
			b.Fatalf("result %d, want a hit", d.Result)
		}
		i++
	}
}

// BenchmarkPlaceHit compares the hit path of the memory store with the
// Redis store's (a near-cache hit: the same table plus a refresh check).
func BenchmarkPlaceHit(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		p := New(Options{})
		defer p.Close()
		benchPlaceHit(b, benchRoute(b, p, config.StoreMemory))
	})
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		s, err := store.New(store.Options{URL: "redis://" + srv.Addr, Timeout: 100 * time.Millisecond, DialTimeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		p := New(Options{Shared: s})
		defer p.Close()
		benchPlaceHit(b, benchRoute(b, p, config.StoreRedis))
	})
}

// BenchmarkServeHit measures the whole request path of a session hit in
// process: parse, route, key, table, forward over a pooled connection to an
// in-memory pod, response back. It reports allocations per request.
func BenchmarkServeHit(b *testing.B) { benchServeHit(b, config.Timeouts{}) }

// BenchmarkServeHitTimedRoute is BenchmarkServeHit on a route with
// timeouts: the deadline each exchange with the pod carries.
func BenchmarkServeHitTimedRoute(b *testing.B) {
	benchServeHit(b, config.Timeouts{Request: ptr(10 * time.Second), BackendRequest: ptr(2 * time.Second)})
}

func benchServeHit(b *testing.B, timeouts config.Timeouts) {
	podLn := fasthttputil.NewInmemoryListener()
	defer podLn.Close()
	go fasthttp.Serve(podLn, func(ctx *fasthttp.RequestCtx) { ctx.WriteString("web-0") })

	p := New(Options{})
	defer p.Close()
	c := &config.Config{Routes: []config.Route{{Name: "default", Timeouts: timeouts, Backends: []config.Backend{{Name: "web-0", URL: "http://pod:80"}}}}}
	c.SetDefaults()
	if err := p.Apply(c); err != nil {
		b.Fatal(err)
	}
	r, _ := p.route("default")
	for _, pd := range r.pods.Load().all {
		pd.client.dial = podLn.Dial
	}

	proxyLn := fasthttputil.NewInmemoryListener()
	defer proxyLn.Close()
	go fasthttp.Serve(proxyLn, p.serve)
	client := &fasthttp.HostClient{Addr: "proxy", Dial: func(string) (net.Conn, error) { return proxyLn.Dial() }}

	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://proxy/")
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("session-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req.Header.Set("X-Session", keys[i%len(keys)])
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("%v %d", err, resp.StatusCode())
		}
		i++
	}
}

// BenchmarkServeHTTP2Hit is BenchmarkServeHit for an HTTP/2 client: one
// stream after the other on one h2c connection, through podpin's HTTP/2
// server and the short way to a pod that speaks HTTP/1.1, all on in-memory
// connections.
func BenchmarkServeHTTP2Hit(b *testing.B) {
	podLn := fasthttputil.NewInmemoryListener()
	defer podLn.Close()
	go fasthttp.Serve(podLn, func(ctx *fasthttp.RequestCtx) { ctx.WriteString("web-0") })

	p := New(Options{})
	defer p.Close()
	c := &config.Config{Routes: []config.Route{{Name: "default", Backends: []config.Backend{{Name: "web-0", URL: "http://pod:80"}}}}}
	c.SetDefaults()
	if err := p.Apply(c); err != nil {
		b.Fatal(err)
	}
	r, _ := p.route("default")
	for _, pd := range r.pods.Load().all {
		pd.client.dial = podLn.Dial
	}

	proxyLn := fasthttputil.NewInmemoryListener()
	defer proxyLn.Close()
	srv := p.newH2Server(p.state.Load().limits, "bench")
	go srv.Serve(proxyLn)
	defer srv.Close()
	client := &http.Client{Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) {
			return proxyLn.Dial()
		},
	}}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("session-%d", i)
	}
	req, _ := http.NewRequest("GET", "http://proxy/", nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req.Header.Set("X-Session", keys[i%len(keys)])
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%v %v", err, resp)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		i++
	}
}

// BenchmarkServeListener is a table hit through a real listener (client
// connection tracking included), from a peer that is not trusted, from a
// trusted proxy whose X-Forwarded-* pass on, over TLS with keep-alive, and
// served by an event loop (to a pod on a loopback port, which a loop
// dials itself).
func BenchmarkServeListener(b *testing.B) {
	for _, bc := range []struct {
		name    string
		trusted []string
		tls     bool
		loop    bool
	}{{"untrusted", nil, false, false}, {"trusted", []string{"127.0.0.0/8"}, false, false}, {"tls", nil, true, false}, {"eventloop", nil, false, true}} {
		b.Run(bc.name, func(b *testing.B) {
			var podLn net.Listener = fasthttputil.NewInmemoryListener()
			podURL := "http://pod:80"
			if bc.loop {
				var err error
				if podLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
				podURL = "http://" + podLn.Addr().String()
			}
			defer podLn.Close()
			go fasthttp.Serve(podLn, func(ctx *fasthttp.RequestCtx) { ctx.WriteString("web-0") })
			p := New(Options{})
			defer p.Close()
			c := &config.Config{Routes: []config.Route{{Name: "default", Backends: []config.Backend{{Name: "web-0", URL: podURL}}}}}
			c.SetDefaults()
			if err := p.Apply(c); err != nil {
				b.Fatal(err)
			}
			r, _ := p.route("default")
			if mem, ok := podLn.(*fasthttputil.InmemoryListener); ok {
				for _, pd := range r.pods.Load().all {
					pd.client.dial = mem.Dial
				}
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			l := config.Listener{TrustedProxies: bc.trusted, EventLoop: &bc.loop}
			client := &fasthttp.HostClient{Addr: ln.Addr().String()}
			if bc.tls {
				ca := certstest.NewCA(b)
				cert, key := ca.WriteFiles(b, b.TempDir(), "podpin", "podpin.test")
				l.TLS = &config.ListenerTLS{Certificates: []config.Certificate{{CertFile: cert, KeyFile: key}}}
				client.IsTLS, client.TLSConfig = true, ca.Client("podpin.test")
			}
			scheme := "http"
			if bc.tls {
				scheme = "https"
			}
			go func() { done <- p.ServeListener(ctx, ln, l, time.Second) }()
			defer func() { cancel(); <-done }()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI(scheme + "://proxy/")
			req.Header.Set("X-Forwarded-For", "198.51.100.7")
			req.Header.Set("X-Forwarded-Proto", "https")
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = fmt.Sprintf("session-%d", i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req.Header.Set("X-Session", keys[i%len(keys)])
				if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Fatalf("%v %d", err, resp.StatusCode())
				}
				i++
			}
		})
	}
}

// BenchmarkServeHitPodProtocols is a table hit forwarded to a pod on a
// loopback port, in cleartext and over TLS (the pod's certificate verified,
// the connection kept alive): what TLS to pods costs per request.
func BenchmarkServeHitPodProtocols(b *testing.B) {
	ca := certstest.NewCA(b)
	caFile := ca.WriteCAFile(b, b.TempDir())
	for _, protocol := range []string{config.PodHTTP, config.PodHTTPS} {
		b.Run(protocol, func(b *testing.B) {
			podLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer podLn.Close()
			r := config.Route{Name: "default", Backends: []config.Backend{{Name: "web-0", URL: protocol + "://" + podLn.Addr().String()}}}
			if protocol == config.PodHTTPS {
				podLn = tls.NewListener(podLn, ca.Server(b, "web.shop.svc"))
				r.Pods.TLS = config.PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}
			}
			go fasthttp.Serve(podLn, func(ctx *fasthttp.RequestCtx) { ctx.WriteString("web-0") })

			p := New(Options{})
			defer p.Close()
			c := &config.Config{Routes: []config.Route{r}}
			c.SetDefaults()
			if err := p.Apply(c); err != nil {
				b.Fatal(err)
			}
			proxyLn := fasthttputil.NewInmemoryListener()
			defer proxyLn.Close()
			go fasthttp.Serve(proxyLn, p.serve)
			client := &fasthttp.HostClient{Addr: "proxy", Dial: func(string) (net.Conn, error) { return proxyLn.Dial() }}

			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://proxy/")
			req.Header.Set("X-Session", "alice")
			b.ReportAllocs()
			for b.Loop() {
				if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
				}
			}
		})
	}
}
