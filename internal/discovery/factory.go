package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/podpin/podpin/internal/config"
)

// Factory makes the endpoint sources of routes that name a Service or a DNS
// name; it is the proxy's Discoverer. Safe for concurrent use.
type Factory struct {
	// Kube finds the pods of routes that name a Service. Nil: such routes
	// are refused with ErrNoKubernetes.
	Kube *Kubernetes
	// Resolver resolves the names of dns routes. Nil: net.DefaultResolver.
	Resolver *net.Resolver
	// Log receives the sources' state changes. Nil discards.
	Log *slog.Logger
}

// Source returns the source of rc's pods: rc.Service's EndpointSlices, or
// rc.DNS's records.
func (f *Factory) Source(rc config.Route) (Source, error) {
	log := f.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("route", rc.Name)
	switch {
	case rc.Service != nil:
		s := rc.Service
		if f.Kube == nil {
			return nil, fmt.Errorf("service %s/%s: %w", s.Namespace, s.Name, ErrNoKubernetes)
		}
		if s.Name == "" || s.Port == "" {
			return nil, errors.New("service: name and port are required")
		}
		ns := s.Namespace
		if ns == "" {
			ns = "default"
		}
		return f.Kube.Service(ns, s.Name, s.Port), nil
	case rc.DNS != nil:
		d := rc.DNS
		if d.Name == "" || d.Port < 0 || d.Port > 65535 || (d.Port == 0 && !strings.HasPrefix(d.Name, "_")) {
			return nil, fmt.Errorf("dns %q port %d: want a port, or an SRV name (_service._proto.name) and no port", d.Name, d.Port)
		}
		return NewDNS(d.Name, d.Port, d.Interval, f.Resolver, log), nil
	}
	return nil, errors.New("the route names neither a service nor a dns name")
}
