package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/admin"
)

// cliResult is what a CLI run printed and how it exited.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the podpin binary with args and env (NAME=value) added to a
// clean environment.
func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := cliResult{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running podpin %v: %v", args, err)
	}
	return r
}

// ok runs the CLI and fails the test unless it succeeds.
func (p *process) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := runCLI(t, []string{"PODPIN_ADMIN=" + p.admin}, args...)
	if r.code != 0 {
		t.Fatalf("podpin %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// rows splits a table into its lines' fields, header first.
func rows(out string) [][]string {
	var rs [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rs = append(rs, strings.Fields(line))
	}
	return rs
}

// startRoutePodpin runs podpin over three live pods with a route that keeps
// raw keys, so listings show them.
func startRoutePodpin(t *testing.T, extra ...string) *process {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "podpin.yaml")
	yaml := "listeners: [{address: 127.0.0.1:0}]\nadmin: {address: 127.0.0.1:0}\nroutes:\n" +
		"- name: default\n  table: {keepRawKeys: true}\n  backends:\n" +
		"  - {name: web-0, url: " + namedPod(t, "web-0", 0).URL + "}\n" +
		"  - {name: web-1, url: " + namedPod(t, "web-1", 0).URL + "}\n" +
		"  - {name: web-2, url: " + namedPod(t, "web-2", 0).URL + "}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return startPodpin(t, append([]string{"--config", cfg}, extra...)...)
}

func TestSessionCommands(t *testing.T) {
	p := startRoutePodpin(t)
	alicePod := p.podOf("alice") // round robin: web-0

	// get: the session the proxy made.
	got := rows(p.ok(t, "sessions", "get", "alice"))
	if want := []string{"KEY", "POD", "AGE", "IDLE", "HITS", "DIGEST"}; len(got) != 2 || strings.Join(got[0], " ") != strings.Join(want, " ") {
		t.Fatalf("sessions get: got %q, want a header %v and one row", got, want)
	}
	if got[1][0] != "alice" || got[1][1] != alicePod || got[1][4] != "0" {
		t.Errorf("sessions get alice: got row %q, want alice on %s with 0 hits", got[1], alicePod)
	}

	// pin: bob goes where the operator says, and the proxy follows.
	got = rows(p.ok(t, "sessions", "pin", "bob", "web-2"))
	if len(got) != 2 || got[1][0] != "bob" || got[1][1] != "web-2" {
		t.Errorf("sessions pin bob web-2: got %q, want bob on web-2", got)
	}
	if pod := p.podOf("bob"); pod != "web-2" {
		t.Errorf("after pinning bob to web-2 the proxy sent bob to %s", pod)
	}
	// Flags may follow the arguments; keys may hold any visible character.
	p.ok(t, "sessions", "pin", "carol/1?x=%2F", "web-2", "--route", "default")
	if pod := p.podOf("carol/1?x=%2F"); pod != "web-2" {
		t.Errorf("after pinning an escaped key the proxy sent it to %s, want web-2", pod)
	}

	// list: every session, as a table and as the API's JSON.
	list := rows(p.ok(t, "sessions", "list"))
	onPod := map[string]string{}
	for _, r := range list[1:] {
		onPod[r[0]] = r[1]
	}
	wantOn := map[string]string{"alice": alicePod, "bob": "web-2", "carol/1?x=%2F": "web-2"}
	if len(onPod) != len(wantOn) {
		t.Errorf("sessions list: got %v, want %v", onPod, wantOn)
	}
	for k, v := range wantOn {
		if onPod[k] != v {
			t.Errorf("sessions list: key %q on %q, want %q", k, onPod[k], v)
		}
	}
	var page admin.SessionPage
	if err := json.Unmarshal([]byte(p.ok(t, "sessions", "list", "--pod", "web-2", "-o", "json")), &page); err != nil {
		t.Fatalf("sessions list -o json: %v", err)
	}
	if len(page.Sessions) != 2 || page.Sessions[0].Pod != "web-2" || page.Sessions[1].Pod != "web-2" {
		t.Errorf("sessions list --pod web-2 -o json: got %+v, want the 2 sessions of web-2", page.Sessions)
	}
	if out := rows(p.ok(t, "sessions", "list", "--prefix", "car")); len(out) != 2 || out[1][0] != "carol/1?x=%2F" {
		t.Errorf("sessions list --prefix car: got %q, want carol's key only", out)
	}
	// Pages of one, followed to the end.
	r := runCLI(t, []string{"PODPIN_ADMIN=" + p.admin}, "sessions", "list", "--limit", "1")
	if r.code != 0 || len(rows(r.stdout)) != 2 || !strings.Contains(r.stderr, "--cursor") {
		t.Errorf("sessions list --limit 1: got %q, stderr %q, want one row and a hint to go on", r.stdout, r.stderr)
	}
	page = admin.SessionPage{}
	if err := json.Unmarshal([]byte(p.ok(t, "sessions", "list", "--limit", "1", "--all", "-o", "json")), &page); err != nil || len(page.Sessions) != 3 {
		t.Errorf("sessions list --limit 1 --all: got %d sessions (%v), want 3", len(page.Sessions), err)
	}

	// pods: session counts per pod.
	var pods admin.PodList
	if err := json.Unmarshal([]byte(p.ok(t, "pods", "-o", "json")), &pods); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, pd := range pods.Pods {
		counts[pd.Name] = pd.Sessions
	}
	if counts["web-0"] != 1 || counts["web-1"] != 0 || counts["web-2"] != 2 {
		t.Errorf("pods -o json: got sessions %v, want web-0:1 web-1:0 web-2:2", counts)
	}
	table := p.ok(t, "pods")
	if !regexp.MustCompile(`(?m)^web-2\s+ready\s+127\.0\.0\.1:\d+\s+1\s+0\s+2\s+2\s+0$`).MatchString(table) {
		t.Errorf("pods: got\n%s\nwant a row for web-2: ready, weight 1, 0 in flight, 2 sessions, 2 requests, 0 rebinds", table)
	}
	if out := p.ok(t, "routes"); !regexp.MustCompile(`(?m)^default\s+\*\s+X-Session\s+round-robin\s+3\s+3\s`).MatchString(out) {
		t.Errorf("routes: got\n%s\nwant the default route with 3 pods and 3 sessions", out)
	}

	// unpin, then the key is gone: get fails with one line and exit 1.
	if out := p.ok(t, "sessions", "unpin", "bob"); !strings.Contains(out, `unpinned "bob"`) {
		t.Errorf("sessions unpin bob: got %q", out)
	}
	r = runCLI(t, []string{"PODPIN_ADMIN=" + p.admin}, "sessions", "get", "bob")
	if r.code != 1 || r.stderr != "podpin: key is not pinned\n" {
		t.Errorf("sessions get bob after unpin: got exit %d, stderr %q; want 1, one line", r.code, r.stderr)
	}

	// clear: every session of a pod.
	if out := p.ok(t, "sessions", "clear", "--pod", "web-2"); out != "cleared 1 session(s) of pod web-2 in route default\n" {
		t.Errorf("sessions clear --pod web-2: got %q", out)
	}
	if out := p.ok(t, "sessions", "clear", "--pod", alicePod, "-o", "json"); !strings.Contains(out, `"cleared": 1`) {
		t.Errorf("sessions clear -o json: got %q, want the API's JSON", out)
	}
	if out := rows(p.ok(t, "sessions", "list")); len(out) != 1 {
		t.Errorf("sessions list after clearing: got %q, want the header only", out)
	}
}

func TestCommandErrors(t *testing.T) {
	p := startRoutePodpin(t)
	env := []string{"PODPIN_ADMIN=" + p.admin}
	for _, tt := range []struct {
		name string
		args []string
		want string // the only line on stderr
	}{
		{"an unknown pod", []string{"sessions", "pin", "k", "web-9"}, `podpin: pod: no such pod in the route: "web-9"`},
		{"an unknown route", []string{"pods", "--route", "nope"}, `podpin: no such route: "nope"`},
		{"clear without a pod", []string{"sessions", "clear"}, `podpin: --pod is required: the pod whose sessions are cleared`},
		{"pin without a pod", []string{"sessions", "pin", "k"}, `podpin: usage: podpin sessions pin KEY POD [--route R]`},
		{"a bad output format", []string{"routes", "-o", "yaml"}, `podpin: -o "yaml": want table or json`},
		{"a limit too large", []string{"sessions", "list", "--limit", "5000"}, `podpin: limit: "5000" must be a number from 1 to 1000`},
		{"nobody listening", []string{"routes", "--admin", "127.0.0.1:1"}, `podpin: cannot reach the admin API at http://127.0.0.1:1: connection refused (set --admin or PODPIN_ADMIN)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, env, tt.args...)
			if r.code != 1 || r.stderr != tt.want+"\n" {
				t.Errorf("podpin %v: got exit %d, stderr %q; want exit 1, %q", tt.args, r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestCommandsWithToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("t0ken-for-tests\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Every interface, so the token is required; the CLI reaches it on loopback.
	p := startPodpin(t, "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0", "--admin-token-file", tokenFile,
		"--backend", "web-0="+namedPod(t, "web-0", 0).URL)
	_, port, _ := strings.Cut(p.admin, "]:")
	if port == "" {
		_, port, _ = strings.Cut(p.admin, "0.0.0.0:")
	}
	addr := "PODPIN_ADMIN=127.0.0.1:" + port

	r := runCLI(t, []string{addr}, "routes")
	if r.code != 1 || !strings.Contains(r.stderr, "missing or wrong bearer token (give --token or set PODPIN_ADMIN_TOKEN)") {
		t.Errorf("routes without a token: got exit %d, stderr %q; want 1 and a hint", r.code, r.stderr)
	}
	r = runCLI(t, []string{addr, "PODPIN_ADMIN_TOKEN=wrong"}, "routes")
	if r.code != 1 || strings.Contains(r.stderr, "t0ken") {
		t.Errorf("routes with a wrong token: got exit %d, stderr %q; want 1, no token echoed", r.code, r.stderr)
	}
	for _, env := range [][]string{{addr, "PODPIN_ADMIN_TOKEN=t0ken-for-tests"}, {addr}} {
		args := []string{"routes"}
		if len(env) == 1 {
			args = append(args, "--token", "t0ken-for-tests")
		}
		if r := runCLI(t, env, args...); r.code != 0 || !strings.Contains(r.stdout, "default") {
			t.Errorf("routes %v with the token: got exit %d, %q %q", env, r.code, r.stdout, r.stderr)
		}
	}
	if code, err := httpGet("http://127.0.0.1:" + port + "/healthz"); err != nil || code != 200 {
		t.Errorf("/healthz without a token: got %d %v, want 200", code, err)
	}
}

func TestServeRefusesABadDefaultTLSSecret(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"without --ingress-class", []string{"--backend", "web-0=http://127.0.0.1:9", "--default-tls-secret", "shop/tls"}, "--default-tls-secret needs --ingress-class"},
		{"without a namespace", []string{"--ingress-class", "podpin", "--default-tls-secret", "shop-tls"}, `--default-tls-secret: want NAMESPACE/NAME, got "shop-tls"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, tt.args...)
			r := runCLI(t, nil, args...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("podpin %v: got exit %d, stderr %q; want exit 1 naming %q", args, r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestServeRefusesAnOpenAdminListenerWithoutToken(t *testing.T) {
	pod := namedPod(t, "web-0", 0).URL
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"every interface", []string{"--admin", "0.0.0.0:0"}, `admin.tokenFile: a token is required when admin.address "0.0.0.0:0" is not a loopback address`},
		{"an empty host", []string{"--admin", ":0"}, `admin.tokenFile: a token is required when admin.address ":0" is not a loopback address`},
		{"a missing token file", []string{"--admin", "0.0.0.0:0", "--admin-token-file", "/nonexistent/token"}, `admin.tokenFile: reading the token: open /nonexistent/token: no such file or directory`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--backend", "web-0=" + pod}, tt.args...)
			r := runCLI(t, nil, args...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("podpin %v: got exit %d, stderr %q; want exit 1 naming %q", args, r.code, r.stderr, tt.want)
			}
		})
	}
}
