package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// access holds the listener's access rules. Immutable.
type access struct {
	// loopback is true when the listener only accepts local connections;
	// then the Host header must name it or a localhost alias.
	loopback bool
	// listenHost is the listener's own host, lower case, without brackets.
	listenHost string
	// token is the SHA-256 of the bearer token; hasToken is false without one.
	token    [sha256.Size]byte
	hasToken bool
	// readToken is the SHA-256 of the read-only token; hasReadToken is
	// false without one.
	readToken    [sha256.Size]byte
	hasReadToken bool
	// openMetrics serves /metrics without a token.
	openMetrics bool
}

// level is what a request's credentials allow.
type level int

const (
	levelNone  level = iota // nothing but the open pages
	levelRead               // reads: GET and HEAD, but not the profiler
	levelWrite              // everything
)

func newAccess(addr, token, readToken string, openMetrics bool) access {
	a := access{openMetrics: openMetrics}
	if readToken != "" {
		a.readToken, a.hasReadToken = sha256.Sum256([]byte(readToken)), true
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		a.listenHost = strings.ToLower(host)
		ip, err := netip.ParseAddr(host)
		a.loopback = strings.EqualFold(host, "localhost") || err == nil && ip.IsLoopback()
	}
	if token != "" {
		a.token, a.hasToken = sha256.Sum256([]byte(token)), true
	}
	return a
}

// foreign returns why a request comes from somewhere it must not, or "".
//
// A browser sends Origin with cross-origin requests and with same-origin
// ones that are not GET or HEAD; it is refused unless it names the very host
// the request was sent to, so no other site's page can use the API with the
// operator's network position. On loopback the Host header is checked too:
// a DNS rebinding attack reaches 127.0.0.1 under the attacker's own host
// name, which is neither the listener address nor a localhost alias. Any
// port is accepted with those names, for port forwarding.
func (a access) foreign(r *http.Request) string {
	if a.loopback && !a.localHost(r.Host) {
		return "host not allowed: use the admin address or localhost"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host) {
			return "cross-origin request refused"
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return "cross-origin request refused"
	}
	return ""
}

// localHost reports whether a Host header names this listener or a
// localhost alias.
func (a access) localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return host != "" && host == a.listenHost
}

// level returns what the request's bearer token allows: everything when
// no token is configured. Both sides are hashed first, so the constant-time
// comparison does not reveal a token's length either.
func (a access) level(r *http.Request) level {
	if !a.hasToken {
		return levelWrite
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return levelNone
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	switch {
	case subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1:
		return levelWrite
	case a.hasReadToken && subtle.ConstantTimeCompare(sum[:], a.readToken[:]) == 1:
		return levelRead
	}
	return levelNone
}

// readOnlyRefusal returns why the read-only token may not make the
// request, or "" when it may: it reads (GET, HEAD) anything but the
// profiler, whose dumps show memory and may hold raw session keys.
func readOnlyRefusal(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/debug/pprof/"):
		return "the read-only token cannot use the profiler: it needs the admin token"
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return "the read-only token cannot pin or delete sessions: it needs the admin token"
	}
	return ""
}
