package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/manifests/podpin.yaml from the chart")

const (
	chartDir  = "../../deploy/helm/podpin"
	manifests = "../../deploy/manifests/podpin.yaml"
)

// render renders the chart for the default release with the values files
// given, merged as -f merges them.
func render(t *testing.T, files ...string) []byte {
	t.Helper()
	vals, err := ReadValues(files)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(t.Context(), chartDir, Options{Release: "podpin", Namespace: "podpin-system", CreateNamespace: true, Values: vals})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// valuesFile writes text to a values file in a temporary folder.
func valuesFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// documents splits a rendering into its YAML documents, the leading comment
// left out.
func documents(out []byte) []string {
	return strings.Split(string(out), "\n---\n")[1:]
}

// object finds the first document of kind and decodes it into v.
func object(t *testing.T, out []byte, kind string, v any) {
	t.Helper()
	objectNamed(t, out, kind, "", v)
}

// objectNamed finds the document of kind named name (any name when empty)
// and decodes it into v.
func objectNamed(t *testing.T, out []byte, kind, name string, v any) {
	t.Helper()
	if !findObject(t, out, kind, name, v) {
		t.Fatalf("no %s %q in the rendering:\n%s", kind, name, out)
	}
}

// findObject is objectNamed that reports whether the object is there.
func findObject(t *testing.T, out []byte, kind, name string, v any) bool {
	t.Helper()
	for _, doc := range documents(out) {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, doc)
		}
		if head.Kind == kind && (name == "" || head.Metadata.Name == name) {
			if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
				t.Fatalf("%s: %v\n%s", kind, err, doc)
			}
			return true
		}
	}
	return false
}

func TestManifestsMatchChart(t *testing.T) {
	got := render(t)
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
		t.Errorf("%s differs from the chart rendered with its default values; run make manifests", manifests)
	}
}

func TestChartRendersInHelmOrder(t *testing.T) {
	out := render(t)
	if !bytes.HasPrefix(out, []byte("# ")) {
		t.Errorf("the rendering does not open with a comment:\n%.200s", out)
	}
	var kinds, sources []string
	for _, doc := range documents(out) {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, doc)
		}
		kinds = append(kinds, head.Kind)
		if src, ok := strings.CutPrefix(doc, "# Source: "); ok {
			sources = append(sources, src[:strings.IndexByte(src, '\n')])
		}
	}
	want := "Namespace NetworkPolicy PodDisruptionBudget ServiceAccount ConfigMap ClusterRole ClusterRoleBinding Service Service Deployment Deployment IngressClass"
	if strings.Join(kinds, " ") != want {
		t.Errorf("kinds: got %v, want %s", kinds, want)
	}
	// Every object but the Namespace comes from a template, which says so.
	if len(sources) != len(kinds)-1 || !slices.Contains(sources, "podpin/templates/deployment.yaml") {
		t.Errorf("# Source: comments: got %v for kinds %v", sources, kinds)
	}
}

func TestCreateNamespaceIsOptional(t *testing.T) {
	out, err := Render(t.Context(), chartDir, Options{Release: "edge", Namespace: "ingress"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("kind: Namespace")) {
		t.Errorf("rendering without the Namespace has one:\n%s", out)
	}
	var sa corev1.ServiceAccount
	object(t, out, "ServiceAccount", &sa)
	if sa.Name != "edge-podpin" || sa.Namespace != "ingress" {
		t.Errorf("ServiceAccount: got %s/%s, want ingress/edge-podpin", sa.Namespace, sa.Name)
	}
}

// Values files merge as helm -f merges them: over the chart's defaults key
// by key, later files over earlier ones, null removing a default.
func TestValuesFilesMergeAsHelmDoes(t *testing.T) {
	first := valuesFile(t, `
store: {type: redis, redis: {url: "redis://a:6379"}}
resources: null
`)
	second := valuesFile(t, `
store: {redis: {url: "redis://b:6379"}}
`)
	out := render(t, first, second)

	var cm corev1.ConfigMap
	object(t, out, "ConfigMap", &cm)
	want := `
store:
  type: redis
  redis:
    url: "redis://b:6379"
    keyPrefix: "podpin:"
    timeout: 250ms
routes: []`
	if got := "\n" + strings.TrimRight(cm.Data["podpin.yaml"], "\n"); !strings.HasSuffix(got, want) {
		t.Errorf("configuration file: got\n%s\nwant it to end with%s", got, want)
	}
	var d appsv1.Deployment
	object(t, out, "Deployment", &d)
	if r := d.Spec.Template.Spec.Containers[0].Resources; len(r.Requests)+len(r.Limits) > 0 {
		t.Errorf("resources: got %v, want none (null removes the default)", r)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas: got %v, want the default 2", d.Spec.Replicas)
	}
}

// extraEnv reaches the podpin container, alone or after the Redis password.
func TestExtraEnvReachesTheContainer(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		want         []string
	}{
		{"alone", `extraEnv: [{name: GOMAXPROCS, value: "1"}]`, []string{"GOMAXPROCS=1"}},
		{"with the Redis password", `
extraEnv: [{name: GOMAXPROCS, value: "1"}]
store: {redis: {passwordSecret: {name: redis-auth}}}
`, []string{"REDIS_PASSWORD=", "GOMAXPROCS=1"}},
	} {
		var d appsv1.Deployment
		object(t, render(t, valuesFile(t, tc.values)), "Deployment", &d)
		var got []string
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			got = append(got, e.Name+"="+e.Value)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: container env %v, want %v", tc.name, got, tc.want)
		}
	}
}

// listener.tls.defaultSecret becomes --default-tls-secret, absent without it.
func TestDefaultTLSSecretReachesTheArguments(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		want         string
	}{
		{"unset", "{}", ""},
		{"set", "listener: {tls: {secretNames: [edge-tls], defaultSecret: shop/wild-tls}}", "--default-tls-secret=shop/wild-tls"},
	} {
		var d appsv1.Deployment
		object(t, render(t, valuesFile(t, tc.values+"\n")), "Deployment", &d)
		got := ""
		for _, a := range d.Spec.Template.Spec.Containers[0].Args {
			if strings.HasPrefix(a, "--default-tls-secret") {
				got = a
			}
		}
		if got != tc.want {
			t.Errorf("%s: argument %q, want %q", tc.name, got, tc.want)
		}
	}
}

// store.redis.cluster reaches podpin's configuration with the nodes.
func TestRedisClusterReachesTheConfiguration(t *testing.T) {
	var cm corev1.ConfigMap
	object(t, render(t, valuesFile(t, `
store: {type: redis, redis: {addrs: ["redis-0:6379", "redis-1:6379"], cluster: true}}
`)), "ConfigMap", &cm)
	var cfg struct {
		Store struct {
			Redis struct {
				Addrs   []string `json:"addrs"`
				Cluster bool     `json:"cluster"`
			} `json:"redis"`
		} `json:"store"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["podpin.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if r := cfg.Store.Redis; !r.Cluster || !slices.Equal(r.Addrs, []string{"redis-0:6379", "redis-1:6379"}) {
		t.Errorf("store.redis in the configuration: %+v, want cluster with both nodes", r)
	}
}

// A values file that takes away a setting the templates read fails the
// rendering, naming the template, rather than rendering a broken object.
func TestRenderFailsWithoutASettingTheTemplatesNeed(t *testing.T) {
	vals, err := ReadValues([]string{valuesFile(t, "admin: null\n")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(t.Context(), chartDir, Options{Release: "podpin", Namespace: "podpin-system", Values: vals})
	if err == nil {
		t.Fatalf("rendering without admin settings: got no error, want one; output:\n%s", out)
	}
	if !strings.Contains(err.Error(), "podpin/templates/") {
		t.Errorf("error %q does not name the template", err)
	}
}

func TestReadValuesReportsABadFile(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"missing", filepath.Join(t.TempDir(), "none.yaml")},
		{"not YAML", valuesFile(t, "store: [unclosed\n")},
	} {
		if _, err := ReadValues([]string{tc.path}); err == nil || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: got error %v, want one naming %s", tc.name, err, tc.path)
		}
	}
}

// The table budget and the new-session cap reach the configuration file
// as limits, and are left out with the defaults, so that podpin derives
// its budget from its memory limit.
func TestMemoryValuesReachTheConfigurationFile(t *testing.T) {
	var cm corev1.ConfigMap
	object(t, render(t, "testdata/every-option.yaml"), "ConfigMap", &cm)
	var cfg struct {
		Limits struct {
			TableEntries     int64   `json:"tableEntries"`
			NewSessionsPerIP float64 `json:"newSessionsPerIP"`
			NewSessionsBurst int64   `json:"newSessionsBurst"`
			MaxConnections   int64   `json:"maxConnections"`
		} `json:"limits"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["podpin.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	// The chart's other limits are kept beside them.
	if l := cfg.Limits; l.TableEntries != 500000 || l.NewSessionsPerIP != 20 || l.NewSessionsBurst != 100 || l.MaxConnections != 5000 {
		t.Errorf("limits in the configuration file: got %+v, want tableEntries 500000, newSessionsPerIP 20, newSessionsBurst 100 and maxConnections 5000", l)
	}
	object(t, render(t), "ConfigMap", &cm)
	if got := cm.Data["podpin.yaml"]; strings.Contains(got, "limits:") {
		t.Errorf("configuration file with the default values: got\n%s\nwant no limits", got)
	}
}
