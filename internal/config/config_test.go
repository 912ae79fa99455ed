package config

import (
	"encoding/pem"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
		{"metrics need the token", c.Admin.Metrics, MetricsToken},
		{"log format", c.Log.Format, LogText},
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

func TestBackendURL(t *testing.T) {
	cases := []struct {
		url, addr, protocol string
		ok                  bool
	}{
		{"http://127.0.0.1:9001", "127.0.0.1:9001", PodHTTP, true},
		{"http://web-0.web.default.svc:8080/", "web-0.web.default.svc:8080", PodHTTP, true},
		{"http://[::1]:80", "[::1]:80", PodHTTP, true},
		{"h2c://10.0.0.5:50051", "10.0.0.5:50051", PodH2C, true},
		{"https://127.0.0.1:443", "127.0.0.1:443", PodHTTPS, true},
		{"http://127.0.0.1", "", "", false},
		{"ws://127.0.0.1:80", "", "", false},
		{"HTTP2://127.0.0.1:80", "", "", false},
		{"https://127.0.0.1:443/app", "", "", false},
		{"http://u:p@127.0.0.1:80", "", "", false},
		{"127.0.0.1:80", "", "", false},
	}
	for _, c := range cases {
		addr, protocol, err := BackendURL(c.url)
		if addr != c.addr || protocol != c.protocol || (err == nil) != c.ok {
			t.Errorf("BackendURL(%q) = %q, %q, %v; want %q, %q, ok %v", c.url, addr, protocol, err, c.addr, c.protocol, c.ok)
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

func TestRoutesOptionalAcceptsNoRoutesAndChecksTheRest(t *testing.T) {
	for _, tt := range []struct {
		name  string
		rules Rules
		file  string
		want  string // "" for valid
	}{
		{"routes are required by default", Rules{}, "listeners: [{address: 127.0.0.1:8080}]\n", "routes: at least one route is required"},
		{"no routes when they are optional", Rules{RoutesOptional: true}, "listeners: [{address: 127.0.0.1:8080}]\n", ""},
		{"an empty file when they are optional", Rules{RoutesOptional: true}, "", ""},
		{"the other fields are still checked", Rules{RoutesOptional: true}, "shutdown: {delay: -1s}\n", "shutdown.delay: must not be negative"},
		{"routes given are still checked", Rules{RoutesOptional: true}, "routes: [{name: a}]\n", "routes[0].backends: a route needs pods"},
		{"unknown fields are still errors", Rules{RoutesOptional: true}, "rotes: []\n", "rotes: unknown field (line 1)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.rules.Parse([]byte(tt.file))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.want == "":
				if c.Admin.Address != DefaultAdmin {
					t.Errorf("admin address: got %q, want the default %q", c.Admin.Address, DefaultAdmin)
				}
				if err := tt.rules.Validate(c); err != nil {
					t.Errorf("Validate after Parse: %v", err)
				}
			case err == nil || !strings.Contains(err.Error(), tt.want):
				t.Errorf("got error %v, want one with %q", err, tt.want)
			}
		})
	}
}

func TestTokenIsRequiredOffLoopback(t *testing.T) {
	t.Setenv("PODPIN_TEST_TOKEN", " env-token\n")
	for _, tt := range []struct {
		name  string
		admin Admin
		want  string // token, or the error with "error: " before it
	}{
		{"loopback needs none", Admin{Address: "127.0.0.1:9901"}, ""},
		{"localhost needs none", Admin{Address: "localhost:9901"}, ""},
		{"every interface needs one", Admin{Address: "0.0.0.0:9901"}, `error: admin.tokenFile: a token is required when admin.address "0.0.0.0:9901" is not a loopback address (set admin.tokenFile or admin.tokenEnv)`},
		{"a variable gives one", Admin{Address: "0.0.0.0:9901", TokenEnv: "PODPIN_TEST_TOKEN"}, "env-token"},
		{"an empty variable is an error", Admin{Address: "127.0.0.1:9901", TokenEnv: "PODPIN_TEST_UNSET"}, `error: admin.tokenEnv: environment variable "PODPIN_TEST_UNSET" is unset or empty`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			token, err := tt.admin.Token()
			got := token
			if err != nil {
				got = "error: " + err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadOnlyTokenIsOptionalAndNamesItsField(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "read")
	if err := os.WriteFile(file, []byte("reader\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PODPIN_TEST_READ", "env-reader")
	for _, tt := range []struct {
		name  string
		admin Admin
		want  string // token, or the error with "error: " before it
	}{
		{"none configured is none", Admin{}, ""},
		{"a file, its line break trimmed", Admin{ReadTokenFile: file}, "reader"},
		{"a variable", Admin{ReadTokenEnv: "PODPIN_TEST_READ"}, "env-reader"},
		{"a missing file names its field", Admin{ReadTokenFile: filepath.Join(dir, "absent")}, "error: admin.readTokenFile: reading the token: open " + filepath.Join(dir, "absent") + ": no such file or directory"},
		{"an empty variable names its field", Admin{ReadTokenEnv: "PODPIN_TEST_UNSET"}, `error: admin.readTokenEnv: environment variable "PODPIN_TEST_UNSET" is unset or empty`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			token, err := tt.admin.ReadToken()
			got := token
			if err != nil {
				got = "error: " + err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedisSecretsAreReadWithTheirFieldNamed(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	srv := httptest.NewTLSServer(nil)
	srv.Close()
	ca := write("ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	t.Setenv("PODPIN_TEST_REDIS", "envpw")

	for _, tt := range []struct {
		name string
		r    Redis
		want string // password, or the error with "error: " before it
	}{
		{"a file, its line break trimmed", Redis{PasswordFile: write("pw", "filepw\r\n")}, "filepw"},
		{"a variable", Redis{PasswordEnv: "PODPIN_TEST_REDIS"}, "envpw"},
		{"the file before the variable", Redis{PasswordFile: write("pw2", "filepw"), PasswordEnv: "PODPIN_TEST_REDIS"}, "filepw"},
		{"none", Redis{}, ""},
		{"a missing file", Redis{PasswordFile: filepath.Join(dir, "nope")}, "error: store.redis.passwordFile: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
	} {
		t.Run("password: "+tt.name, func(t *testing.T) {
			got, err := tt.r.Password()
			if err != nil {
				got = "error: " + err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name  string
		r     Redis
		roots bool
		err   string
	}{
		{"no file: the system's roots", Redis{TLS: true}, false, ""},
		{"TLS off: the file is not read", Redis{TLSCAFile: filepath.Join(dir, "nope")}, false, ""},
		{"a certificate with TLS on", Redis{TLS: true, TLSCAFile: ca}, true, ""},
		{"a certificate with a rediss URL", Redis{URL: "rediss://r:6379", TLSCAFile: ca}, true, ""},
		{"a missing file", Redis{TLS: true, TLSCAFile: filepath.Join(dir, "nope")}, false, "store.redis.tlsCAFile: open "},
		{"a file without a certificate", Redis{TLS: true, TLSCAFile: write("empty.pem", "nothing")}, false, "store.redis.tlsCAFile: no certificate in it"},
	} {
		t.Run("roots: "+tt.name, func(t *testing.T) {
			pool, err := tt.r.RootCAs()
			switch {
			case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)):
				t.Errorf("got %v, want an error starting %q", err, tt.err)
			case tt.err == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case (pool != nil) != tt.roots:
				t.Errorf("got roots %v, want roots: %v", pool != nil, tt.roots)
			}
		})
	}
}

func TestLimitsNewSessionsAreTheDefaultOfEveryRoute(t *testing.T) {
	c := &Config{
		Limits: Limits{NewSessionsPerIP: 5, NewSessionsBurst: 50},
		Routes: []Route{
			{Name: "unset", Backends: []Backend{{Name: "a", URL: "http://127.0.0.1:1"}}},
			{Name: "own", Sticky: Sticky{NewSessionsPerIP: 1}, Backends: []Backend{{Name: "a", URL: "http://127.0.0.1:1"}}},
			{Name: "own-burst", Sticky: Sticky{NewSessionsBurst: 7}, Backends: []Backend{{Name: "a", URL: "http://127.0.0.1:1"}}},
		},
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []Sticky{{NewSessionsPerIP: 5, NewSessionsBurst: 50}, {NewSessionsPerIP: 1, NewSessionsBurst: 1}, {NewSessionsPerIP: 5, NewSessionsBurst: 7}}
	for i, r := range c.Routes {
		if r.Sticky.NewSessionsPerIP != want[i].NewSessionsPerIP || r.Sticky.NewSessionsBurst != want[i].NewSessionsBurst {
			t.Errorf("route %s: got %v per second, burst %d; want %v, %d", r.Name,
				r.Sticky.NewSessionsPerIP, r.Sticky.NewSessionsBurst, want[i].NewSessionsPerIP, want[i].NewSessionsBurst)
		}
	}
}

func TestMemoryLimitsAreChecked(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		want   string
	}{
		{"a negative table budget", Limits{TableEntries: -1}, "limits.tableEntries: must not be negative"},
		{"a negative new-session rate", Limits{NewSessionsPerIP: -2}, "limits.newSessionsPerIP: must be a number, not negative"},
		{"a burst without a rate", Limits{NewSessionsBurst: 3}, "limits.newSessionsBurst: needs newSessionsPerIP"},
		{"a burst over the most", Limits{NewSessionsPerIP: 1, NewSessionsBurst: 2_000_000}, "limits.newSessionsBurst: 2000000 must be between 0 and 1000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Limits: tt.limits, Routes: []Route{{Name: "r", Backends: []Backend{{Name: "a", URL: "http://127.0.0.1:1"}}}}}
			c.SetDefaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}
