package gateway

import (
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/ingress"
)

// translateGRPC turns the rules of a GRPCRoute into config routes
// (without host and listener). A gRPC method is the path
// /package.Service/Method, so method matches are path matches; the pods
// are reached over h2c unless podpin.io/backend-protocol says otherwise.
func translateGRPC(w *world, r *gwv1.GRPCRoute) rules {
	return translate(r, r.Spec.Rules,
		func(ri int, rule gwv1.GRPCRouteRule, set ingress.Settings, t *rules) (config.Route, string) {
			return grpcRuleRoute(w, r, ri, rule, set, t)
		},
		func(rule gwv1.GRPCRouteRule) []gwv1.GRPCRouteMatch { return rule.Matches }, grpcMatchOf)
}

// grpcRuleRoute is the config route of one GRPCRoute rule, without its
// match.
func grpcRuleRoute(w *world, r *gwv1.GRPCRoute, ri int, rule gwv1.GRPCRouteRule, set ingress.Settings, t *rules) (config.Route, string) {
	var c config.Route
	set.Apply(&c)
	if c.Pods.Protocol == "" {
		c.Pods.Protocol = config.PodH2C
	}
	for fi, f := range rule.Filters {
		var p string
		switch f.Type {
		case gwv1.GRPCRouteFilterRequestHeaderModifier:
			p = applyFilter(&c, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: f.RequestHeaderModifier})
		case gwv1.GRPCRouteFilterResponseHeaderModifier:
			p = applyFilter(&c, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: f.ResponseHeaderModifier})
		default:
			p = fmt.Sprintf("filter type %s is not supported", f.Type)
		}
		if p != "" {
			return c, fmt.Sprintf("filters[%d]: %s", fi, p)
		}
	}
	if sp := rule.SessionPersistence; sp != nil {
		if p := persist(&c, r, ri, sp); p != "" {
			return c, "sessionPersistence: " + p
		}
	}
	refs := rule.BackendRefs
	return c, setBackends(w, r, kindGRPCRoute, ri, len(refs), func(i int) (gwv1.BackendRef, bool) {
		return refs[i].BackendRef, len(refs[i].Filters) > 0
	}, &c, t)
}

// setBackends sets c's Services from the n backendRefs of rule ri (ref
// gives each, and whether it carries filters of its own, which refuse the
// route: the problem returned). A refused backend is left out, the first
// refusal recorded in t's ResolvedRefs condition; with none left, the rule
// answers 500, as the Gateway API asks.
func setBackends(w *world, r metav1.Object, kind string, ri, n int, ref func(int) (gwv1.BackendRef, bool), c *config.Route, t *rules) string {
	for bi := range n {
		b, filtered := ref(bi)
		if filtered {
			return fmt.Sprintf("backendRefs[%d].filters: filters on a backend are not supported; put them on the rule", bi)
		}
		svc, reason, msg := backend(w, r, kind, b)
		if reason != "" {
			if t.resolved.Status == metav1.ConditionTrue {
				t.resolved = cond(gwv1.RouteConditionResolvedRefs, false, reason, fmt.Sprintf("rules[%d].backendRefs[%d]: %s", ri, bi, msg))
			}
			continue
		}
		c.Services = append(c.Services, svc)
	}
	if len(c.Services) == 0 {
		c.Respond = &config.Respond{Status: 500}
	}
	return ""
}

// grpcMatchOf is the config match of a GRPCRoute match, and records what
// orders it in c: a whole method before a service, and that before a
// regular expression.
func grpcMatchOf(m gwv1.GRPCRouteMatch, c *placed) (config.Match, string) {
	var cm config.Match
	cm.PathPrefix, c.pathKind, c.pathLen = "/", 1, 1
	if mm := m.Method; mm != nil {
		service, method := deref(mm.Service), deref(mm.Method)
		if mm.Type != nil && *mm.Type == gwv1.GRPCMethodMatchRegularExpression {
			re := "/" + or(service, "[^/]+") + "/" + or(method, "[^/]+")
			if _, err := regexp.Compile(re); err != nil {
				return cm, fmt.Sprintf("method: %q is not a valid regular expression: %v", re, err)
			}
			cm.PathPrefix, cm.PathRegex, c.pathKind, c.pathLen = "", re, 2, len(service)+len(method)
		} else {
			switch {
			case service != "" && method != "":
				cm.PathPrefix, cm.Path, c.pathKind = "", "/"+service+"/"+method, 0
			case service != "":
				cm.PathPrefix = "/" + service
			case method != "":
				cm.PathPrefix, cm.PathRegex, c.pathKind = "", "/[^/]+/"+regexp.QuoteMeta(method), 2
			}
			c.pathLen = len(service) + len(method)
		}
	}
	seen := map[string]bool{}
	for _, h := range m.Headers {
		name := strings.ToLower(string(h.Name))
		if seen[name] {
			continue
		}
		seen[name] = true
		if h.Type != nil && *h.Type == gwv1.GRPCHeaderMatchRegularExpression {
			if _, err := regexp.Compile(h.Value); err != nil {
				return cm, fmt.Sprintf("header %s: %q is not a valid regular expression", h.Name, h.Value)
			}
			setMap(&cm.HeaderRegex, string(h.Name), h.Value)
		} else {
			setMap(&cm.Headers, string(h.Name), h.Value)
		}
		c.headers++
	}
	return cm, ""
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// routeAnnotations reads the podpin.io/ annotations of a route; the
// problem, when not empty, refuses it.
func routeAnnotations(r metav1.Object) (ingress.Settings, string) {
	set, problems := ingress.ParseAnnotations(r.GetAnnotations())
	if set.NoSSLRedirect {
		problems = append(problems, ingress.Problem{Annotation: ingress.AnnotationSSLRedirect, Msg: "is for Ingresses: a route redirects with a RequestRedirect filter"})
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.String()
	}
	return set, strings.Join(msgs, "; ")
}
