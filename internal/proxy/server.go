package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/config"
)

// Serve is ServeListener with a listener that trusts no peer and expects
// no PROXY protocol header.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	return p.ServeListener(ctx, ln, config.Listener{}, drain)
}

// ServeListener accepts client connections on ln until ctx ends, then
// shuts down: it stops accepting, lets in-flight requests finish for up to
// drain, and closes upgraded connections when drain runs out. The limits
// of the configuration applied when it starts bound its connections
// (timeouts, header size, connection counts); body limits follow every
// reload. l says which peers' forwarding headers are believed and whether
// connections open with a PROXY protocol header; its address is not used.
func (p *Proxy) ServeListener(ctx context.Context, ln net.Listener, l config.Listener, drain time.Duration) error {
	lim := p.state.Load().limits
	conns := newClientConns(lim, config.ParsePrefixes(l.TrustedProxies))
	if l.ProxyProtocol {
		pl := newProxyListener(ln, config.ParsePrefixes(l.ProxyProtocolSources), lim.headerTimeout, p.metrics.ProxyProtocolError)
		defer pl.Close()
		ln = pl
	}
	sweep, stopSweep := context.WithCancel(context.Background())
	var sweeping sync.WaitGroup
	defer sweeping.Wait()
	defer stopSweep()
	sweeping.Go(func() { conns.run(sweep) })
	srv := &fasthttp.Server{
		Handler:                      p.serve,
		ErrorHandler:                 p.onParseError,
		HeaderReceived:               p.onHeaders,
		ExpectHandler:                p.onExpect,
		Name:                         "podpin",
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		// With streaming on, bodies larger than this are passed through as
		// they arrive instead of being read first.
		MaxRequestBodySize: 64 << 10,
		// The header block must fit the read buffer: a larger one is a 431.
		ReadBufferSize: lim.maxHeaderBytes,
		// The header and idle timeouts, and the cap per address, are
		// conns's; onHeaders gives a body its own deadline.
		ConnState:   conns.stateChanged,
		Concurrency: lim.maxConnections,
		// Connections over a limit are refused at once rather than
		// slowing the accept loop for everyone.
		SleepWhenConcurrencyLimitsExceeded: 0,
		CloseOnShutdown:                    true,
		// podpin never asks for the request's start time; this saves a
		// clock read per request.
		LazyRequestTime: true,
		Logger:          fasthttpLogger{p},
	}
	served := conns.listen(ln)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(served) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := srv.ShutdownWithContext(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		p.log.Warn("shutdown deadline reached with requests in flight", "drain", drain)
		err = nil
	}
	// Upgraded connections left the server when they were hijacked: they
	// get the rest of the drain to end by themselves, then are closed.
	if n := p.tunnels.drain(sctx); n > 0 {
		p.log.Info("closed upgraded connections at the drain deadline", "connections", n)
	}
	// Shutdown closes only the listeners Serve has registered: when ctx
	// ended before Serve began, Serve would accept forever. Closing the
	// listener here ends it either way.
	served.Close()
	<-errc
	return err
}

// fasthttpLogger sends fasthttp's own messages to the proxy's logger.
type fasthttpLogger struct{ p *Proxy }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.p.log.Debug("http server", "msg", fmt.Sprintf(format, args...))
}
