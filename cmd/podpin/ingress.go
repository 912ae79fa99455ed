package main

import (
	"errors"
	"flag"
	"log/slog"

	"k8s.io/client-go/kubernetes"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/ingress"
	"github.com/podpin/podpin/internal/metrics"
)

var _ ingress.Metrics = (*metrics.Metrics)(nil)

// ingressFlags are the flags of 'podpin serve' that make it an Ingress
// controller.
type ingressFlags struct {
	class          string
	publishAddress string
	publishService string
	defaultSecret  string
}

func (f *ingressFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.class, "ingress-class", "", "serve the Ingresses of this IngressClass `name` (its controller is "+ingress.ControllerName+"), merged with the routes of --config")
	fs.StringVar(&f.publishAddress, "publish-address", "", "IP or host `name` to write to the status of served Ingresses and of Gateways without an address of their own")
	fs.StringVar(&f.defaultSecret, "default-tls-secret", "", "serve the certificate of this kubernetes.io/tls Secret `NAMESPACE/NAME` to TLS clients no other certificate is for, in place of the first certificate of the listener's tls block")
	fs.StringVar(&f.publishService, "publish-service", "", "write the address of this Service `NAMESPACE/NAME` (podpin's own) to the status of served Ingresses and of Gateways without an address of their own")
}

// enabled reports whether podpin runs as an Ingress controller. A nil
// ingressFlags is not.
func (f *ingressFlags) enabled() bool { return f != nil && f.class != "" }

// check reports flags that need --ingress-class (or, for
// --publish-address, --gateway) or exclude each other.
func (f *ingressFlags) check(gateway bool) error {
	switch {
	case !f.enabled() && !gateway && (f.publishAddress != "" || f.publishService != ""):
		return errors.New("--publish-address and --publish-service need --ingress-class or --gateway")
	case !f.enabled() && f.defaultSecret != "":
		return errors.New("--default-tls-secret needs --ingress-class")
	case f.publishAddress != "" && f.publishService != "":
		return errors.New("give --publish-address or --publish-service, not both")
	case f.defaultSecret != "":
		_, _, err := ingress.ParseSecretRef(f.defaultSecret)
		return err
	}
	return nil
}

// controller returns the Ingress controller the flags ask for, nil when
// they ask for none. Its routes join cfg's; apply makes the merged
// configuration the running one; m counts applies and rejected Ingresses.
// withoutRedis says podpin has no Redis connection, so Ingresses that ask
// for one are refused.
func (f *ingressFlags) controller(client kubernetes.Interface, cfg *config.Config, apply func(*config.Config) error, withoutRedis bool, m *metrics.Metrics, src *certs.Source, log *slog.Logger) (*ingress.Controller, error) {
	if !f.enabled() {
		return nil, nil
	}
	return ingress.New(ingress.Options{
		Client:         client,
		Apply:          apply,
		Class:          f.class,
		Static:         cfg,
		PublishAddress: f.publishAddress,
		PublishService: f.publishService,
		Metrics:        m,
		WithoutRedis:   withoutRedis,
		Certificates:   src,
		CertMetrics:    m,
		// An unparsable name is refused by New, naming the flag.
		DefaultTLSSecret: f.defaultSecret,
		Logger:           log.With("component", "ingress"),
	})
}

// publishAddresses are the addresses --publish-address gives, for the
// status of Gateways without an address of their own.
func (f *ingressFlags) publishAddresses() []string {
	if f == nil || f.publishAddress == "" {
		return nil
	}
	return []string{f.publishAddress}
}
