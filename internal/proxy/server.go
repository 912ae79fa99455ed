package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Serve accepts client connections on ln until ctx ends, then shuts down:
// it stops accepting, lets in-flight requests finish for up to drain, and
// closes upgraded connections when drain runs out.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	srv := &fasthttp.Server{
		Handler:                      p.serve,
		Name:                         "podpin",
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		// With streaming on, bodies larger than this are passed through as
		// they arrive instead of being read first.
		MaxRequestBodySize: 64 << 10,
		ReadBufferSize:     16 << 10,
		IdleTimeout:        90 * time.Second,
		CloseOnShutdown:    true,
		Logger:             fasthttpLogger{p},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	go func() {
		<-sctx.Done()
		p.CloseTunnels()
	}()
	err := srv.ShutdownWithContext(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		p.log.Warn("shutdown deadline reached with requests in flight", "drain", drain)
		err = nil
	}
	<-errc
	return err
}

// fasthttpLogger sends fasthttp's own messages to the proxy's logger.
type fasthttpLogger struct{ p *Proxy }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.p.log.Debug("http server", "msg", fmt.Sprintf(format, args...))
}
