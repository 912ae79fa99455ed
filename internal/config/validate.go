package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/podpin/podpin/internal/balance"
	"github.com/podpin/podpin/internal/certs"
)

// FieldError is one invalid setting: the field path and what is wrong.
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// Errors is every problem found in one configuration, in field order.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

var (
	routeName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	podName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)
)

// Validate checks a configuration after SetDefaults. It returns nil or an
// Errors value listing every problem with its field path.
func (c *Config) Validate() error { return Rules{}.Validate(c) }

// Validate checks c after SetDefaults under the rules. It returns nil or an
// Errors value listing every problem with its field path.
func (r Rules) Validate(c *Config) error {
	var v validator
	if len(c.Listeners) == 0 {
		v.add("listeners", "at least one listener is required")
	}
	for i, l := range c.Listeners {
		v.hostPort(fmt.Sprintf("listeners[%d].address", i), l.Address)
		v.prefixes(fmt.Sprintf("listeners[%d].trustedProxies", i), l.TrustedProxies)
		v.prefixes(fmt.Sprintf("listeners[%d].proxyProtocolSources", i), l.ProxyProtocolSources)
		if len(l.ProxyProtocolSources) > 0 && !l.ProxyProtocol {
			v.add(fmt.Sprintf("listeners[%d].proxyProtocolSources", i), "needs proxyProtocol: true")
		}
		if l.TLS != nil {
			v.listenerTLS(fmt.Sprintf("listeners[%d].tls", i), l.TLS)
		}
		if l.EventLoop != nil && *l.EventLoop && l.ProxyProtocol {
			v.add(fmt.Sprintf("listeners[%d].eventLoop", i), "serves listeners without proxyProtocol only")
		}
		if l.EventLoop != nil && *l.EventLoop && runtime.GOOS != "linux" {
			v.add(fmt.Sprintf("listeners[%d].eventLoop", i), "needs Linux (epoll)")
		}
	}
	v.hostPort("admin.address", c.Admin.Address)
	switch a := c.Admin; {
	case a.TokenFile != "" && a.TokenEnv != "":
		v.add("admin.tokenEnv", "set either admin.tokenFile or admin.tokenEnv, not both")
	case a.TokenEnv != "" && strings.ContainsAny(a.TokenEnv, "= \t\n"):
		v.add("admin.tokenEnv", fmt.Sprintf("%q is not an environment variable name", a.TokenEnv))
	case !a.HasToken() && a.Address != "" && !a.IsLoopback():
		v.add("admin.tokenFile", tokenRequired(a.Address))
	}
	switch a := c.Admin; {
	case a.ReadTokenFile != "" && a.ReadTokenEnv != "":
		v.add("admin.readTokenEnv", "set either admin.readTokenFile or admin.readTokenEnv, not both")
	case a.ReadTokenEnv != "" && strings.ContainsAny(a.ReadTokenEnv, "= \t\n"):
		v.add("admin.readTokenEnv", fmt.Sprintf("%q is not an environment variable name", a.ReadTokenEnv))
	case (a.ReadTokenFile != "" || a.ReadTokenEnv != "") && !a.HasToken():
		v.add("admin.readTokenFile", "a read-only token needs a token for writes too (set admin.tokenFile or admin.tokenEnv): without one, every request may write")
	}
	v.oneOf("admin.metrics", c.Admin.Metrics, MetricsToken, MetricsOpen)
	v.oneOf("log.format", c.Log.Format, LogText, LogJSON)
	if h := c.PodHeaderName(); h != "" {
		v.headerName("podHeader", h)
	}
	u := c.Upstream
	v.positive("upstream.connectTimeout", int64(u.ConnectTimeout))
	v.positive("upstream.responseTimeout", int64(u.ResponseTimeout))
	v.positive("upstream.idleConnTimeout", int64(u.IdleConnTimeout))
	v.positive("upstream.maxConnsPerPod", int64(u.MaxConnsPerPod))

	l := c.Limits
	v.positive("limits.headerTimeout", int64(l.HeaderTimeout))
	v.positive("limits.idleTimeout", int64(l.IdleTimeout))
	v.positive("limits.bodyTimeout", int64(l.BodyTimeout))
	if l.MaxHeaderBytes < 1024 || l.MaxHeaderBytes > 1<<20 {
		v.add("limits.maxHeaderBytes", fmt.Sprintf("%d must be between 1024 and 1048576", l.MaxHeaderBytes))
	}
	if l.MaxHeaders < 1 || l.MaxHeaders > 10000 {
		v.add("limits.maxHeaders", fmt.Sprintf("%d must be between 1 and 10000", l.MaxHeaders))
	}
	v.positive("limits.maxConnections", int64(l.MaxConnections))
	if l.MaxConcurrentStreams < 1 || l.MaxConcurrentStreams > 10000 {
		v.add("limits.maxConcurrentStreams", fmt.Sprintf("%d must be between 1 and 10000", l.MaxConcurrentStreams))
	}
	if l.MaxConnsPerIP < 0 {
		v.add("limits.maxConnsPerIP", "must not be negative (0 means no cap)")
	}
	if l.MaxBodyBytes < 0 {
		v.add("limits.maxBodyBytes", "must not be negative (0 means no bound)")
	}
	if l.TableEntries < 0 {
		v.add("limits.tableEntries", "must not be negative (0 means derived from the memory limit)")
	}
	switch {
	case math.IsNaN(l.NewSessionsPerIP) || l.NewSessionsPerIP < 0 || math.IsInf(l.NewSessionsPerIP, 0):
		v.add("limits.newSessionsPerIP", "must be a number, not negative (0 means no cap)")
	case l.NewSessionsBurst < 0 || l.NewSessionsBurst > 1_000_000:
		v.add("limits.newSessionsBurst", fmt.Sprintf("%d must be between 0 and 1000000", l.NewSessionsBurst))
	case l.NewSessionsBurst > 0 && l.NewSessionsPerIP == 0:
		v.add("limits.newSessionsBurst", "needs newSessionsPerIP")
	}
	switch k := c.KeySecret; {
	case k.File != "" && k.Env != "":
		v.add("keySecret.env", "set either keySecret.file or keySecret.env, not both")
	case k.Env != "" && strings.ContainsAny(k.Env, "= \t\n"):
		v.add("keySecret.env", fmt.Sprintf("%q is not an environment variable name", k.Env))
	}

	v.positive("shutdown.drainTimeout", int64(c.Shutdown.DrainTimeout))
	if c.Shutdown.Delay < 0 {
		v.add("shutdown.delay", "must not be negative")
	}
	v.positive("state.interval", int64(c.State.Interval))

	switch c.Store.Type {
	case StoreMemory, StoreRedis:
	default:
		v.add("store.type", fmt.Sprintf("%q must be memory or redis", c.Store.Type))
	}
	if c.UsesRedis() {
		c.Store.Redis.validate(&v, "store.redis")
	}

	if len(c.Routes) == 0 && !r.RoutesOptional {
		v.add("routes", "at least one route is required")
	}
	seen := map[string]int{}
	for i := range c.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		rt := &c.Routes[i]
		if prev, dup := seen[rt.Name]; dup && rt.Name != "" {
			v.add(path+".name", fmt.Sprintf("%q is already the name of routes[%d]", rt.Name, prev))
		}
		seen[rt.Name] = i
		rt.validate(&v, path)
		for j, addr := range rt.Match.Listeners {
			if !slices.ContainsFunc(c.Listeners, func(l Listener) bool { return l.Address == addr }) {
				v.add(fmt.Sprintf("%s.match.listeners[%d]", path, j), fmt.Sprintf("%q is not the address of a listener", addr))
			}
		}
	}
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

func (r *Route) validate(v *validator, path string) {
	switch {
	case r.Name == "":
		v.add(path+".name", "is required")
	case !routeName.MatchString(r.Name):
		v.add(path+".name", fmt.Sprintf("%q must be lower case letters, digits and '-', at most 63", r.Name))
	}
	if p := r.Match.PathPrefix; p != "" && !strings.HasPrefix(p, "/") {
		v.add(path+".match.pathPrefix", fmt.Sprintf("%q must start with '/'", p))
	}
	if p := r.Match.Path; p != "" && !strings.HasPrefix(p, "/") {
		v.add(path+".match.path", fmt.Sprintf("%q must start with '/'", p))
	}
	if r.Match.Path != "" && r.Match.PathPrefix != "" {
		v.add(path+".match.path", "cannot be combined with pathPrefix")
	}
	if h := r.Match.Host; strings.ContainsAny(h, ":/ ") || strings.Contains(strings.TrimPrefix(h, "*."), "*") {
		v.add(path+".match.host", fmt.Sprintf("%q must be a host name without port or scheme, or *.domain", h))
	}
	switch h := r.Match.HostSuffix; {
	case h == "":
	case r.Match.Host != "":
		v.add(path+".match.hostSuffix", "cannot be combined with host")
	case len(h) < 2 || h[0] != '.' || strings.ContainsAny(h, ":/ *") || strings.Contains(h, ".."):
		v.add(path+".match.hostSuffix", fmt.Sprintf("%q must be '.' and a domain, such as .example.com", h))
	}
	for _, name := range slices.Sorted(maps.Keys(r.Match.Headers)) {
		v.headerName(fmt.Sprintf("%s.match.headers[%q]", path, name), name)
	}
	v.match(path+".match", r.Match)

	sources := 0
	for _, set := range []bool{len(r.Backends) > 0, r.Service != nil, len(r.Services) > 0, r.DNS != nil} {
		if set {
			sources++
		}
	}
	v.filters(path, r)
	switch {
	case r.Redirect != nil && sources > 0:
		v.add(path+".redirect", "a route that redirects has no pods: remove its backends, service, services or dns")
	case r.Respond != nil && sources > 0:
		v.add(path+".respond", "a route that responds by itself has no pods: remove its backends, service, services or dns")
	case r.Redirect != nil || r.Respond != nil:
	case sources == 0:
		v.add(path+".backends", "a route needs pods: backends, service, services or dns")
	case sources > 1:
		v.add(path, "give only one of backends, service, services and dns")
	}
	if s := r.Service; s != nil {
		v.service(path+".service", *s)
	}
	positive := false
	seen := map[Service]bool{}
	for i, ws := range r.Services {
		sp := fmt.Sprintf("%s.services[%d]", path, i)
		v.service(sp, ws.Ref())
		if seen[ws.Ref()] {
			v.add(sp, fmt.Sprintf("%s/%s port %s is listed twice", ws.Namespace, ws.Name, ws.Port))
		}
		seen[ws.Ref()] = true
		switch w := ws.WeightOrDefault(); {
		case w < 0 || w > 1_000_000:
			v.add(sp+".weight", fmt.Sprintf("%d must be between 0 and 1000000", w))
		case w > 0:
			positive = true
		}
	}
	if len(r.Services) > 0 && !positive {
		v.add(path+".services", "at least one Service needs a weight above 0, or no pod takes new sessions")
	}
	if d := r.DNS; d != nil {
		if d.Name == "" {
			v.add(path+".dns.name", "is required")
		}
		if d.Port < 0 || d.Port > 65535 || (d.Port == 0 && !strings.HasPrefix(d.Name, "_")) {
			v.add(path+".dns.port", "is required unless name is an SRV name (_service._proto.name)")
		}
		v.positive(path+".dns.interval", int64(d.Interval))
	}
	names := map[string]int{}
	for i, b := range r.Backends {
		bp := fmt.Sprintf("%s.backends[%d]", path, i)
		if b.Name == "" {
			v.add(bp+".name", "is required")
		} else if prev, dup := names[b.Name]; dup {
			v.add(bp+".name", fmt.Sprintf("%q is already the name of backends[%d]", b.Name, prev))
		}
		names[b.Name] = i
		if b.Name != "" && !podName.MatchString(b.Name) {
			v.add(bp+".name", fmt.Sprintf("%q must be letters, digits, '.', '_' and '-', starting with a letter or digit", b.Name))
		}
		if _, err := BackendAddress(b.URL); err != nil {
			v.add(bp+".url", err.Error())
		}
		if b.Weight < 1 || b.Weight > 1000 {
			v.add(bp+".weight", fmt.Sprintf("%d must be between 1 and 1000", b.Weight))
		}
		switch b.State {
		case "ready", "draining", "not-ready":
		default:
			v.add(bp+".state", fmt.Sprintf("%q must be one of ready, draining, not-ready", b.State))
		}
	}

	r.validatePods(v, path)

	s := r.Sticky
	v.headerName(path+".sticky.header", s.Header)
	if s.Cookie != "" && strings.ContainsAny(s.Cookie, "=; \t,") {
		v.add(path+".sticky.cookie", fmt.Sprintf("%q is not a valid cookie name", s.Cookie))
	}
	if s.Query != "" && strings.ContainsAny(s.Query, "=&# ") {
		v.add(path+".sticky.query", fmt.Sprintf("%q is not a valid query parameter name", s.Query))
	}
	if s.MaxKeyBytes < 1 || s.MaxKeyBytes > 4096 {
		v.add(path+".sticky.maxKeyBytes", fmt.Sprintf("%d must be between 1 and 4096", s.MaxKeyBytes))
	}
	switch s.Missing {
	case MissingBalance, MissingAssign, MissingReject:
	default:
		v.add(path+".sticky.missing", fmt.Sprintf("%q must be one of balance, assign, reject", s.Missing))
	}
	if c := s.SetCookie; c != nil {
		cp := path + ".sticky.setCookie"
		switch {
		case s.Missing != MissingAssign:
			v.add(cp, "needs sticky.missing: assign (it hands out the keys podpin mints)")
		case s.Cookie == "":
			v.add(cp, "needs sticky.cookie: the name of the cookie")
		}
		if c.Path != "" && !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, ";\r\n") {
			v.add(cp+".path", fmt.Sprintf("%q must start with '/' and hold no ';'", c.Path))
		}
		if c.MaxAge != 0 && c.MaxAge < time.Second {
			v.add(cp+".maxAge", fmt.Sprintf("%v must be at least 1s (0: a session cookie)", c.MaxAge))
		}
		switch c.SameSite {
		case "", "Lax", "Strict":
		case "None":
			if c.Secure == nil || !*c.Secure {
				v.add(cp+".sameSite", "None needs secure: true (browsers refuse it otherwise)")
			}
		default:
			v.add(cp+".sameSite", fmt.Sprintf("%q must be one of Lax, Strict, None", c.SameSite))
		}
	}
	switch {
	case math.IsNaN(s.NewSessionsPerIP) || s.NewSessionsPerIP < 0 || math.IsInf(s.NewSessionsPerIP, 0):
		v.add(path+".sticky.newSessionsPerIP", "must be a number, not negative (0 means no cap)")
	case s.NewSessionsBurst < 0 || s.NewSessionsBurst > 1_000_000:
		v.add(path+".sticky.newSessionsBurst", fmt.Sprintf("%d must be between 0 and 1000000", s.NewSessionsBurst))
	case s.NewSessionsBurst > 0 && s.NewSessionsPerIP == 0:
		v.add(path+".sticky.newSessionsBurst", "needs newSessionsPerIP")
	}
	if _, err := balance.New(r.Balancer); err != nil {
		v.add(path+".balancer", fmt.Sprintf("%q must be one of %s", r.Balancer, strings.Join(balance.Names(), ", ")))
	}

	t := r.Table
	v.positive(path+".table.idleTimeout", int64(t.IdleTimeout))
	if t.AbsoluteTimeout < 0 {
		v.add(path+".table.absoluteTimeout", "must not be negative")
	}
	v.positive(path+".table.maxEntries", int64(t.MaxEntries))

	switch r.Store {
	case StoreMemory, StoreRedis:
	default:
		v.add(path+".store", fmt.Sprintf("%q must be memory or redis", r.Store))
	}

	hp := r.Health.Passive
	if hp.ConsecutiveFailures < -1 {
		v.add(path+".health.passive.consecutiveFailures", "must be positive, or -1 to turn passive checks off")
	}
	if hp.Consecutive5xx < 0 {
		v.add(path+".health.passive.consecutive5xx", "must not be negative")
	}
	v.positive(path+".health.passive.baseEjection", int64(hp.BaseEjection))
	if hp.MaxEjection < hp.BaseEjection {
		v.add(path+".health.passive.maxEjection", "must not be shorter than baseEjection")
	}
	if hp.MaxEjectedPercent < 1 || hp.MaxEjectedPercent > 100 {
		v.add(path+".health.passive.maxEjectedPercent", fmt.Sprintf("%d must be between 1 and 100", hp.MaxEjectedPercent))
	}
	ha := r.Health.Active
	if ha.Path != "" && !strings.HasPrefix(ha.Path, "/") {
		v.add(path+".health.active.path", fmt.Sprintf("%q must start with '/'", ha.Path))
	}
	v.positive(path+".health.active.interval", int64(ha.Interval))
	v.positive(path+".health.active.timeout", int64(ha.Timeout))
	v.positive(path+".health.active.healthyThreshold", int64(ha.HealthyThreshold))
	v.positive(path+".health.active.unhealthyThreshold", int64(ha.UnhealthyThreshold))
}

func (r *Redis) validate(v *validator, path string) {
	switch {
	case r.URL == "" && len(r.Addrs) == 0:
		v.add(path, "routes use the redis store: give url or addrs")
	case r.URL != "" && len(r.Addrs) > 0:
		v.add(path, "give url or addrs, not both")
	case r.URL != "":
		u, err := url.Parse(r.URL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			v.add(path+".url", "must be redis://[user:password@]host:port[/db] or rediss://...")
		}
	case r.MasterName == "" && !r.Cluster && len(r.Addrs) != 1:
		v.add(path+".addrs", "one address for a single node; set masterName for Sentinel or cluster for Cluster")
	}
	for i, a := range r.Addrs {
		v.hostPort(fmt.Sprintf("%s.addrs[%d]", path, i), a)
	}
	if r.MasterName != "" && r.Cluster {
		v.add(path+".cluster", "cannot be combined with masterName")
	}
	if r.Cluster && r.DB != 0 {
		v.add(path+".db", "Redis Cluster has only database 0")
	}
	if strings.ContainsAny(r.KeyPrefix, " *?[") {
		v.add(path+".keyPrefix", fmt.Sprintf("%q must not contain spaces or glob characters", r.KeyPrefix))
	}
	v.positive(path+".timeout", int64(r.Timeout))
	v.positive(path+".dialTimeout", int64(r.DialTimeout))
}

// BackendAddress returns host:port of a backend URL (see BackendURL).
func BackendAddress(raw string) (string, error) {
	addr, _, err := BackendURL(raw)
	return addr, err
}

// BackendURL returns host:port and the protocol of a backend URL, which
// must be http://host:port (PodHTTP), h2c://host:port (PodH2C, as Traefik
// writes it) or https://host:port (PodHTTPS), with no path, query or user.
func BackendURL(raw string) (addr, protocol string, err error) {
	if raw == "" {
		return "", "", fmt.Errorf("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("%q is not a URL", raw)
	}
	switch u.Scheme {
	case PodHTTP, PodH2C, PodHTTPS:
	default:
		return "", "", fmt.Errorf("%q must use http://, h2c:// or https://", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q must be %s://host:port with nothing after the port", raw, u.Scheme)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return "", "", fmt.Errorf("%q must name a host and a port", raw)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("%q has an invalid port", raw)
	}
	return u.Host, u.Scheme, nil
}

// validatePods checks a route's pods block: the protocol, and a TLS block that
// can apply and whose CA file reads.
func (r *Route) validatePods(v *validator, path string) {
	p := r.Pods
	switch p.Protocol {
	case "", PodHTTP, PodH2C, PodHTTPS:
	default:
		v.add(path+".pods.protocol", fmt.Sprintf("%q must be one of http, h2c, https, or empty for what each pod says", p.Protocol))
	}
	t := p.TLS
	if t.IsZero() {
		return
	}
	tp := path + ".pods.tls"
	switch {
	case p.Protocol == PodHTTP || p.Protocol == PodH2C:
		v.add(tp, fmt.Sprintf("applies only to pods that speak https, and pods.protocol is %q", p.Protocol))
	case p.Protocol == "" && len(r.Backends) > 0 && !slices.ContainsFunc(r.Backends, func(b Backend) bool {
		_, proto, _ := BackendURL(b.URL)
		return proto == PodHTTPS
	}):
		v.add(tp, "applies only to pods that speak https, and no backend url is https://")
	}
	if n := t.ServerName; n != "" && !validServerName(n) {
		v.add(tp+".serverName", fmt.Sprintf("%q must be a host name or an IP address, without port", n))
	}
	if t.CAFile != "" && t.InsecureSkipVerify {
		v.add(tp+".caFile", "cannot be combined with insecureSkipVerify, which verifies nothing")
	}
	if _, err := t.RootCAs(); err != nil {
		v.add(tp+".caFile", err.Error())
	}
}

// validServerName reports whether s is an IP address or a DNS name
// (letters, digits, '-' and '.', labels of 1 to 63 bytes).
func validServerName(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

type validator struct {
	errs Errors
}

func (v *validator) add(path, msg string) {
	v.errs = append(v.errs, FieldError{Path: path, Msg: msg})
}

func (v *validator) positive(path string, n int64) {
	if n <= 0 {
		v.add(path, "must be positive")
	}
}

// listenerTLS checks a listener's TLS block, and that each certificate's
// files load and match.
func (v *validator) listenerTLS(path string, t *ListenerTLS) {
	v.oneOf(path+".minVersion", t.MinVersion, TLS12, TLS13)
	switch {
	case t.Managed && len(t.Certificates) > 0:
		v.add(path+".certificates", "a listener whose certificates a controller sets takes no certificate files")
	case !t.Managed && len(t.Certificates) == 0:
		v.add(path+".certificates", "at least one certificate is required")
	}
	for j, h := range t.Hostnames {
		if name := strings.TrimPrefix(h, "*."); h != "" && (!validServerName(name) || net.ParseIP(name) != nil) {
			v.add(fmt.Sprintf("%s.hostnames[%d]", path, j), fmt.Sprintf("%q must be a host name, *.domain or empty", h))
		}
	}
	for j, c := range t.Certificates {
		p := fmt.Sprintf("%s.certificates[%d]", path, j)
		switch {
		case c.CertFile == "":
			v.add(p+".certFile", "required")
		case c.KeyFile == "":
			v.add(p+".keyFile", "required")
		default:
			if _, err := os.Stat(c.CertFile); err != nil {
				v.add(p+".certFile", fmt.Sprintf("%q cannot be read: %v", c.CertFile, errors.Unwrap(err)))
			} else if _, err := os.Stat(c.KeyFile); err != nil {
				v.add(p+".keyFile", fmt.Sprintf("%q cannot be read: %v", c.KeyFile, errors.Unwrap(err)))
			} else if err := certs.Validate(certs.Pair{CertFile: c.CertFile, KeyFile: c.KeyFile}); err != nil {
				v.add(p, err.Error())
			}
		}
	}
}

func (v *validator) hostPort(path, addr string) {
	if addr == "" {
		v.add(path, "is required")
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(path, fmt.Sprintf("%q must be host:port", addr))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(path, fmt.Sprintf("%q has an invalid port", addr))
	}
}

// prefixes checks a list of IPs and CIDRs.
func (v *validator) prefixes(path string, list []string) {
	for i, s := range list {
		if _, err := parsePrefix(s); err != nil {
			v.add(fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf("%q is not an IP address or a CIDR such as 10.0.0.0/8", s))
		}
	}
}

// headerName checks an HTTP field name: a token (RFC 9110, section 5.1).
func (v *validator) headerName(path, name string) {
	if name == "" {
		v.add(path, "is required")
		return
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			v.add(path, fmt.Sprintf("%q is not a valid header name", name))
			return
		}
	}
}

func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// oneOf checks that s is one of the allowed values.
func (v *validator) oneOf(path, s string, allowed ...string) {
	if !slices.Contains(allowed, s) {
		v.add(path, fmt.Sprintf("%q must be one of %s", s, strings.Join(allowed, ", ")))
	}
}

// match checks a route's regular expressions, methods and query names.
func (v *validator) match(path string, m Match) {
	if m.PathRegex != "" {
		v.regexp(path+".pathRegex", m.PathRegex)
		if m.Path != "" || m.PathPrefix != "" {
			v.add(path+".pathRegex", "cannot be combined with path or pathPrefix")
		}
	}
	for i, method := range m.Methods {
		if method == "" || strings.ContainsFunc(method, func(c rune) bool { return c > 0x7f || !isTokenChar(byte(c)) }) {
			v.add(fmt.Sprintf("%s.methods[%d]", path, i), fmt.Sprintf("%q is not an HTTP method", method))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.HeaderRegex)) {
		field := fmt.Sprintf("%s.headerRegex[%q]", path, name)
		v.headerName(field, name)
		v.regexp(field, m.HeaderRegex[name])
		for exact := range m.Headers {
			if strings.EqualFold(exact, name) {
				v.add(field, fmt.Sprintf("header %q is also in headers", name))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Query)) {
		if name == "" {
			v.add(path+".query", "a parameter name is empty")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.QueryRegex)) {
		field := fmt.Sprintf("%s.queryRegex[%q]", path, name)
		if name == "" {
			v.add(field, "a parameter name is empty")
		}
		v.regexp(field, m.QueryRegex[name])
		if _, ok := m.Query[name]; ok {
			v.add(field, fmt.Sprintf("parameter %q is also in query", name))
		}
	}
}

// regexp checks that re compiles (RE2 syntax).
func (v *validator) regexp(path, re string) {
	_, err := regexp.Compile(re)
	if err == nil {
		_, err = regexp.Compile(WholeRegexp(re))
	}
	if err != nil {
		v.add(path, fmt.Sprintf("%q is not a regular expression: %v", re, err))
	}
}

// filters checks a route's header edits, rewrite and redirect.
func (v *validator) filters(path string, r *Route) {
	v.headerEdits(path+".requestHeaders", r.RequestHeaders)
	v.headerEdits(path+".responseHeaders", r.ResponseHeaders)
	if rw := r.Rewrite; rw != nil {
		if r.Redirect != nil {
			v.add(path+".rewrite", "cannot be combined with redirect")
		}
		v.newPath(path+".rewrite", rw.Path, rw.PathPrefix, r.Match)
		if rw.Host != "" && !validServerName(rw.Host) {
			v.add(path+".rewrite.host", fmt.Sprintf("%q must be a host name without port or scheme", rw.Host))
		}
	}
	if rs := r.Respond; rs != nil {
		switch {
		case r.Redirect != nil:
			v.add(path+".respond", "cannot be combined with redirect")
		case r.Rewrite != nil:
			v.add(path+".respond", "cannot be combined with rewrite: nothing is forwarded")
		}
		if rs.Status < 200 || rs.Status > 599 {
			v.add(path+".respond.status", fmt.Sprintf("%d must be between 200 and 599", rs.Status))
		}
	}
	t := r.Timeouts
	if t.Request != nil && *t.Request < 0 {
		v.add(path+".timeouts.request", "must not be negative (0 means no bound)")
	}
	if t.BackendRequest != nil && *t.BackendRequest < 0 {
		v.add(path+".timeouts.backendRequest", "must not be negative (0 means no bound)")
	}
	if t.Request != nil && t.BackendRequest != nil && *t.Request > 0 && *t.BackendRequest > *t.Request {
		v.add(path+".timeouts.backendRequest", fmt.Sprintf("%v must not be longer than timeouts.request (%v)", *t.BackendRequest, *t.Request))
	}
	if rd := r.Redirect; rd != nil {
		switch rd.Scheme {
		case "", "http", "https":
		default:
			v.add(path+".redirect.scheme", fmt.Sprintf("%q must be http or https", rd.Scheme))
		}
		if rd.Host != "" && !validServerName(rd.Host) {
			v.add(path+".redirect.host", fmt.Sprintf("%q must be a host name without port or scheme", rd.Host))
		}
		if rd.Port < 0 || rd.Port > 65535 {
			v.add(path+".redirect.port", fmt.Sprintf("%d must be between 1 and 65535", rd.Port))
		}
		switch rd.Status {
		case 0, 301, 302, 303, 307, 308:
		default:
			v.add(path+".redirect.status", fmt.Sprintf("%d must be one of 301, 302, 303, 307, 308", rd.Status))
		}
		v.newPath(path+".redirect", rd.Path, rd.PathPrefix, r.Match)
	}
}

// newPath checks the path and pathPrefix replacements of a rewrite or a
// redirect (at path).
func (v *validator) newPath(path, full, prefix string, m Match) {
	switch {
	case full != "" && prefix != "":
		v.add(path+".path", "cannot be combined with pathPrefix")
	case full != "" && !strings.HasPrefix(full, "/"):
		v.add(path+".path", fmt.Sprintf("%q must start with '/'", full))
	case prefix != "" && !strings.HasPrefix(prefix, "/"):
		v.add(path+".pathPrefix", fmt.Sprintf("%q must start with '/'", prefix))
	case prefix != "" && m.PathPrefix == "":
		v.add(path+".pathPrefix", "needs match.pathPrefix: it replaces what that matched")
	}
	if strings.ContainsAny(full+prefix, "?# \t") {
		v.add(path+".path", "must hold no '?', '#' or white space")
	}
}

// headerEdits checks the names of one set of header edits.
func (v *validator) headerEdits(path string, e HeaderEdits) {
	check := func(field, name string) {
		v.headerName(field, name)
		switch strings.ToLower(name) {
		case "host":
			v.add(field, fmt.Sprintf("%q cannot be edited: rewrite.host sets it", name))
		case "content-length", "transfer-encoding", "connection":
			v.add(field, fmt.Sprintf("%q cannot be edited: podpin frames each message itself", name))
		}
	}
	value := func(field, val string) {
		if strings.ContainsAny(val, "\r\n\x00") {
			v.add(field, "the value holds a line break or NUL")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(e.Set)) {
		check(fmt.Sprintf("%s.set[%q]", path, name), name)
		value(fmt.Sprintf("%s.set[%q]", path, name), e.Set[name])
	}
	for _, name := range slices.Sorted(maps.Keys(e.Add)) {
		check(fmt.Sprintf("%s.add[%q]", path, name), name)
		value(fmt.Sprintf("%s.add[%q]", path, name), e.Add[name])
	}
	for i, name := range e.Remove {
		check(fmt.Sprintf("%s.remove[%d]", path, i), name)
	}
}

// service checks a Service reference.
func (v *validator) service(path string, s Service) {
	if s.Name == "" {
		v.add(path+".name", "is required")
	}
	if s.Port == "" {
		v.add(path+".port", "is required (a port name or number)")
	}
}
