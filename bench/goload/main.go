// Command goload is the part of bench/run's load that wrk and h2load cannot
// be: the gRPC pods (small grpc-go servers speaking h2c), the gRPC clients
// (unary calls, or messages ping-ponged on bidirectional streams, each with
// a session key in the x-session metadata), and a TLS client that makes a
// full handshake for every request (wrk resumes its TLS sessions). It is a
// module of its own so that podpin's module does not depend on grpc-go for
// its benchmarks.
//
//	goload pods --port 19411 --count 4
//	goload grpc --target 127.0.0.1:18480 --tls --mode unary --duration 10s
//	goload check --target 127.0.0.1:18480 --tls
//	goload handshake --target 127.0.0.1:18480 --duration 10s
//
// grpc and handshake print their summary as one line, "PODPIN_BENCH " and
// JSON, in the format of bench/wrk/report.lua, which the bench program reads.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: goload pods|grpc|check|handshake [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "pods":
		err = runPods(ctx, os.Args[2:])
	case "grpc":
		err = runLoad(ctx, os.Args[2:], os.Stdout)
	case "check":
		err = runCheck(ctx, os.Args[2:], os.Stdout)
	case "handshake":
		err = runHandshakes(ctx, os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q: want pods, grpc, check or handshake", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "goload:", err)
		os.Exit(1)
	}
}
