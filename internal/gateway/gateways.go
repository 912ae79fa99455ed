package gateway

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/config"
)

// world is what the controller reads from the API server, as one
// snapshot: build turns it into listeners, routes and statuses.
type world struct {
	controller string
	classes    []*gwv1.GatewayClass
	gateways   []*gwv1.Gateway
	routes     []*gwv1.HTTPRoute
	grpcRoutes []*gwv1.GRPCRoute
	grants     []*gwv1.ReferenceGrant
	namespaces map[string]labels.Set
	services   map[types.NamespacedName]*corev1.Service
	secrets    map[types.NamespacedName]*corev1.Secret
	// pool gives each Gateway an address of its own; invalid: every
	// Gateway binds the wildcard address and publish is its address.
	pool    netip.Prefix
	publish []string
	// bound reports whether a listener address is bound; nil: all are.
	bound func(address string) bool
}

// plan is what the controller applies and writes.
type plan struct {
	listeners []config.Listener
	routes    []config.Route
	// certs are the certificates of each HTTPS listener socket, by address.
	certs    map[string]socketCerts
	classes  map[string]gwv1.GatewayClassStatus
	gateways map[types.NamespacedName]gwv1.GatewayStatus
	// parents are this controller's parent statuses of each route that
	// names one of its Gateways.
	parents map[routeKey][]gwv1.RouteParentStatus
	// refused are the routes naming a served Gateway that cannot be
	// served as written, with the reason.
	refused map[routeKey]string
}

// socketCerts are the certificates one TLS listener socket serves by SNI.
type socketCerts struct {
	hosts []certs.HostCert
	def   *tls.Certificate
}

// gw is one served Gateway while the plan is built.
type gw struct {
	obj       *gwv1.Gateway
	address   string // IP bound ("" for the wildcard address)
	addrError string // why no address could be given; "" when one was
	// addrUnsupported says why the Gateway is not accepted for an address
	// type podpin does not support.
	addrUnsupported string
	listeners       []*listener
}

// listener is one Gateway listener while the plan is built.
type listener struct {
	spec     gwv1.Listener
	gw       *gw
	socket   string // listeners[].address of its socket
	kinds    []gwv1.RouteGroupKind
	accepted metav1.Condition
	resolved metav1.Condition
	conflict metav1.Condition
	ok       bool // it takes routes
	cert     *tls.Certificate
	attached int32
}

func (l *listener) hostname() string {
	if l.spec.Hostname == nil {
		return ""
	}
	return strings.ToLower(string(*l.spec.Hostname))
}

// build computes the plan for w.
func build(w *world) *plan {
	p := &plan{
		certs:    map[string]socketCerts{},
		classes:  map[string]gwv1.GatewayClassStatus{},
		gateways: map[types.NamespacedName]gwv1.GatewayStatus{},
		parents:  map[routeKey][]gwv1.RouteParentStatus{},
		refused:  map[routeKey]string{},
	}
	ours := map[string]*gwv1.GatewayClass{}
	for _, c := range w.classes {
		if string(c.Spec.ControllerName) != w.controller {
			continue
		}
		p.classes[c.Name] = classStatus(c)
		if meta.IsStatusConditionTrue(p.classes[c.Name].Conditions, string(gwv1.GatewayClassConditionStatusAccepted)) {
			ours[c.Name] = c
		}
	}
	gateways := byAge(slices.Clone(w.gateways))
	var served []*gw
	for _, g := range gateways {
		if ours[string(g.Spec.GatewayClassName)] != nil {
			served = append(served, &gw{obj: g})
		}
	}
	assignAddresses(w, served)
	sockets := map[string]*listener{} // wildcard mode: a port's owner
	for _, g := range served {
		for _, ls := range g.obj.Spec.Listeners {
			g.listeners = append(g.listeners, checkListener(w, g, ls))
		}
		markConflicts(g.listeners)
		for _, l := range g.listeners {
			if !l.ok {
				continue
			}
			if owner := sockets[l.socket]; owner != nil && owner.gw != g {
				l.ok = false
				l.accepted = cond(gwv1.ListenerConditionAccepted, false, gwv1.ListenerReasonPortUnavailable,
					fmt.Sprintf("port %d is served by the older Gateway %s/%s", l.spec.Port, owner.gw.obj.Namespace, owner.gw.obj.Name))
				continue
			}
			sockets[l.socket] = l
		}
	}
	routes := attachRoutes(w, served, p)
	p.routes = routes
	for _, g := range served {
		addSockets(w, g, p)
	}
	for _, g := range served {
		p.gateways[key(g.obj)] = gatewayStatus(w, g)
	}
	return p
}

// byAge sorts objects oldest first, then by namespace/name: the order in
// which conflicts are settled.
func byAge[T metav1.Object](list []T) []T {
	slices.SortStableFunc(list, func(a, b T) int {
		ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
		if c := ta.Compare(tb.Time); c != 0 {
			return c
		}
		return strings.Compare(a.GetNamespace()+"/"+a.GetName(), b.GetNamespace()+"/"+b.GetName())
	})
	return list
}

func key(o metav1.Object) types.NamespacedName {
	return types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
}

// assignAddresses gives each Gateway its address. With a pool: the
// address its spec asks for, else the one its status already shows, else
// the lowest free one. Without: the wildcard address for all. An address
// of a type other than IPAddress makes the Gateway not accepted
// (UnsupportedAddress); an IP podpin cannot give, or more than one, not
// programmed (AddressNotUsable).
func assignAddresses(w *world, served []*gw) {
	taken := map[netip.Addr]bool{}
	var wantAny []*gw
	for _, g := range served {
		var asked []string
		for _, a := range g.obj.Spec.Addresses {
			if a.Type != nil && *a.Type != gwv1.IPAddressType {
				g.addrUnsupported = fmt.Sprintf("address type %s is not supported: only IPAddress", *a.Type)
				continue
			}
			if a.Value != "" {
				asked = append(asked, a.Value)
			}
		}
		switch {
		case g.addrUnsupported != "":
		case len(asked) > 0 && !w.pool.IsValid():
			g.addrError = "podpin gives Gateways no addresses of their own (--gateway-addresses is not set)"
		case len(asked) > 1:
			g.addrError = fmt.Sprintf("podpin gives a Gateway one address; %d are asked for", len(asked))
		case len(asked) == 1:
			ip, err := netip.ParseAddr(asked[0])
			switch {
			case err != nil:
				g.addrError = fmt.Sprintf("%q is not an IP address", asked[0])
			case !w.pool.Contains(ip):
				g.addrError = fmt.Sprintf("%s is outside podpin's Gateway addresses %s", ip, w.pool)
			case taken[ip]:
				g.addrError = fmt.Sprintf("%s is another Gateway's address", ip)
			default:
				taken[ip] = true
				g.address = ip.String()
			}
		case w.pool.IsValid():
			wantAny = append(wantAny, g)
		}
	}
	var fresh []*gw
	for _, g := range wantAny {
		kept := false
		for _, a := range g.obj.Status.Addresses {
			ip, err := netip.ParseAddr(a.Value)
			if err == nil && w.pool.Contains(ip) && !taken[ip] {
				taken[ip], g.address, kept = true, ip.String(), true
				break
			}
		}
		if !kept {
			fresh = append(fresh, g)
		}
	}
	next := w.pool.Addr().Next() // the prefix's first address stays unused
	for _, g := range fresh {
		for next.IsValid() && w.pool.Contains(next) && taken[next] {
			next = next.Next()
		}
		if !next.IsValid() || !w.pool.Contains(next) {
			g.addrError = fmt.Sprintf("no address left in %s", w.pool)
			continue
		}
		taken[next], g.address = true, next.String()
	}
}

// The route kinds podpin serves on HTTP and HTTPS listeners.
const (
	kindHTTPRoute = "HTTPRoute"
	kindGRPCRoute = "GRPCRoute"
)

var routeKinds = []gwv1.RouteGroupKind{
	{Group: ptrTo(gwv1.Group(gwv1.GroupName)), Kind: kindHTTPRoute},
	{Group: ptrTo(gwv1.Group(gwv1.GroupName)), Kind: kindGRPCRoute},
}

func ptrTo[T any](v T) *T { return &v }

// checkListener validates one listener: protocol, route kinds,
// certificates. Conflicts are checked later, across the Gateway.
func checkListener(w *world, g *gw, ls gwv1.Listener) *listener {
	l := &listener{spec: ls, gw: g}
	l.socket = socketAddr(g.address, int(ls.Port))
	l.accepted = cond(gwv1.ListenerConditionAccepted, true, gwv1.ListenerReasonAccepted, "Listener accepted")
	l.resolved = cond(gwv1.ListenerConditionResolvedRefs, true, gwv1.ListenerReasonResolvedRefs, "all references resolved")
	l.conflict = cond(gwv1.ListenerConditionConflicted, false, gwv1.ListenerReasonNoConflicts, "no conflicts")
	l.ok = true

	// Kinds: HTTPRoute and GRPCRoute, on HTTP and HTTPS.
	l.kinds = []gwv1.RouteGroupKind{}
	if ls.AllowedRoutes == nil || len(ls.AllowedRoutes.Kinds) == 0 {
		l.kinds = append(l.kinds, routeKinds...)
	} else {
		var bad []string
		for _, k := range ls.AllowedRoutes.Kinds {
			group := gwv1.GroupName
			if k.Group != nil {
				group = string(*k.Group)
			}
			if i := slices.IndexFunc(routeKinds, func(rk gwv1.RouteGroupKind) bool { return group == gwv1.GroupName && k.Kind == rk.Kind }); i >= 0 {
				l.kinds = append(l.kinds, routeKinds[i])
				continue
			}
			bad = append(bad, group+"/"+string(k.Kind))
		}
		if len(bad) > 0 {
			l.resolved = cond(gwv1.ListenerConditionResolvedRefs, false, gwv1.ListenerReasonInvalidRouteKinds,
				"route kinds not supported: "+strings.Join(bad, ", "))
		}
	}

	switch ls.Protocol {
	case gwv1.HTTPProtocolType:
	case gwv1.HTTPSProtocolType:
		checkTLS(w, l)
	default:
		l.ok = false
		l.accepted = cond(gwv1.ListenerConditionAccepted, false, gwv1.ListenerReasonUnsupportedProtocol,
			fmt.Sprintf("protocol %s is not supported: podpin serves HTTP and HTTPS", ls.Protocol))
	}
	if g.addrError != "" || g.addrUnsupported != "" {
		l.ok = false
	}
	return l
}

// checkTLS reads an HTTPS listener's certificate.
func checkTLS(w *world, l *listener) {
	t := l.spec.TLS
	if t == nil || len(t.CertificateRefs) == 0 {
		l.ok = false
		l.resolved = cond(gwv1.ListenerConditionResolvedRefs, false, gwv1.ListenerReasonInvalidCertificateRef, "an HTTPS listener needs tls.certificateRefs")
		return
	}
	if t.Mode != nil && *t.Mode != gwv1.TLSModeTerminate {
		l.ok = false
		l.accepted = cond(gwv1.ListenerConditionAccepted, false, gwv1.ListenerReasonUnsupportedValue, "HTTPS listeners terminate TLS: tls.mode must be Terminate")
		return
	}
	// The first certificate is served; podpin has one per listener.
	ref := t.CertificateRefs[0]
	group, kind := "", "Secret"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	ns := l.gw.obj.Namespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	name := string(ref.Name)
	bad := func(reason gwv1.ListenerConditionReason, msg string) {
		l.ok = false
		l.resolved = cond(gwv1.ListenerConditionResolvedRefs, false, reason, msg)
	}
	if group != "" || kind != "Secret" {
		bad(gwv1.ListenerReasonInvalidCertificateRef, fmt.Sprintf("certificateRefs: %s/%s is not a Secret", group, kind))
		return
	}
	if ns != l.gw.obj.Namespace && !granted(w, gwv1.GroupName, "Gateway", l.gw.obj.Namespace, "", "Secret", ns, name) {
		bad(gwv1.ListenerReasonRefNotPermitted, fmt.Sprintf("Secret %s/%s is in another namespace and no ReferenceGrant there allows it", ns, name))
		return
	}
	s := w.secrets[types.NamespacedName{Namespace: ns, Name: name}]
	if s == nil {
		bad(gwv1.ListenerReasonInvalidCertificateRef, fmt.Sprintf("Secret %s/%s not found (or not of type kubernetes.io/tls)", ns, name))
		return
	}
	c, err := certs.Parse(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		bad(gwv1.ListenerReasonInvalidCertificateRef, fmt.Sprintf("Secret %s/%s: %v", ns, name, err))
		return
	}
	l.cert = c
}

// markConflicts marks the listeners of one Gateway that share a port with
// another protocol, or a port and hostname.
func markConflicts(ls []*listener) {
	for i, a := range ls {
		if !a.ok {
			continue
		}
		for j, b := range ls {
			if i == j || !b.ok || a.spec.Port != b.spec.Port {
				continue
			}
			if a.spec.Protocol != b.spec.Protocol {
				a.conflict = cond(gwv1.ListenerConditionConflicted, true, gwv1.ListenerReasonProtocolConflict,
					fmt.Sprintf("listener %s uses port %d with protocol %s", b.spec.Name, b.spec.Port, b.spec.Protocol))
			} else if a.hostname() == b.hostname() {
				a.conflict = cond(gwv1.ListenerConditionConflicted, true, gwv1.ListenerReasonHostnameConflict,
					fmt.Sprintf("listener %s uses port %d and the same hostname", b.spec.Name, b.spec.Port))
			}
		}
	}
	for _, l := range ls {
		if l.conflict.Status == metav1.ConditionTrue {
			l.ok = false
		}
	}
}

// addSockets adds a Gateway's listener sockets to the plan: one
// config listener per address and port, with the certificates of its
// HTTPS listeners.
func addSockets(w *world, g *gw, p *plan) {
	seen := map[string]bool{}
	for _, l := range g.listeners {
		if !l.ok || seen[l.socket] {
			continue
		}
		seen[l.socket] = true
		cl := config.Listener{Address: l.socket}
		if l.spec.Protocol == gwv1.HTTPSProtocolType {
			cl.TLS = &config.ListenerTLS{Managed: true}
			var sc socketCerts
			for _, o := range g.listeners {
				if !o.ok || o.socket != l.socket {
					continue
				}
				// A request whose Host chooses another of these than
				// its connection's server name is misdirected (421).
				cl.TLS.Hostnames = append(cl.TLS.Hostnames, o.hostname())
				if o.cert == nil {
					continue
				}
				if h := o.hostname(); h != "" {
					sc.hosts = append(sc.hosts, certs.HostCert{Hosts: []string{h}, Cert: o.cert})
				} else if sc.def == nil {
					sc.def = o.cert
				}
			}
			if sc.def == nil && len(sc.hosts) > 0 {
				sc.def = sc.hosts[0].Cert
			}
			p.certs[l.socket] = sc
		}
		p.listeners = append(p.listeners, cl)
	}
}

// socketAddr is host:port for a listener socket; an empty host is the wildcard
// address.
func socketAddr(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// cond is a condition of the given type; status true or false.
func cond[T ~string, R ~string](typ T, status bool, reason R, msg string) metav1.Condition {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: string(typ), Status: s, Reason: string(reason), Message: msg}
}

// granted reports whether a ReferenceGrant in toNS lets objects of
// fromGroup/fromKind in fromNS refer to toGroup/toKind toName.
func granted(w *world, fromGroup, fromKind, fromNS, toGroup, toKind, toNS, toName string) bool {
	for _, g := range w.grants {
		if g.Namespace != toNS {
			continue
		}
		from := slices.ContainsFunc(g.Spec.From, func(f gwv1.ReferenceGrantFrom) bool {
			return string(f.Group) == fromGroup && string(f.Kind) == fromKind && string(f.Namespace) == fromNS
		})
		to := slices.ContainsFunc(g.Spec.To, func(t gwv1.ReferenceGrantTo) bool {
			return string(t.Group) == toGroup && string(t.Kind) == toKind && (t.Name == nil || string(*t.Name) == toName)
		})
		if from && to {
			return true
		}
	}
	return false
}
