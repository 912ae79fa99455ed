package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/k8s"
)

// discoveryFlags are the quick flags of 'podpin serve' that find the pods of
// the default route, and the Kubernetes client's configuration file.
type discoveryFlags struct {
	service    string
	dns        string
	kubeconfig string
}

func (d *discoveryFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.service, "service", "", "find the pods from the EndpointSlices of the Kubernetes Service `NAMESPACE/NAME:PORT` (port by name or number)")
	fs.StringVar(&d.dns, "dns", "", "find the pods by resolving `NAME:PORT` (A/AAAA records) or _SERVICE._PROTO.NAME (SRV records) every "+config.DefaultDNSInterval.String())
	fs.StringVar(&d.kubeconfig, "kubeconfig", "", "kubeconfig `file` for routes that name a Service (default: the in-cluster config, then $KUBECONFIG, then ~/.kube/config)")
}

// apply sets where the quick route r finds its pods: the --backend flags
// already in r.Backends, --service or --dns; exactly one of them.
func (d *discoveryFlags) apply(r *config.Route) error {
	given := 0
	for _, set := range []bool{len(r.Backends) > 0, d.service != "", d.dns != ""} {
		if set {
			given++
		}
	}
	switch {
	case given == 0:
		return errors.New("no pods: give --config FILE, or one of --backend name=http://host:port (repeatable), " +
			"--service NAMESPACE/NAME:PORT and --dns NAME:PORT")
	case given > 1:
		return errors.New("give only one of --backend, --service and --dns")
	}
	var err error
	switch {
	case d.service != "":
		if r.Service, err = config.ParseService(d.service); err != nil {
			return fmt.Errorf("--service %q: %w", d.service, err)
		}
	case d.dns != "":
		if r.DNS, err = config.ParseDNS(d.dns); err != nil {
			return fmt.Errorf("--dns %q: %w", d.dns, err)
		}
	}
	return nil
}

// newKubeClient returns the Kubernetes client when a route of cfg names a
// Service or podpin runs as an Ingress controller, and nil otherwise:
// routes that name a Service are then refused on a later reload. It sends
// client-go's logs, which go through klog, to log.
func newKubeClient(cfg *config.Config, o serveOptions, log *slog.Logger) (kubernetes.Interface, error) {
	needed := o.ingress.enabled() || o.gateway.on()
	for _, r := range cfg.Routes {
		needed = needed || r.Service != nil
	}
	if !needed {
		return nil, nil
	}
	client, err := k8s.NewClient(k8s.Options{Kubeconfig: o.kubeconfig, UserAgent: "podpin/" + versionString()})
	switch {
	case errors.Is(err, k8s.ErrNoConfig):
		return nil, fmt.Errorf("%w (give --kubeconfig)", err)
	case err != nil:
		return nil, err
	}
	klog.SetSlogLogger(log.With("component", "client-go"))
	return client, nil
}
