package cli

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/admintest"
)

// run runs a command with PODPIN_ADMIN set to addr and returns what it
// printed.
func run(t *testing.T, addr string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut strings.Builder
	env := Env{Stdout: &out, Stderr: &errOut, Getenv: func(name string) string {
		if name == "PODPIN_ADMIN" {
			return addr
		}
		return ""
	}}
	err = Run(context.Background(), args[0], args[1:], env)
	return out.String(), errOut.String(), err
}

// get returns the API's answer to a GET of path.
func get(t *testing.T, srv *httptest.Server, path string) string {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJSONOutputIsTheAPIsAnswer(t *testing.T) {
	srv := admintest.Start(t, "")
	addr := srv.Listener.Addr().String()
	for _, k := range []string{"alice", "bob", "<carol&dave>"} {
		if _, _, err := run(t, addr, "sessions", "pin", k, "web-1"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		args []string
		path string
	}{
		{[]string{"routes"}, "/api/v1/routes"},
		{[]string{"pods"}, "/api/v1/routes/default/pods"},
		{[]string{"sessions", "list"}, "/api/v1/routes/default/sessions"},
		{[]string{"sessions", "list", "--limit", "2"}, "/api/v1/routes/default/sessions?limit=2"},
		{[]string{"sessions", "get", "<carol&dave>"}, "/api/v1/routes/default/sessions/%3Ccarol&dave%3E"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := run(t, addr, append(tt.args, "-o", "json")...)
			if err != nil {
				t.Fatal(err)
			}
			if want := get(t, srv, tt.path); out != want {
				t.Errorf("got:\n%s\nwant the API's answer:\n%s", out, want)
			}
		})
	}
}

func TestFlagsMayComeAfterTheArguments(t *testing.T) {
	addr := admintest.Start(t, "").Listener.Addr().String()
	if _, _, err := run(t, addr, "sessions", "pin", "alice", "--route", "default", "web-0"); err != nil {
		t.Fatalf("pin with --route between the arguments: %v", err)
	}
	if _, _, err := run(t, addr, "sessions", "pin", "-o", "json", "--", "-dash", "web-1"); err != nil {
		t.Fatalf("pin of a key that starts with '-': %v", err)
	}
	out, _, err := run(t, addr, "sessions", "list")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		keys = append(keys, strings.Fields(line)[0])
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"-dash", "alice"}) {
		t.Errorf("listed keys %q, want -dash and alice", keys)
	}
}

func TestAPIErrorsNameWhatFixesThem(t *testing.T) {
	locked := admintest.Start(t, "s3cret").Listener.Addr().String()
	for _, tt := range []struct {
		name string
		addr string
		args []string
		want string
	}{
		{"no token", locked, []string{"routes"}, "missing or wrong bearer token (give --token or set PODPIN_ADMIN_TOKEN)"},
		{"nothing listening", "127.0.0.1:1", []string{"pods"}, "cannot reach the admin API at http://127.0.0.1:1: connection refused (set --admin or PODPIN_ADMIN)"},
		{"an address that is none", "ftp://x", []string{"routes"}, `--admin "ftp://x": want host:port or http://host:port`},
		{"a format that is none", locked, []string{"routes", "-o", "yaml"}, `-o "yaml": want table or json`},
		{"an argument too many", locked, []string{"pods", "web"}, `unexpected argument "web"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := run(t, tt.addr, tt.args...); err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	if out, _, err := run(t, locked, "routes", "--token", "s3cret"); err != nil || !strings.HasPrefix(out, "ROUTE ") {
		t.Errorf("routes with the token: got %q, %v; want the table", out, err)
	}
}

func TestSessionsWithoutACommandPrintsTheUsage(t *testing.T) {
	_, stderr, err := run(t, "127.0.0.1:1", "sessions")
	if err != flag.ErrHelp || !strings.HasPrefix(stderr, "Usage:\n  podpin sessions list") {
		t.Errorf("got %v and %q, want flag.ErrHelp and the usage", err, stderr)
	}
}
