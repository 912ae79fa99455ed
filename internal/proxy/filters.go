package proxy

import (
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/config"
)

// filters are what a route changes of the requests it forwards and of
// their answers, or the redirect it answers with (routes[].requestHeaders,
// responseHeaders, rewrite, redirect), ready for both front ends. nil when
// the route changes nothing. Immutable.
type filters struct {
	request, response headerEdits
	rewrite           *config.Rewrite
	redirect          *config.Redirect
	// matched is the route's match.pathPrefix, which a PathPrefix
	// replacement replaces.
	matched string
}

// newFilters returns the filters of rc, nil when it has none.
func newFilters(rc config.Route) *filters {
	if rc.RequestHeaders.Empty() && rc.ResponseHeaders.Empty() && rc.Rewrite == nil && rc.Redirect == nil {
		return nil
	}
	return &filters{
		request:  newHeaderEdits(rc.RequestHeaders),
		response: newHeaderEdits(rc.ResponseHeaders),
		rewrite:  rc.Rewrite,
		redirect: rc.Redirect,
		matched:  rc.Match.PathPrefix,
	}
}

// headerEdits are HeaderEdits with canonical names, in a fixed order.
type headerEdits struct {
	remove   []string
	set, add [][2]string
}

func newHeaderEdits(e config.HeaderEdits) headerEdits {
	var h headerEdits
	for _, name := range e.Remove {
		h.remove = append(h.remove, http.CanonicalHeaderKey(name))
	}
	for _, name := range slices.Sorted(maps.Keys(e.Set)) {
		h.set = append(h.set, [2]string{http.CanonicalHeaderKey(name), e.Set[name]})
	}
	for _, name := range slices.Sorted(maps.Keys(e.Add)) {
		h.add = append(h.add, [2]string{http.CanonicalHeaderKey(name), e.Add[name]})
	}
	return h
}

// fastHeader is what the edits need of a fasthttp request's or response's
// header.
type fastHeader interface {
	Del(key string)
	Set(key, value string)
	Add(key, value string)
}

// applyFast edits a fasthttp header. fasthttp's Set replaces only the
// first field of a name: a set deletes them all first.
func (e *headerEdits) applyFast(h fastHeader) {
	for _, name := range e.remove {
		h.Del(name)
	}
	for _, kv := range e.set {
		h.Del(kv[0])
		h.Set(kv[0], kv[1])
	}
	for _, kv := range e.add {
		h.Add(kv[0], kv[1])
	}
}

// apply edits a net/http header.
func (e *headerEdits) apply(h http.Header) {
	for _, name := range e.remove {
		h.Del(name)
	}
	for _, kv := range e.set {
		h.Set(kv[0], kv[1])
	}
	for _, kv := range e.add {
		h.Add(kv[0], kv[1])
	}
}

// newPath is path with a full or prefix replacement: full replaces it
// whole; prefix replaces the part that matched (element-wise), keeping one
// '/' between the replacement and the rest. Neither: path.
func (f *filters) newPath(path, full, prefix string) string {
	switch {
	case full != "":
		return full
	case prefix == "":
		return path
	}
	rest := strings.TrimPrefix(path, strings.TrimSuffix(f.matched, "/"))
	if strings.HasSuffix(prefix, "/") && strings.HasPrefix(rest, "/") {
		rest = rest[1:]
	}
	if p := prefix + rest; p != "" {
		return p
	}
	return "/"
}

// editRequestFast applies the rewrite and the request edits to a request
// prepared for a pod.
func (f *filters) editRequestFast(req *fasthttp.Request) {
	if rw := f.rewrite; rw != nil {
		if rw.Host != "" {
			req.URI().SetHost(rw.Host)
			req.Header.SetHost(rw.Host)
		}
		if rw.Path != "" || rw.PathPrefix != "" {
			req.URI().SetPath(f.newPath(string(req.URI().Path()), rw.Path, rw.PathPrefix))
		}
	}
	f.request.applyFast(&req.Header)
}

// editRequest applies the rewrite and the request edits to the request for
// a pod of the HTTP/2 front end.
func (f *filters) editRequest(out *http.Request) {
	if rw := f.rewrite; rw != nil {
		if rw.Host != "" {
			out.Host = rw.Host
		}
		if rw.Path != "" || rw.PathPrefix != "" {
			out.URL.Path = f.newPath(out.URL.Path, rw.Path, rw.PathPrefix)
			out.URL.RawPath = ""
		}
	}
	f.request.apply(out.Header)
}

// redirectURL is where the route redirects a request for scheme://host
// (the Host, with any port), path (escaped) and query, which came in on a
// listener of port listener ("" when unknown). Gateway API's rules: the
// port is the redirect's own, else with a scheme that scheme's well-known
// one, else the listener's (the Host's when unknown); a well-known port is
// left out.
func (f *filters) redirectURL(scheme, host, listener, path, query string) string {
	rd := f.redirect
	name, port := host, ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
	} else if l, ok := strings.CutPrefix(host, "["); ok && strings.HasSuffix(l, "]") {
		// A bracketed IPv6 literal without a port: JoinHostPort below
		// brackets it again.
		name = strings.TrimSuffix(l, "]")
	}
	if rd.Host != "" {
		name = rd.Host
	}
	switch {
	case rd.Port != 0:
		port = strconv.Itoa(rd.Port)
	case rd.Scheme != "":
		port = ""
	case listener != "":
		port = listener
	}
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	if port != "" || strings.Contains(name, ":") {
		name = net.JoinHostPort(name, port)
		name = strings.TrimSuffix(name, ":")
	}
	u := scheme + "://" + name + f.newPath(path, rd.Path, rd.PathPrefix)
	if query != "" {
		u += "?" + query
	}
	return u
}

// redirectStatus is the redirect's status: 302 unless set.
func (f *filters) redirectStatus() int {
	if f.redirect.Status != 0 {
		return f.redirect.Status
	}
	return http.StatusFound
}

// respondStatus is the status of a route's respond, 0 without one.
func respondStatus(rs *config.Respond) int {
	if rs == nil {
		return 0
	}
	return rs.Status
}

// respondText is the one-line answer of a route that responds by itself.
func (r *route) respondText() string {
	return strconv.Itoa(r.respond) + " " + http.StatusText(r.respond) + " (route " + strconv.Quote(r.Name) + " answers by itself)"
}

// portOf is the port of a listener's address, "" when it has none.
func portOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return strconv.Itoa(t.Port)
	}
	return ""
}
