package metrics

import "github.com/prometheus/client_golang/prometheus"

// TableStats is one route's stick table at scrape time.
type TableStats struct {
	Route           string
	Entries         int
	Evictions       uint64 // removed for capacity
	IdleExpired     uint64
	AbsoluteExpired uint64
	// Sessions is the live session count per pod.
	Sessions map[string]int64
}

var (
	entriesDesc = prometheus.NewDesc("podpin_table_entries",
		"Live stick table entries.", []string{"route"}, nil)
	evictionsDesc = prometheus.NewDesc("podpin_table_evictions_total",
		"Entries removed from the stick table, by reason: capacity, idle, absolute.", []string{"route", "reason"}, nil)
	sessionsDesc = prometheus.NewDesc("podpin_table_sessions",
		"Live sessions pinned to each pod.", []string{"route", "pod"}, nil)
)

// tableCollector reads the stick tables when Prometheus scrapes.
type tableCollector func() []TableStats

func (tableCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- entriesDesc
	ch <- evictionsDesc
	ch <- sessionsDesc
}

func (f tableCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range f() {
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(t.Entries), t.Route)
		ch <- prometheus.MustNewConstMetric(evictionsDesc, prometheus.CounterValue, float64(t.Evictions), t.Route, "capacity")
		ch <- prometheus.MustNewConstMetric(evictionsDesc, prometheus.CounterValue, float64(t.IdleExpired), t.Route, "idle")
		ch <- prometheus.MustNewConstMetric(evictionsDesc, prometheus.CounterValue, float64(t.AbsoluteExpired), t.Route, "absolute")
		for pod, n := range t.Sessions {
			ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(n), t.Route, pod)
		}
	}
}
