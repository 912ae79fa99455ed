package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	}
	good := write("good.yaml", "routes:\n  - name: web\n    backends:\n      - name: web-0\n        url: http://127.0.0.1:8081\n")
	bad := write("bad.yaml", "routes:\n  - name: web\n    backends:\n      - name: web-0\n        url: http://127.0.0.1:8081\n    table:\n      idleTimeout: -1s\n")
	noRoutes := write("ingress.yaml", "listeners:\n  - address: 127.0.0.1:18080\n")

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr bool
		out     string // in stdout when valid, in stderr when not
	}{
		{"a valid file", []string{"--config", good}, false, "valid, 1 route(s)"},
		{"an invalid field is named", []string{"--config", bad}, true, "routes[0].table.idleTimeout: must be positive"},
		{"routes are required", []string{"--config", noRoutes}, true, "routes: at least one route is required"},
		{"an Ingress controller's file needs none", []string{"--config", noRoutes, "--ingress-class", "podpin"}, false, "valid, 0 route(s)"},
		{"an Ingress controller's file is still checked", []string{"--config", bad, "--ingress-class", "podpin"}, true, "routes[0].table.idleTimeout"},
		{"a Gateway controller's file needs none", []string{"--config", noRoutes, "--gateway"}, false, "valid, 0 route(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := validateCmd(tc.args, &stdout, &stderr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %v (stderr %q)", err, tc.wantErr, stderr.String())
			}
			got := stdout.String()
			if tc.wantErr {
				got = stderr.String()
			}
			if !strings.Contains(got, tc.out) {
				t.Errorf("output %q lacks %q", got, tc.out)
			}
		})
	}
}
