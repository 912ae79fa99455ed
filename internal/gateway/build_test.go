package gateway

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/podpin/podpin/internal/certstest"
	"github.com/podpin/podpin/internal/config"
)

// A small world: the class "podpin", Gateway infra/gw with an HTTP
// listener on port 80, the Service app/web with port 8080.
func newWorld() *world {
	return &world{
		controller: ControllerName,
		classes: []*gwv1.GatewayClass{{
			ObjectMeta: metav1.ObjectMeta{Name: "podpin", Generation: 1},
			Spec:       gwv1.GatewayClassSpec{ControllerName: ControllerName},
		}, {
			ObjectMeta: metav1.ObjectMeta{Name: "other"},
			Spec:       gwv1.GatewayClassSpec{ControllerName: "example.com/other"},
		}},
		gateways:   []*gwv1.Gateway{gateway("infra", "gw", 0, httpListener("http", 80, ""))},
		namespaces: map[string]labels.Set{"infra": {}, "app": {"team": "web"}},
		services: map[types.NamespacedName]*corev1.Service{
			{Namespace: "app", Name: "web"}:   service("app", "web", 8080),
			{Namespace: "infra", Name: "web"}: service("infra", "web", 8080),
		},
		secrets: map[types.NamespacedName]*corev1.Secret{},
		pool:    netip.MustParsePrefix("127.0.1.0/24"),
	}
}

func gateway(ns, name string, age int, ls ...gwv1.Listener) *gwv1.Gateway {
	return &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 2,
			CreationTimestamp: metav1.NewTime(time.Unix(1_700_000_000+int64(age), 0))},
		Spec: gwv1.GatewaySpec{GatewayClassName: "podpin", Listeners: ls},
	}
}

func httpListener(name string, port int, host string) gwv1.Listener {
	l := gwv1.Listener{Name: gwv1.SectionName(name), Port: gwv1.PortNumber(port), Protocol: gwv1.HTTPProtocolType}
	if host != "" {
		l.Hostname = ptrTo(gwv1.Hostname(host))
	}
	return l
}

func allNamespaces(l gwv1.Listener) gwv1.Listener {
	l.AllowedRoutes = &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptrTo(gwv1.NamespacesFromAll)}}
	return l
}

func service(ns, name string, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: port}}},
	}
}

func httpRoute(ns, name string, age int, parent string, hostnames []string, rules ...gwv1.HTTPRouteRule) *gwv1.HTTPRoute {
	r := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 3,
			CreationTimestamp: metav1.NewTime(time.Unix(1_700_000_000+int64(age), 0))},
		Spec: gwv1.HTTPRouteSpec{Rules: rules},
	}
	pns, pname, _ := cutSlash(parent)
	r.Spec.ParentRefs = []gwv1.ParentReference{{Namespace: ptrTo(gwv1.Namespace(pns)), Name: gwv1.ObjectName(pname)}}
	for _, h := range hostnames {
		r.Spec.Hostnames = append(r.Spec.Hostnames, gwv1.Hostname(h))
	}
	return r
}

func cutSlash(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}

func toService(ns, name string, port int) gwv1.HTTPBackendRef {
	b := gwv1.HTTPBackendRef{}
	b.Name = gwv1.ObjectName(name)
	if ns != "" {
		b.Namespace = ptrTo(gwv1.Namespace(ns))
	}
	b.Port = ptrTo(gwv1.PortNumber(port))
	return b
}

func prefixRule(prefix string, backends ...gwv1.HTTPBackendRef) gwv1.HTTPRouteRule {
	return gwv1.HTTPRouteRule{
		Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptrTo(gwv1.PathMatchPathPrefix), Value: ptrTo(prefix)}}},
		BackendRefs: backends,
	}
}

func mustCondition(t *testing.T, what string, conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		t.Fatalf("%s: no %s condition in %+v", what, typ, conds)
	}
	if c.Status != status || (reason != "" && c.Reason != reason) {
		t.Fatalf("%s: %s is %s/%s (%s), want %s/%s", what, typ, c.Status, c.Reason, c.Message, status, reason)
	}
}

func TestBuildServesARouteOnItsGatewaysAddress(t *testing.T) {
	w := newWorld()
	w.routes = []*gwv1.HTTPRoute{httpRoute("infra", "web", 0, "infra/gw", []string{"shop.example.com"},
		prefixRule("/cart", toService("", "web", 8080)))}
	p := build(w)

	if len(p.listeners) != 1 || p.listeners[0].Address != "127.0.1.1:80" || p.listeners[0].TLS != nil {
		t.Fatalf("listeners: %+v, want one cleartext listener on 127.0.1.1:80", p.listeners)
	}
	if len(p.routes) != 1 {
		t.Fatalf("routes: %d, want 1", len(p.routes))
	}
	r := p.routes[0]
	if r.Match.Host != "shop.example.com" || r.Match.PathPrefix != "/cart" || !slices.Equal(r.Match.Listeners, []string{"127.0.1.1:80"}) {
		t.Errorf("match: %+v", r.Match)
	}
	if len(r.Services) != 1 || r.Services[0] != (config.WeightedService{Namespace: "infra", Name: "web", Port: "8080"}) {
		t.Errorf("services: %+v", r.Services)
	}

	cs := p.classes["podpin"]
	mustCondition(t, "class", cs.Conditions, "Accepted", metav1.ConditionTrue, "Accepted")
	if len(cs.SupportedFeatures) != len(Features) {
		t.Errorf("supported features: %d, want %d", len(cs.SupportedFeatures), len(Features))
	}
	if _, ok := p.classes["other"]; ok {
		t.Error("another controller's class got a status")
	}
	gs := p.gateways[types.NamespacedName{Namespace: "infra", Name: "gw"}]
	mustCondition(t, "gateway", gs.Conditions, "Accepted", metav1.ConditionTrue, "Accepted")
	mustCondition(t, "gateway", gs.Conditions, "Programmed", metav1.ConditionTrue, "Programmed")
	if len(gs.Addresses) != 1 || gs.Addresses[0].Value != "127.0.1.1" {
		t.Errorf("addresses: %+v", gs.Addresses)
	}
	if len(gs.Listeners) != 1 || gs.Listeners[0].AttachedRoutes != 1 {
		t.Fatalf("listener status: %+v", gs.Listeners)
	}
	for _, typ := range []string{"Accepted", "ResolvedRefs", "Programmed"} {
		mustCondition(t, "listener", gs.Listeners[0].Conditions, typ, metav1.ConditionTrue, "")
	}
	mustCondition(t, "listener", gs.Listeners[0].Conditions, "Conflicted", metav1.ConditionFalse, "NoConflicts")
	for _, c := range gs.Conditions {
		if c.ObservedGeneration != 2 {
			t.Errorf("gateway condition %s: observedGeneration %d, want 2", c.Type, c.ObservedGeneration)
		}
	}
	ps := p.parents[routeKey{kindHTTPRoute, types.NamespacedName{Namespace: "infra", Name: "web"}}]
	if len(ps) != 1 || ps[0].ControllerName != ControllerName {
		t.Fatalf("parents: %+v", ps)
	}
	mustCondition(t, "route", ps[0].Conditions, "Accepted", metav1.ConditionTrue, "Accepted")
	mustCondition(t, "route", ps[0].Conditions, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs")
	if err := (config.Rules{RoutesOptional: true}).Validate(mustMerge(t, p)); err != nil {
		t.Fatal(err)
	}
}

func mustMerge(t *testing.T, p *plan) *config.Config {
	t.Helper()
	static := &config.Config{}
	static.SetDefaults()
	cfg, err := merge(static, p)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestBuildRefusesWhatTheSpecRefuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(w *world)
		typ    string
		status metav1.ConditionStatus
		reason string
	}{
		{"missing Service", func(w *world) {
			w.routes = []*gwv1.HTTPRoute{httpRoute("infra", "r", 0, "infra/gw", nil, prefixRule("/", toService("", "nope", 80)))}
		}, "ResolvedRefs", metav1.ConditionFalse, "BackendNotFound"},
		{"Service in another namespace without a grant", func(w *world) {
			w.routes = []*gwv1.HTTPRoute{httpRoute("infra", "r", 0, "infra/gw", nil, prefixRule("/", toService("app", "web", 8080)))}
		}, "ResolvedRefs", metav1.ConditionFalse, "RefNotPermitted"},
		{"backend of an unknown kind", func(w *world) {
			b := toService("", "web", 8080)
			b.Kind = ptrTo(gwv1.Kind("Bucket"))
			w.routes = []*gwv1.HTTPRoute{httpRoute("infra", "r", 0, "infra/gw", nil, prefixRule("/", b))}
		}, "ResolvedRefs", metav1.ConditionFalse, "InvalidKind"},
		{"no listener hostname matches", func(w *world) {
			w.gateways[0].Spec.Listeners[0].Hostname = ptrTo(gwv1.Hostname("*.example.com"))
			w.routes = []*gwv1.HTTPRoute{httpRoute("infra", "r", 0, "infra/gw", []string{"example.net"}, prefixRule("/", toService("", "web", 8080)))}
		}, "Accepted", metav1.ConditionFalse, "NoMatchingListenerHostname"},
		{"unknown sectionName", func(w *world) {
			r := httpRoute("infra", "r", 0, "infra/gw", nil, prefixRule("/", toService("", "web", 8080)))
			r.Spec.ParentRefs[0].SectionName = ptrTo(gwv1.SectionName("nope"))
			w.routes = []*gwv1.HTTPRoute{r}
		}, "Accepted", metav1.ConditionFalse, "NoMatchingParent"},
		{"route from a namespace the listener does not allow", func(w *world) {
			w.routes = []*gwv1.HTTPRoute{httpRoute("app", "r", 0, "infra/gw", nil, prefixRule("/", toService("", "web", 8080)))}
		}, "Accepted", metav1.ConditionFalse, "NotAllowedByListeners"},
		{"unsupported filter", func(w *world) {
			rule := prefixRule("/", toService("", "web", 8080))
			rule.Filters = []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestMirror}}
			w.routes = []*gwv1.HTTPRoute{httpRoute("infra", "r", 0, "infra/gw", nil, rule)}
		}, "Accepted", metav1.ConditionFalse, "UnsupportedValue"},
		{"bad podpin.io annotation", func(w *world) {
			r := httpRoute("infra", "r", 0, "infra/gw", nil, prefixRule("/", toService("", "web", 8080)))
			r.Annotations = map[string]string{"podpin.io/balancer": ""}
			w.routes = []*gwv1.HTTPRoute{r}
		}, "Accepted", metav1.ConditionFalse, "UnsupportedValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			tt.change(w)
			p := build(w)
			ps := p.parents[routeKey{kindHTTPRoute, types.NamespacedName{Namespace: w.routes[0].Namespace, Name: "r"}}]
			if len(ps) != 1 {
				t.Fatalf("parents: %+v", ps)
			}
			mustCondition(t, "route", ps[0].Conditions, tt.typ, tt.status, tt.reason)
			if tt.typ == "ResolvedRefs" {
				// Still attached: its requests get the spec's 500.
				if len(p.routes) != 1 || p.routes[0].Respond == nil || p.routes[0].Respond.Status != 500 {
					t.Fatalf("routes: %+v, want one answering 500", p.routes)
				}
			} else if len(p.routes) != 0 {
				t.Fatalf("routes: %+v, want none", p.routes)
			}
		})
	}
}

func TestBuildHonoursReferenceGrants(t *testing.T) {
	w := newWorld()
	w.routes = []*gwv1.HTTPRoute{httpRoute("infra", "r", 0, "infra/gw", nil, prefixRule("/", toService("app", "web", 8080)))}
	w.grants = []*gwv1.ReferenceGrant{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "g"},
		Spec: gwv1.ReferenceGrantSpec{
			From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "HTTPRoute", Namespace: "infra"}},
			To:   []gwv1.ReferenceGrantTo{{Group: "", Kind: "Service"}},
		},
	}}
	p := build(w)
	ps := p.parents[routeKey{kindHTTPRoute, types.NamespacedName{Namespace: "infra", Name: "r"}}]
	mustCondition(t, "route", ps[0].Conditions, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs")
	if len(p.routes) != 1 || len(p.routes[0].Services) != 1 || p.routes[0].Services[0].Namespace != "app" {
		t.Fatalf("routes: %+v", p.routes)
	}
}

func TestBuildListenerProblems(t *testing.T) {
	w := newWorld()
	tcp := gwv1.Listener{Name: "tcp", Port: 9000, Protocol: gwv1.TCPProtocolType}
	a, b := httpListener("a", 8080, "x.example.com"), httpListener("b", 8080, "x.example.com")
	https := gwv1.Listener{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType, TLS: &gwv1.ListenerTLSConfig{
		CertificateRefs: []gwv1.SecretObjectReference{{Name: "missing"}},
	}}
	w.gateways = []*gwv1.Gateway{gateway("infra", "gw", 0, httpListener("http", 80, ""), tcp, a, b, https)}
	gs := build(w).gateways[types.NamespacedName{Namespace: "infra", Name: "gw"}]
	mustCondition(t, "gateway", gs.Conditions, "Accepted", metav1.ConditionTrue, "ListenersNotValid")
	byName := map[string]gwv1.ListenerStatus{}
	for _, l := range gs.Listeners {
		byName[string(l.Name)] = l
	}
	mustCondition(t, "tcp", byName["tcp"].Conditions, "Accepted", metav1.ConditionFalse, "UnsupportedProtocol")
	if len(byName["tcp"].SupportedKinds) != 0 {
		t.Errorf("tcp supported kinds: %+v, want none", byName["tcp"].SupportedKinds)
	}
	mustCondition(t, "a", byName["a"].Conditions, "Conflicted", metav1.ConditionTrue, "HostnameConflict")
	mustCondition(t, "https", byName["https"].Conditions, "ResolvedRefs", metav1.ConditionFalse, "InvalidCertificateRef")
	mustCondition(t, "https", byName["https"].Conditions, "Programmed", metav1.ConditionFalse, "Invalid")
	mustCondition(t, "http", byName["http"].Conditions, "Programmed", metav1.ConditionTrue, "Programmed")
}

func TestBuildServesHTTPSCertificatesBySNI(t *testing.T) {
	w := newWorld()
	cert, key := certstest.NewCA(t).Issue(t, time.Now().Add(time.Hour), "shop.example.com")
	w.secrets[types.NamespacedName{Namespace: "infra", Name: "shop"}] = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "shop"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
	}
	https := gwv1.Listener{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType, Hostname: ptrTo(gwv1.Hostname("shop.example.com")),
		TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "shop"}}}}
	w.gateways = []*gwv1.Gateway{gateway("infra", "gw", 0, https)}
	p := build(w)
	if len(p.listeners) != 1 || p.listeners[0].TLS == nil || !p.listeners[0].TLS.Managed {
		t.Fatalf("listeners: %+v, want one managed TLS listener", p.listeners)
	}
	sc := p.certs["127.0.1.1:443"]
	if len(sc.hosts) != 1 || sc.hosts[0].Hosts[0] != "shop.example.com" || sc.def == nil {
		t.Fatalf("certificates: %+v", sc)
	}
}

func TestBuildAddresses(t *testing.T) {
	w := newWorld()
	old := gateway("infra", "old", 0, httpListener("http", 80, ""))
	old.Status.Addresses = []gwv1.GatewayStatusAddress{{Value: "127.0.1.7"}}
	fresh := gateway("infra", "fresh", 1, httpListener("http", 80, ""))
	wants := gateway("infra", "wants", 2, httpListener("http", 80, ""))
	wants.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "127.0.1.9"}}
	outside := gateway("infra", "outside", 3, httpListener("http", 80, ""))
	outside.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "10.0.0.1"}}
	fake := gateway("infra", "fake", 4, httpListener("http", 80, ""))
	fake.Spec.Addresses = []gwv1.GatewaySpecAddress{{Type: ptrTo(gwv1.AddressType("test/fake")), Value: "x"}}
	two := gateway("infra", "two", 5, httpListener("http", 80, ""))
	two.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "127.0.1.20"}, {Value: "127.0.1.21"}}
	empty := gateway("infra", "empty", 6, httpListener("http", 80, ""))
	empty.Spec.Addresses = []gwv1.GatewaySpecAddress{{Type: ptrTo(gwv1.IPAddressType)}}
	w.gateways = []*gwv1.Gateway{old, fresh, wants, outside, fake, two, empty}
	p := build(w)
	mustCondition(t, "fake", p.gateways[types.NamespacedName{Namespace: "infra", Name: "fake"}].Conditions, "Accepted", metav1.ConditionFalse, "UnsupportedAddress")
	mustCondition(t, "two", p.gateways[types.NamespacedName{Namespace: "infra", Name: "two"}].Conditions, "Programmed", metav1.ConditionFalse, "AddressNotUsable")
	for name, want := range map[string]string{"old": "127.0.1.7", "fresh": "127.0.1.1", "wants": "127.0.1.9", "empty": "127.0.1.2"} {
		gs := p.gateways[types.NamespacedName{Namespace: "infra", Name: name}]
		if len(gs.Addresses) != 1 || gs.Addresses[0].Value != want {
			t.Errorf("%s: addresses %+v, want %s", name, gs.Addresses, want)
		}
	}
	gs := p.gateways[types.NamespacedName{Namespace: "infra", Name: "outside"}]
	mustCondition(t, "outside", gs.Conditions, "Programmed", metav1.ConditionFalse, "AddressNotUsable")

	// Without a pool, a port belongs to the oldest Gateway.
	w.pool = netip.Prefix{}
	w.gateways = []*gwv1.Gateway{gateway("infra", "b", 1, httpListener("http", 80, "")), gateway("infra", "a", 0, httpListener("http", 80, ""))}
	p = build(w)
	if len(p.listeners) != 1 || p.listeners[0].Address != ":80" {
		t.Fatalf("listeners: %+v, want one on :80", p.listeners)
	}
	b := p.gateways[types.NamespacedName{Namespace: "infra", Name: "b"}]
	mustCondition(t, "b", b.Listeners[0].Conditions, "Accepted", metav1.ConditionFalse, "PortUnavailable")
}

func TestBuildOrdersRoutesByPrecedence(t *testing.T) {
	w := newWorld()
	exact := prefixRule("/a", toService("", "web", 8080))
	exact.Matches[0].Path.Type = ptrTo(gwv1.PathMatchExact)
	header := prefixRule("/a", toService("", "web", 8080))
	header.Matches[0].Headers = []gwv1.HTTPHeaderMatch{{Name: "Version", Value: "2"}}
	w.routes = []*gwv1.HTTPRoute{
		httpRoute("infra", "short", 0, "infra/gw", nil, prefixRule("/", toService("", "web", 8080))),
		httpRoute("infra", "long", 1, "infra/gw", nil, prefixRule("/a", toService("", "web", 8080))),
		httpRoute("infra", "exact", 2, "infra/gw", nil, exact),
		httpRoute("infra", "header", 3, "infra/gw", nil, header),
		httpRoute("infra", "wild", 4, "infra/gw", []string{"*.example.com"}, prefixRule("/", toService("", "web", 8080))),
		httpRoute("infra", "host", 5, "infra/gw", []string{"a.example.com"}, prefixRule("/", toService("", "web", 8080))),
	}
	var got []string
	for _, r := range build(w).routes {
		got = append(got, r.Match.Host+r.Match.HostSuffix+" "+r.Match.Path+r.Match.PathPrefix)
	}
	want := []string{"a.example.com /", ".example.com /", " /a", " /a", " /a", " /"}
	if !slices.Equal(got, want) {
		t.Fatalf("order: %q, want %q", got, want)
	}
	// Among the three /a: exact, then the header match, then the plain prefix.
	rs := build(w).routes
	if rs[2].Match.Path != "/a" || len(rs[3].Match.Headers) != 1 || rs[4].Match.PathPrefix != "/a" {
		t.Fatalf("order of /a: %+v %+v %+v", rs[2].Match, rs[3].Match, rs[4].Match)
	}
}

func TestBuildSessionPersistence(t *testing.T) {
	w := newWorld()
	header := prefixRule("/h", toService("", "web", 8080))
	header.SessionPersistence = &gwv1.SessionPersistence{
		Type:   ptrTo(gwv1.HeaderBasedSessionPersistence),
		Header: &gwv1.HeaderConfig{Name: "Session-A"},
	}
	cookie := prefixRule("/c", toService("", "web", 8080))
	cookie.SessionPersistence = &gwv1.SessionPersistence{
		AbsoluteTimeout: ptrTo(gwv1.Duration("1h")),
		Cookie:          &gwv1.CookieConfig{Name: ptrTo(gwv1.CookieName("sid")), LifetimeType: ptrTo(gwv1.PermanentCookieLifetimeType)},
	}
	session := prefixRule("/s", toService("", "web", 8080))
	session.SessionPersistence = &gwv1.SessionPersistence{}
	plain := prefixRule("/p", toService("", "web", 8080))
	r := httpRoute("infra", "r", 0, "infra/gw", nil, header, cookie, session, plain)
	// podpin's own knobs come from the same annotations as on an Ingress.
	r.Annotations = map[string]string{"podpin.io/balancer": "least-sessions", "podpin.io/sticky-header": "X-User", "podpin.io/max-entries": "5000"}
	w.routes = []*gwv1.HTTPRoute{r}
	byPath := map[string]config.Route{}
	for _, r := range build(w).routes {
		byPath[r.Match.PathPrefix] = r
	}
	h := byPath["/h"]
	if h.Sticky.Header != "Session-A" || h.Sticky.Missing != config.MissingAssign {
		t.Errorf("header persistence: %+v", h.Sticky)
	}
	c := byPath["/c"]
	if c.Sticky.Cookie != "sid" || c.Sticky.SetCookie == nil || c.Sticky.SetCookie.MaxAge != time.Hour || c.Table.AbsoluteTimeout != time.Hour {
		t.Errorf("permanent cookie: %+v %+v", c.Sticky, c.Table)
	}
	if p := byPath["/p"]; p.Sticky.Header != "X-User" || p.Balancer != "least-sessions" || p.Table.MaxEntries != 5000 {
		t.Errorf("annotations: sticky %+v, balancer %q, table %+v", p.Sticky, p.Balancer, p.Table)
	}
	if h.Balancer != "least-sessions" || h.Table.MaxEntries != 5000 {
		t.Errorf("annotations under sessionPersistence: balancer %q, table %+v", h.Balancer, h.Table)
	}
	s := byPath["/s"]
	if s.Sticky.Cookie == "" || s.Sticky.SetCookie == nil || s.Sticky.SetCookie.MaxAge != 0 || s.Sticky.SetCookie.Path != "/" {
		t.Errorf("session cookie (the default type, a generated name, no Max-Age): %+v", s.Sticky)
	}
}

func TestIntersect(t *testing.T) {
	tests := []struct {
		listener string
		route    []string
		want     []string
	}{
		{"", nil, []string{""}},
		{"", []string{"a.example.com"}, []string{"a.example.com"}},
		{"a.example.com", nil, []string{"a.example.com"}},
		{"*.example.com", []string{"a.example.com", "example.com", "a.b.example.com"}, []string{"a.example.com", "a.b.example.com"}},
		{"*.example.com", []string{"*.b.example.com"}, []string{"*.b.example.com"}},
		{"*.b.example.com", []string{"*.example.com"}, []string{"*.b.example.com"}},
		{"a.example.com", []string{"*.example.com"}, []string{"a.example.com"}},
		{"a.example.com", []string{"b.example.com"}, nil},
		{"*.example.com", []string{"*.example.net"}, nil},
	}
	for _, tt := range tests {
		var hs []gwv1.Hostname
		for _, h := range tt.route {
			hs = append(hs, gwv1.Hostname(h))
		}
		if got := intersect(tt.listener, hs); !slices.Equal(got, tt.want) {
			t.Errorf("intersect(%q, %q) = %q, want %q", tt.listener, tt.route, got, tt.want)
		}
	}
}

func TestBuildIsolatesListenersOfOneSocket(t *testing.T) {
	w := newWorld()
	any, wild := httpListener("any", 80, ""), httpListener("wild", 80, "*.example.com")
	w.gateways = []*gwv1.Gateway{gateway("infra", "gw", 0, any, wild)}
	onAny := httpRoute("infra", "a", 0, "infra/gw", nil, prefixRule("/a", toService("", "web", 8080)))
	onAny.Spec.ParentRefs[0].SectionName = ptrTo(gwv1.SectionName("any"))
	// A host of the wildcard listener, through the listener without one:
	// such requests belong to the wildcard listener, so it is not served.
	stray := httpRoute("infra", "stray", 1, "infra/gw", []string{"x.example.com"}, prefixRule("/s", toService("", "web", 8080)))
	stray.Spec.ParentRefs[0].SectionName = ptrTo(gwv1.SectionName("any"))
	onWild := httpRoute("infra", "b", 2, "infra/gw", nil, prefixRule("/b", toService("", "web", 8080)))
	onWild.Spec.ParentRefs[0].SectionName = ptrTo(gwv1.SectionName("wild"))
	w.routes = []*gwv1.HTTPRoute{onAny, stray, onWild}
	var got []string
	for _, r := range build(w).routes {
		s := r.Match.Host + r.Match.HostSuffix + " " + r.Match.PathPrefix
		if r.Respond != nil {
			s += fmt.Sprint(" ", r.Respond.Status)
		}
		got = append(got, s)
	}
	want := []string{".example.com /b", ".example.com / 404", " /a"}
	if !slices.Equal(got, want) {
		t.Fatalf("routes: %q, want %q", got, want)
	}
}
