package ingress

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/podpin/podpin/internal/config"
)

// spec is the part of an Ingress that decides its routes: converted from the
// API object at the boundary, so the controller never holds on to cached
// objects and a change of status or of an unrelated annotation changes
// nothing here.
type spec struct {
	namespace string
	name      string
	created   time.Time
	// annotations holds the podpin.io/ annotations only.
	annotations    map[string]string
	defaultBackend backendRef // valid when hasDefault
	hasDefault     bool
	rules          []ruleSpec
	// tls are the entries of spec.tls.
	tls []tlsSpec
}

// tlsSpec is one entry of spec.tls: a Secret in the Ingress's namespace and
// the hosts it serves.
type tlsSpec struct {
	hosts  []string
	secret string
}

type ruleSpec struct {
	host  string
	paths []pathSpec
	// noHTTP is set for a rule without an http section.
	noHTTP bool
}

type pathSpec struct {
	path     string
	pathType networkingv1.PathType
	backend  backendRef
}

// backendRef is a Service backend, or names the kind of resource backend
// podpin cannot serve.
type backendRef struct {
	service  string
	port     string // name or number
	resource string // "Kind" of a resource backend; empty for a Service
}

// specOf converts an Ingress. It only reads ing.
func specOf(ing *networkingv1.Ingress) spec {
	s := spec{
		namespace:   ing.Namespace,
		name:        ing.Name,
		created:     ing.CreationTimestamp.Time,
		annotations: map[string]string{},
	}
	for _, t := range ing.Spec.TLS {
		ts := tlsSpec{secret: t.SecretName}
		for _, h := range t.Hosts {
			ts.hosts = append(ts.hosts, strings.ToLower(h))
		}
		s.tls = append(s.tls, ts)
	}
	for k, v := range ing.Annotations {
		if strings.HasPrefix(k, AnnotationPrefix) {
			s.annotations[k] = v
		}
	}
	if b := ing.Spec.DefaultBackend; b != nil {
		s.defaultBackend, s.hasDefault = backendOf(*b), true
	}
	for _, r := range ing.Spec.Rules {
		rs := ruleSpec{host: strings.ToLower(r.Host), noHTTP: r.HTTP == nil}
		if r.HTTP != nil {
			for _, p := range r.HTTP.Paths {
				pt := networkingv1.PathTypeImplementationSpecific
				if p.PathType != nil {
					pt = *p.PathType
				}
				rs.paths = append(rs.paths, pathSpec{path: p.Path, pathType: pt, backend: backendOf(p.Backend)})
			}
		}
		s.rules = append(s.rules, rs)
	}
	return s
}

func backendOf(b networkingv1.IngressBackend) backendRef {
	switch {
	case b.Service != nil:
		port := b.Service.Port.Name
		if port == "" {
			port = strconv.Itoa(int(b.Service.Port.Number))
		}
		return backendRef{service: b.Service.Name, port: port}
	case b.Resource != nil:
		return backendRef{resource: b.Resource.Kind}
	}
	return backendRef{resource: "(none)"}
}

// fingerprint identifies what the routes of an Ingress are made from (fmt
// prints maps sorted by key).
func (s *spec) fingerprint() string {
	return fmt.Sprintf("%+v", *s)
}

func (s *spec) key() string { return s.namespace + "/" + s.name }

// ingressRoute is one route made from an Ingress, before it is named.
type ingressRoute struct {
	// suffix ends the route's name: the position of the path among all the
	// Ingress's paths ("0", "1", ...), or "default" for the default backend.
	suffix string
	// where locates the route's source in the Ingress, for messages.
	where string
	// exact is set for pathType Exact.
	exact bool
	route config.Route
}

// translation is what an Ingress produces.
type translation struct {
	routes []ingressRoute
	// skipped are paths podpin cannot serve; the other paths are served.
	skipped []Problem
	// problems make the whole Ingress invalid: it keeps its last good
	// routes.
	problems []Problem
	// redirect is set when the Ingress's TLS hosts are redirected to https
	// on cleartext listeners.
	redirect bool
}

// hasTLSListener reports whether cfg has a listener that terminates TLS.
func hasTLSListener(cfg *config.Config) bool {
	for _, l := range cfg.Listeners {
		if l.TLS != nil {
			return true
		}
	}
	return false
}

// translate makes the routes of an Ingress and validates them against base,
// the configuration they will join (its routes are ignored).
//
// Each path becomes a route matching its rule's host and its path; the
// default backend becomes a route matching every request. Prefix and
// ImplementationSpecific paths match as prefixes (a trailing '/' is
// dropped, as the Ingress API asks); Exact paths need exact matching from
// the proxy (see pathMatch).
func translate(s spec, base *config.Config) translation {
	var t translation
	set, problems := ParseAnnotations(s.annotations)
	t.problems = problems
	t.redirect = len(s.tls) > 0 && !set.NoSSLRedirect
	if len(s.tls) > 0 && !hasTLSListener(base) {
		t.skipped = append(t.skipped, Problem{Msg: "spec.tls cannot be served: podpin has no TLS listener (listener tls, or --tls-cert); the hosts are served in cleartext, without a redirect"})
		t.redirect = false
	}
	n := 0
	for i, rule := range s.rules {
		if rule.noHTTP {
			continue
		}
		for j, p := range rule.paths {
			where := fmt.Sprintf("spec.rules[%d].http.paths[%d]", i, j)
			suffix := strconv.Itoa(n)
			n++
			if p.backend.resource != "" {
				t.skipped = append(t.skipped, Problem{Msg: fmt.Sprintf("%s: backend resource %s is not supported, only a service; the path is not served", where, p.backend.resource)})
				continue
			}
			r := config.Route{
				Match:   pathMatch(rule.host, p.path, p.pathType),
				Service: &config.Service{Namespace: s.namespace, Name: p.backend.service, Port: p.backend.port},
			}
			set.Apply(&r)
			t.routes = append(t.routes, ingressRoute{suffix: suffix, where: where, exact: p.pathType == networkingv1.PathTypeExact, route: r})
		}
	}
	if s.hasDefault {
		b := s.defaultBackend
		if b.resource != "" {
			t.skipped = append(t.skipped, Problem{Msg: fmt.Sprintf("spec.defaultBackend: backend resource %s is not supported, only a service; it is not served", b.resource)})
		} else {
			r := config.Route{Service: &config.Service{Namespace: s.namespace, Name: b.service, Port: b.port}}
			set.Apply(&r)
			t.routes = append(t.routes, ingressRoute{suffix: "default", where: "spec.defaultBackend", route: r})
		}
	}
	if len(t.problems) == 0 && len(t.routes) > 0 {
		t.problems = validate(t.routes, base)
	}
	return t
}

// pathMatch is the match of an Ingress path: Exact as an exact path;
// Prefix and ImplementationSpecific as an element-wise prefix ("/foo"
// matches "/foo" and "/foo/bar", not "/foobar"), a trailing '/' dropped as
// the Ingress API asks.
func pathMatch(host, path string, pt networkingv1.PathType) config.Match {
	if pt == networkingv1.PathTypeExact {
		return config.Match{Host: host, Path: path}
	}
	if len(path) > 1 {
		path = strings.TrimRight(path, "/")
		if path == "" {
			path = "/"
		}
	}
	return config.Match{Host: host, PathPrefix: path}
}

// validate checks the routes with config.Validate, inside a copy of base,
// and turns its errors into problems that name the annotation or the part
// of the Ingress at fault.
func validate(routes []ingressRoute, base *config.Config) []Problem {
	c := config.Config{}
	if base != nil {
		c = *base
	}
	c.Routes = make([]config.Route, len(routes))
	for i, r := range routes {
		c.Routes[i] = r.route
		c.Routes[i].Name = "r-" + strconv.Itoa(i)
		if r.route.Drain != nil {
			d := *r.route.Drain
			c.Routes[i].Drain = &d
		}
	}
	c.SetDefaults()
	err := c.Validate()
	if err == nil {
		return nil
	}
	var errs config.Errors
	if !errors.As(err, &errs) {
		return []Problem{{Msg: err.Error()}}
	}
	var problems []Problem
	seen := map[Problem]bool{}
	for _, e := range errs {
		p := problemOf(e, routes)
		if !seen[p] {
			seen[p] = true
			problems = append(problems, p)
		}
	}
	return problems
}

var routeField = regexp.MustCompile(`^routes\[(\d+)\]\.?(.*)$`)

// problemOf traces a validation error to an annotation or a path.
func problemOf(e config.FieldError, routes []ingressRoute) Problem {
	if strings.HasPrefix(e.Path, "store.redis") {
		return Problem{Annotation: AnnotationStore, Msg: "redis is not configured for podpin (store.redis in its configuration file)"}
	}
	m := routeField.FindStringSubmatch(e.Path)
	if m == nil {
		return Problem{Msg: e.Error()}
	}
	if a := annotationFor(m[2]); a != "" {
		return Problem{Annotation: a, Msg: e.Msg}
	}
	i, _ := strconv.Atoi(m[1])
	where := "spec"
	if i < len(routes) {
		where = routes[i].where
	}
	return Problem{Msg: fmt.Sprintf("%s: %s: %s", where, m[2], e.Msg)}
}

// placed is a named Ingress route with what orders it.
type placed struct {
	ingressRoute
	spec  *spec
	index int // position among the Ingress's routes
}

// compareRoutes orders routes so that the first match is the most specific, as the
// Ingress API asks: routes with a host before those without, then longer
// paths first, then Exact before Prefix; default backends last. Ties keep
// the older Ingress first, so a new Ingress never takes requests from one
// already serving them.
func compareRoutes(a, b placed) int {
	ad, bd := a.suffix == "default", b.suffix == "default"
	if ad != bd {
		if ad {
			return 1
		}
		return -1
	}
	am, bm := a.route.Match, b.route.Match
	if c := cmp.Compare(config.HostRank(am.Host), config.HostRank(bm.Host)); c != 0 {
		return c
	}
	if config.HostRank(am.Host) == 1 {
		// The longer wildcard is the more specific.
		if c := cmp.Compare(len(bm.Host), len(am.Host)); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(am.Host, bm.Host); c != 0 {
		return c
	}
	if c := cmp.Compare(len(bm.PathPrefix+bm.Path), len(am.PathPrefix+am.Path)); c != 0 {
		return c
	}
	if a.exact != b.exact {
		if a.exact {
			return -1
		}
		return 1
	}
	if c := a.spec.created.Compare(b.spec.created); c != 0 {
		return c
	}
	if c := cmp.Compare(a.spec.key(), b.spec.key()); c != 0 {
		return c
	}
	return cmp.Compare(a.index, b.index)
}

// merge returns the configuration to apply: static (its settings and its
// routes, first and in their order) followed by the routes of the
// Ingresses, ordered by compareRoutes and named by config.RouteName. static is not
// modified.
func merge(static *config.Config, specs []*spec, routes map[string][]ingressRoute) *config.Config {
	c := *static
	c.Routes = slices.Clone(static.Routes)
	taken := map[string]bool{}
	for _, r := range static.Routes {
		taken[r.Name] = true
	}
	// Naming goes from the oldest Ingress to the newest, so on a collision
	// the Ingress that was there first keeps its names.
	specs = slices.Clone(specs)
	slices.SortFunc(specs, func(a, b *spec) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return cmp.Compare(a.key(), b.key())
	})
	var all []placed
	for _, s := range specs {
		rs := routes[s.key()]
		unique := false
		for _, r := range rs {
			if taken[config.RouteName(s.namespace, s.name, r.suffix, false)] {
				unique = true
			}
		}
		for i, r := range rs {
			p := placed{ingressRoute: r, spec: s, index: i}
			p.route.Name = config.RouteName(s.namespace, s.name, r.suffix, unique)
			for n := 2; taken[p.route.Name]; n++ {
				p.route.Name = config.RouteName(s.namespace, s.name, r.suffix+"-"+strconv.Itoa(n), true)
			}
			taken[p.route.Name] = true
			all = append(all, p)
		}
	}
	slices.SortStableFunc(all, compareRoutes)
	for _, p := range all {
		c.Routes = append(c.Routes, p.route)
	}
	return &c
}
