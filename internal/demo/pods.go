// Package demo runs small HTTP servers that stand in for a service's pods:
// each answers every request with its own name, so a person or a test can
// see which pod served a request. It also holds what 'podpin demo' puts in
// front of them: its configuration and the guide it prints.
package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Pod is one demo pod.
type Pod struct {
	Name string
	Addr string // host:port it listens on
}

// Handler answers with the pod's name, the session key it saw and the path.
func Handler(name, header string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		key := r.Header.Get(header)
		if key == "" {
			key = "-"
		}
		fmt.Fprintf(w, "%s: %s %s (%s %s)\n", name, r.Method, r.URL.Path, header, key)
	})
}

// Serve runs one HTTP server per pod until ctx ends. Every listener is bound
// before Serve returns; an address in use is an error.
func Serve(ctx context.Context, pods []Pod, header string) (wait func() error, err error) {
	var lns []net.Listener
	for _, p := range pods {
		ln, err := net.Listen("tcp", p.Addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("starting demo pod %s: %w", p.Name, err)
		}
		lns = append(lns, ln)
	}
	errc := make(chan error, len(pods))
	for i, p := range pods {
		srv := &http.Server{Handler: Handler(p.Name, header), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			err := srv.Serve(lns[i])
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
	}
	return func() error {
		var errs []error
		for range pods {
			errs = append(errs, <-errc)
		}
		return errors.Join(errs...)
	}, nil
}
