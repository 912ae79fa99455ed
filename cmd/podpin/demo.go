package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/demo"
)

// demoPods are the demo's stand-in pods.
var demoPods = []demo.Pod{
	{Name: "web-0", Addr: "127.0.0.1:9001"},
	{Name: "web-1", Addr: "127.0.0.1:9002"},
	{Name: "web-2", Addr: "127.0.0.1:9003"},
}

// demoCmd starts three demo pods and the proxy in front of them, with the
// same defaults as 'podpin serve', and prints what to try.
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("podpin demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", config.DefaultListen, "client listener `address`")
	adminAddr := fs.String("admin", config.DefaultAdmin, "admin listener `address`")
	balancer := fs.String("balancer", "round-robin", "`balancer` for new sessions")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait, err := demo.Serve(ctx, demoPods, config.DefaultHeader)
	if err != nil {
		return err
	}
	// The demo's keys are names, not credentials: keep them so the console
	// and the CLI can show them.
	route := config.Route{Name: config.DefaultRoute, Balancer: *balancer, Table: config.Table{KeepRawKeys: true}}
	for _, p := range demoPods {
		route.Backends = append(route.Backends, config.Backend{Name: p.Name, URL: "http://" + p.Addr})
	}
	cfg := &config.Config{
		Listeners: []config.Listener{{Address: *listen}},
		Admin:     config.Admin{Address: *adminAddr},
		Shutdown:  config.Shutdown{DrainTimeout: 2 * time.Second},
		Routes:    []config.Route{route},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	err = serve(ctx, cfg, serveOptions{log: log, started: func() { printDemo(stdout, *listen, *adminAddr) }})
	cancel()
	if werr := wait(); err == nil {
		err = werr
	}
	return err
}

func printDemo(w io.Writer, listen, adminAddr string) {
	fmt.Fprintf(w, `podpin demo: three pods (web-0, web-1, web-2 on 127.0.0.1:9001-9003) behind podpin on %[1]s.

A session sticks to its pod; the same key always reaches the same pod:
  curl -H 'X-Session: alice' http://%[1]s/
  curl -H 'X-Session: alice' http://%[1]s/
A new session is placed by the balancer (round-robin):
  curl -H 'X-Session: bob' http://%[1]s/
  curl -H 'X-Session: carol' http://%[1]s/
No key: balanced, nothing pinned:
  curl http://%[1]s/
The X-Podpin-Pod response header names the pod:
  curl -si -H 'X-Session: alice' http://%[1]s/ | grep -i x-podpin-pod
Where every session lives: the console at http://%[2]s/ or the CLI
(go build -o podpin ./cmd/podpin):
  podpin sessions list
  podpin sessions get alice
  podpin sessions pin alice web-2
  podpin pods
Metrics:
  curl -s http://%[2]s/metrics | grep ^podpin_

Press Ctrl-C to stop.
`, listen, adminAddr)
}
