package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"

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
	useTLS := fs.Bool("tls", false, "serve HTTPS (HTTP/2 and HTTP/1.1) on the listener, with a self-signed certificate for localhost and 127.0.0.1 written to a temporary directory")
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
	caFile := ""
	if err == nil && *useTLS {
		caFile, err = demoTLS(cfg)
	}
	if err == nil {
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		err = serve(ctx, cfg, serveOptions{log: log, started: func() { demo.WriteGuide(stdout, *listen, *adminAddr, caFile) }})
	}
	cancel()
	if werr := wait(); err == nil {
		err = werr
	}
	return err
}

// demoTLS makes the demo's listener a TLS one with a fresh self-signed
// certificate, and returns the certificate's file, which clients trust.
func demoTLS(cfg *config.Config) (string, error) {
	dir, err := os.MkdirTemp("", "podpin-demo-")
	if err != nil {
		return "", err
	}
	certFile, keyFile, err := demo.WriteCertificate(dir)
	if err != nil {
		return "", err
	}
	cfg.Listeners[0].TLS = &config.ListenerTLS{Certificates: []config.Certificate{{CertFile: certFile, KeyFile: keyFile}}}
	cfg.SetDefaults()
	return certFile, cfg.Validate()
}
