package main

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// rawObject finds the document of kind and name in a rendering, decoded
// as a map; nil when there is none.
func rawObject(t *testing.T, out []byte, kind, name string) map[string]any {
	t.Helper()
	for _, doc := range documents(out) {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, doc)
		}
		if md, _ := o["metadata"].(map[string]any); o["kind"] == kind && md["name"] == name {
			return o
		}
	}
	return nil
}

// The monitoring objects are off by default: a cluster without the
// Prometheus operator installs the chart as it is.
func TestMonitoringIsOffByDefault(t *testing.T) {
	out := render(t)
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		if strings.Contains(string(out), "kind: "+kind) {
			t.Errorf("the default rendering has a %s", kind)
		}
	}
	for _, o := range [][2]string{{"Service", "podpin-metrics"}, {"ConfigMap", "podpin-dashboard"}} {
		if rawObject(t, out, o[0], o[1]) != nil {
			t.Errorf("the default rendering has the %s %s", o[0], o[1])
		}
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(mustYAML(t, rawObject(t, out, "ConfigMap", "podpin")), &cm); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["podpin.yaml"], "metrics: open") {
		t.Errorf("the default configuration does not open /metrics:\n%s", cm.Data["podpin.yaml"])
	}
}

// The dashboard ConfigMap and the PrometheusRule carry the chart's files as
// they are, so what users load by hand and what the chart installs agree.
func TestMonitoringObjectsCarryTheFiles(t *testing.T) {
	out := render(t, "testdata/every-option.yaml")

	dash := rawObject(t, out, "ConfigMap", "podpin-dashboard")
	if dash == nil {
		t.Fatal("no dashboard ConfigMap")
	}
	want, err := os.ReadFile(chartDir + "/dashboards/podpin.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := dash["data"].(map[string]any)["podpin.json"]; got != strings.TrimSuffix(string(want), "\n") {
		t.Errorf("the dashboard ConfigMap differs from dashboards/podpin.json")
	}
	if labels := dash["metadata"].(map[string]any)["labels"].(map[string]any); labels["grafana_dashboard"] != "1" || labels["team"] != "edge" {
		t.Errorf("dashboard labels: got %v, want grafana_dashboard and team", labels)
	}

	rule := rawObject(t, out, "PrometheusRule", "podpin")
	if rule == nil {
		t.Fatal("no PrometheusRule")
	}
	data, err := os.ReadFile(chartDir + "/rules/podpin-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rule["spec"], file) {
		t.Errorf("the PrometheusRule's spec differs from rules/podpin-alerts.yaml:\n%v\nwant\n%v", rule["spec"], file)
	}

	// The ServiceMonitor scrapes the headless metrics Service, with the
	// read-only token when metrics need one.
	svc := rawObject(t, out, "Service", "podpin-metrics")
	if svc == nil || svc["spec"].(map[string]any)["clusterIP"] != "None" {
		t.Fatalf("metrics Service: got %v, want a headless one", svc)
	}
	sm := rawObject(t, out, "ServiceMonitor", "podpin")
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	var spec struct {
		Selector  struct{ MatchLabels map[string]string }
		Endpoints []struct {
			Port          string
			Authorization struct {
				Credentials struct{ Name, Key string }
			}
		}
	}
	if err := yaml.Unmarshal(mustYAML(t, sm["spec"]), &spec); err != nil {
		t.Fatal(err)
	}
	svcLabels := svc["metadata"].(map[string]any)["labels"].(map[string]any)
	for k, v := range spec.Selector.MatchLabels {
		if svcLabels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, which the metrics Service lacks", k, v)
		}
	}
	if len(spec.Endpoints) != 1 || spec.Endpoints[0].Port != "admin" || spec.Endpoints[0].Authorization.Credentials.Name != "podpin-read-token" {
		t.Errorf("ServiceMonitor endpoints: got %+v, want the admin port with the read-only token", spec.Endpoints)
	}
}

// A ServiceMonitor cannot scrape metrics that need a token it does not
// have: the rendering fails and says which value to set.
func TestServiceMonitorNeedsTheReadTokenForClosedMetrics(t *testing.T) {
	vals, err := ReadValues([]string{valuesFile(t, "admin: {metrics: token}\nserviceMonitor: {enabled: true}\n")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Render(t.Context(), chartDir, Options{Release: "podpin", Namespace: "podpin-system", Values: vals})
	if err == nil || !strings.Contains(err.Error(), "needs admin.readToken.secretName") {
		t.Errorf("got error %v, want one naming admin.readToken.secretName", err)
	}
}

// A read-only token value without a Secret name to create fails the
// rendering instead of being dropped.
func TestReadTokenValueNeedsASecretName(t *testing.T) {
	vals, err := ReadValues([]string{valuesFile(t, "admin: {readToken: {value: r3ader}}\n")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Render(t.Context(), chartDir, Options{Release: "podpin", Namespace: "podpin-system", Values: vals})
	if err == nil || !strings.Contains(err.Error(), "admin.readToken.value needs admin.readToken.secretName") {
		t.Errorf("got error %v, want one naming admin.readToken.secretName", err)
	}
}

func mustYAML(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
