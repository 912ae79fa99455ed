// Package gateway is podpin's Gateway API controller: it serves the
// Gateways of podpin's GatewayClasses with their HTTPRoutes, merges their
// listeners and routes with podpin's configuration file, applies the
// result to the proxy without dropping connections or sessions, and
// writes every object's status as the Gateway API asks.
//
// Run it with
//
//	podpin serve --gateway [--gateway-addresses CIDR] [--config podpin.yaml]
//
// It reads sigs.k8s.io/gateway-api v1.7.0 objects (the experimental
// channel's CRDs, for sessionPersistence). The build turns one snapshot of
// the caches into a plan (build); the controller applies it and writes the
// statuses that differ.
//
// # Classes and Gateways
//
// A GatewayClass is served when its spec.controllerName is
// podpin.io/gateway-controller (--gateway-controller-name). It is Accepted
// and lists the features of [Features]; one with a parametersRef is not
// Accepted (InvalidParameters): podpin's settings are annotations.
//
// Each Gateway of a served class gets an address. With
// --gateway-addresses, each Gateway has its own address from that prefix:
// the one spec.addresses asks for (type IPAddress, inside the prefix),
// else the one its status already shows, else the lowest free one; its
// listeners bind to it and status.addresses shows it. A requested address
// podpin cannot give leaves the Gateway Programmed=False
// (AddressNotUsable), an address of another type not Accepted
// (UnsupportedAddress). Without the flag, every Gateway binds the wildcard
// address, status.addresses is podpin's Service's (--publish-service) or
// --publish-address, and a port belongs to the oldest Gateway asking for
// it: a newer Gateway's listener on it is Accepted=False
// (PortUnavailable). A socket that cannot be bound is left out with its
// routes, its listeners Programmed=False, and the rest is applied.
//
// # Listeners
//
// HTTP and HTTPS listeners are served; other protocols are Accepted=False
// (UnsupportedProtocol). Listeners of one Gateway on one port share a
// socket and are told apart by hostname: two with the same hostname, or
// with different protocols, are Conflicted (HostnameConflict,
// ProtocolConflict) and not served. An HTTPS listener terminates TLS with
// the first of its certificateRefs, a kubernetes.io/tls Secret (in
// another namespace only under a ReferenceGrant: RefNotPermitted
// otherwise; InvalidCertificateRef when missing or malformed), chosen by
// SNI among the socket's listeners, the one without a hostname being the
// default. Route kinds other than HTTPRoute in allowedRoutes.kinds make
// ResolvedRefs=False (InvalidRouteKinds). Programmed is true once the
// socket is bound. attachedRoutes counts the routes attached. On a socket
// shared by listeners of several hostnames, a request belongs to the most
// specific listener whose hostname matches its host, and only that
// listener's routes serve it (others answer 404); over TLS, a request
// whose host chooses another listener than its server name gets 421.
//
// # HTTPRoutes
//
// A route attaches through each parentRef to a served Gateway, to the
// listeners its sectionName and port select (else NoMatchingParent) that
// allow it (allowedRoutes namespaces Same, All or Selector, and kinds:
// else NotAllowedByListeners) and whose hostname intersects the route's
// (else NoMatchingListenerHostname). Each rule's matches become podpin
// routes on the listener's socket, with the intersected host (a wildcard
// matches one or more labels), path (Exact, PathPrefix,
// RegularExpression), method, headers and query parameters (Exact or
// RegularExpression). They are tried in the Gateway API's order: the most
// specific host, then an exact path, the longest prefix, a method, the
// most header and then query matches, then the oldest route, its
// namespace/name, and the rule and match order.
//
// Filters: RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect
// (statuses 301, 302, 303, 307, 308) and URLRewrite. Others, and filters on a backendRef, refuse the route
// (Accepted=False, UnsupportedValue, naming them). Timeouts: request and
// backendRequest.
//
// backendRefs are Services (else InvalidKind) in the route's namespace or,
// under a ReferenceGrant, another (else RefNotPermitted), which must exist
// with the port named (else BackendNotFound); weights share new sessions.
// A refused backend is left out and the route's ResolvedRefs is False; a
// rule with no backend left answers 500.
//
// # GRPCRoutes
//
// A GRPCRoute attaches as an HTTPRoute does (listeners take both kinds).
// A gRPC method is the path /package.Service/Method, so its method
// matches are path matches: service and method exactly, a service's
// methods, a method of any service, or regular expressions; then header
// matches. Filters: RequestHeaderModifier and ResponseHeaderModifier.
// Its pods are reached over h2c, unless podpin.io/backend-protocol says
// GRPCS. A rule without a backend answers UNAVAILABLE, gRPC's form of the
// 500 (see podpin's gRPC statuses).
//
// # Session persistence
//
// A rule's sessionPersistence (on an HTTPRoute or a GRPCRoute rule) sets
// its stick table's key:
//
//   - Header: the named request header. A value the client chooses is
//     balanced on first sight and pinned; a request without one is
//     balanced and its answer carries a new opaque session id in that
//     header, which the client sends back.
//   - Cookie (the default type): the named cookie (without a name,
//     "podpin-" and a digest of the route and rule). A request without it
//     is balanced and podpin sets the cookie, with the path given (default
//     "/"), without Expires or Max-Age for the Session lifetime, with
//     Max-Age of absoluteTimeout for Permanent.
//   - absoluteTimeout ends a session that long after it began.
//
// Pods come and go as for every podpin route: new pods take new sessions
// only, a deleted pod's sessions move and no others, a terminating pod
// keeps its sessions while it drains, and Redis shares the tables.
//
// # podpin's settings
//
// The podpin.io/ annotations of an Ingress (balancer, missing-key, strict,
// drain, max-entries, idle-timeout, sticky-header and the others) set
// the same fields on every rule of an HTTPRoute that carries them; a
// rule's sessionPersistence then sets its key. A bad annotation refuses
// the route (Accepted=False, UnsupportedValue, naming it, and a Warning
// Event with that reason).
// podpin.io/ssl-redirect is for Ingresses only.
//
// # The configuration file
//
// The file's listeners and routes are kept. Its routes that name no
// listener serve only the file's listeners, so that a Gateway's sockets
// serve the Gateway's routes alone.
package gateway
