// Command bench-grpc is the gRPC side of bench/run: the pods (small grpc-go
// servers speaking h2c) and the load (grpc-go clients making unary calls or
// ping-ponging on bidirectional streams, each with a session key in the
// x-session metadata). It is a module of its own so that podpin's module does
// not depend on grpc-go for its benchmarks.
//
//	bench-grpc pods --port 19411 --count 4
//	bench-grpc load --target 127.0.0.1:18480 --tls --mode unary --duration 10s
//	bench-grpc check --target 127.0.0.1:18480 --tls
//
// load prints its summary as one line, "PODPIN_BENCH " and JSON, in the
// format of bench/wrk/report.lua, which the bench program reads.
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
		fmt.Fprintln(os.Stderr, "usage: bench-grpc pods|load|check [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "pods":
		err = runPods(ctx, os.Args[2:])
	case "load":
		err = runLoad(ctx, os.Args[2:], os.Stdout)
	case "check":
		err = runCheck(ctx, os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q: want pods, load or check", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-grpc:", err)
		os.Exit(1)
	}
}
