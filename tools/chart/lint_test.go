package main

import (
	"errors"
	"strings"
	"testing"
)

func TestChartPassesStrictLint(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
	}{
		{"default values", nil},
		{"every option on", []string{"testdata/every-option.yaml"}},
		{"an autoscaler and memory tables", []string{"testdata/autoscaling.yaml"}},
	} {
		vals, err := ReadValues(tc.files)
		if err != nil {
			t.Fatal(err)
		}
		if err := Lint(chartDir, "podpin-system", vals); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// Lint fails on what helm lint reports, here an object name Kubernetes
// refuses, and says what and where.
func TestLintReportsProblems(t *testing.T) {
	vals, err := ReadValues([]string{valuesFile(t, "ingressClass: {name: Not_A_Name}\n")})
	if err != nil {
		t.Fatal(err)
	}
	err = Lint(chartDir, "podpin-system", vals)
	if !errors.Is(err, ErrLint) {
		t.Fatalf("got %v, want an error wrapping ErrLint", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "Not_A_Name") || !strings.Contains(msg, "/ingressClass/name") {
		t.Errorf("error %q does not name the value and where it is", msg)
	}
}

// values.schema.json refuses values the chart cannot use before anything is
// rendered, naming the value: helm install --set store.type=Redis fails
// with the same message.
func TestSchemaRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"a store type in the wrong case", "store: {type: Redis}", "/store/type"},
		{"a replica count that is not a number", "replicaCount: two", "/replicaCount"},
		{"no replicas", "replicaCount: 0", "/replicaCount"},
		{"an unknown top-level value", "replicas: 3", "'replicas' not allowed"},
		{"an unknown store value", "store: {bundled: {maxMemory: 1gb}}", "'maxMemory' not allowed"},
		{"a duration without a unit", "shutdown: {delay: 5}", "/shutdown/delay"},
		{"a duration that is not one", "limits: {headerTimeout: ten seconds}", "/limits/headerTimeout"},
		{"an unknown limit", "limits: {maxBody: 10}", "'maxBody' not allowed"},
		{"a service type Kubernetes lacks", "service: {type: Ingress}", "/service/type"},
		{"a Redis URL of another scheme", "store: {redis: {url: 'http://redis:6379'}}", "/store/redis/url"},
		{"a Redis size Redis does not read", "store: {bundled: {maxmemory: 200 MiB}}", "/store/bundled/maxmemory"},
		{"a pod header with a space", "podHeader: X Pod", "/podHeader"},
		{"a log level podpin lacks", "logLevel: verbose", "/logLevel"},
		{"a default TLS Secret without its namespace", "listener: {tls: {defaultSecret: shop-tls}}", "/listener/tls/defaultSecret"},
	} {
		vals, err := ReadValues([]string{valuesFile(t, tc.values+"\n")})
		if err != nil {
			t.Fatal(err)
		}
		err = Lint(chartDir, "podpin-system", vals)
		if !errors.Is(err, ErrLint) {
			t.Errorf("%s: got %v, want an error wrapping ErrLint", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not name %s", tc.name, err, tc.want)
		}
	}
}

func TestLintReportsAMissingChart(t *testing.T) {
	err := Lint(t.TempDir(), "podpin-system", nil)
	if err == nil || errors.Is(err, ErrLint) {
		t.Errorf("got %v, want an error that is not ErrLint", err)
	}
}
