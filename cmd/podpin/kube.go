package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/proxy"
)

var _ proxy.Discoverer = (*discovery.Factory)(nil)

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
		r.Service, err = parseService(d.service)
	case d.dns != "":
		r.DNS, err = parseDNS(d.dns)
	}
	return err
}

// parseService parses --service NAMESPACE/NAME:PORT; the namespace may be
// left out ("default").
func parseService(v string) (*config.Service, error) {
	nsName, port, ok := strings.Cut(v, ":")
	ns, name, hasNS := strings.Cut(nsName, "/")
	if !hasNS {
		ns, name = "", nsName
	}
	if !ok || name == "" || port == "" || (hasNS && ns == "") || strings.ContainsAny(name+port, "/:") {
		return nil, fmt.Errorf("--service %q: want NAMESPACE/NAME:PORT, the port by name or number", v)
	}
	return &config.Service{Namespace: ns, Name: name, Port: port}, nil
}

// parseDNS parses --dns NAME:PORT, or an SRV name _SERVICE._PROTO.NAME
// without a port.
func parseDNS(v string) (*config.DNS, error) {
	if strings.HasPrefix(v, "_") && !strings.Contains(v, ":") {
		return &config.DNS{Name: v}, nil
	}
	host, port, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(port)
	if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("--dns %q: want NAME:PORT, or an SRV name _SERVICE._PROTO.NAME", v)
	}
	return &config.DNS{Name: host, Port: n}, nil
}

// newDiscovery returns the proxy's Discoverer and the function that runs
// its Kubernetes informers until its context ends. The Kubernetes client is
// built only when a route of cfg names a Service: routes that name one are
// refused on a later reload if none did at start.
func newDiscovery(cfg *config.Config, kubeconfig string, log *slog.Logger) (*discovery.Factory, func(context.Context) error, error) {
	f := &discovery.Factory{Log: log.With("component", "discovery")}
	needsKube := false
	for _, r := range cfg.Routes {
		needsKube = needsKube || r.Service != nil
	}
	if !needsKube {
		return f, func(context.Context) error { return nil }, nil
	}
	rc, err := kubeClientConfig(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	rc.UserAgent = "podpin/" + versionString()
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	// client-go logs through klog: send it to podpin's log instead of a
	// format of its own on stderr.
	klog.SetSlogLogger(log.With("component", "client-go"))
	f.Kube = discovery.NewKubernetes(client, log.With("component", "kubernetes"))
	return f, f.Kube.Run, nil
}

// kubeClientConfig loads the client configuration from path, or else from
// the pod's service account when running in a cluster, or else from
// $KUBECONFIG or ~/.kube/config.
func kubeClientConfig(path string) (*rest.Config, error) {
	if path != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %q: %w", path, err)
		}
		return rc, nil
	}
	rc, err := rest.InClusterConfig()
	if err == nil {
		return rc, nil
	}
	if !errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("loading the in-cluster Kubernetes config: %w", err)
	}
	rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes config: not in a cluster, and $KUBECONFIG or ~/.kube/config: %w (give --kubeconfig)", err)
	}
	return rc, nil
}

// startReadiness makes /readyz answer ok once each of synced, in order,
// gives a closed channel: the Ingress controller's first sync, then every
// route having its pods (at once for static routes, once the Kubernetes
// caches synced or the first DNS answer came for the others). Each is asked
// for its channel only once the one before it is closed, so the proxy's is
// that of the configuration the Ingress controller applied. When all are
// closed already, podpin is ready before startReadiness returns. Until
// then podpin is not ready, so no Service sends it traffic it would answer
// with 503.
func startReadiness(ctx context.Context, g *errgroup.Group, setReady func(bool), synced ...func() <-chan struct{}) {
	for len(synced) > 0 && isClosed(synced[0]()) {
		synced = synced[1:]
	}
	if len(synced) == 0 {
		setReady(true)
		return
	}
	g.Go(func() error {
		for _, ch := range synced {
			select {
			case <-ctx.Done():
				return nil
			case <-ch():
			}
		}
		setReady(true)
		// Shutdown may have begun and turned readiness off just before; it
		// must stay off.
		if ctx.Err() != nil {
			setReady(false)
		}
		return nil
	})
}

// isClosed reports whether c is closed, without waiting.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
