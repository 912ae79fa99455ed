package proxy

import (
	"slices"
	"strings"
)

// listenerHostnames are the hostnames of the Gateway listeners that share
// one TLS listener's address (config.ListenerTLS.Hostnames). A name (a
// connection's TLS server name, a request's Host) chooses the most
// specific one that matches it: the exact name, else the longest wildcard
// it falls under, else the listener without a hostname. Immutable.
type listenerHostnames struct {
	exact     map[string]bool
	wildcards []string // ".example.com" of "*.example.com", longest first
	catchAll  bool     // a listener without a hostname
}

// newListenerHostnames returns the hostnames of names, nil for none.
func newListenerHostnames(names []string) *listenerHostnames {
	if len(names) == 0 {
		return nil
	}
	h := &listenerHostnames{exact: map[string]bool{}}
	for _, n := range names {
		n = strings.ToLower(n)
		switch {
		case n == "":
			h.catchAll = true
		case strings.HasPrefix(n, "*."):
			h.wildcards = append(h.wildcards, n[1:])
		default:
			h.exact[n] = true
		}
	}
	slices.SortFunc(h.wildcards, func(a, b string) int { return len(b) - len(a) })
	return h
}

// pick is the hostname name chooses ("*.example.com" for a wildcard, ""
// for the listener without one); ok is false when none matches.
func (h *listenerHostnames) pick(name string) (hostname string, ok bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if h.exact[name] {
		return name, true
	}
	for _, w := range h.wildcards {
		if len(name) > len(w) && strings.HasSuffix(name, w) {
			return "*" + w, true
		}
	}
	return "", h.catchAll
}

// misdirected reports whether a request for host (a Host, with any port)
// on a TLS connection that asked for serverName belongs to another
// listener than the one the server name chose. A nil h, or a connection
// without a server name, misdirects nothing.
func (h *listenerHostnames) misdirected(serverName, host string) bool {
	if h == nil || serverName == "" {
		return false
	}
	byName, okName := h.pick(serverName)
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	byHost, okHost := h.pick(host)
	return byName != byHost || okName != okHost
}
