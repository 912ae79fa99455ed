package place

import (
	"bytes"
	"slices"
	"strings"
)

// Match says which requests belong to a route. The zero Match matches
// every request.
type Match struct {
	host       []byte // lower case; empty: any
	pathPrefix []byte // element-wise; empty: any
	path       []byte // exact; empty: any
	headers    []HeaderMatch
}

// HeaderMatch requires a field's first value to equal Value exactly.
type HeaderMatch struct {
	Name  string
	Value string
	value []byte
}

// NewMatch returns the match of host ("*.example.com" matches one label in
// front of example.com), a path prefix (element-wise), an exact path and
// exact header values; each empty one matches anything.
func NewMatch(host, pathPrefix, path string, headers map[string]string) Match {
	m := Match{host: []byte(strings.ToLower(host)), pathPrefix: []byte(pathPrefix), path: []byte(path)}
	for name, v := range headers {
		m.headers = append(m.headers, HeaderMatch{Name: name, Value: v, value: []byte(v)})
	}
	slices.SortFunc(m.headers, func(a, b HeaderMatch) int { return strings.Compare(a.Name, b.Name) })
	return m
}

// Host, PathPrefix and Path are the match's settings, for display.
func (m *Match) Host() string       { return string(m.host) }
func (m *Match) PathPrefix() string { return string(m.pathPrefix) }
func (m *Match) Path() string       { return string(m.path) }

// Headers are the header values the match requires, sorted by name.
func (m *Match) Headers() []HeaderMatch { return m.headers }

// Matches reports whether req belongs to the route.
func (m *Match) Matches(req Request) bool {
	if len(m.host) > 0 && !HostEqual(req.Host(), m.host) {
		return false
	}
	if len(m.pathPrefix) > 0 && !PathHasPrefix(req.Path(), m.pathPrefix) {
		return false
	}
	if len(m.path) > 0 && !bytes.Equal(req.Path(), m.path) {
		return false
	}
	for _, h := range m.headers {
		var first []byte
		if vals := req.Header(h.Name); len(vals) > 0 {
			first = vals[0]
		}
		if !bytes.Equal(first, h.value) {
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

// HostEqual compares a Host, ignoring any port and case, with want (lower
// case). A want of "*.example.com" matches one label in front of
// "example.com".
func HostEqual(host, want []byte) bool {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && !bytes.HasSuffix(host, []byte("]")) {
		host = host[:i]
	}
	if suffix, ok := bytes.CutPrefix(want, []byte("*")); ok {
		i := bytes.IndexByte(host, '.')
		return i > 0 && bytes.EqualFold(host[i:], suffix)
	}
	return bytes.EqualFold(host, want)
}
