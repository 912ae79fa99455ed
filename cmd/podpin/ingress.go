package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/ingress"
)

// ingressFlags are the flags of 'podpin serve' that make it an Ingress
// controller.
type ingressFlags struct {
	class          string
	publishAddress string
	publishService string
}

func (f *ingressFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.class, "ingress-class", "", "serve the Ingresses of this IngressClass `name` (its controller is "+ingress.ControllerName+"), merged with the routes of --config")
	fs.StringVar(&f.publishAddress, "publish-address", "", "IP or host `name` to write to the status of served Ingresses")
	fs.StringVar(&f.publishService, "publish-service", "", "write the address of this Service `NAMESPACE/NAME` (podpin's own) to the status of served Ingresses")
}

// enabled reports whether podpin runs as an Ingress controller. A nil
// ingressFlags is not.
func (f *ingressFlags) enabled() bool { return f != nil && f.class != "" }

// check reports flags that need --ingress-class or exclude each other.
func (f *ingressFlags) check() error {
	switch {
	case f == nil:
		return nil
	case !f.enabled() && (f.publishAddress != "" || f.publishService != ""):
		return errors.New("--publish-address and --publish-service need --ingress-class")
	case f.publishAddress != "" && f.publishService != "":
		return errors.New("give --publish-address or --publish-service, not both")
	}
	return nil
}

// loadConfig loads the configuration file. An Ingress controller's file may
// have no routes: the Ingresses bring them.
func (f *ingressFlags) loadConfig(path string) (*config.Config, error) {
	c, err := config.Load(path)
	if err == nil || !f.enabled() || !onlyNoRoutes(err) {
		return c, err
	}
	// Everything but the missing routes was checked, unknown fields
	// included, so a plain strict decode cannot fail on what Load accepts.
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c = &config.Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	c.SetDefaults()
	return c, nil
}

// validate validates the configuration; an Ingress controller's may have no
// routes.
func (f *ingressFlags) validate(c *config.Config) error {
	if err := f.check(); err != nil {
		return err
	}
	err := c.Validate()
	if err != nil && f.enabled() && len(c.Routes) == 0 && onlyNoRoutes(err) {
		return nil
	}
	return err
}

// onlyNoRoutes reports whether err is config.Validate's complaint that there
// are no routes, and nothing else.
func onlyNoRoutes(err error) bool {
	var errs config.Errors
	return errors.As(err, &errs) && len(errs) == 1 && errs[0].Path == "routes"
}

// ingressRunner is the running Ingress controller, or nothing when podpin
// is not one.
type ingressRunner struct {
	ctl *ingress.Controller
	run func(context.Context) error
}

// newIngress builds the Ingress controller when the flags ask for one. Its
// routes name Services, so it makes sure disc can find their pods, building
// the Kubernetes client when no static route needed it. apply applies a
// configuration to the proxy.
func (f *ingressFlags) newIngress(cfg *config.Config, disc *discovery.Factory, kubeconfig string, apply func(*config.Config) error, log *slog.Logger) (*ingressRunner, error) {
	if !f.enabled() {
		return &ingressRunner{run: func(context.Context) error { return nil }}, nil
	}
	rc, err := kubeClientConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "podpin/" + versionString()
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	klog.SetSlogLogger(log.With("component", "client-go"))
	var runKube func(context.Context) error
	if disc.Kube == nil {
		disc.Kube = discovery.NewKubernetes(client, log.With("component", "kubernetes"))
		runKube = disc.Kube.Run
	}
	ctl, err := ingress.New(ingress.Options{
		Client:         client,
		Apply:          apply,
		Class:          f.class,
		Static:         cfg,
		PublishAddress: f.publishAddress,
		PublishService: f.publishService,
		Logger:         log.With("component", "ingress"),
	})
	if err != nil {
		return nil, err
	}
	run := ctl.Run
	if runKube != nil {
		run = func(ctx context.Context) error {
			g, ctx := errgroup.WithContext(ctx)
			g.Go(func() error { return runKube(ctx) })
			g.Go(func() error { return ctl.Run(ctx) })
			return g.Wait()
		}
	}
	return &ingressRunner{ctl: ctl, run: run}, nil
}

// synced is what readiness waits for before the proxy's routes: the
// Ingresses read and their routes applied, when podpin is an Ingress
// controller; nothing otherwise.
func (r *ingressRunner) synced() []func() <-chan struct{} {
	if r.ctl == nil {
		return nil
	}
	return []func() <-chan struct{}{r.ctl.Synced}
}

// reloadTarget is what a reloaded configuration file is applied to: the
// controller, which merges it with the Ingress routes, or else the proxy.
func (r *ingressRunner) reloadTarget(p config.Applier) config.Applier {
	if r.ctl == nil {
		return p
	}
	return r.ctl
}
