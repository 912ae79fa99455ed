package main

import (
	"context"
	"flag"
	"fmt"
	"net"

	"google.golang.org/grpc"
)

// runPods serves bench.Echo as pods web-0, web-1, ... on consecutive ports
// of 127.0.0.1, in h2c, until ctx ends.
func runPods(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pods", flag.ContinueOnError)
	first := fs.Int("port", 19411, "`port` of the first pod; the others follow")
	count := fs.Int("count", 4, "`number` of pods")
	if err := fs.Parse(args); err != nil {
		return err
	}
	errs := make(chan error, *count)
	for i := range *count {
		addr := fmt.Sprintf("127.0.0.1:%d", *first+i)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		s := grpc.NewServer()
		s.RegisterService(&serviceDesc, &echo{name: fmt.Sprintf("web-%d", i)})
		go func() { errs <- s.Serve(ln) }()
		defer s.Stop()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		return err
	}
}
