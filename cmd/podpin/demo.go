package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/demo"
)

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
	pods := demo.DefaultPods()
	wait, err := demo.Serve(ctx, pods, config.DefaultHeader)
	if err != nil {
		return err
	}
	cfg, err := demo.Config(pods, *listen, *adminAddr, *balancer)
	if err == nil {
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		err = serve(ctx, cfg, serveOptions{log: log, started: func() { demo.WriteGuide(stdout, *listen, *adminAddr) }})
	}
	cancel()
	if werr := wait(); err == nil {
		err = werr
	}
	return err
}
