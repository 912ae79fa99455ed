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
}

func newAccess(addr, token string) access {
	a := access{}
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

// authorized reports whether the request carries the token, or none is
// needed. Both sides are hashed first, so the constant-time comparison does
// not reveal the token's length either.
func (a access) authorized(r *http.Request) bool {
	if !a.hasToken {
		return true
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1
}
