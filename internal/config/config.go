// Package config defines podpin's configuration file: its structure, its
// defaults and its validation. Load decodes a YAML file strictly (an unknown
// field is an error), applies defaults and validates; every error names the
// field path, as in `routes[2].table.idleTimeout: must not be negative`.
//
// Rules relax what Load and Validate require (RoutesOptional: an Ingress
// controller's file may have no routes). ParseBackend, ParseService and
// ParseDNS read the short forms the serve flags take.
//
// A Reloader applies the file again on SIGHUP (given as a signal channel),
// and when its content changes, or that of a pods' CA bundle it names,
// checked every second; a configuration
// that does not load or apply is logged field by field and the running one
// stays. Settings read only at start (RestartOnly) keep their running
// values; Live says which changed. It applies through the small Applier
// interface:
//
//	r := config.NewReloader(config.ReloaderOptions{File: path, Apply: proxy, Running: cfg, Signals: hup})
//	go r.Run(ctx)
//
// The request path never reads these structs: the proxy turns them into
// ready-to-use values when a configuration is applied.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Defaults. Each is applied by SetDefaults where the field is zero.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultAdmin           = "127.0.0.1:9901"
	DefaultHeader          = "X-Session"
	DefaultPodHeader       = "X-Podpin-Pod"
	DefaultRoute           = "default"
	DefaultMaxKeyBytes     = 256
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultMaxEntries      = 1_000_000
	DefaultConnectTimeout  = 2 * time.Second
	DefaultResponseTimeout = 60 * time.Second
	DefaultIdleConnTimeout = 90 * time.Second
	DefaultMaxConnsPerPod  = 1024
	DefaultDrainTimeout    = 30 * time.Second
	DefaultStateInterval   = 10 * time.Second
	DefaultDNSInterval     = 5 * time.Second

	DefaultRedisTimeout     = 50 * time.Millisecond
	DefaultRedisDialTimeout = 500 * time.Millisecond

	DefaultConsecutiveFailures = 5
	DefaultBaseEjection        = 30 * time.Second
	DefaultMaxEjection         = 5 * time.Minute
	DefaultMaxEjectedPercent   = 50
	DefaultCheckInterval       = 5 * time.Second
	DefaultCheckTimeout        = time.Second
	DefaultHealthyThreshold    = 2
	DefaultUnhealthyThreshold  = 3

	DefaultHeaderTimeout  = 10 * time.Second
	DefaultClientIdle     = 60 * time.Second
	DefaultBodyTimeout    = 60 * time.Second
	DefaultMaxHeaderBytes = 16 << 10
	DefaultMaxHeaders     = 100
	DefaultMaxConnections = 10000
	DefaultMaxStreams     = 100
)

// Missing-key policies: what a route does with a request that carries no key.
const (
	// MissingBalance forwards the request to a pod chosen by the balancer and
	// pins nothing.
	MissingBalance = "balance"
	// MissingAssign mints a random key, pins it to the chosen pod, passes it to
	// the pod in the key header and returns it in the response header so the
	// client sends it back (Gateway API sessionPersistence of type Header).
	MissingAssign = "assign"
	// MissingReject answers 400.
	MissingReject = "reject"
)

// Config is the whole configuration file.
type Config struct {
	// Listeners are the addresses the proxy accepts client traffic on.
	// Default: one listener on 127.0.0.1:8080.
	Listeners []Listener `yaml:"listeners"`

	// Admin is the operators' listener: health, metrics and the API.
	Admin Admin `yaml:"admin"`

	// Log shapes podpin's own log.
	Log Log `yaml:"log"`

	// PodHeader is the response header that names the pod which served the
	// request. Omitted: "X-Podpin-Pod". An empty string turns it off.
	PodHeader *string `yaml:"podHeader"`

	// Upstream holds the settings for connections to pods.
	Upstream Upstream `yaml:"upstream"`

	// Limits bound what one client connection may cost: timeouts, header
	// and body sizes, connection counts.
	Limits Limits `yaml:"limits"`

	// KeySecret keys the digest of session keys, so table keys (in memory,
	// in snapshots, in Redis) cannot be matched to raw keys by whoever
	// lacks it. Empty: a fixed, public key.
	KeySecret KeySecret `yaml:"keySecret"`

	// Shutdown shapes a graceful stop (SIGTERM).
	Shutdown Shutdown `yaml:"shutdown"`

	// State keeps the stick tables across restarts.
	State State `yaml:"state"`

	// Store says where stick tables live: in memory (default) or shared by
	// every replica through Redis.
	Store Store `yaml:"store"`

	// Routes are tried in order; the first whose match accepts the request
	// serves it. At least one is required.
	Routes []Route `yaml:"routes"`
}

// Shutdown shapes a graceful stop.
type Shutdown struct {
	// Delay is how long podpin keeps serving after /readyz turns false and
	// before it stops accepting, so load balancers and Kubernetes stop
	// sending it traffic first. Default 0.
	Delay time.Duration `yaml:"delay"`
	// DrainTimeout bounds how long in-flight requests may take to finish;
	// upgraded connections (WebSocket) are closed when it runs out.
	// Default 30s.
	DrainTimeout time.Duration `yaml:"drainTimeout"`
}

// Store types.
const (
	StoreMemory = "memory"
	StoreRedis  = "redis"
)

// Store configures the shared table.
type Store struct {
	// Type is the default for routes that set none: memory (default) or
	// redis.
	Type string `yaml:"type"`
	// Redis is the connection used by routes whose store is redis.
	Redis Redis `yaml:"redis"`
}

// Redis configures the connection to Redis (or Valkey): one node, Sentinel
// or Cluster.
type Redis struct {
	// URL is redis://[user:password@]host:port[/db], or rediss:// for TLS: a
	// single node. Use either URL or Addrs.
	URL string `yaml:"url"`
	// Addrs are host:port. With MasterName they are Sentinels; with Cluster
	// they are cluster nodes; otherwise exactly one node.
	Addrs []string `yaml:"addrs"`
	// MasterName selects Sentinel mode: the name of the monitored master.
	MasterName string `yaml:"masterName"`
	// Cluster selects Redis Cluster mode.
	Cluster bool `yaml:"cluster"`
	// Username for Redis ACLs. Default: none (the default user).
	Username string `yaml:"username"`
	// PasswordFile is a file holding the password (trailing newline
	// ignored). Takes precedence over PasswordEnv.
	PasswordFile string `yaml:"passwordFile"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"passwordEnv"`
	// DB is the database number (not in Cluster mode). Default 0.
	DB int `yaml:"db"`
	// TLS turns on TLS to Redis.
	TLS bool `yaml:"tls"`
	// TLSCAFile is a PEM bundle to verify Redis with; default the system's.
	TLSCAFile string `yaml:"tlsCAFile"`
	// TLSServerName overrides the name checked in Redis's certificate.
	TLSServerName string `yaml:"tlsServerName"`
	// KeyPrefix starts every key podpin writes. Default "podpin:".
	KeyPrefix string `yaml:"keyPrefix"`
	// Timeout bounds each Redis call on the request path; past it the
	// request is served from the local table. Calls off the request path
	// (write-backs, expiry refreshes) get at least 2s. Default 50ms.
	Timeout time.Duration `yaml:"timeout"`
	// DialTimeout bounds connecting. Default 500ms.
	DialTimeout time.Duration `yaml:"dialTimeout"`
}

// Password reads the Redis password: from PasswordFile (trailing line
// breaks ignored), else from the variable PasswordEnv names, else "". A
// password file that cannot be read is an error naming the field.
func (r *Redis) Password() (string, error) {
	switch {
	case r.PasswordFile != "":
		b, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return "", FieldError{Path: "store.redis.passwordFile", Msg: err.Error()}
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case r.PasswordEnv != "":
		return os.Getenv(r.PasswordEnv), nil
	}
	return "", nil
}

// RootCAs reads TLSCAFile when TLS is on (TLS, or a rediss:// URL): nil
// when it is not set or TLS is off (the system's roots), an error naming the
// field when it cannot be read or holds no certificate.
func (r *Redis) RootCAs() (*x509.CertPool, error) {
	if r.TLSCAFile == "" || !(r.TLS || strings.HasPrefix(r.URL, "rediss://")) {
		return nil, nil
	}
	pem, err := os.ReadFile(r.TLSCAFile)
	if err != nil {
		return nil, FieldError{Path: "store.redis.tlsCAFile", Msg: err.Error()}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, FieldError{Path: "store.redis.tlsCAFile", Msg: "no certificate in it"}
	}
	return pool, nil
}

// State configures the snapshot file of the stick tables.
type State struct {
	// File is where the tables are saved on shutdown and every Interval, and
	// restored from at start. Empty: tables live in memory only.
	File string `yaml:"file"`
	// Interval between periodic saves. A crash loses at most this much of
	// new sessions. Default 10s.
	Interval time.Duration `yaml:"interval"`
}

// Listener is one address the proxy accepts HTTP/1.1 on.
type Listener struct {
	// Address is host:port. Required.
	Address string `yaml:"address"`
	// TrustedProxies are the addresses (IPs or CIDRs) of load balancers in
	// front of podpin whose forwarding headers it believes. From such a
	// peer, X-Forwarded-Proto, -Host and -Port are passed on as sent, and
	// the client address (client-IP keys, newSessionsPerIP) is the
	// rightmost X-Forwarded-For entry that is not itself trusted. From
	// any other peer podpin writes them itself. X-Forwarded-For is
	// appended to in both cases. Empty: no peer is trusted.
	TrustedProxies []string `yaml:"trustedProxies"`
	// ProxyProtocol expects each connection to open with a PROXY protocol
	// header (version 1 or 2), as an L4 load balancer sends it: the client
	// address it carries becomes the connection's. A connection from a
	// source without a valid header within limits.headerTimeout is
	// closed. Default false.
	ProxyProtocol bool `yaml:"proxyProtocol"`
	// ProxyProtocolSources are the addresses (IPs or CIDRs) that must send
	// the header; connections from other peers are served as they come,
	// without one. Empty: every peer must send it. Only with
	// ProxyProtocol.
	ProxyProtocolSources []string `yaml:"proxyProtocolSources"`
	// TLS, when set, makes the listener terminate TLS: clients speak
	// HTTP/2 or HTTP/1.1 over it, as ALPN settles ("h2", "http/1.1").
	// With ProxyProtocol, the PROXY header comes first, then the
	// handshake. Nil: cleartext.
	TLS *ListenerTLS `yaml:"tls"`
	// HTTP2 offers HTTP/2: ALPN "h2" on a TLS listener, and on a
	// cleartext one h2c with prior knowledge (a connection that opens
	// with the HTTP/2 preface). false: HTTP/1.1 only. Default true.
	HTTP2 *bool `yaml:"http2"`
	// EventLoop serves the listener's HTTP/1.1 connections from event
	// loops, one per processor, each polling its own client connections
	// and the pod connections it opened (Linux only), instead of a
	// goroutine per connection. A request the loops do not serve
	// themselves moves its connection to the goroutine front end, which
	// answers it exactly as on a listener without EventLoop. On a TLS
	// listener, the connections whose handshake chose HTTP/1.1. Listeners
	// without ProxyProtocol only. Default: true where it may be
	// (EventLoopEnabled).
	EventLoop *bool `yaml:"eventLoop"`
}

// EventLoopEnabled reports whether event loops serve the listener's
// HTTP/1.1: EventLoop when set, else on Linux for a listener without the
// PROXY protocol.
func (l *Listener) EventLoopEnabled() bool {
	if l.EventLoop != nil {
		return *l.EventLoop
	}
	return runtime.GOOS == "linux" && !l.ProxyProtocol
}

// TLS versions a listener may require (ListenerTLS.MinVersion).
const (
	TLS12 = "1.2"
	TLS13 = "1.3"
)

// ListenerTLS is a listener's TLS: its certificates and the oldest
// protocol version it accepts. The certificate files are read again when
// they change; the rest takes a restart.
type ListenerTLS struct {
	// Certificates are chosen by the name the client asks for (SNI),
	// wildcards included; the first is the default, for clients that ask
	// for no name or an unknown one. At least one, unless Managed.
	Certificates []Certificate `yaml:"certificates"`
	// MinVersion is the oldest TLS version accepted: "1.2" or "1.3".
	// Default "1.2".
	MinVersion string `yaml:"minVersion"`
	// Managed listeners take their certificates from a controller (a
	// Gateway's listener, from its certificateRefs), through the
	// certs.Source given for the listener's address, and from nothing
	// else: neither files nor the Ingress controller's Secrets. They have
	// no Certificates; until the controller sets some, every handshake
	// fails. Set only by a controller, not in the file.
	Managed bool `yaml:"-"`
	// Hostnames, set by a controller, are the hostnames of the Gateway
	// listeners that share this listener's address: exact names,
	// wildcards ("*.example.com": one label or more) and "" for a
	// listener without one. The TLS server name of a connection and the
	// Host of each request on it choose one of them, the most specific
	// that matches; a request for which they choose different ones gets
	// 421 Misdirected Request (RFC 9110, section 15.5.20), as Gateway API
	// asks. Empty: no such check. Not settable in the file.
	Hostnames []string `yaml:"-"`
}

// Certificate is a PEM certificate chain (leaf first) and its private key.
type Certificate struct {
	// CertFile is the certificate chain's file. Required.
	CertFile string `yaml:"certFile"`
	// KeyFile is the private key's file (PKCS #1, PKCS #8 or EC). Required.
	KeyFile string `yaml:"keyFile"`
}

// HTTP2Enabled reports whether the listener offers HTTP/2 (HTTP2 unset or
// true).
func (l *Listener) HTTP2Enabled() bool { return l.HTTP2 == nil || *l.HTTP2 }

// MinTLSVersion is MinVersion as crypto/tls numbers it; TLS 1.2 for
// anything but "1.3".
func (t *ListenerTLS) MinTLSVersion() uint16 {
	if t.MinVersion == TLS13 {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// ParsePrefixes reads addresses as the listener settings take them: a
// CIDR ("10.0.0.0/8") or a single IP ("10.1.2.3", one address). Entries
// that do not parse are left out; Validate reports them.
func ParsePrefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Admin configures the admin listener.
type Admin struct {
	// Address is host:port of the admin listener. Default "127.0.0.1:9901".
	// An address that is not loopback (an empty host or 0.0.0.0 listens on
	// every interface) requires a token.
	Address string `yaml:"address"`
	// TokenFile is a file holding the bearer token every admin request but
	// /healthz and /readyz must carry; surrounding white space is ignored.
	// It is read at start. Empty: no token from a file.
	TokenFile string `yaml:"tokenFile"`
	// TokenEnv names an environment variable holding the token, as an
	// alternative to TokenFile (set at most one). Empty: none.
	TokenEnv string `yaml:"tokenEnv"`
	// ReadTokenFile is a file holding a read-only bearer token: it reads
	// the session API, /metrics and the console, and is refused (403) for
	// pins, deletes and the profiler. It needs a token (TokenFile or
	// TokenEnv) and is read at start. Empty: no read-only token from a file.
	ReadTokenFile string `yaml:"readTokenFile"`
	// ReadTokenEnv names an environment variable holding the read-only
	// token, as an alternative to ReadTokenFile (set at most one). Empty:
	// none.
	ReadTokenEnv string `yaml:"readTokenEnv"`
	// Metrics says who may read /metrics: "token" (a request carries the
	// token or the read-only token, as for the API) or "open" (anyone who
	// reaches the listener, as Prometheus scrapes). Default "token".
	Metrics string `yaml:"metrics"`
}

// Who may read /metrics (Admin.Metrics).
const (
	MetricsToken = "token"
	MetricsOpen  = "open"
)

// Log configures podpin's own log.
type Log struct {
	// Format is "text" (key=value lines) or "json" (one JSON object a
	// line, for log collectors). Default "text". The --log-format flag
	// overrides it.
	Format string `yaml:"format"`
}

// Log formats (Log.Format).
const (
	LogText = "text"
	LogJSON = "json"
)

// HasToken reports whether a token source is configured.
func (a *Admin) HasToken() bool { return a.TokenFile != "" || a.TokenEnv != "" }

// Token reads the configured token: "" when none is configured on a
// loopback address, an error naming the field when its source is missing or
// empty, or when there is none and the address is not loopback (the API can
// move and drop every session).
func (a *Admin) Token() (string, error) {
	if !a.HasToken() && !a.IsLoopback() {
		return "", FieldError{Path: "admin.tokenFile", Msg: tokenRequired(a.Address)}
	}
	return readToken("admin.tokenFile", a.TokenFile, "admin.tokenEnv", a.TokenEnv)
}

// ReadToken reads the configured read-only token: "" when none is
// configured, an error naming the field when its source is missing or
// empty.
func (a *Admin) ReadToken() (string, error) {
	return readToken("admin.readTokenFile", a.ReadTokenFile, "admin.readTokenEnv", a.ReadTokenEnv)
}

// readToken reads a token from a file or an environment variable, white
// space trimmed; "" when neither is given.
func readToken(filePath, file, envPath, env string) (string, error) {
	switch {
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", FieldError{Path: filePath, Msg: fmt.Sprintf("reading the token: %v", err)}
		}
		t := strings.TrimSpace(string(data))
		if t == "" {
			return "", FieldError{Path: filePath, Msg: fmt.Sprintf("%q is empty", file)}
		}
		return t, nil
	case env != "":
		t := strings.TrimSpace(os.Getenv(env))
		if t == "" {
			return "", FieldError{Path: envPath, Msg: fmt.Sprintf("environment variable %q is unset or empty", env)}
		}
		return t, nil
	}
	return "", nil
}

// tokenRequired says why an admin listener that is not loopback needs a
// token.
func tokenRequired(addr string) string {
	return fmt.Sprintf("a token is required when admin.address %q is not a loopback address (set admin.tokenFile or admin.tokenEnv)", addr)
}

// IsLoopback reports whether the admin address only accepts connections
// from this host: its host is localhost or a loopback IP.
func (a *Admin) IsLoopback() bool {
	host, _, err := net.SplitHostPort(a.Address)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Upstream configures connections from podpin to pods.
type Upstream struct {
	// ConnectTimeout bounds dialing a pod. Default 2s.
	ConnectTimeout time.Duration `yaml:"connectTimeout"`
	// ResponseTimeout bounds the wait for a pod's response headers after the
	// request was sent. Default 60s.
	ResponseTimeout time.Duration `yaml:"responseTimeout"`
	// IdleConnTimeout closes pooled keep-alive connections unused this long.
	// Default 90s.
	IdleConnTimeout time.Duration `yaml:"idleConnTimeout"`
	// MaxConnsPerPod caps open connections to one pod. Default 1024.
	MaxConnsPerPod int `yaml:"maxConnsPerPod"`
}

// Limits bound the cost of client connections. headerTimeout, idleTimeout,
// maxHeaderBytes, maxConnections and maxConnsPerIP take effect at start;
// the others on reload too.
type Limits struct {
	// HeaderTimeout bounds receiving a request's line and headers, from its
	// first byte (or the connection's opening); a client that is slower is
	// disconnected. Default 10s.
	HeaderTimeout time.Duration `yaml:"headerTimeout"`
	// IdleTimeout closes a keep-alive client connection that sends no new
	// request this long. Default 60s.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// BodyTimeout is the longest silence while a request body is read: an
	// inactivity timeout, so a long upload that keeps flowing is not cut.
	// Over HTTP/2 it also bounds how long a response write may wait for
	// the client (a client that reads nothing, or opens no flow-control
	// window): the stream is reset, or the connection closed. Default 60s.
	BodyTimeout time.Duration `yaml:"bodyTimeout"`
	// MaxHeaderBytes bounds a request's line plus headers, in bytes; larger
	// requests get 431. Default 16384.
	MaxHeaderBytes int `yaml:"maxHeaderBytes"`
	// MaxHeaders bounds the number of header fields; more get 431.
	// Default 100.
	MaxHeaders int `yaml:"maxHeaders"`
	// MaxConnections caps open client connections; beyond it new
	// connections get 503 and are closed. Default 10000.
	MaxConnections int `yaml:"maxConnections"`
	// MaxConnsPerIP caps open connections from one client address; beyond
	// it new connections get 429 and are closed. Default 0: no cap.
	MaxConnsPerIP int `yaml:"maxConnsPerIP"`
	// MaxConcurrentStreams caps the HTTP/2 streams one client connection
	// may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); a client
	// that opens more has them refused. Default 100.
	MaxConcurrentStreams int `yaml:"maxConcurrentStreams"`
	// MaxBodyBytes bounds a request body, in bytes; larger ones get 413.
	// Default 0: no bound (bodies stream through).
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// TableEntries is the most entries the stick tables of all routes hold
	// together; when full, a new session evicts one (see docs). Default 0:
	// derived from Go's memory limit (GOMEMLIMIT, which podpin sets to 90%
	// of its container's memory limit), half of it at 160 bytes per entry,
	// plus twice (16 + sticky.maxKeyBytes) when a route keeps raw keys;
	// with no memory limit, no total budget, and each route's
	// table.maxEntries bounds only that route.
	TableEntries int `yaml:"tableEntries"`
	// NewSessionsPerIP is the sticky.newSessionsPerIP of every route that
	// sets none, routes made from Ingresses included (new sessions per
	// second from one client address). Default 0: no cap unless a route
	// sets one.
	NewSessionsPerIP float64 `yaml:"newSessionsPerIP"`
	// NewSessionsBurst is the sticky.newSessionsBurst of the routes that
	// take NewSessionsPerIP and set no burst. Default: NewSessionsPerIP
	// rounded up, at least 1. Used only with NewSessionsPerIP.
	NewSessionsBurst int `yaml:"newSessionsBurst"`
}

// KeySecret says where the session key digest secret is read from. Set at
// most one of File and Env.
type KeySecret struct {
	// File holds the secret; surrounding white space is ignored. Read at
	// start.
	File string `yaml:"file"`
	// Env names an environment variable holding the secret.
	Env string `yaml:"env"`
}

// Read returns the configured secret: nil when none is configured, an error
// naming the field when its source is missing or empty. The secret itself
// never appears in an error.
func (k *KeySecret) Read() ([]byte, error) {
	switch {
	case k.File != "":
		data, err := os.ReadFile(k.File)
		if err != nil {
			return nil, FieldError{Path: "keySecret.file", Msg: fmt.Sprintf("reading the secret: %v", err)}
		}
		s := strings.TrimSpace(string(data))
		if s == "" {
			return nil, FieldError{Path: "keySecret.file", Msg: fmt.Sprintf("%q is empty", k.File)}
		}
		return []byte(s), nil
	case k.Env != "":
		s := strings.TrimSpace(os.Getenv(k.Env))
		if s == "" {
			return nil, FieldError{Path: "keySecret.env", Msg: fmt.Sprintf("environment variable %q is unset or empty", k.Env)}
		}
		return []byte(s), nil
	}
	return nil, nil
}

// Route is one set of pods with its sticky settings.
type Route struct {
	// Name identifies the route in the admin API, in metrics and in table
	// keys. Required; unique; lower case letters, digits and '-'.
	Name string `yaml:"name"`

	// Match selects the requests this route serves. Empty: every request.
	Match Match `yaml:"match"`

	// Backends are the route's static pods. Exactly one of backends,
	// service and dns is required.
	Backends []Backend `yaml:"backends"`

	// Service finds the route's pods from a Kubernetes Service's
	// EndpointSlices.
	Service *Service `yaml:"service"`

	// Services finds the route's pods from several Services, each taking
	// its weight's share of new sessions (Gateway API's backendRefs with
	// weights). Not with Service.
	Services []WeightedService `yaml:"services"`

	// DNS finds the route's pods by resolving a name (a headless Service, or
	// any name) again and again.
	DNS *DNS `yaml:"dns"`

	// Pods says how podpin talks to the route's pods: the protocol, and
	// for pods that speak https, how their certificates are checked.
	Pods Pods `yaml:"pods"`

	// Sticky says where a request's session key comes from and what to do
	// without one.
	Sticky Sticky `yaml:"sticky"`

	// Balancer places new sessions (and keyless requests): round-robin
	// (default), least-conn, least-sessions, random-two or hash.
	Balancer string `yaml:"balancer"`

	// Table sizes the route's stick table and sets its expiry.
	Table Table `yaml:"table"`

	// Strict routes never rebind a session: a request whose pinned pod
	// cannot serve it gets 503. Default false.
	Strict bool `yaml:"strict"`

	// Drain keeps sending a session to its pod while the pod is terminating
	// but still serving; it takes no new sessions meanwhile. With false, such
	// sessions rebind at once (reason "draining"). Default true.
	Drain *bool `yaml:"drain"`

	// Health ejects failing pods from new placements.
	Health Health `yaml:"health"`

	// Store is memory or redis; default the top-level store.type.
	Store string `yaml:"store"`

	// RequestHeaders edits the request's header fields on the way to the
	// pod (Gateway API's RequestHeaderModifier, HAProxy's http-request
	// set-header and del-header).
	RequestHeaders HeaderEdits `yaml:"requestHeaders"`
	// ResponseHeaders edits the pod's answer's header fields on the way to
	// the client (Gateway API's ResponseHeaderModifier).
	ResponseHeaders HeaderEdits `yaml:"responseHeaders"`
	// Rewrite changes the host and path a pod sees (Gateway API's
	// URLRewrite). Not with Redirect.
	Rewrite *Rewrite `yaml:"rewrite"`
	// Redirect answers every request of the route with a redirect instead
	// of forwarding it (Gateway API's RequestRedirect); such a route has
	// no pods.
	Redirect *Redirect `yaml:"redirect"`
	// Respond answers every request of the route with a status of its
	// own instead of forwarding it (Gateway API's 500 for a rule without
	// a valid backend); such a route has no pods. Not with Redirect or
	// Rewrite; its requestHeaders change nothing, its responseHeaders
	// edit the answer.
	Respond *Respond `yaml:"respond"`

	// Timeouts bound how long a request of the route may take (Gateway
	// API's HTTPRoute timeouts). Unset: no bound on the whole request,
	// and upstream.responseTimeout for each pod.
	Timeouts Timeouts `yaml:"timeouts"`
}

// Respond is the answer of a route that answers by itself: the status
// and a one-line text body (a gRPC call gets the gRPC status that maps to
// it).
type Respond struct {
	// Status is the answer's status, 200 to 599. Required.
	Status int `yaml:"status"`
}

// Timeouts bound a request of a route, as Gateway API's HTTPRoute
// timeouts do. A request that is over one before the pod's response
// header came gets 504 (a gRPC call DEADLINE_EXCEEDED); a response whose
// body is still streaming when one runs out is cut off. Upgraded
// connections (WebSocket) are bound only until the upgrade.
type Timeouts struct {
	// Request bounds the whole exchange, from podpin forwarding the
	// request (once it chose the pod, right after the request's header
	// came) to the end of the response, a second pod after a refused
	// connection included. Nil or 0: no bound.
	Request *time.Duration `yaml:"request"`
	// BackendRequest bounds each attempt with a pod, from sending the
	// request to the end of the response; it replaces
	// upstream.responseTimeout for the route. At most Request. Nil:
	// upstream.responseTimeout, as an inactivity timeout; 0: no bound.
	BackendRequest *time.Duration `yaml:"backendRequest"`
}

// HeaderEdits change header fields: Remove first, then Set (replacing
// every field of the name), then Add (appending one). Names are
// case-insensitive; the framing fields and Host cannot be edited (see
// Rewrite for the host).
type HeaderEdits struct {
	Set    map[string]string `yaml:"set"`
	Add    map[string]string `yaml:"add"`
	Remove []string          `yaml:"remove"`
}

// Empty reports whether e edits nothing.
func (e *HeaderEdits) Empty() bool { return len(e.Set) == 0 && len(e.Add) == 0 && len(e.Remove) == 0 }

// Rewrite changes what the pod sees of a request's target.
type Rewrite struct {
	// Host replaces the Host (the pod sees the client's in
	// X-Forwarded-Host).
	Host string `yaml:"host"`
	// Path replaces the whole path; the query is kept.
	Path string `yaml:"path"`
	// PathPrefix replaces the part of the path that match.pathPrefix
	// matched: with pathPrefix /shop and this /store, /shop/cart becomes
	// /store/cart. Needs match.pathPrefix; not with Path.
	PathPrefix string `yaml:"pathPrefix"`
}

// Redirect is the redirect a route answers with: the request's own URL
// with the parts set here replaced.
type Redirect struct {
	// Scheme is http or https. Default: the request's.
	Scheme string `yaml:"scheme"`
	// Host replaces the request's host. Default: the request's.
	Host string `yaml:"host"`
	// Port is the port of the new URL. Default: with Scheme, the
	// scheme's own (left out of the URL); without, the request's. A
	// scheme's own port is always left out.
	Port int `yaml:"port"`
	// Path replaces the whole path; PathPrefix the part match.pathPrefix
	// matched (see Rewrite.PathPrefix). At most one.
	Path       string `yaml:"path"`
	PathPrefix string `yaml:"pathPrefix"`
	// Status is 301, 302 (default), 303, 307 or 308.
	Status int `yaml:"status"`
}

// DrainEnabled reports the effective Drain setting.
func (r *Route) DrainEnabled() bool { return r.Drain == nil || *r.Drain }

// Health configures passive and active health checking of a route's pods.
type Health struct {
	Passive Passive `yaml:"passive"`
	Active  Active  `yaml:"active"`
}

// Passive is outlier detection from live traffic, after Envoy's: a pod that
// fails ConsecutiveFailures requests in a row is ejected for BaseEjection
// times the number of its ejections, at most MaxEjection. An ejected pod
// takes no new sessions; a session pinned to it rebinds (reason "ejected")
// when its next request comes while the pod is out, and keeps its pod if it
// does not come back until the pod returns.
type Passive struct {
	// ConsecutiveFailures is how many connect failures, resets and timeouts
	// in a row eject a pod. Default 5; -1 turns passive checking off.
	ConsecutiveFailures int `yaml:"consecutiveFailures"`
	// Consecutive5xx is how many 5xx answers in a row eject a pod. Default 0:
	// answers do not eject (an application error on one session should not
	// move every session off its pod).
	Consecutive5xx int `yaml:"consecutive5xx"`
	// BaseEjection is the first ejection's length. Default 30s.
	BaseEjection time.Duration `yaml:"baseEjection"`
	// MaxEjection caps an ejection's length. Default 5m.
	MaxEjection time.Duration `yaml:"maxEjection"`
	// MaxEjectedPercent caps the share of a route's pods ejected at once
	// (one pod may always be ejected). Default 50.
	MaxEjectedPercent int `yaml:"maxEjectedPercent"`
}

// Active is periodic HTTP health checking.
type Active struct {
	// Path is requested with GET on each pod; a 2xx or 3xx answer is a pass.
	// Empty: no active checks.
	Path string `yaml:"path"`
	// Interval between checks of one pod. Default 5s.
	Interval time.Duration `yaml:"interval"`
	// Timeout of one check. Default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// HealthyThreshold passes in a row bring a pod back. Default 2.
	HealthyThreshold int `yaml:"healthyThreshold"`
	// UnhealthyThreshold failures in a row take a pod out. Default 3.
	UnhealthyThreshold int `yaml:"unhealthyThreshold"`
}

// Match selects requests. Every given condition must hold.
type Match struct {
	// Host is the request's host, without port, compared case-insensitively.
	// "*.example.com" matches exactly one label in front of example.com
	// (as in Ingress). Empty: any host.
	Host string `yaml:"host"`
	// HostSuffix, which starts with '.', must end the request's host
	// (without port, compared case-insensitively), and the host must be
	// longer: ".example.com" matches a.example.com and a.b.example.com,
	// not example.com (Gateway API's wildcard hostname "*.example.com",
	// which matches one or more labels). Cannot be combined with Host.
	// Empty: any host.
	HostSuffix string `yaml:"hostSuffix"`
	// PathPrefix must start the request path, element by element as in
	// Gateway API and Ingress pathType Prefix: "/api" matches "/api" and
	// "/api/v1" but not "/apis". Empty: any path.
	PathPrefix string `yaml:"pathPrefix"`
	// Path must equal the request path (Ingress pathType Exact). Cannot be
	// combined with PathPrefix.
	Path string `yaml:"path"`
	// PathRegex is a regular expression (RE2 syntax) that must match the
	// whole request path (Gateway API's RegularExpression path match).
	// Cannot be combined with Path or PathPrefix.
	PathRegex string `yaml:"pathRegex"`
	// Methods, when set, are the request methods the route serves, as
	// sent (methods are case-sensitive). Empty: any method.
	Methods []string `yaml:"methods"`
	// Headers maps header names to the exact value the first field of
	// that name must carry.
	Headers map[string]string `yaml:"headers"`
	// HeaderRegex maps header names to a regular expression (RE2) the
	// first field of that name must match whole. A name cannot be in both
	// Headers and HeaderRegex.
	HeaderRegex map[string]string `yaml:"headerRegex"`
	// Query maps query parameter names (case-sensitive) to the exact value
	// the first parameter of that name must carry.
	Query map[string]string `yaml:"query"`
	// QueryRegex maps query parameter names to a regular expression (RE2)
	// the first parameter of that name must match whole.
	QueryRegex map[string]string `yaml:"queryRegex"`
	// Listeners, when set, are the listeners (by address, as in
	// listeners[].address) whose requests the route serves. Empty: every
	// listener's.
	Listeners []string `yaml:"listeners"`
}

// WholeRegexp is re anchored to match a whole value: what podpin compiles
// for pathRegex, headerRegex and queryRegex.
func WholeRegexp(re string) string { return "^(?:" + re + ")$" }

// WeightedService is one of a route's Services, with its share of new
// sessions.
type WeightedService struct {
	// Namespace, Name and Port are as in Service.
	Namespace string `yaml:"namespace"`
	Name      string `yaml:"name"`
	Port      string `yaml:"port"`
	// Weight is the Service's share of new sessions, relative to the
	// others': its pods together take Weight/sum of the new sessions.
	// 0: its pods keep their sessions and take no new ones. Default 1.
	Weight *int `yaml:"weight"`
}

// Ref is the Service named.
func (w *WeightedService) Ref() Service {
	return Service{Namespace: w.Namespace, Name: w.Name, Port: w.Port}
}

// WeightOrDefault is Weight, 1 when unset.
func (w *WeightedService) WeightOrDefault() int {
	if w.Weight == nil {
		return 1
	}
	return *w.Weight
}

// Service names a Kubernetes Service whose ready endpoints are the pods.
type Service struct {
	// Namespace of the Service. Default "default".
	Namespace string `yaml:"namespace"`
	// Name of the Service. Required.
	Name string `yaml:"name"`
	// Port is the Service port, by name or number; its target port (named
	// or numeric) is resolved per endpoint. Required.
	Port string `yaml:"port"`
}

// DNS names a host whose addresses are the pods.
type DNS struct {
	// Name to resolve: A/AAAA records, or SRV records when Port is empty
	// ("_http._tcp.web.default.svc.cluster.local"). Required.
	Name string `yaml:"name"`
	// Port of every address from A/AAAA records. Required unless Name is an
	// SRV name.
	Port int `yaml:"port"`
	// Interval between resolutions. Default 5s.
	Interval time.Duration `yaml:"interval"`
}

// Protocols podpin speaks to pods (Pods.Protocol, and the protocol of
// each endpoint discovery reports).
const (
	// PodHTTP is HTTP/1.1 in cleartext.
	PodHTTP = "http"
	// PodH2C is HTTP/2 in cleartext with prior knowledge (RFC 9113,
	// section 3.3), as gRPC servers speak it.
	PodH2C = "h2c"
	// PodHTTPS is TLS to the pod, its certificate verified (see PodTLS).
	PodHTTPS = "https"
)

// Pods says how podpin talks to a route's pods.
type Pods struct {
	// Protocol is what every pod of the route speaks: "http" (HTTP/1.1),
	// "h2c" (HTTP/2 in cleartext with prior knowledge, which gRPC needs)
	// or "https" (TLS). When set it wins over what each pod says, as
	// ingress-nginx's backend-protocol annotation does. Empty: each pod's
	// own, from its backend URL's scheme or its Service port's
	// appProtocol; HTTP/1.1 for DNS names.
	Protocol string `yaml:"protocol"`
	// TLS checks the certificates of the pods that speak https.
	TLS PodTLS `yaml:"tls"`
}

// PodTLS is how podpin verifies the pods that speak https: always, unless
// InsecureSkipVerify, like HAProxy's "ssl verify required".
type PodTLS struct {
	// CAFile is a PEM bundle of the certificate authorities a pod's
	// certificate must chain to. It is read when the configuration is
	// applied: at start, on each reload, and when its content changes (a
	// Reloader watches it as it watches the file). Empty: the system's
	// roots.
	CAFile string `yaml:"caFile"`
	// ServerName is the name a pod's certificate must be valid for, also
	// sent as SNI. Empty: the host of the pod's address (an IP address is
	// checked against the certificate's IP addresses, and sends no SNI).
	ServerName string `yaml:"serverName"`
	// InsecureSkipVerify accepts any certificate: the connection is
	// encrypted, but anyone on the path can pose as the pod. For tests
	// only. Default false.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
}

// IsZero reports whether no TLS setting is given.
func (t PodTLS) IsZero() bool { return t == PodTLS{} }

// RootCAs reads CAFile: nil when it is not set (the system's roots), an
// error when it cannot be read or holds no PEM certificate. The error does
// not name the field; callers add its path.
func (t PodTLS) RootCAs() (*x509.CertPool, error) {
	if t.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%q cannot be read: %w", t.CAFile, unwrapPath(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%q holds no PEM certificate", t.CAFile)
	}
	return pool, nil
}

// unwrapPath drops the file name a *fs.PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Backend is one static pod.
type Backend struct {
	// Name is the pod's stable identity: table entries point at it. Required;
	// unique within the route.
	Name string `yaml:"name"`
	// URL is the pod's address and protocol: http://host:port (HTTP/1.1),
	// h2c://host:port (HTTP/2 in cleartext, prior knowledge) or
	// https://host:port (TLS, verified as pods.tls says). Required; no
	// path. A route's pods.protocol, when set, wins over the scheme.
	URL string `yaml:"url"`
	// Weight scales the pod's share of new sessions. Default 1.
	Weight int `yaml:"weight"`
	// State is ready (default), draining (terminating but serving: keeps its
	// sessions, takes no new ones) or not-ready (serves nothing).
	State string `yaml:"state"`
}

// Sticky says where a request's session key is read and how it is kept.
type Sticky struct {
	// Header is the request header whose value is the session key.
	// Default "X-Session".
	Header string `yaml:"header"`
	// Cookie, when set, is a cookie read when the header is absent.
	Cookie string `yaml:"cookie"`
	// Query, when set, is a query parameter read when header and cookie are
	// absent.
	Query string `yaml:"query"`
	// ClientIP, when true, uses the client's address as the key when no other
	// source has one (Kubernetes' sessionAffinity: ClientIP, but per pod and
	// kept in a table).
	ClientIP bool `yaml:"clientIP"`
	// MaxKeyBytes is the longest key accepted; a longer one is a 400.
	// Default 256.
	MaxKeyBytes int `yaml:"maxKeyBytes"`
	// Missing is the policy for requests without a key: balance (default),
	// assign or reject.
	Missing string `yaml:"missing"`
	// Learn, when true, pins the value of the key header found in a pod's
	// response to that pod (HAProxy's "stick store-response").
	Learn bool `yaml:"learn"`
	// NewSessionsPerIP caps how many new table entries one client address
	// may create per second, on average; a request over it that would
	// create one gets 429. Default 0: no cap.
	NewSessionsPerIP float64 `yaml:"newSessionsPerIP"`
	// NewSessionsBurst is how many new entries a client address may create
	// at once before NewSessionsPerIP applies. Default: NewSessionsPerIP
	// rounded up, at least 1. Used only with NewSessionsPerIP.
	NewSessionsBurst int `yaml:"newSessionsBurst"`
	// SetCookie, with missing: assign, also hands each minted key to the
	// client as the cookie named Cookie (which must be set), so that a
	// browser sends it back by itself: ingress-nginx's cookie affinity,
	// Gateway API's Cookie session persistence. Nil: a minted key goes
	// out in the key header only.
	SetCookie *SetCookie `yaml:"setCookie"`
}

// SetCookie is how the cookie carrying a minted key is written.
type SetCookie struct {
	// Path is the cookie's Path. Default "/".
	Path string `yaml:"path"`
	// MaxAge keeps the cookie this long (Max-Age, in whole seconds).
	// Zero (default): a session cookie, without Expires or Max-Age, which
	// the browser drops when it closes.
	MaxAge time.Duration `yaml:"maxAge"`
	// Secure marks the cookie Secure. Default: when the request came over
	// TLS to podpin (or, from a trusted proxy, said X-Forwarded-Proto:
	// https).
	Secure *bool `yaml:"secure"`
	// HTTPOnly hides the cookie from scripts. Default true.
	HTTPOnly *bool `yaml:"httpOnly"`
	// SameSite is Lax (default), Strict or None (which browsers accept
	// only with Secure: it needs secure: true).
	SameSite string `yaml:"sameSite"`
}

// Table configures a route's stick table.
type Table struct {
	// IdleTimeout drops an entry this long after its last use. Default 30m.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// AbsoluteTimeout drops an entry this long after it was created, even in
	// use. Zero: no limit.
	AbsoluteTimeout time.Duration `yaml:"absoluteTimeout"`
	// MaxEntries caps live entries; when full the least recently used entry
	// goes. Default 1,000,000.
	MaxEntries int `yaml:"maxEntries"`
	// KeepRawKeys keeps each key's raw value beside its digest, so the admin
	// API can show and filter by it. Off by default: keys may be credentials.
	KeepRawKeys bool `yaml:"keepRawKeys"`
}

// PodHeaderName returns the response header naming the serving pod, or ""
// when that header is turned off.
func (c *Config) PodHeaderName() string {
	if c.PodHeader == nil {
		return DefaultPodHeader
	}
	return *c.PodHeader
}

// SetDefaults fills every zero field that has a default.
func (c *Config) SetDefaults() {
	if len(c.Listeners) == 0 {
		c.Listeners = []Listener{{Address: DefaultListen}}
	}
	for _, l := range c.Listeners {
		if l.TLS != nil && l.TLS.MinVersion == "" {
			l.TLS.MinVersion = TLS12
		}
	}
	def(&c.Admin.Address, DefaultAdmin)
	def(&c.Admin.Metrics, MetricsToken)
	def(&c.Log.Format, LogText)
	u := &c.Upstream
	def(&u.ConnectTimeout, DefaultConnectTimeout)
	def(&u.ResponseTimeout, DefaultResponseTimeout)
	def(&u.IdleConnTimeout, DefaultIdleConnTimeout)
	def(&u.MaxConnsPerPod, DefaultMaxConnsPerPod)
	l := &c.Limits
	def(&l.HeaderTimeout, DefaultHeaderTimeout)
	def(&l.IdleTimeout, DefaultClientIdle)
	def(&l.BodyTimeout, DefaultBodyTimeout)
	def(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	def(&l.MaxHeaders, DefaultMaxHeaders)
	def(&l.MaxConcurrentStreams, DefaultMaxStreams)
	def(&l.MaxConnections, DefaultMaxConnections)
	def(&c.Shutdown.DrainTimeout, DefaultDrainTimeout)
	def(&c.State.Interval, DefaultStateInterval)
	def(&c.Store.Type, StoreMemory)
	rd := &c.Store.Redis
	def(&rd.KeyPrefix, "podpin:")
	def(&rd.Timeout, DefaultRedisTimeout)
	def(&rd.DialTimeout, DefaultRedisDialTimeout)
	for i := range c.Routes {
		if s := &c.Routes[i].Sticky; s.NewSessionsPerIP == 0 && l.NewSessionsPerIP > 0 {
			s.NewSessionsPerIP = l.NewSessionsPerIP
			def(&s.NewSessionsBurst, l.NewSessionsBurst)
		}
		c.Routes[i].setDefaults()
		def(&c.Routes[i].Store, c.Store.Type)
	}
}

// appliedFiles lists the files read each time the configuration is applied
// (the routes' pods.tls.caFile), each once, in route order.
func (c *Config) appliedFiles() []string {
	var files []string
	for _, r := range c.Routes {
		if f := r.Pods.TLS.CAFile; f != "" && !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	return files
}

// UsesRedis reports whether routes keep their tables in Redis: the default
// store is redis (routes made later, from Ingresses, take it), or a route
// says so.
func (c *Config) UsesRedis() bool {
	if c.Store.Type == StoreRedis {
		return true
	}
	for _, r := range c.Routes {
		if r.Store == StoreRedis {
			return true
		}
	}
	return false
}

func (r *Route) setDefaults() {
	for i := range r.Backends {
		def(&r.Backends[i].Weight, 1)
		def(&r.Backends[i].State, "ready")
	}
	if r.Service != nil && r.Service.Namespace == "" {
		r.Service.Namespace = "default"
	}
	for i := range r.Services {
		def(&r.Services[i].Namespace, "default")
	}
	if r.DNS != nil && r.DNS.Interval == 0 {
		r.DNS.Interval = DefaultDNSInterval
	}
	p := &r.Health.Passive
	def(&p.ConsecutiveFailures, DefaultConsecutiveFailures)
	def(&p.BaseEjection, DefaultBaseEjection)
	def(&p.MaxEjection, DefaultMaxEjection)
	def(&p.MaxEjectedPercent, DefaultMaxEjectedPercent)
	a := &r.Health.Active
	def(&a.Interval, DefaultCheckInterval)
	def(&a.Timeout, DefaultCheckTimeout)
	def(&a.HealthyThreshold, DefaultHealthyThreshold)
	def(&a.UnhealthyThreshold, DefaultUnhealthyThreshold)
	s := &r.Sticky
	def(&s.Header, DefaultHeader)
	def(&s.MaxKeyBytes, DefaultMaxKeyBytes)
	def(&s.Missing, MissingBalance)
	if s.NewSessionsPerIP > 0 && s.NewSessionsBurst == 0 {
		s.NewSessionsBurst = max(1, int(math.Ceil(s.NewSessionsPerIP)))
	}
	def(&r.Balancer, "round-robin")
	def(&r.Table.IdleTimeout, DefaultIdleTimeout)
	def(&r.Table.MaxEntries, DefaultMaxEntries)
}

// def sets *v to d when *v is zero.
func def[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
