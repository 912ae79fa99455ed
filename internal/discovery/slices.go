package discovery

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// This file turns a Service and its EndpointSlices into endpoints. API
// objects are converted to the slim structs below as they leave the informer
// cache, so nothing here can change a cached object, and the translation is a
// pure function that the tests drive with table cases.

// service is the part of a Service that port resolution needs.
type service struct {
	ports []servicePort
	// family is the Service's primary address family (IPv4 or IPv6): a
	// dual-stack pod is published in one slice per family, and this one
	// wins. Empty: IPv4.
	family discoveryv1.AddressType
}

type servicePort struct {
	name     string
	port     int32
	protocol corev1.Protocol
}

// slice is the part of an EndpointSlice that discovery needs.
type slice struct {
	name        string
	addressType discoveryv1.AddressType
	ports       []slicePort
	endpoints   []sliceEndpoint
}

// slicePort is one port of a slice. The EndpointSlice controller names it
// after the Service port and gives it the target port's number for the pods
// of that slice, which is how a named targetPort resolves per pod.
type slicePort struct {
	name     string
	port     int32 // 0: unspecified, unusable
	protocol corev1.Protocol
	// app is what AppProtocol makes of the port's appProtocol.
	app string
}

type sliceEndpoint struct {
	address string // an IP, the endpoint's first address
	pod     string // targetRef name when it names a Pod; else ""
	state   State
}

// newService converts a Service. It reads svc and never changes it.
func newService(svc *corev1.Service) *service {
	s := &service{family: discoveryv1.AddressTypeIPv4}
	if len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] == corev1.IPv6Protocol {
		s.family = discoveryv1.AddressTypeIPv6
	}
	for _, p := range svc.Spec.Ports {
		s.ports = append(s.ports, servicePort{name: p.Name, port: p.Port, protocol: protocolOrTCP(p.Protocol)})
	}
	return s
}

// newSlice converts an EndpointSlice. It reads es and never changes it.
func newSlice(es *discoveryv1.EndpointSlice) slice {
	s := slice{name: es.Name, addressType: es.AddressType}
	for _, p := range es.Ports {
		sp := slicePort{protocol: corev1.ProtocolTCP}
		if p.Name != nil {
			sp.name = *p.Name
		}
		if p.Port != nil {
			sp.port = *p.Port
		}
		if p.Protocol != nil {
			sp.protocol = *p.Protocol
		}
		if p.AppProtocol != nil {
			sp.app = AppProtocol(*p.AppProtocol)
		}
		s.ports = append(s.ports, sp)
	}
	for _, e := range es.Endpoints {
		if len(e.Addresses) == 0 {
			continue
		}
		// The addresses of one endpoint are fungible; consumers may use the
		// first (EndpointSlice API).
		ep := sliceEndpoint{address: e.Addresses[0], state: endpointState(e.Conditions)}
		if e.TargetRef != nil && e.TargetRef.Kind == "Pod" && e.TargetRef.Name != "" {
			ep.pod = e.TargetRef.Name
		}
		s.endpoints = append(s.endpoints, ep)
	}
	return s
}

// endpointState maps EndpointSlice conditions to a State, reading nil as the
// API documents it: ready nil is ready, serving nil follows ready,
// terminating nil is not terminating.
//
// A terminating endpoint never takes new sessions: it drains while it still
// serves (or is reported ready, which only a Service with
// publishNotReadyAddresses does for a terminating pod), and is not ready
// once it stops.
func endpointState(c discoveryv1.EndpointConditions) State {
	ready := c.Ready == nil || *c.Ready
	serving := ready
	if c.Serving != nil {
		serving = *c.Serving
	}
	terminating := c.Terminating != nil && *c.Terminating
	switch {
	case terminating && (serving || ready):
		return Draining
	case terminating:
		return NotReady
	case ready:
		return Ready
	}
	return NotReady
}

// AppProtocol maps a Service port's appProtocol to the protocol podpin
// speaks to its pods, case-insensitively:
//
//   - kubernetes.io/h2c, h2c and grpc: "h2c", HTTP/2 in cleartext with
//     prior knowledge (gRPC inside a cluster runs without TLS);
//   - https, kubernetes.io/https (not a registered name, but in use),
//     kubernetes.io/wss and grpcs: "https", TLS to the pod;
//   - anything else, or none (http, kubernetes.io/ws...): "", HTTP/1.1.
func AppProtocol(app string) string {
	switch strings.ToLower(app) {
	case "kubernetes.io/h2c", "h2c", "grpc":
		return "h2c"
	case "https", "kubernetes.io/https", "kubernetes.io/wss", "grpcs":
		return "https"
	}
	return ""
}

func protocolOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// port finds the Service's TCP port named port, or numbered port when port
// is a number (IANA port names always hold a letter, so the two cannot be
// confused).
func (s *service) port(port string) (servicePort, bool) {
	n, err := strconv.ParseInt(port, 10, 32)
	isNumber := err == nil
	for _, p := range s.ports {
		if p.protocol != corev1.ProtocolTCP {
			continue
		}
		if (isNumber && int64(p.port) == n) || (!isNumber && p.name == port) {
			return p, true
		}
	}
	return servicePort{}, false
}

// translate returns the endpoints of port (a Service port name or number)
// of the Service svc with the slices, sorted by name, and a reason when it
// finds none for want of a Service or a port. svc nil means the Service
// does not exist.
//
// The Service port resolves in each slice through the slice port of the
// same name and protocol, as kube-proxy does; a slice without one
// contributes nothing. An address in several slices is kept once, in its
// most ready state; a pod in several slices (dual stack) is kept once, at
// its most ready address, preferring the Service's primary family.
func translate(svc *service, all []slice, port string) ([]Endpoint, string) {
	if svc == nil {
		return []Endpoint{}, "service not found"
	}
	sp, ok := svc.port(port)
	if !ok {
		return []Endpoint{}, fmt.Sprintf("service has no TCP port %q", port)
	}
	byAddr := map[string]candidate{}
	for _, s := range all {
		if s.addressType != discoveryv1.AddressTypeIPv4 && s.addressType != discoveryv1.AddressTypeIPv6 {
			continue // FQDN slices are deprecated and name no pod
		}
		i := slices.IndexFunc(s.ports, func(p slicePort) bool {
			return p.name == sp.name && p.protocol == sp.protocol && p.port > 0
		})
		if i < 0 {
			continue
		}
		num := strconv.Itoa(int(s.ports[i].port))
		for _, e := range s.endpoints {
			c := candidate{
				Endpoint: Endpoint{
					Name:     cmp.Or(e.pod, e.address),
					Address:  net.JoinHostPort(e.address, num),
					Weight:   1,
					State:    e.state,
					Protocol: s.ports[i].app,
				},
				family: s.addressType,
			}
			if old, dup := byAddr[c.Address]; !dup || better(c.Endpoint, old.Endpoint) {
				byAddr[c.Address] = c
			}
		}
	}
	byName := map[string]candidate{}
	for _, c := range byAddr {
		old, dup := byName[c.Name]
		if !dup || c.preferred(old, svc.family) {
			byName[c.Name] = c
		}
	}
	eps := make([]Endpoint, 0, len(byName))
	for _, c := range byName {
		eps = append(eps, c.Endpoint)
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.Name, b.Name) })
	return eps, ""
}

// candidate is an endpoint with the address family of its slice.
type candidate struct {
	Endpoint
	family discoveryv1.AddressType
}

// preferred reports whether c should replace old as the one endpoint of a
// pod: it is more ready, or as ready and of the Service's primary family
// where old is not, or else first by address, so the choice does not depend
// on map order.
func (c candidate) preferred(old candidate, family discoveryv1.AddressType) bool {
	if c.State != old.State {
		return c.State < old.State
	}
	if (c.family == family) != (old.family == family) {
		return c.family == family
	}
	return c.Address < old.Address
}

// better reports whether a should replace b as the one endpoint of an
// address: it is more ready (the States order Ready, Draining, NotReady),
// or as ready and first by name, so the choice does not depend on map order.
func better(a, b Endpoint) bool {
	if a.State != b.State {
		return a.State < b.State
	}
	return a.Name < b.Name
}
