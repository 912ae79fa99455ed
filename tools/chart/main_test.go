package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCommandWritesTheRendering(t *testing.T) {
	want := render(t, "testdata/every-option.yaml")

	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-f", "testdata/every-option.yaml"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.Bytes())
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Errorf("standard output: got\n%s\nwant\n%s", stdout.Bytes(), want)
	}

	out := filepath.Join(t.TempDir(), "podpin.yaml")
	stdout.Reset()
	if err := run(t.Context(), []string{"-f", "testdata/every-option.yaml", "-o", out}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.Bytes())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || stdout.Len() > 0 {
		t.Errorf("-o: got file\n%s\nand standard output %q, want the rendering in the file alone", got, stdout.Bytes())
	}
}

func TestCommandRefusesAChartThatFailsLint(t *testing.T) {
	out := filepath.Join(t.TempDir(), "podpin.yaml")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-f", valuesFile(t, "ingressClass: {name: Not_A_Name}\n"), "-o", out}, &stdout, &stderr)
	if !errors.Is(err, ErrLint) {
		t.Errorf("got %v, want an error wrapping ErrLint", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: got %v, want no file written", out, err)
	}
}

func TestCommandRefusesExtraArguments(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"podpin"}, &stdout, &stderr); err == nil {
		t.Error("got no error for an argument, want one")
	}
}
