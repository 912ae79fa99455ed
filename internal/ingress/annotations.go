package ingress

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// AnnotationPrefix starts every annotation podpin reads on an Ingress.
const AnnotationPrefix = "podpin.io/"

// The annotations, each setting one field of every route made from the
// Ingress. Unset: the field's default from the configuration reference.
const (
	AnnotationStickyHeader     = AnnotationPrefix + "sticky-header"       // sticky.header
	AnnotationStickyCookie     = AnnotationPrefix + "sticky-cookie"       // sticky.cookie
	AnnotationStickyQuery      = AnnotationPrefix + "sticky-query"        // sticky.query
	AnnotationStickyClientIP   = AnnotationPrefix + "sticky-client-ip"    // sticky.clientIP
	AnnotationMissingKey       = AnnotationPrefix + "missing-key"         // sticky.missing
	AnnotationLearn            = AnnotationPrefix + "learn"               // sticky.learn
	AnnotationBalancer         = AnnotationPrefix + "balancer"            // balancer
	AnnotationIdleTimeout      = AnnotationPrefix + "idle-timeout"        // table.idleTimeout
	AnnotationAbsoluteTimeout  = AnnotationPrefix + "absolute-timeout"    // table.absoluteTimeout
	AnnotationMaxEntries       = AnnotationPrefix + "max-entries"         // table.maxEntries
	AnnotationDrain            = AnnotationPrefix + "drain"               // drain
	AnnotationStrict           = AnnotationPrefix + "strict"              // strict
	AnnotationStore            = AnnotationPrefix + "store"               // store
	AnnotationNewSessionsPerIP = AnnotationPrefix + "new-sessions-per-ip" // sticky.newSessionsPerIP
	AnnotationNewSessionsBurst = AnnotationPrefix + "new-sessions-burst"  // sticky.newSessionsBurst
	// AnnotationBackendProtocol is what the pods speak, as ingress-nginx's
	// backend-protocol: HTTP, H2C, GRPC (h2c), HTTPS or GRPCS (https),
	// in any case.
	AnnotationBackendProtocol = AnnotationPrefix + "backend-protocol" // pods.protocol
	// AnnotationSetCookie: "true" hands each key podpin mints (missing-key:
	// assign) to the client as the cookie of sticky-cookie, as
	// ingress-nginx's cookie affinity does.
	AnnotationSetCookie = AnnotationPrefix + "set-cookie" // sticky.setCookie
	// AnnotationCookieMaxAge keeps that cookie this long (a duration);
	// unset: a session cookie.
	AnnotationCookieMaxAge = AnnotationPrefix + "cookie-max-age" // sticky.setCookie.maxAge
	// AnnotationSSLRedirect: "false" serves the Ingress's TLS hosts on
	// cleartext listeners too, instead of redirecting them to https.
	AnnotationSSLRedirect = AnnotationPrefix + "ssl-redirect"
)

// annotationFields maps each annotation to the route field it sets, as
// config.Validate names it below routes[i]. It is how a validation error is
// traced back to the annotation that caused it.
var annotationFields = map[string]string{
	AnnotationStickyHeader:     "sticky.header",
	AnnotationStickyCookie:     "sticky.cookie",
	AnnotationStickyQuery:      "sticky.query",
	AnnotationStickyClientIP:   "sticky.clientIP",
	AnnotationMissingKey:       "sticky.missing",
	AnnotationLearn:            "sticky.learn",
	AnnotationBalancer:         "balancer",
	AnnotationIdleTimeout:      "table.idleTimeout",
	AnnotationAbsoluteTimeout:  "table.absoluteTimeout",
	AnnotationMaxEntries:       "table.maxEntries",
	AnnotationDrain:            "drain",
	AnnotationStrict:           "strict",
	AnnotationStore:            "store",
	AnnotationNewSessionsPerIP: "sticky.newSessionsPerIP",
	AnnotationNewSessionsBurst: "sticky.newSessionsBurst",
	AnnotationBackendProtocol:  "pods.protocol",
	AnnotationSetCookie:        "sticky.setCookie",
	AnnotationCookieMaxAge:     "sticky.setCookie.maxAge",
	AnnotationSSLRedirect:      "(no route field: the redirect to https)",
}

// backendProtocols maps the values of AnnotationBackendProtocol, lower
// case, to the protocol podpin speaks to the pods.
var backendProtocols = map[string]string{
	"http":  config.PodHTTP,
	"h2c":   config.PodH2C,
	"grpc":  config.PodH2C,
	"https": config.PodHTTPS,
	"grpcs": config.PodHTTPS,
}

// annotationFor returns the annotation that sets the route field path (as
// in "sticky.header"), or "" when no annotation sets it.
func annotationFor(field string) string {
	for a, f := range annotationFields {
		if f == field {
			return a
		}
	}
	return ""
}

// Problem is one thing wrong with an Ingress. Annotation names the
// annotation at fault; it is empty for a problem in the Ingress's spec.
type Problem struct {
	Annotation string
	Msg        string
}

func (p Problem) String() string {
	if p.Annotation == "" {
		return p.Msg
	}
	return p.Annotation + ": " + p.Msg
}

// Settings are the route fields an object's podpin.io/ annotations set:
// an Ingress's, or an HTTPRoute's (the Gateway controller reads the same
// annotations, and applies them before the rule's sessionPersistence).
type Settings struct {
	sticky   config.Sticky
	balancer string
	table    config.Table
	drain    *bool
	strict   bool
	store    string
	// protocol is pods.protocol: "" for what each pod's port says.
	protocol string
	// NoSSLRedirect turns off the redirect of the TLS hosts to https.
	NoSSLRedirect bool
}

// ParseAnnotations reads the podpin.io/ annotations. It reports every value
// that does not parse and every unknown podpin.io/ annotation (a typo would
// otherwise be silently ignored), in annotation order. Values that parse are
// checked later, by config.Validate, on the routes they produce.
func ParseAnnotations(ann map[string]string) (Settings, []Problem) {
	var s Settings
	var problems []Problem
	bad := func(a, format string, args ...any) {
		problems = append(problems, Problem{Annotation: a, Msg: fmt.Sprintf(format, args...)})
	}
	boolean := func(a, v string, dst *bool) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(a, "%q must be true or false", v)
			return
		}
		*dst = b
	}
	// check records err, if any, as a problem of annotation a.
	check := func(a string, err error) {
		if err != nil {
			problems = append(problems, Problem{Annotation: a, Msg: err.Error()})
		}
	}
	var cookieMaxAge time.Duration
	for _, a := range slices.Sorted(maps.Keys(ann)) {
		if !strings.HasPrefix(a, AnnotationPrefix) {
			continue
		}
		v := strings.TrimSpace(ann[a])
		switch a {
		case AnnotationStickyHeader:
			s.sticky.Header = v
			if v == "" {
				bad(a, "must not be empty")
			}
		case AnnotationStickyCookie:
			s.sticky.Cookie = v
		case AnnotationStickyQuery:
			s.sticky.Query = v
		case AnnotationStickyClientIP:
			boolean(a, v, &s.sticky.ClientIP)
		case AnnotationMissingKey:
			s.sticky.Missing = v
			if v == "" {
				bad(a, "must be one of balance, assign, reject")
			}
		case AnnotationLearn:
			boolean(a, v, &s.sticky.Learn)
		case AnnotationBalancer:
			s.balancer = v
			if v == "" {
				bad(a, "must name a balancer")
			}
		case AnnotationIdleTimeout:
			check(a, positive(v, time.ParseDuration, notDuration, &s.table.IdleTimeout))
		case AnnotationAbsoluteTimeout:
			check(a, positive(v, time.ParseDuration, notDuration, &s.table.AbsoluteTimeout))
		case AnnotationMaxEntries:
			check(a, positive(v, strconv.Atoi, notWhole, &s.table.MaxEntries))
		case AnnotationNewSessionsPerIP:
			check(a, positive(v, finite, notRate, &s.sticky.NewSessionsPerIP))
		case AnnotationNewSessionsBurst:
			check(a, positive(v, strconv.Atoi, notWhole, &s.sticky.NewSessionsBurst))
		case AnnotationDrain:
			var b bool
			boolean(a, v, &b)
			s.drain = &b
		case AnnotationStrict:
			boolean(a, v, &s.strict)
		case AnnotationBackendProtocol:
			p, ok := backendProtocols[strings.ToLower(v)]
			if !ok {
				bad(a, "%q must be one of HTTP, H2C, GRPC, HTTPS, GRPCS", v)
			}
			s.protocol = p
		case AnnotationSetCookie:
			var set bool
			boolean(a, v, &set)
			if set {
				s.sticky.SetCookie = &config.SetCookie{}
			}
		case AnnotationCookieMaxAge:
			check(a, positive(v, time.ParseDuration, notDuration, &cookieMaxAge))
		case AnnotationSSLRedirect:
			redirect := true
			boolean(a, v, &redirect)
			s.NoSSLRedirect = !redirect
		case AnnotationStore:
			s.store = v
			if v == "" {
				bad(a, "must be memory or redis")
			}
		default:
			bad(a, "unknown annotation; podpin reads %s", strings.Join(knownAnnotations(), ", "))
		}
	}
	switch {
	case cookieMaxAge != 0 && s.sticky.SetCookie == nil:
		bad(AnnotationCookieMaxAge, "needs %s: \"true\"", AnnotationSetCookie)
	case cookieMaxAge != 0:
		s.sticky.SetCookie.MaxAge = cookieMaxAge
	}
	return s, problems
}

// What positive says of a value that does not parse.
const (
	notDuration = "is not a duration (such as 90s, 30m or 12h)"
	notWhole    = "must be a whole number"
	notRate     = "must be a number of new sessions per second"
)

// positive parses v with parse into *dst. A value that does not parse is
// reported with invalid; zero or less is refused, because zero would silently
// become the default once defaults are applied.
func positive[T int | float64 | time.Duration](v string, parse func(string) (T, error), invalid string, dst *T) error {
	n, err := parse(v)
	switch {
	case err != nil:
		return fmt.Errorf("%q %s", v, invalid)
	case n <= 0:
		return fmt.Errorf("%q must be positive", v)
	}
	*dst = n
	return nil
}

// finite parses a number that is neither NaN nor infinite.
func finite(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return 0, fmt.Errorf("%q is not finite", v)
	}
	return f, err
}

// knownAnnotations lists the annotation names, sorted.
func knownAnnotations() []string {
	return slices.Sorted(maps.Keys(annotationFields))
}

// Apply sets the route fields the annotations gave.
func (s *Settings) Apply(r *config.Route) {
	r.Sticky = s.sticky
	r.Balancer = s.balancer
	r.Table = s.table
	r.Strict = s.strict
	if s.drain != nil {
		d := *s.drain
		r.Drain = &d
	}
	r.Store = s.store
	r.Pods.Protocol = s.protocol
}
