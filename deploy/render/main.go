// Command render renders podpin's Helm chart into plain manifests, so that
// deploy/manifests/podpin.yaml is the chart with its default values rather
// than a second copy kept by hand:
//
//	go run ./deploy/render > deploy/manifests/podpin.yaml
//
// It implements the part of Helm the chart uses, no more: the objects
// .Values, .Chart and .Release, and Go's text/template with the functions include, toYaml, indent, nindent, quote,
// default, required, trunc, trimSuffix, contains and b64enc, which behave as
// Helm's (Sprig's) do. A template that uses anything else fails to render,
// so the chart cannot drift into what this program would render wrongly.
// With -f, a values file is merged over the defaults, as with helm -f.
// Documents come out in Helm's install order, each under a "# Source:"
// comment as `helm template` prints them; with -create-namespace a
// Namespace object comes first.
package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

func main() {
	chart := flag.String("chart", "deploy/helm/podpin", "chart `folder`")
	name := flag.String("name", "podpin", "release `name`")
	namespace := flag.String("namespace", "podpin-system", "release `namespace`")
	createNS := flag.Bool("create-namespace", true, "start with the Namespace object")
	out := flag.String("o", "", "write to this `file` instead of standard output")
	valuesFile := flag.String("f", "", "values `file` merged over the chart's values.yaml, as helm -f does")
	flag.Parse()
	var overrides map[string]any
	if *valuesFile != "" {
		if err := readYAML(*valuesFile, &overrides); err != nil {
			fmt.Fprintln(os.Stderr, "render:", err)
			os.Exit(1)
		}
	}
	data, err := Render(*chart, Release{Name: *name, Namespace: *namespace}, *createNS, overrides)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
	if *out == "" {
		os.Stdout.Write(data)
		return
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

// Release is Helm's .Release.
type Release struct {
	Name      string
	Namespace string
	// Service names what manages the objects (Helm sets "Helm").
	Service string
}

// chartMeta is Helm's .Chart, from Chart.yaml.
type chartMeta struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	AppVersion string `json:"appVersion"`
}

// installOrder is the order of kinds Helm installs in (and `helm template`
// prints in); kinds not listed come last.
var installOrder = []string{
	"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
	"StorageClass", "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition",
	"ClusterRole", "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList",
	"Role", "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
	"ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
	"StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
}

// Render renders the chart in folder dir with its default values, and
// overrides merged over them as Helm merges a values file: maps key by key,
// anything else replaced, null removing the key.
func Render(dir string, rel Release, createNamespace bool, overrides map[string]any) ([]byte, error) {
	if rel.Service == "" {
		rel.Service = "podpin-manifests"
	}
	var meta chartMeta
	if err := readYAML(filepath.Join(dir, "Chart.yaml"), &meta); err != nil {
		return nil, err
	}
	var values map[string]any
	if err := readYAML(filepath.Join(dir, "values.yaml"), &values); err != nil {
		return nil, err
	}
	values = mergeValues(values, overrides)
	root := map[string]any{
		"Values": values,
		"Chart":  map[string]any{"Name": meta.Name, "Version": meta.Version, "AppVersion": meta.AppVersion},
		"Release": map[string]any{
			"Name": rel.Name, "Namespace": rel.Namespace, "Service": rel.Service,
			"IsInstall": true, "IsUpgrade": false,
		},
	}

	files, err := filepath.Glob(filepath.Join(dir, "templates", "*"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	tmpl := template.New(meta.Name).Option("missingkey=error")
	tmpl.Funcs(funcs(tmpl))
	var docs []string
	for _, f := range files {
		base := filepath.Base(f)
		if base == "NOTES.txt" {
			continue
		}
		text, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if _, err := tmpl.New(base).Parse(string(text)); err != nil {
			return nil, err
		}
		if !strings.HasPrefix(base, "_") {
			docs = append(docs, base)
		}
	}

	type doc struct {
		source, kind, text string
	}
	var out []doc
	for _, name := range docs {
		var b bytes.Buffer
		if err := tmpl.ExecuteTemplate(&b, name, root); err != nil {
			return nil, err
		}
		for _, part := range splitDocs(b.String()) {
			var head struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(part), &head); err != nil {
				return nil, fmt.Errorf("%s: rendered YAML does not parse: %w", name, err)
			}
			if head.Kind == "" {
				return nil, fmt.Errorf("%s: rendered a document without kind", name)
			}
			out = append(out, doc{source: meta.Name + "/templates/" + name, kind: head.Kind, text: part})
		}
	}
	rank := func(kind string) int {
		if i := slices.Index(installOrder, kind); i >= 0 {
			return i
		}
		return len(installOrder)
	}
	slices.SortStableFunc(out, func(a, b doc) int { return rank(a.kind) - rank(b.kind) })

	var b bytes.Buffer
	fmt.Fprintf(&b, "# podpin %s: the Helm chart deploy/helm/podpin rendered with its default\n", meta.AppVersion)
	fmt.Fprintf(&b, "# values for release %q in namespace %q. Generated by\n", rel.Name, rel.Namespace)
	b.WriteString("# `go run ./deploy/render -o deploy/manifests/podpin.yaml`; do not edit.\n")
	if createNamespace {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", rel.Namespace)
	}
	for _, d := range out {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", d.source, d.text)
	}
	return b.Bytes(), nil
}

// splitDocs splits rendered text into its YAML documents, dropping those
// that hold only comments and blank lines (a disabled template).
func splitDocs(s string) []string {
	var docs []string
	for _, part := range strings.Split("\n"+s, "\n---") {
		part = strings.Trim(part, "\n")
		empty := true
		for _, line := range strings.Split(part, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, part)
		}
	}
	return docs
}

func mergeValues(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		switch ov := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			if bv, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(bv, ov)
			} else {
				out[k] = ov
			}
		default:
			out[k] = v
		}
	}
	return out
}

func readYAML(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// funcs are the Helm and Sprig functions the chart may use, with their
// semantics.
func funcs(t *template.Template) template.FuncMap {
	return template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b bytes.Buffer
			err := t.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		// toYaml is Helm's: sigs.k8s.io/yaml, without the final newline.
		"toYaml": func(v any) (string, error) {
			data, err := yaml.Marshal(v)
			return strings.TrimSuffix(string(data), "\n"), err
		},
		"indent": indent,
		"nindent": func(n int, s string) string {
			return "\n" + indent(n, s)
		},
		"quote": func(vs ...any) string {
			out := make([]string, 0, len(vs))
			for _, v := range vs {
				if v != nil {
					out = append(out, fmt.Sprintf("%q", str(v)))
				}
			}
			return strings.Join(out, " ")
		},
		// default returns given unless it is empty (Sprig's emptiness).
		"default": func(def any, given ...any) any {
			if len(given) == 0 || empty(given[0]) {
				return def
			}
			return given[0]
		},
		"required": func(msg string, v any) (any, error) {
			if v == nil || str(v) == "" {
				return nil, errors.New(msg)
			}
			return v, nil
		},
		"trunc": func(n int, s string) string {
			if n >= 0 && len(s) > n {
				return s[:n]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"contains":   func(substr, s string) bool { return strings.Contains(s, substr) },
		"b64enc":     func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	}
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// empty is Sprig's notion of an empty value: nil, false, zero, "" and empty
// collections.
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case float64:
		return x == 0
	case int:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}
