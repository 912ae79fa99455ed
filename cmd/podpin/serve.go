package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/proxy"
)

// serveFlags are the flags of 'podpin serve'. The route flags build one
// route named "default" when no configuration file is given.
type serveFlags struct {
	configFile   string
	listen       string
	admin        string
	header       string
	backends     backendList
	balancer     string
	missing      string
	logLevel     slog.Level
	drainTimeout time.Duration
	set          map[string]bool // flags given on the command line
}

func parseServeFlags(args []string, stderr io.Writer) (*serveFlags, error) {
	f := &serveFlags{set: map[string]bool{}}
	fs := flag.NewFlagSet("podpin serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.configFile, "config", "", "configuration `file` (YAML); without it the quick flags below make one route")
	fs.StringVar(&f.listen, "listen", config.DefaultListen, "client listener `address`")
	fs.StringVar(&f.admin, "admin", config.DefaultAdmin, "admin listener `address` (health, metrics, API)")
	fs.StringVar(&f.header, "header", config.DefaultHeader, "request `header` carrying the session key")
	fs.Var(&f.backends, "backend", "static pod as `name=http://host:port` (repeat for each pod)")
	fs.StringVar(&f.balancer, "balancer", "round-robin", "`balancer` for new sessions: round-robin, least-conn, least-sessions, random-two, hash")
	fs.StringVar(&f.missing, "missing", config.MissingBalance, "`policy` for requests without a key: balance, assign, reject")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

// load returns the configuration the flags describe.
func (f *serveFlags) load() (*config.Config, error) {
	if f.configFile != "" {
		for _, name := range []string{"header", "backend", "balancer", "missing"} {
			if f.set[name] {
				return nil, fmt.Errorf("--%s cannot be combined with --config: set it in the file", name)
			}
		}
		c, err := config.Load(f.configFile)
		if err != nil {
			return nil, err
		}
		if f.set["listen"] {
			c.Listeners = []config.Listener{{Address: f.listen}}
		}
		if f.set["admin"] {
			c.Admin.Address = f.admin
		}
		return c, c.Validate()
	}
	if len(f.backends) == 0 {
		return nil, errors.New("no pods: give --config FILE or at least one --backend name=http://host:port")
	}
	c := &config.Config{
		Listeners: []config.Listener{{Address: f.listen}},
		Admin:     config.Admin{Address: f.admin},
		Routes: []config.Route{{
			Name:     config.DefaultRoute,
			Backends: f.backends,
			Sticky:   config.Sticky{Header: f.header, Missing: f.missing},
			Balancer: f.balancer,
		}},
	}
	c.SetDefaults()
	return c, c.Validate()
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	f, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: f.logLevel}))
	return serve(ctx, cfg, log, f.drainTimeout, nil)
}

// serve runs the proxy and the admin listener until ctx ends or one of them
// fails. started, when not nil, is called once every listener is bound.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, drain time.Duration, started func()) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var p *proxy.Proxy
	m := metrics.New(reg, func() []metrics.TableStats { return p.TableStats() })
	p = proxy.New(proxy.Options{Logger: log.With("component", "proxy"), Metrics: m})
	if err := p.Apply(cfg); err != nil {
		return err
	}

	var lns []net.Listener
	for _, l := range cfg.Listeners {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			closeAll(lns)
			return fmt.Errorf("listening for clients: %w", err)
		}
		lns = append(lns, ln)
	}
	adm := admin.New(admin.Options{Gatherer: reg})
	adminLn, err := net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		closeAll(lns)
		return fmt.Errorf("listening for admin: %w", err)
	}
	adminSrv := &http.Server{Handler: adm, ReadHeaderTimeout: 10 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	for _, ln := range lns {
		g.Go(func() error { return p.Serve(gctx, ln, drain) })
	}
	g.Go(func() error { return p.Run(gctx) })
	g.Go(func() error {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		adm.SetReady(false)
		// The admin listener outlives the drain so probes see "not ready".
		time.Sleep(100 * time.Millisecond)
		sctx, cancel := context.WithTimeout(context.Background(), drain+time.Second)
		defer cancel()
		return adminSrv.Shutdown(sctx)
	})
	adm.SetReady(true)
	addrs := make([]string, len(lns))
	for i, ln := range lns {
		addrs[i] = ln.Addr().String()
	}
	log.Info("podpin serving", "listen", strings.Join(addrs, ","), "admin", adminLn.Addr().String(), "routes", len(cfg.Routes))
	if started != nil {
		started()
	}
	return g.Wait()
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// backendList is the repeatable --backend name=url flag.
type backendList []config.Backend

func (b *backendList) String() string {
	parts := make([]string, len(*b))
	for i, be := range *b {
		parts[i] = be.Name + "=" + be.URL
	}
	return strings.Join(parts, ",")
}

func (b *backendList) Set(v string) error {
	name, url, ok := strings.Cut(v, "=")
	if !ok || name == "" || url == "" {
		return fmt.Errorf("%q must be name=http://host:port", v)
	}
	*b = append(*b, config.Backend{Name: name, URL: url})
	return nil
}
