package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// Ports, all on 127.0.0.1.
// They are away from the usual 8080/9001/9901 and their 18xxx/19xxx
// look-alikes, which other local test setups tend to take; a port found in use
// fails that target instead of measuring someone else's server.
const (
	firstPodPort     = 19401 // web-0..web-3 listen on 19401-19404
	podCount         = 4
	podpinPort       = 18480
	haproxyPort      = 18481
	podpinRedisPort  = 18482
	podpinAdmin      = 19481
	podpinRedisAdmin = 19482
	podpinGoPort     = 18483
	podpinGoAdmin    = 19483
	redisPort        = 18479
	firstGRPCPodPort = 19411 // the gRPC pods web-0..web-3 listen on 19411-19414

	largePath = "/large/1m.bin"
)

// layout is how the proxy under test and its load (wrk, the pods, Redis)
// share the machine's CPUs.
type layout struct {
	// processors is what the proxy may use at once: HAProxy's nbthread,
	// podpin's GOMAXPROCS.
	processors int
	// proxyCPUs and loadCPUs pin the proxy and the load (taskset lists);
	// "" leaves them to the kernel's scheduler.
	proxyCPUs, loadCPUs string
}

// layouts are the configurations bench can measure, by processor count.
// With one processor the proxy has CPU 0 to itself and the load runs on
// CPU 1. With two, nothing is pinned: the proxy's two threads share both
// CPUs with the load, as a replica given two cores shares its node.
var layouts = map[int]layout{
	1: {processors: 1, proxyCPUs: "0", loadCPUs: "1"},
	2: {processors: 2},
}

// pod is one nginx server block standing for a backend pod.
type pod struct {
	Name string
	Port int
}

func (p pod) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.Port) }

func pods() []pod { return podsFrom(firstPodPort) }

// grpcPods are the gRPC servers, with the same names as the nginx pods.
func grpcPods() []pod { return podsFrom(firstGRPCPodPort) }

func podsFrom(port int) []pod {
	ps := make([]pod, podCount)
	for i := range ps {
		ps[i] = pod{Name: fmt.Sprintf("web-%d", i), Port: port + i}
	}
	return ps
}

// workloadPods are the pods the proxies forward w to.
func workloadPods(w workload) []pod {
	if w.grpc {
		return grpcPods()
	}
	return pods()
}

// target is one thing wrk is pointed at: a pod directly, or a proxy in front
// of all pods.
type target struct {
	name  string
	port  int   // where wrk sends requests
	binds []int // every port the target's processes listen on
	proxy bool  // false: no proxy, nothing to sample
	// start starts the proxy, configured for workload w, and whatever it
	// needs; the first process returned is the proxy, which is sampled.
	// Nil for the direct target.
	start func(b *bench, tag string, w workload) ([]*proc, error)
}

// targets returns the targets to run, in report order. The TLS suite has
// no direct target: the pods speak neither TLS nor HTTP/2, and what is
// compared is the two proxies.
func targets(withRedis, withGoroutines bool, suite string) []target {
	var ts []target
	if suite != suiteTLS {
		ts = append(ts, target{name: "direct", port: firstPodPort})
	}
	ts = append(ts, []target{
		{name: "haproxy", port: haproxyPort, binds: []int{haproxyPort}, proxy: true, start: startHAProxy},
		{name: "podpin", port: podpinPort, binds: []int{podpinPort, podpinAdmin}, proxy: true, start: startPodpin},
	}...)
	// podpin with its HTTP/1.1 served by the goroutine front end alone
	// (listeners[].eventLoop: false). Skipped unless
	// PODPIN_BENCH_GOROUTINES=1.
	if withGoroutines {
		ts = append(ts, target{name: "podpin-goroutines", port: podpinGoPort, binds: []int{podpinGoPort, podpinGoAdmin},
			proxy: true, start: startPodpinGoroutines})
	}
	// (4) podpin with its stick table in Redis. Skipped unless
	// PODPIN_BENCH_REDIS=1; see startPodpinRedis.
	if withRedis {
		ts = append(ts, target{name: "podpin-redis", port: podpinRedisPort, binds: []int{podpinRedisPort, podpinRedisAdmin, redisPort},
			proxy: true, start: startPodpinRedis})
	}
	return ts
}

const nginxConfig = `worker_processes 1;
daemon off;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/nginx-error.log warn;
events {
    worker_connections 8192;
}
http {
    access_log off;
    client_body_temp_path {{.Dir}}/nginx-tmp/body;
    proxy_temp_path {{.Dir}}/nginx-tmp/proxy;
    fastcgi_temp_path {{.Dir}}/nginx-tmp/fastcgi;
    uwsgi_temp_path {{.Dir}}/nginx-tmp/uwsgi;
    scgi_temp_path {{.Dir}}/nginx-tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
{{range .Pods}}
    server {
        listen {{.Addr}};
        location / {
            return 200 "{{.Name}}\n";
        }
        location /large/ {
            root {{$.Dir}}/www;
        }
    }
{{end}}}
`

// startPods starts one nginx master with a worker on the load's CPUs and a
// server block per pod. Each answers "/" with its own name and serves
// /large/1m.bin, 1 MiB of random bytes.
func startPods(ctx context.Context, b *bench) (*proc, error) {
	dir := b.cfg.work
	for _, d := range []string{"nginx-tmp", "www/large"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	// nginx's worker runs as an unprivileged user and must read the file.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	body := make([]byte, 1<<20)
	rand.Read(body)
	if err := os.WriteFile(filepath.Join(dir, "www", largePath), body, 0o644); err != nil {
		return nil, err
	}
	var ports []int
	for _, pd := range pods() {
		ports = append(ports, pd.Port)
	}
	if err := portsFree(ports); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "nginx.conf")
	if err := writeTemplate(file, nginxConfig, map[string]any{"Dir": dir, "Pods": pods()}); err != nil {
		return nil, err
	}
	p, err := b.procs.start("nginx", b.layout.loadCPUs, nil, "nginx", "-p", dir, "-e", filepath.Join(dir, "nginx-error.log"), "-c", file)
	if err != nil {
		return nil, err
	}
	for _, pd := range pods() {
		if err := waitListening(ctx, p, pd.Addr()); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}

// haproxyConfig is the stick table HAProxy documents for header affinity,
// on one thread per processor, with keep-alive on both sides. Over TLS it
// offers h2 and http/1.1 by ALPN on one port; on a cleartext port for h2c
// it speaks HTTP/2 only (proto h2); to the gRPC pods it speaks h2c.
const haproxyConfig = `global
    nbthread {{.Threads}}
    maxconn 8192

defaults
    mode http
    option http-keep-alive
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend clients
    bind 127.0.0.1:{{.Port}}{{if .Cert}} ssl crt {{.Cert}} alpn h2,http/1.1{{else if .H2C}} proto h2{{end}}
    # The headers podpin adds by default, so both proxies do the same work.
    option forwardfor
    http-request set-header X-Forwarded-Proto {{if .Cert}}https{{else}}http{{end}}
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend pods

backend pods
    balance roundrobin
    stick-table type string len 64 size {{.TableSize}} expire 30m
    stick on req.hdr(X-Session)
    http-response set-header X-Podpin-Pod %s
{{- range .Pods}}
    server {{.Name}} {{.Addr}}{{if $.GRPC}} proto h2{{end}}
{{- end}}
`

func startHAProxy(b *bench, tag string, w workload) ([]*proc, error) {
	file := filepath.Join(b.cfg.work, "haproxy.cfg")
	data := map[string]any{"Port": haproxyPort, "TableSize": b.cfg.tableSize, "Pods": workloadPods(w), "Threads": b.layout.processors,
		"Cert": "", "H2C": w.front == frontH2C, "GRPC": w.grpc}
	if w.front == frontTLS {
		data["Cert"] = b.cert.combined
	}
	err := writeTemplate(file, haproxyConfig, data)
	if err != nil {
		return nil, err
	}
	p, err := b.procs.start("haproxy-"+tag, b.layout.proxyCPUs, b.env, b.command("haproxy", "-db", "-f", file)...)
	if err != nil {
		return nil, err
	}
	return []*proc{p}, nil
}

// podpinConfig is the route HAProxy's configuration describes: the same
// pods, header and table size; round robin and a 30 minute idle timeout are
// podpin's defaults. Its listener terminates TLS when HAProxy's does (h2 and
// http/1.1 by ALPN); a cleartext listener takes h2c with prior knowledge as
// well as HTTP/1.1, by default. The gRPC pods are h2c:// backends.
const podpinConfig = `listeners:
  - address: 127.0.0.1:{{.Port}}
{{- with .EventLoop}}
    eventLoop: {{.}}
{{- end}}
{{- with .Cert}}
    tls:
      certificates:
        - certFile: {{.cert}}
          keyFile: {{.key}}
{{- end}}
admin:
  address: 127.0.0.1:{{.Admin}}
routes:
  - name: default
    backends:
{{- range .Pods}}
      - name: {{.Name}}
        url: {{$.Scheme}}://{{.Addr}}
{{- end}}
    sticky:
      header: X-Session
    table:
      maxEntries: {{.TableSize}}
{{- with .Redis}}
store:
  type: redis
  redis:
    url: {{.}}
{{- end}}
{{- with .RedisTimeout}}
    timeout: {{.}}
    dialTimeout: {{.}}
{{- end}}
`

func startPodpin(b *bench, tag string, w workload) ([]*proc, error) {
	return b.startPodpinAs("podpin", tag, podpinPort, podpinAdmin, w, nil)
}

// startPodpinGoroutines is startPodpin with the listener's HTTP/1.1
// served by the goroutine front end alone.
func startPodpinGoroutines(b *bench, tag string, w workload) ([]*proc, error) {
	return b.startPodpinAs("podpin-goroutines", tag, podpinGoPort, podpinGoAdmin, w, map[string]any{"EventLoop": "false"})
}

// startPodpinAs starts podpin as the target name, listening on port with
// its admin API on admin, configured for w and what extra sets.
func (b *bench) startPodpinAs(name, tag string, port, admin int, w workload, extra map[string]any) ([]*proc, error) {
	file, err := b.writePodpinConfig(name+".yaml", port, admin, w, extra)
	if err != nil {
		return nil, err
	}
	p, err := b.procs.start(name+"-"+tag, b.layout.proxyCPUs, b.podpinEnv(),
		b.command(b.cfg.podpin, "serve", "--config", file, "--drain-timeout", "1s", "--log-level", "warn")...)
	if err != nil {
		return nil, err
	}
	return []*proc{p}, nil
}

// startPodpinRedis is the hook for podpin with its stick table in Redis:
// the route and table size of startPodpin, the table kept by a Redis server
// on the load's CPUs (127.0.0.1:18479, no persistence) and named in podpin's
// configuration. bench/run installs redis-server when PODPIN_BENCH_REDIS=1.
func startPodpinRedis(b *bench, tag string, w workload) ([]*proc, error) {
	redis, err := b.procs.start("redis-"+tag, b.layout.loadCPUs, nil,
		"redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(redisPort),
		"--save", "", "--appendonly", "no", "--dir", b.cfg.work)
	if err != nil {
		return nil, err
	}
	if err := waitListening(context.Background(), redis, fmt.Sprintf("127.0.0.1:%d", redisPort)); err != nil {
		redis.stop()
		return nil, err
	}
	// Under callgrind podpin runs some fifty times slower, and Redis calls
	// would outlast the store's 50ms timeout: the store would turn degraded
	// and count that instead. The timeouts then grow with the slowdown.
	timeout := ""
	if len(b.wrap) > 0 {
		timeout = "5s"
	}
	file, err := b.writePodpinConfig("podpin-redis.yaml", podpinRedisPort, podpinRedisAdmin, w,
		map[string]any{"Redis": fmt.Sprintf("redis://127.0.0.1:%d", redisPort), "RedisTimeout": timeout})
	if err != nil {
		redis.stop()
		return nil, err
	}
	p, err := b.procs.start("podpin-redis-"+tag, b.layout.proxyCPUs, b.podpinEnv(),
		b.command(b.cfg.podpin, "serve", "--config", file, "--drain-timeout", "1s", "--log-level", "warn")...)
	if err != nil {
		redis.stop()
		return nil, err
	}
	return []*proc{p, redis}, nil
}

// podpinEnv is podpin's environment: GOMAXPROCS for the layout, and
// whatever the counting mode adds.
func (b *bench) podpinEnv() []string {
	return append([]string{fmt.Sprintf("GOMAXPROCS=%d", b.layout.processors)}, b.env...)
}

// command returns argv behind the wrapper, if any.
func (b *bench) command(argv ...string) []string {
	return append(append([]string(nil), b.wrap...), argv...)
}

// writePodpinConfig writes podpinConfig with the given port and admin port,
// the listener and pods workload w needs, and the store settings in store
// (Redis, RedisTimeout), if any.
func (b *bench) writePodpinConfig(name string, port, admin int, w workload, store map[string]any) (string, error) {
	file := filepath.Join(b.cfg.work, name)
	data := map[string]any{"Port": port, "Admin": admin, "TableSize": b.cfg.tableSize, "Pods": workloadPods(w), "Scheme": "http", "Cert": nil, "EventLoop": nil}
	if w.grpc {
		data["Scheme"] = "h2c"
	}
	if w.front == frontTLS {
		data["Cert"] = map[string]string{"cert": b.cert.cert, "key": b.cert.key}
	}
	maps.Copy(data, store)
	return file, writeTemplate(file, podpinConfig, data)
}

func writeTemplate(file, text string, data any) error {
	t, err := template.New(filepath.Base(file)).Parse(text)
	if err != nil {
		return err
	}
	var sb strings.Builder
	if err := t.Execute(&sb, data); err != nil {
		return err
	}
	return os.WriteFile(file, []byte(sb.String()), 0o644)
}

// portsFree fails when another program listens on one of ports.
func portsFree(ports []int) error {
	for _, port := range ports {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s is in use by another program: %w", addr, err)
		}
		ln.Close()
	}
	return nil
}

// waitListening waits up to ten seconds for addr to accept connections, and
// fails early if p exits.
func waitListening(ctx context.Context, p *proc, addr string) error {
	deadline := time.Now().Add(30 * time.Second) // valgrind starts slowly
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if !p.running() {
			out, _ := p.output()
			return fmt.Errorf("%s %w: %s", p.name, errExited, lastLines(out, 5))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing listening on %s after 10s", p.name, addr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
