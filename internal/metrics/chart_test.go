package metrics_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.yaml.in/yaml/v3"

	"github.com/podpin/podpin/internal/metrics"
)

// The chart's dashboard and alert rules, which users also load by hand.
const (
	dashboardFile = "../../deploy/helm/podpin/dashboards/podpin.json"
	rulesFile     = "../../deploy/helm/podpin/rules/podpin-alerts.yaml"
)

// descRecorder is a prometheus.Registerer that keeps the name of every
// metric its collectors describe.
type descRecorder map[string]bool

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d descRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d[m[1]] = true
		}
	}
	return nil
}

func (d descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		d.Register(c)
	}
}

func (d descRecorder) Unregister(prometheus.Collector) bool { return false }

// registered returns the metric names podpin serves: its own and the Go
// and process collectors podpin serve registers.
func registered(t *testing.T) descRecorder {
	t.Helper()
	d := descRecorder{}
	metrics.New(d, func() []metrics.RouteStats { return nil })
	d.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if !d["podpin_table_lookups_total"] || !d["podpin_table_entries"] || !d["process_resident_memory_bytes"] {
		t.Fatalf("the recorder missed metrics: got %d names", len(d))
	}
	return d
}

// has reports whether name is a registered metric or one of the series a
// histogram or summary exposes (_bucket, _sum, _count).
func (d descRecorder) has(name string) bool {
	if d[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && d[base] {
			return true
		}
	}
	return false
}

// metricName finds the metric names in a PromQL expression: podpin's and
// the Go runtime's and process's.
var metricName = regexp.MustCompile(`\b(?:podpin|process|go)_[a-z0-9_]+\b`)

// exprs returns every string under an "expr" key in a decoded JSON or YAML
// document.
func exprs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "expr" {
				out = append(out, s)
			} else {
				out = append(out, exprs(x)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, exprs(x)...)
		}
	}
	return out
}

func TestDashboardAndAlertsUseOnlyMetricsPodpinServes(t *testing.T) {
	have := registered(t)
	for _, tt := range []struct {
		file   string
		decode func([]byte, any) error
	}{
		{dashboardFile, json.Unmarshal},
		{rulesFile, yaml.Unmarshal},
	} {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := tt.decode(data, &doc); err != nil {
				t.Fatalf("decoding: %v", err)
			}
			es := exprs(doc)
			if len(es) < 5 {
				t.Fatalf("got %d expressions, want the file's queries", len(es))
			}
			var used []string
			for _, e := range es {
				names := metricName.FindAllString(e, -1)
				if len(names) == 0 {
					t.Errorf("expression %q uses no metric of podpin's", e)
				}
				for _, n := range names {
					if !have.has(n) {
						t.Errorf("expression %q uses %s, which podpin does not serve", e, n)
					}
					used = append(used, n)
				}
			}
			t.Logf("%d expressions over %d metrics", len(es), len(slices.Compact(slices.Sorted(slices.Values(used)))))
		})
	}
}

// TestDashboardShowsWhatOperatorsAskFor checks the dashboard has a panel
// for each question: sessions per pod, lookups by result, rebinds by
// reason, table fill, Redis state, latency.
func TestDashboardShowsWhatOperatorsAskFor(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid: every import would make a new copy")
	}
	want := map[string]string{
		"Sessions per pod":  "podpin_table_sessions",
		"Lookups by result": "podpin_table_lookups_total",
		"Rebinds by reason": "podpin_table_rebinds_total",
		"Table fill":        "podpin_table_max_entries",
		"Redis state":       "podpin_store_degraded",
		"Upstream latency":  "podpin_proxy_upstream_latency_seconds_bucket",
	}
	for _, p := range d.Panels {
		metric, ok := want[p.Title]
		if !ok {
			continue
		}
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, metric) {
				delete(want, p.Title)
			}
		}
	}
	for title, metric := range want {
		t.Errorf("no panel %q querying %s", title, metric)
	}
}

// promtool returns the path of Prometheus's promtool (Debian package
// prometheus), or skips the test without it.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install the Debian package prometheus (scripts/test does)")
	}
	return path
}

func TestAlertRulesPassPromtool(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestAlertsFireWhenTheyShould runs the rules' unit tests
// (testdata/podpin-alerts.test.yaml): each alert fires on the series that
// should raise it, after its "for", and not on the ones that should not.
func TestAlertsFireWhenTheyShould(t *testing.T) {
	out, err := exec.Command(promtool(t), "test", "rules", "testdata/podpin-alerts.test.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
