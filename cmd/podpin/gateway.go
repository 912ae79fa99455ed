package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"

	"k8s.io/client-go/kubernetes"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/gateway"
	"github.com/podpin/podpin/internal/k8s"
)

// gatewayFlags are the flags of 'podpin serve' that make it a Gateway API
// controller.
type gatewayFlags struct {
	enabled   bool
	name      string
	addresses string
}

func (f *gatewayFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.enabled, "gateway", false, "serve the Gateways of the GatewayClasses whose controllerName is --gateway-controller-name, with their HTTPRoutes, beside the routes of --config")
	fs.StringVar(&f.name, "gateway-controller-name", gateway.ControllerName, "the GatewayClass spec.controllerName `name` podpin serves")
	fs.StringVar(&f.addresses, "gateway-addresses", "", "give each Gateway its own address from this `CIDR` (its listeners bind to it, its status shows it); without it every Gateway binds the wildcard address and a port belongs to the oldest Gateway")
}

// on reports whether podpin runs as a Gateway controller. A nil
// gatewayFlags is not.
func (f *gatewayFlags) on() bool { return f != nil && f.enabled }

// check reports flags that need --gateway or do not parse.
func (f *gatewayFlags) check() error {
	if !f.on() && (f.addresses != "" || f.name != gateway.ControllerName) {
		return errors.New("--gateway-addresses and --gateway-controller-name need --gateway")
	}
	if f.addresses != "" {
		if _, err := netip.ParsePrefix(f.addresses); err != nil {
			return fmt.Errorf("--gateway-addresses %q: %w", f.addresses, err)
		}
	}
	return nil
}

// controller returns the Gateway controller the flags ask for, nil when
// they ask for none. Its listeners and routes join cfg's; apply makes the
// merged configuration the running one; sources holds the HTTPS
// listeners' certificates; publish's --publish-address or
// --publish-service give the addresses of Gateways without one of their
// own.
func (f *gatewayFlags) controller(kubeconfig string, client kubernetes.Interface, cfg *config.Config, apply func(*config.Config) error, sources *certs.Sources, bound func(string) bool, publish *ingressFlags, log *slog.Logger) (*gateway.Controller, error) {
	if !f.on() {
		return nil, nil
	}
	rc, err := k8s.RestConfig(k8s.Options{Kubeconfig: kubeconfig, UserAgent: "podpin/" + versionString()})
	if err != nil {
		return nil, err
	}
	gw, err := gwclient.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("creating the Gateway API client: %w", err)
	}
	var pool netip.Prefix
	if f.addresses != "" {
		pool, _ = netip.ParsePrefix(f.addresses) // checked by check
		pool = pool.Masked()
	}
	return gateway.New(gateway.Options{
		Client:           client,
		Gateways:         gw,
		Apply:            apply,
		ControllerName:   f.name,
		Static:           cfg,
		Addresses:        pool,
		PublishAddresses: publish.publishAddresses(),
		PublishService:   publish.publishService,
		Certificates: func(address string, hosts []certs.HostCert, def *tls.Certificate) {
			sources.For(address).Set(hosts, def)
		},
		Bound:  bound,
		Logger: log.With("component", "gateway"),
	})
}
