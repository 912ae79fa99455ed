package main

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"text/template"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/manifests/podpin.yaml from the chart")

const manifests = "../manifests/podpin.yaml"

func TestManifestMatchesChart(t *testing.T) {
	got, err := Render("../helm/podpin", Release{Name: "podpin", Namespace: "podpin-system"}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(manifests, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(manifests)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the chart rendered with its default values; run go test ./deploy/render -update (or go run ./deploy/render -o deploy/manifests/podpin.yaml)", manifests)
	}
}

func TestChartRendersInHelmOrder(t *testing.T) {
	got, err := Render("../helm/podpin", Release{Name: "podpin", Namespace: "podpin-system"}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, doc := range strings.Split(string(got), "\n---\n")[1:] {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, doc)
		}
		kinds = append(kinds, head.Kind)
	}
	want := "Namespace PodDisruptionBudget ServiceAccount ConfigMap ClusterRole ClusterRoleBinding Service Deployment IngressClass"
	if strings.Join(kinds, " ") != want {
		t.Errorf("kinds: got %v, want %s", kinds, want)
	}
}

func TestChartFunctionsBehaveAsHelms(t *testing.T) {
	tests := []struct {
		name, text string
		data       any
		want       string
	}{
		{"default keeps a given value", `{{ "b" | default "a" }}`, nil, "b"},
		{"default replaces an empty string", `{{ "" | default "a" }}`, nil, "a"},
		{"default replaces zero", `{{ 0 | default 5 }}`, nil, "5"},
		{"quote quotes", `{{ "x" | quote }}`, nil, `"x"`},
		{"nindent starts a new line and indents every line", `a:{{ "b: 1\nc: 2" | nindent 2 }}`, nil, "a:\n  b: 1\n  c: 2"},
		{"toYaml sorts keys and drops the final newline", `{{ toYaml .m }}`, map[string]any{"m": map[string]any{"b": 1, "a": []any{"x"}}}, "a:\n- x\nb: 1"},
		{"trunc cuts", `{{ "abcdef" | trunc 3 }}`, nil, "abc"},
		{"trimSuffix trims", `{{ "ab-" | trimSuffix "-" }}`, nil, "ab"},
		{"contains takes the substring first", `{{ contains "pin" "podpin" }}`, nil, "true"},
		{"b64enc encodes", `{{ "token" | b64enc }}`, nil, "dG9rZW4="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := parse(t, tt.text)
			var b bytes.Buffer
			if err := tmpl.Execute(&b, tt.data); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func parse(t *testing.T, text string) *template.Template {
	t.Helper()
	tm := template.New("t")
	tm.Funcs(funcs(tm))
	if _, err := tm.Parse(text); err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestValuesFileMergesAsHelmDoes(t *testing.T) {
	base := map[string]any{
		"replicaCount": 2.0,
		"store":        map[string]any{"type": "memory", "redis": map[string]any{"url": "", "keyPrefix": "podpin:"}},
		"affinity":     map[string]any{},
		"gone":         "x",
	}
	over := map[string]any{
		"store":    map[string]any{"type": "redis", "redis": map[string]any{"url": "redis://r:6379"}},
		"affinity": map[string]any{"podAntiAffinity": "p"},
		"gone":     nil,
	}
	got := mergeValues(base, over)
	want := map[string]any{
		"replicaCount": 2.0,
		"store":        map[string]any{"type": "redis", "redis": map[string]any{"url": "redis://r:6379", "keyPrefix": "podpin:"}},
		"affinity":     map[string]any{"podAntiAffinity": "p"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged values: got %v, want %v", got, want)
	}
	if base["store"].(map[string]any)["type"] != "memory" {
		t.Error("merging changed the chart's values")
	}
}

// extraEnv reaches the podpin container, alone or after the Redis password.
func TestExtraEnvReachesTheContainer(t *testing.T) {
	extra := []any{map[string]any{"name": "GOMAXPROCS", "value": "1"}}
	for _, tc := range []struct {
		name      string
		overrides map[string]any
		want      []string
	}{
		{"alone", map[string]any{"extraEnv": extra}, []string{"GOMAXPROCS=1"}},
		{"with the Redis password", map[string]any{
			"extraEnv": extra,
			"store":    map[string]any{"redis": map[string]any{"passwordSecret": map[string]any{"name": "redis-auth"}}},
		}, []string{"REDIS_PASSWORD=", "GOMAXPROCS=1"}},
	} {
		out, err := Render("../helm/podpin", Release{Name: "podpin", Namespace: "podpin-system"}, true, tc.overrides)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, doc := range strings.Split(string(out), "\n---\n") {
			var d appsv1.Deployment
			if err := yaml.Unmarshal([]byte(doc), &d); err != nil || d.Kind != "Deployment" {
				continue
			}
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				got = append(got, e.Name+"="+e.Value)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: container env %v, want %v", tc.name, got, tc.want)
		}
	}
}
