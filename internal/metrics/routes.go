package metrics

import "github.com/prometheus/client_golang/prometheus"

// RouteStats is one route's stick table and pods at scrape time.
type RouteStats struct {
	Route           string
	Entries         int
	MaxEntries      int    // the table's capacity
	Evictions       uint64 // removed for the route's own capacity
	BudgetEvictions uint64 // removed to keep all routes within the total budget
	IdleExpired     uint64
	AbsoluteExpired uint64
	// Sessions is the live session count per pod.
	Sessions map[string]int64
	// InFlight is the count of requests forwarded and not yet answered,
	// per pod.
	InFlight map[string]int64
}

var (
	entriesDesc = prometheus.NewDesc("podpin_table_entries",
		"Live stick table entries.", []string{"route"}, nil)
	maxEntriesDesc = prometheus.NewDesc("podpin_table_max_entries",
		"Capacity of the stick table: when entries reach it, the least recently used go.", []string{"route"}, nil)
	evictionsDesc = prometheus.NewDesc("podpin_table_evictions_total",
		"Entries removed from the stick table, by reason: capacity, budget, idle, absolute.", []string{"route", "reason"}, nil)
	sessionsDesc = prometheus.NewDesc("podpin_table_sessions",
		"Live sessions pinned to each pod.", []string{"route", "pod"}, nil)
	inFlightDesc = prometheus.NewDesc("podpin_proxy_in_flight_requests",
		"Requests forwarded to a pod and not yet answered.", []string{"route", "pod"}, nil)
)

// routeCollector reads the stick tables and the pods' counters when
// Prometheus scrapes. The proxy counts requests in flight anyway, for its
// balancers; reading that count here spares every request two updates of
// a gauge that both processors would write.
type routeCollector func() []RouteStats

func (routeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- entriesDesc
	ch <- maxEntriesDesc
	ch <- evictionsDesc
	ch <- sessionsDesc
	ch <- inFlightDesc
}

func (f routeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range f() {
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(t.Entries), t.Route)
		ch <- prometheus.MustNewConstMetric(maxEntriesDesc, prometheus.GaugeValue, float64(t.MaxEntries), t.Route)
		ch <- prometheus.MustNewConstMetric(evictionsDesc, prometheus.CounterValue, float64(t.Evictions), t.Route, "capacity")
		ch <- prometheus.MustNewConstMetric(evictionsDesc, prometheus.CounterValue, float64(t.BudgetEvictions), t.Route, "budget")
		ch <- prometheus.MustNewConstMetric(evictionsDesc, prometheus.CounterValue, float64(t.IdleExpired), t.Route, "idle")
		ch <- prometheus.MustNewConstMetric(evictionsDesc, prometheus.CounterValue, float64(t.AbsoluteExpired), t.Route, "absolute")
		for pod, n := range t.Sessions {
			ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(n), t.Route, pod)
		}
		for pod, n := range t.InFlight {
			ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(n), t.Route, pod)
		}
	}
}
