package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Spec says where a route's pods come from: exactly one of Backends,
// Service, Services and DNS.
type Spec struct {
	// Backends are the pods themselves (static backends), reported as
	// given.
	Backends []Endpoint
	// Service finds the pods from a Kubernetes Service's EndpointSlices.
	Service *Service
	// Services finds the pods of several Services, each taking its
	// Weight's share of new sessions (see Merged).
	Services []WeightedService
	// DNS finds the pods by resolving a name again and again.
	DNS *DNS
}

// Service names a port of a Kubernetes Service.
type Service struct {
	// Namespace of the Service. Empty: "default".
	Namespace string
	// Name of the Service. Required.
	Name string
	// Port is the Service port, by name or number; its target port resolves
	// per endpoint. Required.
	Port string
}

// WeightedService is one of several Services of a route, with its share
// of new sessions.
type WeightedService struct {
	Service
	Weight int
}

// DNS names a host whose records are the pods (see NewDNS).
type DNS struct {
	// Name to resolve: its A/AAAA records, or its SRV records when Port is
	// 0 and Name starts with "_". Required.
	Name string
	// Port of every A/AAAA address; 0 for an SRV name.
	Port int
	// Interval between resolutions. Zero: 5s.
	Interval time.Duration
}

// Factory makes the endpoint source of a route from its Spec; it is the
// proxy's Discoverer. Safe for concurrent use.
type Factory struct {
	// Kube finds the pods of routes that name a Service. Nil: such routes
	// are refused with ErrNoKubernetes.
	Kube *Kubernetes
	// Resolver resolves the names of dns routes. Nil: net.DefaultResolver.
	Resolver *net.Resolver
	// Log receives the sources' state changes. Nil discards.
	Log *slog.Logger
}

// Source returns the source of the pods of the route named route: a Static
// of s.Backends, s.Service's EndpointSlices, or s.DNS's records.
func (f *Factory) Source(route string, s Spec) (Source, error) {
	given := 0
	for _, set := range []bool{len(s.Backends) > 0, s.Service != nil, len(s.Services) > 0, s.DNS != nil} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, fmt.Errorf("want exactly one of backends, a service, services and a dns name; got %d", given)
	}
	if len(s.Services) > 0 {
		sources := make([]Weighted, len(s.Services))
		for i, ws := range s.Services {
			src, err := f.Source(route, Spec{Service: &ws.Service})
			if err != nil {
				return nil, err
			}
			sources[i] = Weighted{Source: src, Weight: ws.Weight}
		}
		return NewMerged(sources), nil
	}
	log := f.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("route", route)
	switch {
	case s.Service != nil:
		svc := s.Service
		if f.Kube == nil {
			return nil, fmt.Errorf("service %s/%s: %w", svc.Namespace, svc.Name, ErrNoKubernetes)
		}
		if svc.Name == "" || svc.Port == "" {
			return nil, errors.New("service: name and port are required")
		}
		ns := svc.Namespace
		if ns == "" {
			ns = "default"
		}
		return f.Kube.Service(ns, svc.Name, svc.Port), nil
	case s.DNS != nil:
		d := s.DNS
		if d.Name == "" || d.Port < 0 || d.Port > 65535 || (d.Port == 0 && !strings.HasPrefix(d.Name, "_")) {
			return nil, fmt.Errorf("dns %q port %d: want a port, or an SRV name (_service._proto.name) and no port", d.Name, d.Port)
		}
		return NewDNS(d.Name, d.Port, d.Interval, f.Resolver, log), nil
	}
	return NewStatic(s.Backends), nil
}
