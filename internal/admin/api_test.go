package admin_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// apiConfig has two routes over pods that are never contacted: the API
// tests only read and edit the tables.
func apiConfig() *config.Config {
	return &config.Config{
		Listeners: []config.Listener{{Address: "127.0.0.1:0"}},
		Routes: []config.Route{
			{
				Name:  "default",
				Table: config.Table{KeepRawKeys: true, MaxEntries: 100},
				Backends: []config.Backend{
					{Name: "web-0", URL: "http://192.0.2.10:8080"},
					{Name: "web-1", URL: "http://192.0.2.11:8080", Weight: 2},
					{Name: "web-2", URL: "http://192.0.2.12:8080", State: "draining"},
				},
			},
			{
				Name:     "api",
				Match:    config.Match{Host: "api.example", PathPrefix: "/v1/"},
				Sticky:   config.Sticky{Header: "X-User"},
				Balancer: "hash",
				Table:    config.Table{MaxEntries: 100, IdleTimeout: 10 * time.Minute, AbsoluteTimeout: time.Hour},
				Backends: []config.Backend{
					{Name: "api-0", URL: "http://192.0.2.20:8080"},
					{Name: "api-1", URL: "http://192.0.2.21:8080"},
				},
			},
		},
	}
}

// stamps matches the times of sessions, which differ on every run.
var stamps = regexp.MustCompile(`"(created|lastUsed)": "[^"]*"`)

// TestAPIGolden drives the JSON API through a sequence of reads and edits
// and compares every answer with testdata/<step>.golden.
func TestAPIGolden(t *testing.T) {
	// The listing clock runs an hour ahead, so age filters select known sets.
	e := startEnv(t, apiConfig(), admin.Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	var next string            // the cursor of the last listing
	paged := map[string]bool{} // keys seen on the pages of one listing
	steps := []struct {
		name, method, path, body string
		want                     int
	}{
		{"routes", "GET", "/api/v1/routes", "", 200},
		{"route", "GET", "/api/v1/routes/api", "", 200},
		{"route-unknown", "GET", "/api/v1/routes/nope", "", 404},
		{"pods-unknown-route", "GET", "/api/v1/routes/nope/pods", "", 404},
		{"pin", "PUT", "/api/v1/routes/default/sessions/alice", `{"pod": "web-1"}`, 200},
		{"pin-bob", "PUT", "/api/v1/routes/default/sessions/bob", `{"pod": "web-0"}`, 200},
		{"pin-escaped-key", "PUT", "/api/v1/routes/default/sessions/" + "a%2Fb%3Fc%25d", `{"pod": "web-2"}`, 200},
		{"pin-carol", "PUT", "/api/v1/routes/default/sessions/carol", `{"pod": "web-1"}`, 200},
		{"pin-unknown-pod", "PUT", "/api/v1/routes/default/sessions/dave", `{"pod": "web-9"}`, 400},
		{"pin-bad-json", "PUT", "/api/v1/routes/default/sessions/dave", `{"pod": `, 400},
		{"pin-unknown-field", "PUT", "/api/v1/routes/default/sessions/dave", `{"pods": "web-1"}`, 400},
		{"pin-no-pod", "PUT", "/api/v1/routes/default/sessions/dave", `{}`, 400},
		{"pin-empty-body", "PUT", "/api/v1/routes/default/sessions/dave", ``, 400},
		{"pin-two-objects", "PUT", "/api/v1/routes/default/sessions/dave", `{"pod": "web-1"} {"pod": "web-0"}`, 400},
		{"pin-unknown-route", "PUT", "/api/v1/routes/nope/sessions/dave", `{"pod": "web-1"}`, 404},
		{"repin", "PUT", "/api/v1/routes/default/sessions/alice", `{"pod": "web-0"}`, 200},
		{"get", "GET", "/api/v1/routes/default/sessions/alice", "", 200},
		{"get-escaped-key", "GET", "/api/v1/routes/default/sessions/a%2Fb%3Fc%25d", "", 200},
		{"get-unpinned", "GET", "/api/v1/routes/default/sessions/dave", "", 404},
		{"get-unknown-route", "GET", "/api/v1/routes/nope/sessions/alice", "", 404},
		{"list", "GET", "/api/v1/routes/default/sessions", "", 200},
		{"list-by-pod", "GET", "/api/v1/routes/default/sessions?pod=web-1", "", 200},
		{"list-by-prefix", "GET", "/api/v1/routes/default/sessions?prefix=a", "", 200},
		{"list-older-than", "GET", "/api/v1/routes/default/sessions?minAge=30m", "", 200},
		{"list-newer-than", "GET", "/api/v1/routes/default/sessions?maxAge=30m", "", 200},
		{"list-idle", "GET", "/api/v1/routes/default/sessions?idle=45m&pod=web-0", "", 200},
		{"list-page", "GET", "/api/v1/routes/default/sessions?limit=2", "", 200},
		{"list-next-page", "GET", "/api/v1/routes/default/sessions?limit=2&cursor=NEXT", "", 200},
		{"list-bad-duration", "GET", "/api/v1/routes/default/sessions?minAge=soon", "", 400},
		{"list-negative-duration", "GET", "/api/v1/routes/default/sessions?idle=-1m", "", 400},
		{"list-bad-limit", "GET", "/api/v1/routes/default/sessions?limit=0", "", 400},
		{"list-bad-cursor", "GET", "/api/v1/routes/default/sessions?cursor=zz", "", 400},
		{"list-unknown-parameter", "GET", "/api/v1/routes/default/sessions?pods=web-1", "", 400},
		{"list-repeated-parameter", "GET", "/api/v1/routes/default/sessions?pod=web-0&pod=web-1", "", 400},
		{"list-unknown-route", "GET", "/api/v1/routes/nope/sessions", "", 404},
		{"pods", "GET", "/api/v1/routes/default/pods", "", 200},
		{"route-after-pins", "GET", "/api/v1/routes/default", "", 200},
		{"unpin", "DELETE", "/api/v1/routes/default/sessions/bob", "", 204},
		{"unpin-again", "DELETE", "/api/v1/routes/default/sessions/bob", "", 404},
		{"clear-without-pod", "DELETE", "/api/v1/routes/default/sessions", "", 400},
		{"clear", "DELETE", "/api/v1/routes/default/sessions?pod=web-1", "", 200},
		{"clear-gone-pod", "DELETE", "/api/v1/routes/default/sessions?pod=web-7", "", 200},
		{"list-after-clear", "GET", "/api/v1/routes/default/sessions", "", 200},
		{"digest-only-pin", "PUT", "/api/v1/routes/api/sessions/user-42", `{"pod": "api-1"}`, 200},
		{"digest-only-list", "GET", "/api/v1/routes/api/sessions", "", 200},
		{"digest-only-prefix", "GET", "/api/v1/routes/api/sessions?prefix=user", "", 400},
		{"method-not-allowed", "POST", "/api/v1/routes/default/sessions/alice", `{"pod": "web-1"}`, 405},
		{"unknown-path", "GET", "/api/v2/routes", "", 404},
	}
	for _, s := range steps {
		path := strings.Replace(s.path, "NEXT", next, 1)
		code, body := e.call(s.method, path, s.body)
		if code != s.want {
			t.Errorf("%s: %s %s: got status %d, want %d; body %s", s.name, s.method, path, code, s.want, body)
		}
		var page admin.SessionPage
		listing := strings.Contains(path, "/sessions") && code == 200 && s.method == "GET" &&
			json.Unmarshal([]byte(body), &page) == nil && page.Sessions != nil
		if listing {
			next = page.Next
			if strings.Contains(path, "limit=") {
				for _, x := range page.Sessions {
					if paged[x.Key] {
						t.Errorf("%s: session %q listed on two pages", s.name, x.Key)
					}
					paged[x.Key] = true
				}
			}
			body = orderFree(t, page, strings.Contains(path, "limit="))
		}
		var got strings.Builder
		fmt.Fprintf(&got, "%s %s\n", s.method, strings.Replace(s.path, "NEXT", "<cursor>", 1))
		if s.body != "" {
			fmt.Fprintf(&got, "%s\n", s.body)
		}
		fmt.Fprintf(&got, "\nHTTP %d\n%s", code, stamps.ReplaceAllString(body, `"$1": "<time>"`))
		golden(t, s.name, got.String())
	}
	// The two pages of two hold the four sessions then pinned.
	if len(paged) != 4 || !paged["alice"] || !paged["bob"] || !paged["carol"] || !paged["a/b?c%d"] {
		t.Errorf("pages listed %v, want alice, bob, carol and a/b?c%%d", paged)
	}
}

// orderFree renders a session listing independently of the table's slot
// order, which a random seed sets per table: sessions sorted by digest and
// the cursor shown as <cursor>. A page of a longer listing holds sessions
// that depend on that order, so it is shown as a count (the test checks
// the pages together).
func orderFree(t *testing.T, page admin.SessionPage, partial bool) string {
	t.Helper()
	slices.SortFunc(page.Sessions, func(a, b admin.Session) int { return strings.Compare(a.Digest, b.Digest) })
	if page.Next != "" {
		page.Next = "<cursor>"
	}
	var v any = page
	if partial {
		v = map[string]any{"sessions": len(page.Sessions), "next": page.Next}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// golden compares got with testdata/name.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v (run go test -update to create it)", name, err)
	}
	if got != string(want) {
		t.Errorf("%s: answer differs from %s\ngot:\n%s\nwant:\n%s", name, path, got, want)
	}
}

// TestSessionTimes checks what the golden files hide: a pinned session's
// times are the time of the pin.
func TestSessionTimes(t *testing.T) {
	e := startEnv(t, apiConfig(), admin.Options{})
	before := time.Now().Add(-time.Second).Truncate(time.Second)
	if code, body := e.call("PUT", "/api/v1/routes/default/sessions/alice", `{"pod": "web-0"}`); code != 200 {
		t.Fatalf("pin: got %d %s, want 200", code, body)
	}
	after := time.Now().Add(time.Second)
	code, body := e.call("GET", "/api/v1/routes/default/sessions/alice", "")
	if code != 200 {
		t.Fatalf("get: got %d %s, want 200", code, body)
	}
	var s admin.Session
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	for name, ts := range map[string]time.Time{"created": s.Created, "lastUsed": s.LastUsed} {
		if ts.Before(before) || ts.After(after) {
			t.Errorf("%s: got %v, want between %v and %v", name, ts, before, after)
		}
	}
	if s.Key != "alice" || s.Pod != "web-0" || s.Hits != 0 || len(s.Digest) != 32 {
		t.Errorf("got %+v, want key alice on web-0, no hits, a 32-digit digest", s)
	}
}
