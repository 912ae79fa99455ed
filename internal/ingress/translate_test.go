package ingress

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podpin/podpin/internal/config"
)

// ing builds an Ingress in namespace shop with the given rules.
func ing(name string, ann map[string]string, rules ...networkingv1.IngressRule) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Annotations: ann},
		Spec:       networkingv1.IngressSpec{Rules: rules},
	}
}

func rule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{
		Host:             host,
		IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}},
	}
}

func path(p string, pt networkingv1.PathType, svc string, port any) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: p, PathType: &pt, Backend: svcBackend(svc, port)}
}

func svcBackend(svc string, port any) networkingv1.IngressBackend {
	b := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc}}
	switch p := port.(type) {
	case int:
		b.Service.Port.Number = int32(p)
	case string:
		b.Service.Port.Name = p
	}
	return b
}

const (
	prefix   = networkingv1.PathTypePrefix
	exact    = networkingv1.PathTypeExact
	implSpec = networkingv1.PathTypeImplementationSpecific
)

// base is a defaulted configuration without routes.
func base() *config.Config {
	c := &config.Config{}
	c.SetDefaults()
	return c
}

// brief is the part of a route the translation tests compare.
// brief is a route in short: its path is "=/x" for an exact path and "/x"
// for a prefix.
type brief struct {
	suffix  string
	host    string
	path    string
	service string
}

func briefs(t translation) []brief {
	var out []brief
	for _, r := range t.routes {
		s := r.route.Service
		path := r.route.Match.PathPrefix
		if r.route.Match.Path != "" {
			path = "=" + r.route.Match.Path
		}
		out = append(out, brief{r.suffix, r.route.Match.Host, path, s.Namespace + "/" + s.Name + ":" + s.Port})
	}
	return out
}

func TestIngressTranslation(t *testing.T) {
	tests := []struct {
		name    string
		ing     *networkingv1.Ingress
		want    []brief
		skipped int
	}{
		{
			name: "a prefix path becomes a route matching the rule's host and the path",
			ing:  ing("web", nil, rule("shop.example", path("/cart", prefix, "cart", 80))),
			want: []brief{{"0", "shop.example", "/cart", "shop/cart:80"}},
		},
		{
			name: "a trailing slash of a prefix path is dropped, as the Ingress API asks",
			ing:  ing("web", nil, rule("", path("/cart/", prefix, "cart", 80))),
			want: []brief{{"0", "", "/cart", "shop/cart:80"}},
		},
		{
			name: "the root prefix matches every path",
			ing:  ing("web", nil, rule("", path("/", prefix, "web", 80))),
			want: []brief{{"0", "", "/", "shop/web:80"}},
		},
		{
			name: "ImplementationSpecific is a prefix",
			ing:  ing("web", nil, rule("", path("/api/", implSpec, "api", 80))),
			want: []brief{{"0", "", "/api", "shop/api:80"}},
		},
		{
			name: "an exact path keeps its trailing slash",
			ing:  ing("web", nil, rule("", path("/login/", exact, "auth", 80))),
			want: []brief{{"0", "", "=/login/", "shop/auth:80"}},
		},
		{
			name: "a named service port is kept by name",
			ing:  ing("web", nil, rule("", path("/", prefix, "web", "http"))),
			want: []brief{{"0", "", "/", "shop/web:http"}},
		},
		{
			name: "paths are numbered across rules in order",
			ing: ing("web", nil,
				rule("a.example", path("/", prefix, "a", 80), path("/x", prefix, "x", 80)),
				rule("b.example", path("/", prefix, "b", 80))),
			want: []brief{
				{"0", "a.example", "/", "shop/a:80"},
				{"1", "a.example", "/x", "shop/x:80"},
				{"2", "b.example", "/", "shop/b:80"},
			},
		},
		{
			name: "the default backend becomes a route matching every request",
			ing: func() *networkingv1.Ingress {
				i := ing("web", nil)
				b := svcBackend("fallback", 8080)
				i.Spec.DefaultBackend = &b
				return i
			}(),
			want: []brief{{"default", "", "", "shop/fallback:8080"}},
		},
		{
			name: "a rule without http makes no route",
			ing: ing("web", nil, networkingv1.IngressRule{Host: "a.example"},
				rule("b.example", path("/", prefix, "b", 80))),
			want: []brief{{"0", "b.example", "/", "shop/b:80"}},
		},
		{
			name: "a wildcard host is served",
			ing:  ing("web", nil, rule("*.example", path("/", prefix, "a", 80)), rule("b.example", path("/", prefix, "b", 80))),
			want: []brief{{"0", "*.example", "/", "shop/a:80"}, {"1", "b.example", "/", "shop/b:80"}},
		},
		{
			name: "TLS without a TLS listener is reported and the hosts are still served",
			ing: func() *networkingv1.Ingress {
				i := ing("web", nil, rule("shop.example", path("/", prefix, "web", 80)))
				i.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"shop.example"}, SecretName: "shop-tls"}}
				return i
			}(),
			want:    []brief{{"0", "shop.example", "/", "shop/web:80"}},
			skipped: 1,
		},
		{
			name: "a resource backend is skipped",
			ing: ing("web", nil, rule("", networkingv1.HTTPIngressPath{
				Path: "/static", PathType: new(prefix),
				Backend: networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{APIGroup: new("storage.example"), Kind: "StorageBucket", Name: "assets"}},
			})),
			skipped: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate(specOf(tt.ing), base())
			if len(got.problems) > 0 {
				t.Fatalf("problems: got %v, want none", got.problems)
			}
			if !slices.Equal(briefs(got), tt.want) {
				t.Errorf("routes: got %v, want %v", briefs(got), tt.want)
			}
			if len(got.skipped) != tt.skipped {
				t.Errorf("skipped: got %v, want %d", got.skipped, tt.skipped)
			}
		})
	}
}

func TestIngressAnnotationsSetEveryRoute(t *testing.T) {
	ann := map[string]string{
		AnnotationStickyHeader:                 "X-Cart",
		AnnotationStickyCookie:                 "cart",
		AnnotationStickyQuery:                  "cart",
		AnnotationStickyClientIP:               "true",
		AnnotationMissingKey:                   "assign",
		AnnotationLearn:                        "true",
		AnnotationBalancer:                     "least-sessions",
		AnnotationIdleTimeout:                  "10m",
		AnnotationAbsoluteTimeout:              "12h",
		AnnotationMaxEntries:                   "5000",
		AnnotationDrain:                        "false",
		AnnotationStrict:                       "true",
		AnnotationStore:                        "memory",
		AnnotationNewSessionsPerIP:             "2.5",
		AnnotationNewSessionsBurst:             "20",
		AnnotationBackendProtocol:              "GRPC",
		AnnotationSetCookie:                    "true",
		AnnotationCookieMaxAge:                 "24h",
		"nginx.ingress.kubernetes.io/affinity": "cookie",
	}
	got := translate(specOf(ing("web", ann, rule("", path("/a", prefix, "a", 80), path("/b", prefix, "b", 80)))), base())
	if len(got.problems) > 0 {
		t.Fatalf("problems: got %v, want none", got.problems)
	}
	if len(got.routes) != 2 {
		t.Fatalf("routes: got %d, want 2", len(got.routes))
	}
	for _, r := range got.routes {
		rc := r.route
		want := config.Sticky{Header: "X-Cart", Cookie: "cart", Query: "cart", ClientIP: true, Missing: "assign", Learn: true,
			NewSessionsPerIP: 2.5, NewSessionsBurst: 20}
		if c := rc.Sticky.SetCookie; c == nil || *c != (config.SetCookie{MaxAge: 24 * time.Hour}) {
			t.Errorf("sticky.setCookie: got %+v, want maxAge 24h", c)
		}
		rc.Sticky.SetCookie = nil
		if rc.Sticky != want {
			t.Errorf("sticky: got %+v, want %+v", rc.Sticky, want)
		}
		if rc.Balancer != "least-sessions" {
			t.Errorf("balancer: got %q, want least-sessions", rc.Balancer)
		}
		wantTable := config.Table{IdleTimeout: 10 * time.Minute, AbsoluteTimeout: 12 * time.Hour, MaxEntries: 5000}
		if rc.Table != wantTable {
			t.Errorf("table: got %+v, want %+v", rc.Table, wantTable)
		}
		if rc.Pods.Protocol != config.PodH2C {
			t.Errorf("pods.protocol: got %q, want h2c", rc.Pods.Protocol)
		}
		if rc.DrainEnabled() || !rc.Strict || rc.Store != "memory" {
			t.Errorf("drain, strict, store: got %t, %t, %q, want false, true, memory", rc.DrainEnabled(), rc.Strict, rc.Store)
		}
	}
}

func TestIngressAnnotationValidation(t *testing.T) {
	tests := []struct {
		name string
		ann  map[string]string
		want Problem // the first problem
	}{
		{
			name: "a header name with a space is traced to sticky-header",
			ann:  map[string]string{AnnotationStickyHeader: "X Cart"},
			want: Problem{AnnotationStickyHeader, `"X Cart" is not a valid header name`},
		},
		{
			name: "an empty header is refused rather than defaulted",
			ann:  map[string]string{AnnotationStickyHeader: " "},
			want: Problem{AnnotationStickyHeader, "must not be empty"},
		},
		{
			name: "an unknown balancer lists the balancers",
			ann:  map[string]string{AnnotationBalancer: "fastest"},
			want: Problem{AnnotationBalancer, `"fastest" must be one of `},
		},
		{
			name: "a missing-key policy outside the list is refused",
			ann:  map[string]string{AnnotationMissingKey: "drop"},
			want: Problem{AnnotationMissingKey, `"drop" must be one of balance, assign, reject`},
		},
		{
			name: "a backend protocol outside the list is refused",
			ann:  map[string]string{AnnotationBackendProtocol: "grpc-web"},
			want: Problem{AnnotationBackendProtocol, `"grpc-web" must be one of HTTP, H2C, GRPC, HTTPS, GRPCS`},
		},
		{
			name: "a duration without a unit is refused",
			ann:  map[string]string{AnnotationIdleTimeout: "30"},
			want: Problem{AnnotationIdleTimeout, `"30" is not a duration`},
		},
		{
			name: "a zero idle timeout is refused rather than defaulted",
			ann:  map[string]string{AnnotationIdleTimeout: "0s"},
			want: Problem{AnnotationIdleTimeout, `"0s" must be positive`},
		},
		{
			name: "a negative absolute timeout is refused",
			ann:  map[string]string{AnnotationAbsoluteTimeout: "-1h"},
			want: Problem{AnnotationAbsoluteTimeout, `"-1h" must be positive`},
		},
		{
			name: "max-entries must be a whole number",
			ann:  map[string]string{AnnotationMaxEntries: "1e6"},
			want: Problem{AnnotationMaxEntries, `"1e6" must be a whole number`},
		},
		{
			name: "a zero max-entries is refused rather than defaulted",
			ann:  map[string]string{AnnotationMaxEntries: "0"},
			want: Problem{AnnotationMaxEntries, `"0" must be positive`},
		},
		{
			name: "new-sessions-per-ip must be a number",
			ann:  map[string]string{AnnotationNewSessionsPerIP: "ten"},
			want: Problem{AnnotationNewSessionsPerIP, `"ten" must be a number of new sessions per second`},
		},
		{
			name: "a zero new-sessions-per-ip is refused rather than taken as no cap",
			ann:  map[string]string{AnnotationNewSessionsPerIP: "0"},
			want: Problem{AnnotationNewSessionsPerIP, `"0" must be positive`},
		},
		{
			name: "an infinite new-sessions-per-ip is refused",
			ann:  map[string]string{AnnotationNewSessionsPerIP: "Inf"},
			want: Problem{AnnotationNewSessionsPerIP, `"Inf" must be a number of new sessions per second`},
		},
		{
			name: "new-sessions-burst must be a whole number",
			ann:  map[string]string{AnnotationNewSessionsPerIP: "5", AnnotationNewSessionsBurst: "2.5"},
			want: Problem{AnnotationNewSessionsBurst, `"2.5" must be a whole number`},
		},
		{
			name: "a negative new-sessions-burst is refused",
			ann:  map[string]string{AnnotationNewSessionsPerIP: "5", AnnotationNewSessionsBurst: "-3"},
			want: Problem{AnnotationNewSessionsBurst, `"-3" must be positive`},
		},
		{
			name: "new-sessions-burst without new-sessions-per-ip is traced to the burst",
			ann:  map[string]string{AnnotationNewSessionsBurst: "10"},
			want: Problem{AnnotationNewSessionsBurst, "needs newSessionsPerIP"},
		},
		{
			name: "a burst over the most is traced to new-sessions-burst",
			ann:  map[string]string{AnnotationNewSessionsPerIP: "5", AnnotationNewSessionsBurst: "2000000"},
			want: Problem{AnnotationNewSessionsBurst, "2000000 must be between 0 and 1000000"},
		},
		{
			name: "a boolean must be true or false",
			ann:  map[string]string{AnnotationStrict: "yes"},
			want: Problem{AnnotationStrict, `"yes" must be true or false`},
		},
		{
			name: "a cookie name with '=' is refused",
			ann:  map[string]string{AnnotationStickyCookie: "a=b"},
			want: Problem{AnnotationStickyCookie, `"a=b" is not a valid cookie name`},
		},
		{
			name: "set-cookie needs missing-key: assign",
			ann:  map[string]string{AnnotationStickyCookie: "cart", AnnotationSetCookie: "true"},
			want: Problem{AnnotationSetCookie, "needs sticky.missing: assign"},
		},
		{
			name: "cookie-max-age needs set-cookie",
			ann:  map[string]string{AnnotationCookieMaxAge: "1h"},
			want: Problem{AnnotationCookieMaxAge, `needs podpin.io/set-cookie: "true"`},
		},
		{
			name: "the redis store needs redis in podpin's configuration",
			ann:  map[string]string{AnnotationStore: "redis"},
			want: Problem{AnnotationStore, "redis is not configured"},
		},
		{
			name: "an unknown store is refused",
			ann:  map[string]string{AnnotationStore: "etcd"},
			want: Problem{AnnotationStore, `"etcd" must be memory or redis`},
		},
		{
			name: "a misspelt podpin.io annotation is reported, not ignored",
			ann:  map[string]string{"podpin.io/stick-header": "X-Cart"},
			want: Problem{"podpin.io/stick-header", "unknown annotation; podpin reads podpin.io/absolute-timeout, "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate(specOf(ing("web", tt.ann, rule("", path("/", prefix, "web", 80)))), base())
			if len(got.problems) == 0 {
				t.Fatalf("problems: got none, want %v", tt.want)
			}
			p := got.problems[0]
			if p.Annotation != tt.want.Annotation || !strings.HasPrefix(p.Msg, tt.want.Msg) {
				t.Errorf("problem: got %v, want %v...", p, tt.want)
			}
			if len(got.problems) != 1 {
				t.Errorf("problems: got %d (%v), want 1 for the two routes' one mistake", len(got.problems), got.problems)
			}
		})
	}
}

func TestIngressRouteNames(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	long := strings.Repeat("x", 200)
	tests := []struct {
		name            string
		namespace, ing  string
		suffix          string
		unique          bool
		want, wantStart string
	}{
		{name: "a short name is namespace, ingress and position", namespace: "shop", ing: "web", suffix: "0", want: "shop-web-0"},
		{name: "the default backend ends in default", namespace: "shop", ing: "web", suffix: "default", want: "shop-web-default"},
		{name: "a dotted ingress name gets a digest", namespace: "shop", ing: "web.v2", suffix: "1", wantStart: "shop-web-v2-"},
		{name: "a long name is cut and gets a digest", namespace: "shop", ing: long, suffix: "12", wantStart: "shop-xxxx"},
		{name: "a name made unique gets a digest", namespace: "shop", ing: "web", suffix: "0", unique: true, wantStart: "shop-web-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := config.RouteName(tt.namespace, tt.ing, tt.suffix, tt.unique)
			if !valid.MatchString(got) {
				t.Fatalf("name %q is not a valid route name", got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("name: got %q, want %q", got, tt.want)
			}
			if tt.wantStart != "" && (!strings.HasPrefix(got, tt.wantStart) || !strings.HasSuffix(got, "-"+tt.suffix) || got == tt.wantStart+tt.suffix) {
				t.Errorf("name: got %q, want %q...-<digest>-%s", got, tt.wantStart, tt.suffix)
			}
			if again := config.RouteName(tt.namespace, tt.ing, tt.suffix, tt.unique); again != got {
				t.Errorf("name is not stable: got %q then %q", got, again)
			}
		})
	}
}

// mergeOf translates Ingresses (created a second apart, in order) and
// merges them with static routes.
func mergeOf(t *testing.T, static []config.Route, ings ...*networkingv1.Ingress) *config.Config {
	t.Helper()
	st := base()
	st.Routes = static
	var specs []*spec
	routes := map[string][]ingressRoute{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, in := range ings {
		in.CreationTimestamp = metav1.NewTime(t0.Add(time.Duration(i) * time.Second))
		s := specOf(in)
		tr := translate(s, st)
		if len(tr.problems) > 0 {
			t.Fatalf("%s: %v", s.key(), tr.problems)
		}
		specs = append(specs, &s)
		routes[s.key()] = tr.routes
	}
	c := merge(st, specs, routes)
	c.SetDefaults()
	if err := (config.Rules{RoutesOptional: true}).Validate(c); err != nil {
		t.Fatalf("merged configuration: %v", err)
	}
	return c
}

func names(c *config.Config) []string {
	var out []string
	for _, r := range c.Routes {
		out = append(out, r.Name)
	}
	return out
}

func TestIngressRouteOrder(t *testing.T) {
	withDefault := ing("zz-fallback", nil)
	b := svcBackend("fallback", 80)
	withDefault.Spec.DefaultBackend = &b
	c := mergeOf(t,
		[]config.Route{{Name: "static", Match: config.Match{Headers: map[string]string{"X-Canary": "1"}}, Backends: []config.Backend{{Name: "c", URL: "http://127.0.0.1:1"}}}},
		withDefault,
		ing("any-host", nil, rule("", path("/", prefix, "web", 80), path("/api/v1", prefix, "api", 80))),
		ing("shop", nil, rule("shop.example", path("/", prefix, "web", 80), path("/cart", prefix, "cart", 80), path("/cart", exact, "cart-exact", 80))),
	)
	want := []string{
		"static",                   // static routes first, in file order
		"shop-shop-2",              // host, longest path, Exact before Prefix
		"shop-shop-1",              // host, same path, Prefix
		"shop-shop-0",              // host, shortest path
		"shop-any-host-1",          // no host: longest path first
		"shop-any-host-0",          // no host, "/"
		"shop-zz-fallback-default", // default backends last
	}
	if got := names(c); !slices.Equal(got, want) {
		t.Errorf("order: got %v, want %v", got, want)
	}
}

func TestIngressRouteNamesStayUnique(t *testing.T) {
	older := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a-b", Name: "c"},
		Spec:       networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("one.example", path("/", prefix, "web", 80))}},
	}
	newer := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "b-c"},
		Spec:       networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("two.example", path("/", prefix, "web", 80))}},
	}
	clash := ing("web", nil, rule("three.example", path("/", prefix, "web", 80)))
	c := mergeOf(t, []config.Route{{Name: "shop-web-0", Backends: []config.Backend{{Name: "s", URL: "http://127.0.0.1:1"}}}}, older, newer, clash)
	got := names(c)
	if !slices.Contains(got, "a-b-c-0") {
		t.Errorf("names %v: the older Ingress should keep a-b-c-0", got)
	}
	seen := map[string]bool{}
	for _, n := range got {
		if seen[n] {
			t.Errorf("names %v: %q twice", got, n)
		}
		seen[n] = true
	}
	if got[0] != "shop-web-0" {
		t.Errorf("names %v: the static route should keep its name, first", got)
	}
}

func TestBackendProtocolAnnotationNamesWhatThePodsSpeak(t *testing.T) {
	for v, want := range map[string]string{
		"HTTP":  config.PodHTTP,
		"h2c":   config.PodH2C,
		"GRPC":  config.PodH2C,
		"Https": config.PodHTTPS,
		"GRPCS": config.PodHTTPS,
	} {
		got := translate(specOf(ing("web", map[string]string{AnnotationBackendProtocol: v}, rule("", path("/", prefix, "web", 80)))), base())
		if len(got.problems) > 0 || len(got.routes) != 1 {
			t.Fatalf("%s: got problems %v and %d routes, want none and 1", v, got.problems, len(got.routes))
		}
		if p := got.routes[0].route.Pods.Protocol; p != want {
			t.Errorf("%s: got pods.protocol %q, want %q", v, p, want)
		}
	}
	got := translate(specOf(ing("web", nil, rule("", path("/", prefix, "web", 80)))), base())
	if p := got.routes[0].route.Pods.Protocol; p != "" {
		t.Errorf("without the annotation: got pods.protocol %q, want \"\" (each pod's appProtocol)", p)
	}
}
