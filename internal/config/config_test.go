package config

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("got:\n%s\nwant (%s):\n%s", got, path, want)
	}
}

func TestInvalidConfigsNameEveryFieldAtFault(t *testing.T) {
	for _, name := range []string{"bad", "unknown"} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", name+".yaml"))
			if err == nil {
				t.Fatal("got no error")
			}
			golden(t, name+".golden", err.Error()+"\n")
		})
	}
}

func TestValidConfigGetsItsDefaults(t *testing.T) {
	c, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, n := c.Routes[0], c.Routes[1]
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"admin address", c.Admin.Address, DefaultAdmin},
		{"pod header", c.PodHeaderName(), DefaultPodHeader},
		{"drain timeout", c.Shutdown.DrainTimeout, DefaultDrainTimeout},
		{"apache weight default", a.Backends[0].Weight, 1},
		{"apache weight set", a.Backends[1].Weight, 2},
		{"apache missing", a.Sticky.Missing, MissingAssign},
		{"apache absolute timeout", a.Table.AbsoluteTimeout, 12 * time.Hour},
		{"nginx header default", n.Sticky.Header, DefaultHeader},
		{"nginx balancer default", n.Balancer, "round-robin"},
		{"nginx idle default", n.Table.IdleTimeout, DefaultIdleTimeout},
		{"nginx max entries default", n.Table.MaxEntries, DefaultMaxEntries},
		{"nginx drain default", n.DrainEnabled(), true},
		{"nginx strict", n.Strict, true},
		{"nginx pod state", n.Backends[0].State, "draining"},
		{"nginx key limit", n.Sticky.MaxKeyBytes, DefaultMaxKeyBytes},
		{"passive failures", n.Health.Passive.ConsecutiveFailures, DefaultConsecutiveFailures},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestEmptyPodHeaderTurnsItOff(t *testing.T) {
	c, err := Parse([]byte("podHeader: \"\"\nroutes: [{name: a, backends: [{name: p, url: 'http://127.0.0.1:1'}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.PodHeaderName(); got != "" {
		t.Errorf("got %q, want the header off", got)
	}
}

func TestBackendAddress(t *testing.T) {
	cases := []struct {
		url, want string
		ok        bool
	}{
		{"http://127.0.0.1:9001", "127.0.0.1:9001", true},
		{"http://web-0.web.default.svc:8080/", "web-0.web.default.svc:8080", true},
		{"http://[::1]:80", "[::1]:80", true},
		{"http://127.0.0.1", "", false},
		{"https://127.0.0.1:443", "", false},
		{"http://127.0.0.1:80/app", "", false},
		{"http://u:p@127.0.0.1:80", "", false},
		{"127.0.0.1:80", "", false},
	}
	for _, c := range cases {
		got, err := BackendAddress(c.url)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("BackendAddress(%q) = %q, %v; want %q, ok %v", c.url, got, err, c.want, c.ok)
		}
	}
}

func TestUnknownFieldsWithOddNamesStillHaveAPath(t *testing.T) {
	_, err := Parse([]byte("\"\": 1\nroutes: [{name: a, \"x.y\": 2, backends: [{name: p, url: 'http://127.0.0.1:1'}]}]\n"))
	want := `"": unknown field (line 1)` + "\n" + `routes[0]."x.y": unknown field (line 2)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want:\n%s", err, want)
	}
}
