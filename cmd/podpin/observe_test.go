package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetricsOpenReadTokenAndJSONLog runs podpin as the chart does (admin
// listener on every interface, a token) with open metrics, a read-only
// token and a JSON log, and checks what a scraper, a reader and a log
// collector get.
func TestMetricsOpenReadTokenAndJSONLog(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tokenFile := write("token", "admin-t0ken\n")
	readFile := write("read", "reader-t0ken\n")
	cfg := filepath.Join(dir, "podpin.yaml")
	writeConfig(t, cfg, "", "web-0="+namedPod(t, "web-0", 0).URL, "web-1="+namedPod(t, "web-1", 0).URL)
	body, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(string(body), "admin: {address: 127.0.0.1:0}",
		"admin: {address: '0.0.0.0:0', tokenFile: "+tokenFile+", readTokenFile: "+readFile+", metrics: open}\nlog: {format: text}", 1)
	write("podpin.yaml", yaml)
	p := startPodpin(t, "--config", cfg, "--log-format", "json")
	_, port, _ := strings.Cut(p.admin, "]:")
	if port == "" {
		_, port, _ = strings.Cut(p.admin, "0.0.0.0:")
	}
	admin := "127.0.0.1:" + port
	p.podOf("alice")

	get := func(path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+admin+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, metrics := get("/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics without a token: got %d, want 200", code)
	}
	for _, want := range []string{
		`podpin_table_lookups_total{result="miss",route="default"} 1`,
		`podpin_table_max_entries{route="default"} 1e+06`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics without a token lacks %q", want)
		}
	}
	if code, _ := get("/api/v1/routes", ""); code != 401 {
		t.Errorf("/api/v1/routes without a token: got %d, want 401", code)
	}

	// The CLI reads with the read-only token, and its pin is refused with
	// the reason.
	env := []string{"PODPIN_ADMIN=" + admin, "PODPIN_ADMIN_TOKEN=reader-t0ken"}
	if r := runCLI(t, env, "sessions", "get", "alice"); r.code != 0 {
		t.Errorf("sessions get with the read-only token: exit %d, stderr %q", r.code, r.stderr)
	}
	r := runCLI(t, env, "sessions", "pin", "alice", "web-1")
	if r.code != 1 || !strings.Contains(r.stderr, "the read-only token cannot pin or delete sessions") {
		t.Errorf("sessions pin with the read-only token: got exit %d, stderr %q; want 1 and the reason", r.code, r.stderr)
	}
	env[1] = "PODPIN_ADMIN_TOKEN=admin-t0ken"
	if r := runCLI(t, env, "sessions", "pin", "alice", "web-1"); r.code != 0 {
		t.Errorf("sessions pin with the admin token: exit %d, stderr %q", r.code, r.stderr)
	}

	// The flag wins over log.format: every line is one JSON object.
	lines := strings.Split(strings.TrimSpace(p.logText()), "\n")
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil || rec["level"] == nil {
			t.Errorf("log line %q is not a JSON record with msg and level: %v", line, err)
		}
	}
	if len(lines) < 2 {
		t.Errorf("got %d log lines, want the start and the serving line at least", len(lines))
	}
}
