package place

import (
	"bytes"
	"regexp"
	"slices"
	"strings"

	"github.com/podpin/podpin/internal/config"
)

// Match says which requests belong to a route. The zero Match matches
// every request. Each condition set must hold; each unset one matches
// anything.
type Match struct {
	host       []byte // lower case
	hostSuffix []byte // lower case, starting with '.'
	pathPrefix []byte // element-wise
	path       []byte // exact
	pathRegex  *regexp.Regexp
	methods    [][]byte
	headers    []valueMatch // field names, sorted
	query      []valueMatch // parameter names, sorted
	listeners  []string
}

// valueMatch requires the first value of a header field or query
// parameter to equal value, or to match re whole.
type valueMatch struct {
	name  string
	value []byte
	re    *regexp.Regexp // nil: exact
}

func (v *valueMatch) matches(got []byte) bool {
	if v.re != nil {
		return got != nil && v.re.Match(got)
	}
	return bytes.Equal(got, v.value)
}

// NewMatch returns the match c describes (see config.Match). c must be
// valid (config.Validate): its regular expressions compile.
func NewMatch(c config.Match) Match {
	m := Match{host: []byte(strings.ToLower(c.Host)), hostSuffix: []byte(strings.ToLower(c.HostSuffix)), pathPrefix: []byte(c.PathPrefix), path: []byte(c.Path)}
	if c.PathRegex != "" {
		m.pathRegex = wholeRegexp(c.PathRegex)
	}
	for _, method := range c.Methods {
		m.methods = append(m.methods, []byte(method))
	}
	m.headers = valueMatches(c.Headers, c.HeaderRegex)
	m.query = valueMatches(c.Query, c.QueryRegex)
	m.listeners = slices.Clone(c.Listeners)
	return m
}

// valueMatches are the exact and the regular expression matches, sorted by
// name.
func valueMatches(exact, regex map[string]string) []valueMatch {
	var out []valueMatch
	for name, v := range exact {
		out = append(out, valueMatch{name: name, value: []byte(v)})
	}
	for name, re := range regex {
		out = append(out, valueMatch{name: name, re: wholeRegexp(re)})
	}
	slices.SortFunc(out, func(a, b valueMatch) int { return strings.Compare(a.name, b.name) })
	return out
}

// wholeRegexp compiles re (RE2 syntax, checked by config.Validate) to match
// a whole value, as Envoy and Gateway API implementations match paths and
// headers.
func wholeRegexp(re string) *regexp.Regexp {
	return regexp.MustCompile(config.WholeRegexp(re))
}

// Matches reports whether req belongs to the route.
func (m *Match) Matches(req Request) bool {
	if len(m.listeners) > 0 && !slices.Contains(m.listeners, req.Listener()) {
		return false
	}
	if len(m.host) > 0 && !HostEqual(req.Host(), m.host) {
		return false
	}
	if len(m.hostSuffix) > 0 && !HostHasSuffix(req.Host(), m.hostSuffix) {
		return false
	}
	if len(m.pathPrefix) > 0 && !PathHasPrefix(req.Path(), m.pathPrefix) {
		return false
	}
	if len(m.path) > 0 && !bytes.Equal(req.Path(), m.path) {
		return false
	}
	if m.pathRegex != nil && !m.pathRegex.Match(req.Path()) {
		return false
	}
	if len(m.methods) > 0 && !slices.ContainsFunc(m.methods, func(v []byte) bool { return bytes.Equal(v, req.Method()) }) {
		return false
	}
	for i := range m.headers {
		var first []byte
		if vals := req.Header(m.headers[i].name); len(vals) > 0 {
			first = vals[0]
		}
		if !m.headers[i].matches(first) {
			return false
		}
	}
	for i := range m.query {
		if !m.query[i].matches(req.Query(m.query[i].name)) {
			return false
		}
	}
	return true
}

// PathHasPrefix reports whether prefix starts path element by element:
// "/api" starts "/api" and "/api/v1" but not "/apis" (Gateway API
// PathPrefix, Ingress pathType Prefix). A prefix ending in '/' starts
// everything under it.
func PathHasPrefix(path, prefix []byte) bool {
	if !bytes.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// HostHasSuffix reports whether a Host, ignoring any port and case, ends
// with suffix (lower case, starting with '.') and is longer: ".example.com"
// matches a.example.com and a.b.example.com, not example.com (Gateway
// API's wildcard hostnames).
func HostHasSuffix(host, suffix []byte) bool {
	host = hostName(host)
	return len(host) > len(suffix) && bytes.EqualFold(host[len(host)-len(suffix):], suffix)
}

// hostName is a Host without its port.
func hostName(host []byte) []byte {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && !bytes.HasSuffix(host, []byte("]")) {
		return host[:i]
	}
	return host
}

// HostEqual compares a Host, ignoring any port and case, with want (lower
// case). A want of "*.example.com" matches one label in front of
// "example.com".
func HostEqual(host, want []byte) bool {
	host = hostName(host)
	if suffix, ok := bytes.CutPrefix(want, []byte("*")); ok {
		i := bytes.IndexByte(host, '.')
		return i > 0 && bytes.EqualFold(host[i:], suffix)
	}
	return bytes.EqualFold(host, want)
}
