package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/h2"
)

// serverTitle is the Server field of podpin's HTTP/1.1 answers that name
// no server of their own.
const serverTitle = "podpin"

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
// reload. l says which peers' forwarding headers are believed, whether
// connections open with a PROXY protocol header, and whether they then
// speak TLS (l.TLS: its certificate files are watched until ServeListener
// returns), and whether HTTP/2 is offered (by ALPN over TLS, by prior
// knowledge in cleartext); its address names the listener in metrics, not
// where it listens.
func (p *Proxy) ServeListener(ctx context.Context, ln net.Listener, l config.Listener, drain time.Duration) error {
	lim := p.state.Load().limits
	name := listenerName(ln, l)
	http1 := p.metrics.ClientConnections(name, "http/1.1")
	conns := newClientConns(name, lim, config.ParsePrefixes(l.TrustedProxies))
	conns.tls = l.TLS != nil
	if l.TLS != nil {
		conns.hostnames = newListenerHostnames(l.TLS.Hostnames)
	}
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
	// accept is what the loops take connections from: in cleartext,
	// sockets taken out of Go's poller as they are accepted; over TLS, the
	// sessions once their handshake is done (below).
	var accept net.Listener
	if l.EventLoopEnabled() && l.TLS == nil {
		accept = conns.listen(loopListener{ln})
	}
	ln = conns.listen(ln)
	// HTTP/2 connections leave ln for h2q, the HTTP/2 server's listener.
	var h2q *connQueue
	var h2srv *h2.Server
	if l.HTTP2Enabled() {
		h2q = newConnQueue(ln.Addr())
		h2srv = p.newH2Server(lim, name)
	}
	if l.TLS != nil {
		// TLS runs over the tracked connection, after any PROXY header: the
		// per-address cap and the client address hold for TLS clients too.
		tl, err := p.listenTLS(sweep, &sweeping, ln, name, l, lim.headerTimeout, h2q, l.EventLoopEnabled())
		if err != nil {
			return err
		}
		defer tl.Close()
		ln = tl
		if l.EventLoopEnabled() {
			accept = tl
		}
	}
	var loops *loopFront
	loopErr := make(chan error, 1)
	if accept != nil {
		var err error
		if loops, err = p.newLoopFront(accept.Addr(), h2q, h2srv, http1); err != nil {
			return fmt.Errorf("listener %s: %w", name, err)
		}
		defer loops.close()
		go func() {
			err := loops.serve(accept)
			loops.fast.Close()
			loopErr <- err
		}()
		// fasthttp and the HTTP/2 server take what the loops hand over.
		ln = loops.fast
	}
	if loops == nil && l.TLS == nil && h2q != nil {
		hl := newH2CListener(ln, lim.headerTimeout, h2q)
		defer hl.Close()
		ln = hl
	}
	srv := &fasthttp.Server{
		Handler:                      p.serve,
		ErrorHandler:                 p.onParseError,
		HeaderReceived:               p.onHeaders,
		ExpectHandler:                p.onExpect,
		Name:                         serverTitle,
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
		ConnState: func(c net.Conn, s fasthttp.ConnState) {
			if s == fasthttp.StateNew {
				if cc, ok := connOf(c); !ok || !cc.counted {
					http1.Inc()
				}
			}
			conns.stateChanged(c, s)
		},
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
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	h2errc := make(chan error, 1)
	if h2q != nil {
		go func() { h2errc <- h2srv.Serve(h2q) }()
	} else {
		h2errc <- h2.ErrServerClosed
	}
	select {
	case err := <-errc:
		if h2srv != nil {
			h2srv.Close()
			<-h2errc
		}
		if loops != nil {
			accept.Close()
			<-loopErr
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if loops != nil {
		accept.Close()
		loops.shutdown()
	}
	// Both servers stop at once: HTTP/2 clients get GOAWAY, and the streams
	// in flight finish within the same drain as HTTP/1.1 requests.
	h2done := make(chan error, 1)
	if h2srv != nil {
		go func() { h2done <- h2srv.Shutdown(sctx) }()
	} else {
		h2done <- nil
	}
	err := srv.ShutdownWithContext(sctx)
	// A shutdown that comes before Serve took the listener would leave Serve
	// accepting for ever: closing the listener ends it either way.
	ln.Close()
	if h2err := <-h2done; h2err != nil {
		h2srv.Close()
		err = cmp.Or(err, h2err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		p.log.Warn("shutdown deadline reached with requests in flight", "drain", drain)
		err = nil
	}
	// Upgraded connections left the server when they were hijacked: they
	// get the rest of the drain to end by themselves, then are closed.
	if n := p.tunnels.drain(sctx); n > 0 {
		p.log.Info("closed upgraded connections at the drain deadline", "connections", n)
	}
	if loops != nil {
		loops.drain(sctx)
		<-loopErr
	}
	<-errc
	<-h2errc
	return err
}

// listenerName names the listener l, listening on ln, in metrics: its
// configured address, or where it listens when it has none.
func listenerName(ln net.Listener, l config.Listener) string {
	if l.Address != "" {
		return l.Address
	}
	return ln.Addr().String()
}

// listenTLS wraps ln in a TLS listener serving the certificates of l (named
// name), whose files are checked for changes until ctx ends (in a
// goroutine that wg waits for). A handshake gets timeout to complete.
// HTTP/2 sessions go to h2q (nil: HTTP/2 not offered), or with the others
// to Accept when the event loops take them (loops).
func (p *Proxy) listenTLS(ctx context.Context, wg *sync.WaitGroup, ln net.Listener, name string, l config.Listener, timeout time.Duration, h2q *connQueue, loops bool) (*handshakeListener, error) {
	nextProtos := []string{"http/1.1"}
	if h2q != nil {
		nextProtos = []string{"h2", "http/1.1"}
	}
	pairs := make([]certs.Pair, len(l.TLS.Certificates))
	for i, c := range l.TLS.Certificates {
		pairs[i] = certs.Pair{CertFile: c.CertFile, KeyFile: c.KeyFile}
	}
	source := p.certSource
	if l.TLS.Managed {
		// A controller's listener serves what the controller sets for
		// its address, and nothing else.
		if p.listenerCerts == nil {
			return nil, fmt.Errorf("listener %s: its certificates are set by a controller, and the proxy has no place for them (Options.ListenerCertificates)", name)
		}
		source = p.listenerCerts.For(l.Address)
	}
	store, err := certs.New(certs.Options{
		Listener:   name,
		Pairs:      pairs,
		MinVersion: l.TLS.MinTLSVersion(),
		NextProtos: nextProtos,
		Logger:     p.log,
		Metrics:    p.metrics,
		Source:     source,
	})
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", name, err)
	}
	wg.Go(func() { store.Run(ctx) })
	onError := func(reason string, err error) {
		p.metrics.TLSHandshakeError(name, reason)
		p.log.Debug("TLS handshake failed", "listener", name, "reason", reason, "err", err)
	}
	if loops {
		h2q = nil
	}
	return newTLSListener(ln, store.TLSConfig(), timeout, onError, h2q), nil
}

// fasthttpLogger sends fasthttp's own messages to the proxy's logger.
type fasthttpLogger struct{ p *Proxy }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.p.log.Debug("http server", "msg", fmt.Sprintf(format, args...))
}
