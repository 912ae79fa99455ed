// Package ingress is podpin's Ingress controller: it turns the Ingresses of
// one IngressClass into routes, merges them with the routes of podpin's
// configuration file, and applies the result to the proxy without dropping
// connections or sessions.
//
// Run it with
//
//	podpin serve --ingress-class podpin [--config podpin.yaml] \
//	    [--publish-service NAMESPACE/NAME | --publish-address ADDRESS]
//
// # Which Ingresses
//
// An Ingress is served when its spec.ingressClassName is the class given
// (default "podpin"); without one, when its kubernetes.io/ingress.class
// annotation names the class; without either, when the class's
// IngressClass is marked as the cluster's default
// (ingressclass.kubernetes.io/is-default-class: "true"). The IngressClass
// should name the controller [ControllerName], podpin.io/ingress-controller.
// If an IngressClass of that name belongs to another controller, podpin
// serves none of its Ingresses and logs why. Two podpin installations
// serve different class names.
//
// # Routes
//
// Each path of each rule becomes one route: the rule's host (exact, case
// insensitive) and the path, to the path's Service and port (by name or
// number), whose pods come from its EndpointSlices. The default backend
// becomes a route matching every request. A route is named
// "<namespace>-<ingress>-<n>", n the position of the path among the
// Ingress's paths ("default" for the default backend); names that would be
// invalid, too long or taken end in a digest of namespace/name. A route
// keeps its name, and so its stick table and sessions, while its path keeps
// its position: changing an annotation, a host, a path or a backend loses
// no session.
//
// Routes are tried most specific first, as the Ingress API asks: the
// routes of podpin's configuration file first, in their order; then routes
// with a host before those without; then longer paths first; then Exact
// before Prefix; default backends last. Ties go to the older Ingress, so a
// new Ingress never takes requests from one that already serves them.
//
// Path types. Exact matches the path exactly. Prefix and
// ImplementationSpecific match whole path elements, with a trailing '/'
// dropped: "/foo" matches "/foo" and "/foo/bar", not "/foobar". Wildcard
// hosts ("*.example.com") match one label.
//
// Not supported, reported as a Warning Event with reason Unsupported, the
// rest of the Ingress being served: resource backends, and spec.tls when
// podpin has no TLS listener.
//
// # TLS
//
// The kubernetes.io/tls Secrets named in spec.tls, in the Ingress's
// namespace, are watched (a field selector on their type) and their
// certificates served by SNI for the hosts of their entry (or of the rules,
// when the entry lists none), on every TLS listener, before the listener's
// own certificates (see certs.Source). A Secret missing or malformed is a
// Warning Event with reason InvalidTLSSecret naming it and why, once per
// change; its hosts get the default certificate: the Secret of
// --default-tls-secret, else the listener's first. A cleartext request for
// a host of spec.tls gets a 308 to https, unless podpin.io/ssl-redirect is
// false. Without a TLS listener spec.tls is reported Unsupported and its
// hosts are neither redirected nor served over TLS.
//
// # Annotations
//
// Each annotation sets one field of every route of the Ingress; unset
// fields take the defaults of the configuration reference.
//
//	podpin.io/sticky-header     sticky.header        request header with the session key (X-Session)
//	podpin.io/sticky-cookie     sticky.cookie        cookie read when the header is absent
//	podpin.io/sticky-query      sticky.query         query parameter read when header and cookie are absent
//	podpin.io/sticky-client-ip  sticky.clientIP      true: the client address is the key when no other is
//	podpin.io/missing-key       sticky.missing       no key: balance (default), assign or reject
//	podpin.io/learn             sticky.learn         true: pin the key header of responses
//	podpin.io/balancer          balancer             round-robin (default), least-conn, least-sessions, random-two, hash
//	podpin.io/idle-timeout      table.idleTimeout    a duration such as 30m (default 30m)
//	podpin.io/absolute-timeout  table.absoluteTimeout a duration; unset: none
//	podpin.io/max-entries       table.maxEntries     sessions kept per route (default 1000000)
//	podpin.io/drain             drain                false: sessions leave terminating pods at once
//	podpin.io/strict            strict               true: never rebind; 503 when the pod cannot serve
//	podpin.io/store             store                memory or redis (default: the store.type of the file)
//	podpin.io/backend-protocol  pods.protocol        HTTP, H2C, GRPC (= H2C), HTTPS or GRPCS (= HTTPS), any case; unset: each Service port's appProtocol
//	podpin.io/set-cookie        sticky.setCookie     true: hand each minted key out as the sticky-cookie cookie (needs missing-key: assign)
//	podpin.io/cookie-max-age    sticky.setCookie.maxAge a duration; unset: a session cookie
//	podpin.io/ssl-redirect      (none)               false: no 308 to https for the hosts of spec.tls (default true)
//
// podpin.io/backend-protocol is ingress-nginx's backend-protocol: H2C and
// GRPC speak HTTP/2 in cleartext to the pods, HTTPS and GRPCS TLS, the
// pods' certificates verified against the system's roots for the pod's
// address. Unset, each pod speaks what its Service port's appProtocol says
// (kubernetes.io/h2c, h2c and grpc: h2c; https, kubernetes.io/https,
// kubernetes.io/wss and grpcs: https; else HTTP/1.1).
//
// Values are checked as the configuration file's are. An invalid value, or
// an unknown podpin.io/ annotation (a typo would otherwise pass unnoticed),
// is recorded as a Warning Event with reason InvalidAnnotation on the
// Ingress, naming the annotation and the problem; a route the Ingress's
// spec makes invalid gets reason InvalidIngress. Routes that are valid but
// that the proxy cannot run (a table in Redis when podpin started without a
// connection) get reason ApplyFailed with the proxy's error: when an apply
// fails, the Ingresses that changed since the last one are applied again
// one at a time, and those that fail are refused. Such an Ingress keeps the
// routes of its last valid version, or is not served if it never had one.
// Other Ingresses are never affected.
//
// # Status
//
// With --publish-address (an IP or a host name) or --publish-service
// (podpin's own Service: its load balancer addresses, else its external
// IPs, else its cluster IP), podpin writes status.loadBalancer.ingress of
// each Ingress it serves, through the status subresource and only when it
// differs. Without either, the status is left alone.
//
// # Behaviour
//
// Ingresses and IngressClasses are watched with informers (and podpin's
// Service, with --publish-service); changes within 100ms are applied
// together. podpin is not ready (/readyz) until the caches have synced and
// the first routes were applied. Several replicas each apply the same
// routes and write the same status.
//
// # Permissions
//
// get, list and watch on ingresses and ingressclasses (networking.k8s.io),
// services, and endpointslices (discovery.k8s.io); update on
// ingresses/status; create and patch on events; list and watch on secrets
// (of type kubernetes.io/tls, by field selector). The Helm chart in
// deploy/helm/podpin grants exactly these.
package ingress
