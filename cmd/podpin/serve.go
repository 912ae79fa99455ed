package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/proxy"
	"github.com/podpin/podpin/internal/snapshot"
)

// serveFlags are the flags of 'podpin serve'. The route flags build one
// route named "default" when no configuration file is given.
type serveFlags struct {
	configFile    string
	listen        string
	tlsCert       string
	tlsKey        string
	admin         string
	adminToken    string
	header        string
	backends      []config.Backend
	discovery     discoveryFlags
	ingress       ingressFlags
	gateway       gatewayFlags
	balancer      string
	missing       string
	stateFile     string
	redis         string
	logLevel      slog.Level
	logFormat     string
	drainTimeout  time.Duration
	shutdownDelay time.Duration
	set           map[string]bool // flags given on the command line
}

func parseServeFlags(args []string, stderr io.Writer) (*serveFlags, error) {
	f := &serveFlags{set: map[string]bool{}}
	fs := flag.NewFlagSet("podpin serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.configFile, "config", "", "configuration `file` (YAML), reloaded on SIGHUP and when it changes; without it the quick flags below make one route")
	fs.StringVar(&f.listen, "listen", config.DefaultListen, "client listener `address`; with --config, the new address of the file's one listener, whose other settings stay")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "terminate TLS on the --listen listener with this PEM certificate chain `file` (reloaded when it changes); needs --tls-key")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	fs.StringVar(&f.admin, "admin", config.DefaultAdmin, "admin listener `address` (health, metrics, API, console)")
	fs.StringVar(&f.adminToken, "admin-token-file", "", "`file` holding the bearer token of the admin API (required when --admin is not loopback)")
	fs.StringVar(&f.header, "header", config.DefaultHeader, "request `header` carrying the session key")
	fs.Func("backend", "static pod as `name=URL`, the URL http://host:port, h2c://host:port or https://host:port (repeat for each pod)", func(v string) error {
		b, err := config.ParseBackend(v)
		if err != nil {
			return fmt.Errorf("%q %w", v, err)
		}
		f.backends = append(f.backends, b)
		return nil
	})
	f.discovery.register(fs)
	f.ingress.register(fs)
	f.gateway.register(fs)
	fs.StringVar(&f.balancer, "balancer", "round-robin", "`balancer` for new sessions: round-robin, least-conn, least-sessions, random-two, hash")
	fs.StringVar(&f.missing, "missing", config.MissingBalance, "`policy` for requests without a key: balance, assign, reject")
	fs.StringVar(&f.stateFile, "state-file", "", "save the stick tables to this `file` and restore them at start")
	fs.StringVar(&f.redis, "redis", "", "share the stick tables with other replicas through Redis at this `url`: redis://[user:password@]host:port[/db], rediss:// for TLS")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", config.LogText, "log `format`: text (key=value) or json (one object a line); overrides log.format")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", config.DefaultDrainTimeout, "on SIGTERM, how long in-flight requests may take to finish")
	fs.DurationVar(&f.shutdownDelay, "shutdown-delay", 0, "on SIGTERM, how long to keep serving after /readyz turns false")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

// load returns the configuration the flags describe: the file with the
// flags given on the command line applied over it, or one route from the
// quick flags. An Ingress controller's may have no routes.
func (f *serveFlags) load() (*config.Config, error) {
	controller := f.ingress.enabled() || f.gateway.on()
	rules := config.Rules{RoutesOptional: controller}
	var c *config.Config
	if f.configFile != "" {
		for _, name := range []string{"header", "backend", "service", "dns", "balancer", "missing"} {
			if f.set[name] {
				return nil, fmt.Errorf("--%s cannot be combined with --config: set it in the file", name)
			}
		}
		var err error
		if c, err = rules.Load(f.configFile); err != nil {
			return nil, err
		}
	} else {
		c = &config.Config{
			Routes: []config.Route{{
				Name:     config.DefaultRoute,
				Backends: f.backends,
				Sticky:   config.Sticky{Header: f.header, Missing: f.missing},
				Balancer: f.balancer,
			}},
		}
		if controller && len(f.backends) == 0 && f.discovery.service == "" && f.discovery.dns == "" {
			c.Routes = nil // the Ingresses and Gateways bring the routes
		} else if err := f.discovery.apply(&c.Routes[0]); err != nil {
			return nil, err
		}
		f.set["listen"], f.set["admin"], f.set["drain-timeout"] = true, true, true
	}
	if f.set["tls-cert"] != f.set["tls-key"] {
		return nil, errors.New("--tls-cert and --tls-key go together: give both")
	}
	o := config.Overrides{
		Listen: given(f.set, "listen", &f.listen), Admin: given(f.set, "admin", &f.admin),
		AdminTokenFile: given(f.set, "admin-token-file", &f.adminToken), LogFormat: given(f.set, "log-format", &f.logFormat),
		StateFile: given(f.set, "state-file", &f.stateFile), Redis: given(f.set, "redis", &f.redis),
		DrainTimeout: given(f.set, "drain-timeout", &f.drainTimeout), ShutdownDelay: given(f.set, "shutdown-delay", &f.shutdownDelay),
	}
	if f.set["tls-cert"] {
		o.TLS = &config.Certificate{CertFile: f.tlsCert, KeyFile: f.tlsKey}
	}
	if err := o.Apply(c, f.configFile); err != nil {
		return nil, err
	}
	c.SetDefaults()
	if err := f.ingress.check(f.gateway.on()); err != nil {
		return nil, err
	}
	if err := f.gateway.check(); err != nil {
		return nil, err
	}
	return c, rules.Validate(c)
}

// given returns v when the flag name is in set (given on the command
// line), nil when not.
func given[T any](set map[string]bool, name string, v *T) *T {
	if !set[name] {
		return nil
	}
	return v
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
	log := newLogger(stderr, cfg.Log.Format, f.logLevel)
	setMemoryLimit(log)
	o := serveOptions{log: log, kubeconfig: f.discovery.kubeconfig, ingress: &f.ingress, gateway: &f.gateway}
	if f.configFile != "" {
		o.configFile = f.configFile
		o.reload = f.load
	}
	return serve(ctx, cfg, o)
}

// setMemoryLimit sets Go's memory limit to 90% of the container's, read
// from its cgroup (v2, or v1), so that the collector works harder before
// the kernel kills the process. GOMEMLIMIT, when set, wins; AUTOMEMLIMIT
// sets another ratio, or "off". The stick tables' total budget is derived
// from the result (limits.tableEntries).
func setMemoryLimit(log *slog.Logger) {
	limit, err := memlimit.Set()
	if err != nil {
		// Not in a container, or not on Linux: no limit is set.
		log.Debug("no memory limit from a cgroup", "err", err)
		return
	}
	if limit != math.MaxInt64 {
		log.Info("memory limit", "bytes", limit)
	}
}

// serveOptions are what serve needs besides the configuration.
type serveOptions struct {
	log *slog.Logger
	// configFile is watched for changes; "" watches nothing.
	configFile string
	// reload reads the configuration again (SIGHUP, file change); nil: the
	// configuration cannot be reloaded.
	reload func() (*config.Config, error)
	// started, when not nil, is called once every listener is bound.
	started func()
	// kubeconfig is the Kubernetes client's configuration file; "" finds one.
	kubeconfig string
	// ingress, when enabled, makes podpin an Ingress controller.
	ingress *ingressFlags
	// gateway, when on, makes podpin a Gateway API controller.
	gateway *gatewayFlags
}

// serve builds podpin's components from cfg, then runs them until ctx ends
// or one of them fails, and shuts down in order: /readyz turns false,
// podpin keeps serving for shutdown.delay, stops accepting, lets requests
// in flight finish for up to shutdown.drainTimeout, saves the stick tables,
// and stops.
func serve(ctx context.Context, cfg *config.Config, o serveOptions) error {
	log := o.log
	adminToken, err := cfg.Admin.Token()
	if err != nil {
		return err
	}
	readToken, err := cfg.Admin.ReadToken()
	if err != nil {
		return err
	}
	secret, err := cfg.KeySecret.Read()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var p *proxy.Proxy
	m := metrics.New(reg, func() []metrics.RouteStats { return p.RouteStats() })
	shared, err := newStore(cfg, log, m)
	if err != nil {
		return err
	}
	if shared != nil {
		defer shared.Close()
	}
	kube, err := newKubeClient(cfg, o, log)
	if err != nil {
		return err
	}
	disc := &discovery.Factory{Log: log.With("component", "discovery")}
	if kube != nil {
		disc.Kube = discovery.NewKubernetes(kube, log.With("component", "kubernetes"))
	}
	// An Ingress controller serves the certificates of spec.tls Secrets.
	var certSource *certs.Source
	if o.ingress.enabled() {
		certSource = certs.NewSource()
	}
	// Listeners whose certificates a controller sets (a Gateway's HTTPS
	// listeners) each serve the Source kept here for their address.
	listenerCerts := certs.NewSources()
	p = proxy.New(proxy.Options{
		Logger: log.With("component", "proxy"), Metrics: m, Shared: shared, KeySecret: secret, Discoverer: disc,
		Certificates: certSource, ListenerCertificates: listenerCerts,
	})
	if err := p.Apply(cfg); err != nil {
		return err
	}
	defer p.Close()
	listeners := p.NewListeners(cfg.Shutdown.DrainTimeout)
	// Every configuration, from the file or a controller, ends here: its
	// listeners are set, then its routes applied.
	applyAll := config.ApplierFunc(func(c *config.Config) error {
		if err := listeners.Set(c.Listeners); err != nil {
			return err
		}
		return p.Apply(c)
	})
	// The file's configuration goes to the Gateway controller, which adds
	// its listeners and routes and passes the result to the Ingress
	// controller, which adds its routes; each stage is there only when
	// enabled.
	var routesTo config.Applier = applyAll
	synced := []func() <-chan struct{}{p.Synced}
	ctl, err := o.ingress.controller(kube, cfg, routesTo.Apply, shared == nil, m, certSource, log)
	if err != nil {
		return err
	}
	if ctl != nil {
		routesTo = ctl
		synced = append([]func() <-chan struct{}{ctl.Synced}, synced...)
	}
	isBound := func(addr string) bool { _, ok := listeners.Addrs()[addr]; return ok }
	gw, err := o.gateway.controller(o.kubeconfig, kube, cfg, routesTo.Apply, listenerCerts, isBound, o.ingress, log)
	if err != nil {
		return err
	}
	if gw != nil {
		routesTo = gw
		synced = append([]func() <-chan struct{}{gw.Synced}, synced...)
	}
	keeper := snapshot.NewKeeper(snapshot.KeeperOptions{
		File: cfg.State.File, Interval: cfg.State.Interval, Tables: p, Metrics: m, Logger: log.With("component", "state"),
	})
	keeper.Restore()

	if err := listeners.Set(cfg.Listeners); err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		listeners.Close()
		return fmt.Errorf("listening for admin: %w", err)
	}
	adm := admin.New(admin.Options{
		Address:     adminLn.Addr().String(),
		Token:       adminToken,
		ReadToken:   readToken,
		OpenMetrics: cfg.Admin.Metrics == config.MetricsOpen,
		Gatherer:    reg,
		Inspector:   p,
		Logger:      log.With("component", "admin"),
	})
	adminSrv := &http.Server{Handler: adm, ReadHeaderTimeout: 10 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	stopped := sync.OnceFunc(listeners.Close)
	defer stopped()
	g.Go(func() error {
		select {
		case err := <-listeners.Failed():
			return err
		case <-gctx.Done():
			return nil
		}
	})
	g.Go(func() error { return p.Run(gctx) })
	g.Go(func() error { return keeper.Run(gctx) })
	if disc.Kube != nil {
		g.Go(func() error { return disc.Kube.Run(gctx) })
	}
	if shared != nil {
		g.Go(func() error { return shared.Run(gctx) })
	}
	// Readiness waits for the controllers' first syncs, then for the
	// proxy's routes.
	if ctl != nil {
		g.Go(func() error { return ctl.Run(gctx) })
	}
	if gw != nil {
		g.Go(func() error { return gw.Run(gctx) })
	}
	if o.configFile != "" {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		rl := config.NewReloader(config.ReloaderOptions{
			File: o.configFile, Load: o.reload, Apply: routesTo, Running: cfg, Signals: hup,
			Metrics: m, Logger: log.With("component", "config"),
		})
		g.Go(func() error { return rl.Run(gctx) })
	}
	g.Go(func() error {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin listener: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		adm.SetReady(false)
		log.Info("shutting down", "delay", cfg.Shutdown.Delay, "drain", cfg.Shutdown.DrainTimeout)
		time.Sleep(cfg.Shutdown.Delay)
		stopped()
		keeper.Save()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return adminSrv.Shutdown(sctx)
	})
	adm.ReadyWhen(gctx, g, synced...)
	bound := listeners.Addrs()
	addrs := make([]string, len(cfg.Listeners))
	for i, l := range cfg.Listeners {
		addrs[i] = bound[l.Address]
	}
	log.Info("podpin serving", "version", versionString(), "listen", strings.Join(addrs, ","), "admin", adminLn.Addr().String(), "routes", len(cfg.Routes))
	if o.started != nil {
		o.started()
	}
	return g.Wait()
}

// newLogger returns podpin's logger in format (config.LogText or
// config.LogJSON) at level.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
