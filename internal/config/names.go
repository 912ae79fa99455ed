package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// MaxRouteName is the longest route name Validate accepts.
const MaxRouteName = 63

// RouteName names the route suffix of the Kubernetes object (an Ingress, an
// HTTPRoute) namespace/name: "<namespace>-<name>-<suffix>". The name
// stays while the suffix does, so a change of the object that keeps the
// suffix keeps the route's stick table. Characters a route name cannot
// hold ('.') become '-'; a name that had to change that way, or is too
// long, ends in a digest of the object's namespace/name instead, as does
// every name when unique is set (two objects whose names would collide).
func RouteName(namespace, name, suffix string, unique bool) string {
	base := namespace + "-" + name
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, base)
	if clean == base && !unique && len(base)+1+len(suffix) <= MaxRouteName {
		return base + "-" + suffix
	}
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	digest := hex.EncodeToString(sum[:4])
	keep := MaxRouteName - len(suffix) - len(digest) - 2
	if len(clean) > keep {
		clean = clean[:keep]
	}
	clean = strings.Trim(clean, "-")
	if clean == "" {
		return digest + "-" + suffix
	}
	return clean + "-" + digest + "-" + suffix
}

// HostRank orders the hosts of routes as Ingress and Gateway API ask: an
// exact host (0) before a wildcard host (1, "*.example.com"), and both
// before no host (2).
func HostRank(host string) int {
	switch {
	case host == "":
		return 2
	case strings.HasPrefix(host, "*"):
		return 1
	}
	return 0
}
