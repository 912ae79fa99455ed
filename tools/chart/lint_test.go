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
	if msg := err.Error(); !strings.Contains(msg, "Not_A_Name") || !strings.Contains(msg, "ingressclass.yaml") {
		t.Errorf("error %q does not name the value and the template", msg)
	}
}

func TestLintReportsAMissingChart(t *testing.T) {
	err := Lint(t.TempDir(), "podpin-system", nil)
	if err == nil || errors.Is(err, ErrLint) {
		t.Errorf("got %v, want an error that is not ErrLint", err)
	}
}
