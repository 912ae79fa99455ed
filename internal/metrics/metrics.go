// Package metrics defines podpin's Prometheus metrics in one struct built on
// an injected registerer. Labels are bounded: route, pod, status class,
// lookup result and rebind reason. No metric ever carries a session key.
//
// Metrics:
//
//	podpin_proxy_requests_total{route,pod,code}        responses by status class (2xx...); pod "" when none was chosen
//	podpin_proxy_in_flight_requests{route,pod}         requests forwarded and not yet answered
//	podpin_proxy_upstream_latency_seconds{route,pod}   time from sending to a pod to its response headers
//	podpin_table_lookups_total{route,result}           hit, miss, rebind, or none (request without key)
//	podpin_table_rebinds_total{route,pod,reason}       sessions moved off pod, by reason
//	podpin_table_entries{route}                        live table entries
//	podpin_table_evictions_total{route,reason}         entries removed: capacity, budget, idle, absolute
//	podpin_table_budget_entries                        most entries all routes' tables hold together; 0: no total budget
//	podpin_table_sessions{route,pod}                   live sessions pinned to each pod
//	podpin_config_reloads_total{result}                configuration reloads: applied or rejected
//	podpin_config_restart_pending_settings             settings changed in the file that wait for a restart (config.RestartOnly)
//	podpin_proxy_protocol_errors_total{reason}         connections refused for their PROXY protocol header: missing, invalid, untrusted
//	podpin_state_saves_total{result}                   stick table snapshots written: ok or error
//	podpin_store_errors_total{op}                      failed or timed-out Redis calls
//	podpin_store_degraded                              1 while Redis is out of reach and local tables serve alone
//	podpin_store_invalidations_total                   entries dropped on other replicas' word
//	podpin_store_writebacks_total                      local entries written back to Redis after an outage or restart
//	podpin_table_max_entries{route}                    the stick table's capacity
//	podpin_ingress_apply_errors_total                  Ingress controller applies that failed (the running routes stay)
//	podpin_ingress_last_apply_success_timestamp_seconds  Unix time of the Ingress controller's last applied configuration
//	podpin_ingress_rejected                            Ingresses whose current version is rejected (each has a Warning Event)
//	podpin_tls_certificate_expiry_timestamp_seconds{listener,name}  Unix time each served certificate (name: its file; an Ingress Secret: listener "ingress", name NAMESPACE/NAME) expires
//	podpin_tls_certificate_reload_errors_total{listener}            changed certificate files that did not load (the previous certificate stays)
//	podpin_tls_handshake_errors_total{listener,reason}              TLS handshakes that failed: timeout, eof, version, or other
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Lookup results.
const (
	Hit    = "hit"
	Miss   = "miss"
	Rebind = "rebind"
	None   = "none"
)

// Metrics holds every collector. Safe for concurrent use.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	lookups  *prometheus.CounterVec
	rebinds  *prometheus.CounterVec
	reloads  *prometheus.CounterVec
	saves    *prometheus.CounterVec
	budget   prometheus.Gauge

	restartPending prometheus.Gauge
	proxyProtocol  *prometheus.CounterVec

	storeErrors        *prometheus.CounterVec
	storeDegraded      prometheus.Gauge
	storeInvalidations prometheus.Counter
	storeWriteBacks    prometheus.Counter

	ingressApplyErrors prometheus.Counter
	ingressLastApplied prometheus.Gauge
	ingressRejected    prometheus.Gauge

	tlsExpiry          *prometheus.GaugeVec
	tlsReloadErrors    *prometheus.CounterVec
	tlsHandshakeErrors *prometheus.CounterVec
	clientConns        *prometheus.CounterVec
}

// New builds the metrics and registers them, with the route collector, on
// reg. A nil reg builds working but unregistered metrics. routes reports the
// stick tables and the pods' requests in flight at scrape time; nil reports
// none.
func New(reg prometheus.Registerer, routes func() []RouteStats) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpin_proxy_requests_total",
			Help: "Responses sent to clients, by route, pod and status class.",
		}, []string{"route", "pod", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "podpin_proxy_upstream_latency_seconds",
			Help:    "Time from forwarding a request to receiving the pod's response headers.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "pod"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpin_table_lookups_total",
			Help: "Stick table lookups by result: hit, miss, rebind, or none for requests without a key.",
		}, []string{"route", "result"}),
		rebinds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpin_table_rebinds_total",
			Help: "Sessions moved off a pod, by the pod they left and the reason.",
		}, []string{"route", "pod", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpin_config_reloads_total",
			Help: "Configuration reloads by result: applied, or rejected (the running configuration stays).",
		}, []string{"result"}),
		restartPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podpin_config_restart_pending_settings",
			Help: "Settings changed in the configuration that a reload cannot apply; they wait for a restart.",
		}),
		proxyProtocol: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpin_proxy_protocol_errors_total",
			Help: "Client connections closed for their PROXY protocol header, by reason: missing, invalid, or untrusted (sent by a peer outside proxyProtocolSources).",
		}, []string{"reason"}),
		saves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpin_state_saves_total",
			Help: "Stick table snapshots written to the state file, by result: ok or error.",
		}, []string{"result"}),
		budget: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podpin_table_budget_entries",
			Help: "Most entries the stick tables of all routes hold together; 0 when there is no total budget.",
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpin_store_errors_total",
			Help: "Redis calls that failed or timed out, by operation.",
		}, []string{"op"}),
		storeDegraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podpin_store_degraded",
			Help: "1 while Redis is out of reach and the local tables serve alone.",
		}),
		storeInvalidations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podpin_store_invalidations_total",
			Help: "Local entries dropped because another replica moved or removed them.",
		}),
		storeWriteBacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podpin_store_writebacks_total",
			Help: "Local entries written back to Redis after an outage, a restart or a failover.",
		}),
		ingressApplyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podpin_ingress_apply_errors_total",
			Help: "Configurations built from Ingresses that podpin failed to apply; the running routes stay.",
		}),
		ingressLastApplied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podpin_ingress_last_apply_success_timestamp_seconds",
			Help: "Unix time when a configuration built from Ingresses was last applied; 0 before the first.",
		}),
		ingressRejected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podpin_ingress_rejected",
			Help: "Ingresses of podpin's class whose current version is rejected; each has a Warning Event saying why.",
		}),
		tlsExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podpin_tls_certificate_expiry_timestamp_seconds",
			Help: "Unix time when each certificate a TLS listener serves expires (its notAfter), by listener and certificate file (an Ingress Secret: listener ingress, name NAMESPACE/NAME).",
		}, []string{"listener", "name"}),
		tlsReloadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpin_tls_certificate_reload_errors_total",
			Help: "Changed certificate files that did not load, by listener; the previous certificate keeps serving.",
		}, []string{"listener"}),
		tlsHandshakeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpin_tls_handshake_errors_total",
			Help: "Client TLS handshakes that failed, by listener and reason: timeout, eof (the client left), version (no common protocol version), or other.",
		}, []string{"listener", "reason"}),
		clientConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpin_client_connections_total",
			Help: "Client connections served, by listener and protocol: http/1.1, h2 (HTTP/2 over TLS) or h2c (HTTP/2 in cleartext).",
		}, []string{"listener", "protocol"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.lookups, m.rebinds, m.reloads, m.saves, m.restartPending, m.proxyProtocol, m.budget,
			m.storeErrors, m.storeDegraded, m.storeInvalidations, m.storeWriteBacks,
			m.ingressApplyErrors, m.ingressLastApplied, m.ingressRejected,
			m.tlsExpiry, m.tlsReloadErrors, m.tlsHandshakeErrors, m.clientConns)
		if routes != nil {
			reg.MustRegister(routeCollector(routes))
		}
	}
	return m
}

// Reloaded counts a configuration reload.
func (m *Metrics) Reloaded(applied bool) {
	m.reloads.WithLabelValues(map[bool]string{true: "applied", false: "rejected"}[applied]).Inc()
}

// RestartPending records how many changed settings wait for a restart.
func (m *Metrics) RestartPending(settings int) { m.restartPending.Set(float64(settings)) }

// ProxyProtocolError counts a client connection closed for its PROXY
// protocol header.
func (m *Metrics) ProxyProtocolError(reason string) { m.proxyProtocol.WithLabelValues(reason).Inc() }

// CertificateExpiry records when a TLS listener's certificate, named by
// its file, expires.
func (m *Metrics) CertificateExpiry(listener, name string, notAfter time.Time) {
	m.tlsExpiry.WithLabelValues(listener, name).Set(float64(notAfter.Unix()))
}

// CertificateReloadError counts changed certificate files that did not load.
func (m *Metrics) CertificateReloadError(listener string) {
	m.tlsReloadErrors.WithLabelValues(listener).Inc()
}

// TLSHandshakeError counts a client TLS handshake that failed, by reason.
func (m *Metrics) TLSHandshakeError(listener, reason string) {
	m.tlsHandshakeErrors.WithLabelValues(listener, reason).Inc()
}

// ClientConnections is the counter of the client connections a listener
// serves in protocol (http/1.1, h2 or h2c).
func (m *Metrics) ClientConnections(listener, protocol string) prometheus.Counter {
	return m.clientConns.WithLabelValues(listener, protocol)
}

// Saved counts a state file write.
func (m *Metrics) Saved(ok bool) {
	m.saves.WithLabelValues(map[bool]string{true: "ok", false: "error"}[ok]).Inc()
}

// TableBudget records the entry budget shared by every route's table.
func (m *Metrics) TableBudget(entries int) { m.budget.Set(float64(entries)) }

// StoreError counts a failed Redis call.
func (m *Metrics) StoreError(op string) { m.storeErrors.WithLabelValues(op).Inc() }

// StoreDegraded records whether the local tables serve alone.
func (m *Metrics) StoreDegraded(d bool) {
	if d {
		m.storeDegraded.Set(1)
	} else {
		m.storeDegraded.Set(0)
	}
}

// StoreInvalidation counts an entry dropped on another replica's word.
func (m *Metrics) StoreInvalidation() { m.storeInvalidations.Inc() }

// StoreWriteBack counts entries written back to Redis.
func (m *Metrics) StoreWriteBack(n int) { m.storeWriteBacks.Add(float64(n)) }

// IngressApplied counts an apply of the Ingress controller: on success it
// records the time, on failure it counts an error.
func (m *Metrics) IngressApplied(ok bool) {
	if ok {
		m.ingressLastApplied.SetToCurrentTime()
	} else {
		m.ingressApplyErrors.Inc()
	}
}

// IngressesRejected records how many Ingresses are currently rejected.
func (m *Metrics) IngressesRejected(n int) { m.ingressRejected.Set(float64(n)) }

// Route returns the handles for one route's lookups and rebinds.
func (m *Metrics) Route(route string) *Route {
	r := &Route{name: route, m: m}
	for i, res := range []string{Hit, Miss, Rebind, None} {
		r.lookups[i] = m.lookups.WithLabelValues(route, res)
	}
	return r
}

// Pod returns the handles for one pod of a route, resolved once so the
// request path only does atomic adds.
func (m *Metrics) Pod(route, pod string) *Pod {
	p := &Pod{
		latency: m.latency.WithLabelValues(route, pod),
	}
	for i := range p.codes {
		p.codes[i] = m.requests.WithLabelValues(route, pod, codeClasses[i])
	}
	return p
}

// ForgetPod drops the series of a pod that left a route.
func (m *Metrics) ForgetPod(route, pod string) {
	m.latency.DeleteLabelValues(route, pod)
	for _, c := range codeClasses {
		m.requests.DeleteLabelValues(route, pod, c)
	}
}

var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// Route is one route's handles.
type Route struct {
	name    string
	m       *Metrics
	lookups [4]prometheus.Counter
}

// Lookup counts one lookup result: Hit, Miss, Rebind or None.
func (r *Route) Lookup(result int) { r.lookups[result].Inc() }

// Lookup result indexes for Route.Lookup, in the order of the label values.
const (
	LookupHit = iota
	LookupMiss
	LookupRebind
	LookupNone
)

// Rebound counts a session moved off pod for reason.
func (r *Route) Rebound(pod, reason string) {
	r.m.rebinds.WithLabelValues(r.name, pod, reason).Inc()
}

// Unrouted counts a response sent without a pod (rejections, 503s).
func (r *Route) Unrouted(code int) {
	r.m.requests.WithLabelValues(r.name, "", codeClass(code)).Inc()
}

// Pod is one pod's handles.
type Pod struct {
	codes   [5]prometheus.Counter
	latency prometheus.Observer
}

// Done counts the pod's answer: its status and its latency in seconds.
func (p *Pod) Done(code int, seconds float64) {
	p.latency.Observe(seconds)
	p.Response(code)
}

// Response counts a response to the client attributed to the pod.
func (p *Pod) Response(code int) {
	i := code/100 - 1
	if i < 0 || i >= len(p.codes) {
		i = 4
	}
	p.codes[i].Inc()
}

func codeClass(code int) string {
	i := code/100 - 1
	if i < 0 || i >= len(codeClasses) {
		i = 4
	}
	return codeClasses[i]
}

// CertificateGone removes the expiry of a certificate no longer served.
func (m *Metrics) CertificateGone(listener, name string) {
	m.tlsExpiry.DeleteLabelValues(listener, name)
}
