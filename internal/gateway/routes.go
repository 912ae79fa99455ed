package gateway

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/ingress"
)

// placed is one config route with what orders it among the routes of its
// listener socket (the Gateway API's precedence).
type placed struct {
	route    config.Route
	socket   string
	host     string
	from     *route
	rule     int
	match    int
	pathKind int    // 0 Exact, 1 PathPrefix, 2 RegularExpression, 3 a listener's catch-all
	suffix   string // the name's suffix, when not made of rule and match
	pathLen  int
	method   bool
	headers  int
	queries  int
}

// route is an HTTPRoute or a GRPCRoute while the plan is built.
type route struct {
	obj        metav1.Object
	kind       string // "HTTPRoute" or "GRPCRoute"
	parentRefs []gwv1.ParentReference
	hostnames  []gwv1.Hostname
	status     []gwv1.RouteParentStatus
	rules      rules
}

// routeKey names a route of either kind.
type routeKey struct {
	kind string
	types.NamespacedName
}

func (r *route) key() routeKey { return routeKey{r.kind, key(r.obj)} }

// routesOf are w's HTTPRoutes and GRPCRoutes, translated, oldest first.
func routesOf(w *world) []*route {
	var all []*route
	for _, r := range w.routes {
		all = append(all, &route{obj: r, kind: kindHTTPRoute, parentRefs: r.Spec.ParentRefs, hostnames: r.Spec.Hostnames,
			status: r.Status.Parents, rules: translateRules(w, r)})
	}
	for _, r := range w.grpcRoutes {
		all = append(all, &route{obj: r, kind: kindGRPCRoute, parentRefs: r.Spec.ParentRefs, hostnames: r.Spec.Hostnames,
			status: r.Status.Parents, rules: translateGRPC(w, r)})
	}
	slices.SortStableFunc(all, func(a, b *route) int {
		ta, tb := a.obj.GetCreationTimestamp(), b.obj.GetCreationTimestamp()
		return cmp.Or(ta.Compare(tb.Time), cmp.Compare(a.obj.GetNamespace()+"/"+a.obj.GetName(), b.obj.GetNamespace()+"/"+b.obj.GetName()),
			cmp.Compare(a.kind, b.kind))
	})
	return all
}

// attachRoutes attaches the HTTPRoutes and GRPCRoutes to the served
// Gateways' listeners, records their parent statuses in p, and returns
// their config routes in the order they are tried.
func attachRoutes(w *world, served []*gw, p *plan) []config.Route {
	byName := map[types.NamespacedName]*gw{}
	for _, g := range served {
		byName[key(g.obj)] = g
	}
	var all []placed
	for _, r := range routesOf(w) {
		t := r.rules
		attachedTo := map[*listener]bool{}
		var parents []gwv1.RouteParentStatus
		targets := map[[2]string]bool{} // socket, host
		for _, ref := range r.parentRefs {
			if (ref.Group != nil && *ref.Group != gwv1.GroupName) || (ref.Kind != nil && *ref.Kind != "Gateway") {
				continue
			}
			ns := r.obj.GetNamespace()
			if ref.Namespace != nil {
				ns = string(*ref.Namespace)
			}
			g := byName[types.NamespacedName{Namespace: ns, Name: string(ref.Name)}]
			if g == nil {
				continue // not a Gateway of podpin's
			}
			accepted, ls := attach(w, r, ref, g)
			if accepted.Status == metav1.ConditionTrue && t.problem != "" {
				accepted = cond(gwv1.RouteConditionAccepted, false, gwv1.RouteReasonUnsupportedValue, t.problem)
				p.refused[r.key()] = t.problem
			}
			var old []metav1.Condition
			for _, o := range r.status {
				if string(o.ControllerName) == w.controller && sameParent(o.ParentRef, ref) {
					old = o.Conditions
				}
			}
			st := gwv1.RouteParentStatus{
				ParentRef:      ref,
				ControllerName: gwv1.GatewayController(w.controller),
				Conditions:     slices.Clone(old),
			}
			setCondition(&st.Conditions, accepted, r.obj.GetGeneration())
			setCondition(&st.Conditions, t.resolved, r.obj.GetGeneration())
			parents = append(parents, st)
			if accepted.Status != metav1.ConditionTrue {
				continue
			}
			for _, l := range ls {
				attachedTo[l] = true
				if !l.ok {
					continue
				}
				for _, h := range intersect(l.hostname(), r.hostnames) {
					if !ownedElsewhere(l, h) {
						targets[[2]string{l.socket, h}] = true
					}
				}
			}
		}
		for l := range attachedTo {
			l.attached++
		}
		if parents != nil {
			p.parents[r.key()] = parents
		}
		for target := range targets {
			for _, c := range t.routes {
				c.socket, c.host = target[0], target[1]
				c.from = r
				c.route.Match.Listeners = []string{c.socket}
				setHost(&c.route.Match, c.host)
				all = append(all, c)
			}
		}
	}
	for _, g := range served {
		all = append(all, catchAlls(g)...)
	}
	slices.SortFunc(all, comparePlaced)
	out := make([]config.Route, 0, len(all))
	taken := map[string]bool{}
	for _, c := range all {
		suffix := fmt.Sprintf("%d-%d-%s", c.rule, c.match, digest(c.socket+"|"+c.host))
		switch {
		case c.suffix != "":
			suffix = c.suffix
		case c.from.kind == kindGRPCRoute:
			suffix = "grpc-" + suffix
		}
		ns, n := c.from.obj.GetNamespace(), c.from.obj.GetName()
		name := config.RouteName(ns, n, suffix, false)
		if taken[name] {
			name = config.RouteName(ns, n, suffix, true)
		}
		taken[name] = true
		c.route.Name = name
		out = append(out, c.route)
	}
	return out
}

// Listener isolation: a request belongs to the most specific listener of
// its socket whose hostname matches its host, and only that listener's
// routes serve it.

// ownedElsewhere reports whether requests for host on l's socket belong to
// another listener of l's Gateway, more specific than l.
func ownedElsewhere(l *listener, host string) bool {
	for _, m := range l.gw.listeners {
		if m != l && m.ok && m.socket == l.socket && moreSpecific(m.hostname(), l.hostname()) && covers(m.hostname(), host) {
			return true
		}
	}
	return false
}

// catchAlls are the routes that answer 404 to the requests of a listener
// with a hostname that none of its routes serves, where a less specific
// listener shares its socket: they must not reach that listener's routes.
func catchAlls(g *gw) []placed {
	var out []placed
	for _, l := range g.listeners {
		h := l.hostname()
		if !l.ok || h == "" {
			continue
		}
		shared := slices.ContainsFunc(g.listeners, func(m *listener) bool {
			return m != l && m.ok && m.socket == l.socket && moreSpecific(h, m.hostname())
		})
		if !shared {
			continue
		}
		c := placed{socket: l.socket, host: h, pathKind: 3, from: &route{obj: g.obj, kind: "Gateway"},
			suffix: "isolate-" + digest(l.socket+"|"+h)}
		c.route.Match = config.Match{PathPrefix: "/", Listeners: []string{l.socket}}
		setHost(&c.route.Match, h)
		c.route.Respond = &config.Respond{Status: 404}
		out = append(out, c)
	}
	return out
}

// covers reports whether a listener with hostname lh ("" for any) takes
// requests for host (a name, or a wildcard for all the names under it).
func covers(lh, host string) bool {
	switch {
	case lh == "":
		return true
	case strings.HasPrefix(lh, "*."):
		return strings.HasSuffix(host, lh[1:]) && len(host) > len(lh)-1
	}
	return lh == host
}

// moreSpecific reports whether listener hostname a is more specific than
// b: a name before a wildcard, a longer wildcard before a shorter one, and
// any before none.
func moreSpecific(a, b string) bool {
	return config.HostRank(a) < config.HostRank(b) || config.HostRank(a) == config.HostRank(b) && config.HostRank(a) == 1 && len(a) > len(b)
}

// attach decides whether route r attaches to Gateway g through ref, and to
// which of its listeners.
func attach(w *world, r *route, ref gwv1.ParentReference, g *gw) (metav1.Condition, []*listener) {
	var named []*listener
	for _, l := range g.listeners {
		if ref.SectionName != nil && l.spec.Name != *ref.SectionName {
			continue
		}
		if ref.Port != nil && l.spec.Port != *ref.Port {
			continue
		}
		named = append(named, l)
	}
	if len(named) == 0 {
		return cond(gwv1.RouteConditionAccepted, false, gwv1.RouteReasonNoMatchingParent,
			"no listener of the Gateway matches the parentRef's sectionName and port"), nil
	}
	var allowed []*listener
	for _, l := range named {
		if l.accepted.Status == metav1.ConditionTrue && l.conflict.Status != metav1.ConditionTrue && allows(w, l, r) {
			allowed = append(allowed, l)
		}
	}
	if len(allowed) == 0 {
		return cond(gwv1.RouteConditionAccepted, false, gwv1.RouteReasonNotAllowedByListeners,
			"no listener of the Gateway allows this route (allowedRoutes)"), nil
	}
	var matching []*listener
	for _, l := range allowed {
		if len(intersect(l.hostname(), r.hostnames)) > 0 {
			matching = append(matching, l)
		}
	}
	if len(matching) == 0 {
		return cond(gwv1.RouteConditionAccepted, false, gwv1.RouteReasonNoMatchingListenerHostname,
			"no hostname of the route matches a listener's hostname"), nil
	}
	return cond(gwv1.RouteConditionAccepted, true, gwv1.RouteReasonAccepted, "route accepted"), matching
}

// allows reports whether listener l takes routes of r's kind from r's
// namespace.
func allows(w *world, l *listener, r *route) bool {
	if !slices.ContainsFunc(l.kinds, func(k gwv1.RouteGroupKind) bool { return string(k.Kind) == r.kind }) {
		return false
	}
	from := gwv1.NamespacesFromSame
	var sel *metav1.LabelSelector
	if a := l.spec.AllowedRoutes; a != nil && a.Namespaces != nil {
		if a.Namespaces.From != nil {
			from = *a.Namespaces.From
		}
		sel = a.Namespaces.Selector
	}
	switch from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSelector:
		if sel == nil {
			return false
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return false
		}
		return s.Matches(labels.Set(w.namespaces[r.obj.GetNamespace()]))
	}
	return r.obj.GetNamespace() == l.gw.obj.Namespace
}

// sameParent reports whether two parent references name the same parent.
func sameParent(a, b gwv1.ParentReference) bool {
	return a.Name == b.Name && samePtr(a.Group, b.Group) && samePtr(a.Kind, b.Kind) &&
		samePtr(a.Namespace, b.Namespace) && samePtr(a.SectionName, b.SectionName) && samePtr(a.Port, b.Port)
}

// samePtr reports whether two optional fields are both unset or equal.
func samePtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// intersect returns the hosts a route with hostnames serves on a listener
// with hostname listenerHost ("" for any): "" for any host, an exact name,
// or a wildcard "*.example.com". Empty: none.
func intersect(listenerHost string, hostnames []gwv1.Hostname) []string {
	if len(hostnames) == 0 {
		return []string{listenerHost}
	}
	var out []string
	add := func(h string) {
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	for _, hn := range hostnames {
		h := strings.ToLower(string(hn))
		switch {
		case listenerHost == "" || h == listenerHost:
			add(h)
		case strings.HasPrefix(listenerHost, "*."):
			suffix := listenerHost[1:]
			if rest, ok := strings.CutPrefix(h, "*."); ok {
				switch {
				case strings.HasSuffix("."+rest, suffix):
					add(h)
				case strings.HasSuffix(suffix, "."+rest):
					add(listenerHost)
				}
			} else if strings.HasSuffix(h, suffix) {
				add(h)
			}
		case strings.HasPrefix(h, "*."):
			if strings.HasSuffix(listenerHost, h[1:]) {
				add(listenerHost)
			}
		}
	}
	return out
}

// setHost makes m match host: "" any, "*.example.com" any name under
// example.com, else that name.
func setHost(m *config.Match, host string) {
	if rest, ok := strings.CutPrefix(host, "*"); ok {
		m.HostSuffix = rest
		return
	}
	m.Host = host
}

// comparePlaced orders routes as the Gateway API asks: by socket (they
// never compete across sockets), then the most specific host, then exact
// paths, the longest prefix, a method, the most header and query
// matches, then the oldest route, its namespace/name, and the rule and
// match order.
func comparePlaced(a, b placed) int {
	return cmp.Or(
		cmp.Compare(a.socket, b.socket),
		cmp.Compare(config.HostRank(a.host), config.HostRank(b.host)),
		cmp.Compare(len(b.host), len(a.host)),
		cmp.Compare(a.pathKind, b.pathKind),
		cmp.Compare(b.pathLen, a.pathLen),
		cmp.Compare(boolRank(a.method), boolRank(b.method)),
		cmp.Compare(b.headers, a.headers),
		cmp.Compare(b.queries, a.queries),
		compareAge(a.from.obj, b.from.obj),
		cmp.Compare(a.from.kind, b.from.kind),
		cmp.Compare(a.rule, b.rule),
		cmp.Compare(a.match, b.match),
	)
}

// compareAge orders objects oldest first, then by namespace/name.
func compareAge(a, b metav1.Object) int {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	return cmp.Or(ta.Compare(tb.Time), cmp.Compare(a.GetNamespace()+"/"+a.GetName(), b.GetNamespace()+"/"+b.GetName()))
}

func boolRank(b bool) int {
	if b {
		return 0
	}
	return 1
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:3])
}

// rules is an HTTPRoute's rules as config routes, before they are placed
// on listeners, with its ResolvedRefs condition and, when the route cannot
// be served, the reason.
type rules struct {
	routes   []placed
	resolved metav1.Condition
	problem  string
}

// translateRules turns the rules of r into config routes (without host and
// listener).
func translateRules(w *world, r *gwv1.HTTPRoute) rules {
	return translate(r, r.Spec.Rules,
		func(ri int, rule gwv1.HTTPRouteRule, set ingress.Settings, t *rules) (config.Route, string) {
			return ruleRoute(w, r, ri, rule, set, t)
		},
		func(rule gwv1.HTTPRouteRule) []gwv1.HTTPRouteMatch { return rule.Matches },
		func(m gwv1.HTTPRouteMatch, c *placed) (config.Match, string) {
			cm, problem := matchOf(m, c)
			if problem == "" {
				c.route.Match = cm
				problem = checkRewrite(c.route)
			}
			return cm, problem
		})
}

// translate turns the rules of route r, of either kind, into config
// routes: base makes a rule's route, matchOf each of its matches (a rule
// without matches has one that matches everything). The first problem
// refuses the whole route.
func translate[R, M any](r metav1.Object, list []R, base func(int, R, ingress.Settings, *rules) (config.Route, string),
	matches func(R) []M, matchOf func(M, *placed) (config.Match, string)) rules {
	t := rules{resolved: cond(gwv1.RouteConditionResolvedRefs, true, gwv1.RouteReasonResolvedRefs, "all references resolved")}
	set, problem := routeAnnotations(r)
	if problem != "" {
		t.problem = problem
		return t
	}
	for ri, rule := range list {
		route, problem := base(ri, rule, set, &t)
		if problem != "" {
			t.problem = fmt.Sprintf("rules[%d]: %s", ri, problem)
			t.routes = nil
			return t
		}
		ms := matches(rule)
		if len(ms) == 0 {
			ms = make([]M, 1)
		}
		for mi, m := range ms {
			c := placed{route: route, rule: ri, match: mi}
			c.route.Match, problem = matchOf(m, &c)
			if problem != "" {
				t.problem = fmt.Sprintf("rules[%d].matches[%d]: %s", ri, mi, problem)
				t.routes = nil
				return t
			}
			t.routes = append(t.routes, c)
		}
	}
	return t
}

// ruleRoute is the config route of one rule, without its match.
func ruleRoute(w *world, r *gwv1.HTTPRoute, ri int, rule gwv1.HTTPRouteRule, set ingress.Settings, t *rules) (config.Route, string) {
	var c config.Route
	set.Apply(&c)
	for fi, f := range rule.Filters {
		if p := applyFilter(&c, f); p != "" {
			return c, fmt.Sprintf("filters[%d]: %s", fi, p)
		}
	}
	if to := rule.Timeouts; to != nil {
		if to.Request != nil {
			d, err := time.ParseDuration(string(*to.Request))
			if err != nil {
				return c, fmt.Sprintf("timeouts.request %q: %v", *to.Request, err)
			}
			c.Timeouts.Request = &d
		}
		if to.BackendRequest != nil {
			d, err := time.ParseDuration(string(*to.BackendRequest))
			if err != nil {
				return c, fmt.Sprintf("timeouts.backendRequest %q: %v", *to.BackendRequest, err)
			}
			c.Timeouts.BackendRequest = &d
		}
	}
	if sp := rule.SessionPersistence; sp != nil {
		if p := persist(&c, r, ri, sp); p != "" {
			return c, "sessionPersistence: " + p
		}
	}
	if c.Redirect != nil {
		return c, ""
	}
	refs := rule.BackendRefs
	return c, setBackends(w, r, kindHTTPRoute, ri, len(refs), func(i int) (gwv1.BackendRef, bool) {
		return refs[i].BackendRef, len(refs[i].Filters) > 0
	}, &c, t)
}

// backend checks one backendRef and returns its Service, or the
// ResolvedRefs reason and message that refuse it.
func backend(w *world, r metav1.Object, routeKind string, b gwv1.BackendRef) (config.WeightedService, gwv1.RouteConditionReason, string) {
	var s config.WeightedService
	group, kind := "", "Service"
	if b.Group != nil {
		group = string(*b.Group)
	}
	if b.Kind != nil {
		kind = string(*b.Kind)
	}
	if group != "" || kind != "Service" {
		return s, gwv1.RouteReasonInvalidKind, fmt.Sprintf("%s/%s is not a Service", group, kind)
	}
	ns := r.GetNamespace()
	if b.Namespace != nil {
		ns = string(*b.Namespace)
	}
	name := string(b.Name)
	if ns != r.GetNamespace() && !granted(w, gwv1.GroupName, routeKind, r.GetNamespace(), "", "Service", ns, name) {
		return s, gwv1.RouteReasonRefNotPermitted, fmt.Sprintf("Service %s/%s is in another namespace and no ReferenceGrant there allows it", ns, name)
	}
	svc := w.services[types.NamespacedName{Namespace: ns, Name: name}]
	if svc == nil {
		return s, gwv1.RouteReasonBackendNotFound, fmt.Sprintf("Service %s/%s not found", ns, name)
	}
	if b.Port == nil {
		return s, gwv1.RouteReasonBackendNotFound, fmt.Sprintf("Service %s/%s: a port is required", ns, name)
	}
	found := false
	for _, p := range svc.Spec.Ports {
		found = found || p.Port == int32(*b.Port)
	}
	if !found {
		return s, gwv1.RouteReasonBackendNotFound, fmt.Sprintf("Service %s/%s has no port %d", ns, name, *b.Port)
	}
	s = config.WeightedService{Namespace: ns, Name: name, Port: strconv.Itoa(int(*b.Port))}
	if b.Weight != nil {
		s.Weight = ptrTo(int(*b.Weight))
	}
	return s, "", ""
}

// applyFilter sets what filter f does on c, or says why it cannot.
func applyFilter(c *config.Route, f gwv1.HTTPRouteFilter) string {
	switch f.Type {
	case gwv1.HTTPRouteFilterRequestHeaderModifier:
		if f.RequestHeaderModifier != nil {
			c.RequestHeaders = headerEdits(*f.RequestHeaderModifier)
		}
	case gwv1.HTTPRouteFilterResponseHeaderModifier:
		if f.ResponseHeaderModifier != nil {
			c.ResponseHeaders = headerEdits(*f.ResponseHeaderModifier)
		}
	case gwv1.HTTPRouteFilterRequestRedirect:
		rr := f.RequestRedirect
		if rr == nil {
			return "requestRedirect is missing"
		}
		if c.Rewrite != nil {
			return "RequestRedirect cannot be combined with URLRewrite"
		}
		d := &config.Redirect{}
		if rr.Scheme != nil {
			d.Scheme = *rr.Scheme
		}
		if rr.Hostname != nil {
			d.Host = string(*rr.Hostname)
		}
		if rr.Port != nil {
			d.Port = int(*rr.Port)
		}
		if rr.StatusCode != nil {
			d.Status = *rr.StatusCode
		}
		if pm := rr.Path; pm != nil {
			switch pm.Type {
			case gwv1.FullPathHTTPPathModifier:
				d.Path = deref(pm.ReplaceFullPath)
			case gwv1.PrefixMatchHTTPPathModifier:
				d.PathPrefix = prefixReplacement(pm.ReplacePrefixMatch)
			}
		}
		c.Redirect = d
	case gwv1.HTTPRouteFilterURLRewrite:
		u := f.URLRewrite
		if u == nil {
			return "urlRewrite is missing"
		}
		if c.Redirect != nil {
			return "URLRewrite cannot be combined with RequestRedirect"
		}
		rw := &config.Rewrite{}
		if u.Hostname != nil {
			rw.Host = string(*u.Hostname)
		}
		if pm := u.Path; pm != nil {
			switch pm.Type {
			case gwv1.FullPathHTTPPathModifier:
				rw.Path = deref(pm.ReplaceFullPath)
			case gwv1.PrefixMatchHTTPPathModifier:
				rw.PathPrefix = prefixReplacement(pm.ReplacePrefixMatch)
			}
		}
		c.Rewrite = rw
	default:
		return fmt.Sprintf("filter type %s is not supported", f.Type)
	}
	return ""
}

// prefixReplacement is a ReplacePrefixMatch as podpin's pathPrefix takes
// it: the spec's empty replacement, which removes the prefix, is "/", which
// gives the same paths.
func prefixReplacement(s *string) string {
	if s == nil || *s == "" {
		return "/"
	}
	return *s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// checkRewrite refuses a prefix replacement on a match that is not a
// path prefix, as the Gateway API does.
func checkRewrite(c config.Route) string {
	prefix := (c.Rewrite != nil && c.Rewrite.PathPrefix != "") || (c.Redirect != nil && c.Redirect.PathPrefix != "")
	if prefix && c.Match.PathPrefix == "" {
		return "ReplacePrefixMatch needs a PathPrefix match"
	}
	return ""
}

func headerEdits(f gwv1.HTTPHeaderFilter) config.HeaderEdits {
	var e config.HeaderEdits
	for _, h := range f.Set {
		if e.Set == nil {
			e.Set = map[string]string{}
		}
		e.Set[string(h.Name)] = h.Value
	}
	for _, h := range f.Add {
		if e.Add == nil {
			e.Add = map[string]string{}
		}
		e.Add[string(h.Name)] = h.Value
	}
	e.Remove = slices.Clone(f.Remove)
	return e
}

// matchOf is the config match of m (without host and listener), and
// records what orders it in c.
func matchOf(m gwv1.HTTPRouteMatch, c *placed) (config.Match, string) {
	var cm config.Match
	pathType, value := gwv1.PathMatchPathPrefix, "/"
	if m.Path != nil {
		if m.Path.Type != nil {
			pathType = *m.Path.Type
		}
		if m.Path.Value != nil {
			value = *m.Path.Value
		}
	}
	switch pathType {
	case gwv1.PathMatchExact:
		cm.Path, c.pathKind = value, 0
	case gwv1.PathMatchPathPrefix:
		cm.PathPrefix, c.pathKind = value, 1
	case gwv1.PathMatchRegularExpression:
		if _, err := regexp.Compile(value); err != nil {
			return cm, fmt.Sprintf("path %q is not a valid regular expression: %v", value, err)
		}
		cm.PathRegex, c.pathKind = value, 2
	default:
		return cm, fmt.Sprintf("path type %s is not supported", pathType)
	}
	c.pathLen = len(value)
	if m.Method != nil {
		cm.Methods = []string{string(*m.Method)}
		c.method = true
	}
	seen := map[string]bool{}
	for _, h := range m.Headers {
		name := strings.ToLower(string(h.Name))
		if seen[name] {
			continue // the first match of a name wins
		}
		seen[name] = true
		if h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression {
			if _, err := regexp.Compile(h.Value); err != nil {
				return cm, fmt.Sprintf("header %s: %q is not a valid regular expression", h.Name, h.Value)
			}
			setMap(&cm.HeaderRegex, string(h.Name), h.Value)
		} else {
			setMap(&cm.Headers, string(h.Name), h.Value)
		}
		c.headers++
	}
	seen = map[string]bool{}
	for _, q := range m.QueryParams {
		name := string(q.Name)
		if seen[name] {
			continue
		}
		seen[name] = true
		if q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression {
			if _, err := regexp.Compile(q.Value); err != nil {
				return cm, fmt.Sprintf("query parameter %s: %q is not a valid regular expression", q.Name, q.Value)
			}
			setMap(&cm.QueryRegex, name, q.Value)
		} else {
			setMap(&cm.Query, name, q.Value)
		}
		c.queries++
	}
	return cm, ""
}

func setMap(m *map[string]string, k, v string) {
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[k] = v
}

// persist sets a rule's session persistence on c: the stick table keys on
// the named header or cookie; a request without one is balanced and given
// a new key (in the header, or as the cookie).
func persist(c *config.Route, r metav1.Object, ri int, sp *gwv1.SessionPersistence) string {
	if sp.AbsoluteTimeout != nil {
		d, err := time.ParseDuration(string(*sp.AbsoluteTimeout))
		if err != nil {
			return fmt.Sprintf("absoluteTimeout %q: %v", *sp.AbsoluteTimeout, err)
		}
		c.Table.AbsoluteTimeout = d
	}
	typ := gwv1.CookieBasedSessionPersistence
	if sp.Type != nil {
		typ = *sp.Type
	}
	c.Sticky.Missing = config.MissingAssign
	switch typ {
	case gwv1.HeaderBasedSessionPersistence:
		if sp.Header == nil || sp.Header.Name == "" {
			return "type Header needs header.name"
		}
		c.Sticky.Header = string(sp.Header.Name)
	case gwv1.CookieBasedSessionPersistence:
		name := "podpin-" + digest(fmt.Sprintf("%s/%s/%d", r.GetNamespace(), r.GetName(), ri))
		sc := &config.SetCookie{Path: "/"}
		if ck := sp.Cookie; ck != nil {
			if ck.Name != nil && *ck.Name != "" {
				name = string(*ck.Name)
			}
			if ck.Path != nil && *ck.Path != "" {
				sc.Path = *ck.Path
			}
			if ck.LifetimeType != nil && *ck.LifetimeType == gwv1.PermanentCookieLifetimeType {
				if c.Table.AbsoluteTimeout <= 0 {
					return "a Permanent cookie needs absoluteTimeout"
				}
				sc.MaxAge = c.Table.AbsoluteTimeout
			}
		}
		c.Sticky.Cookie = name
		c.Sticky.SetCookie = sc
	default:
		return fmt.Sprintf("type %s is not supported", typ)
	}
	return ""
}
