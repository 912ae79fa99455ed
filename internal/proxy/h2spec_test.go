package proxy

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// h2specVersion is the release of h2spec (github.com/summerwind/h2spec)
// podpin's HTTP/2 listeners are checked with. scripts/test installs it:
//
//	GOBIN=~/.cache/podpin/h2spec-v2.2.1 go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
const h2specVersion = "v2.2.1"

// h2specKnownFailures are the h2spec cases podpin fails on every HTTP/2
// listener, by package/section/number, with why: none; docs/http-policy.md
// lists the failures.
var h2specKnownFailures = map[string]string{}

// h2specKnownFailuresH2C are the cases podpin fails on a cleartext port
// only, where HTTP/1.1 and h2c share the port.
var h2specKnownFailuresH2C = map[string]string{
	"http2/3.5/2": "an invalid preface is read as an HTTP/1.1 request, answered 400, then the connection is closed",
}

// h2specBinary finds h2spec: $PODPIN_H2SPEC, the PATH, or where
// scripts/test installs it. Without it the test skips, or fails when CI is
// set.
func h2specBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PODPIN_H2SPEC"); p != "" {
		return p
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "podpin", "h2spec-"+h2specVersion, "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "h2spec not found: scripts/test installs it (go install github.com/summerwind/h2spec/cmd/h2spec@" + h2specVersion + "+incompatible), or set PODPIN_H2SPEC"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// h2specReport is h2spec's JUnit report (-j).
type h2specReport struct {
	Suites []struct {
		Name    string `xml:"name,attr"`
		Package string `xml:"package,attr"`
		Cases   []struct {
			Name    string    `xml:"classname,attr"`
			Error   *string   `xml:"error"`
			Failure *string   `xml:"failure"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// h2specCase is one case's outcome, named package/section/number as h2spec
// numbers them (h2spec -h lists them so: "http2/6.5.3/1").
type h2specCase struct {
	id, name string
	failed   bool
	why      string
}

// runH2spec runs every h2spec case against addr and returns the outcomes;
// the JUnit report is kept among the test's artifacts as name.
func runH2spec(t *testing.T, bin, addr string, tlsOn bool, name string) []h2specCase {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	report := filepath.Join(t.TempDir(), name)
	if dir := os.Getenv("PODPIN_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		report = filepath.Join(dir, name)
	}
	// -o: how long a case waits for podpin's answer. The default, 2s, is
	// tight on a loaded machine under the race detector.
	args := []string{"-h", host, "-p", port, "-o", "5", "-j", report}
	if tlsOn {
		args = append(args, "-t", "-k")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	// h2spec exits 1 when any case fails: the report says which.
	if _, ok := err.(*exec.ExitError); err != nil && !ok || ctx.Err() != nil {
		t.Fatalf("h2spec %v: %v\n%s", args, err, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec wrote no report: %v\n%s", err, out)
	}
	var r h2specReport
	if err := xml.Unmarshal(b, &r); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	var cases []h2specCase
	for _, s := range r.Suites {
		for i, c := range s.Cases {
			hc := h2specCase{id: fmt.Sprintf("%s/%d", s.Package, i+1), name: s.Name + ": " + c.Name}
			switch {
			case c.Error != nil:
				hc.failed, hc.why = true, *c.Error
			case c.Failure != nil:
				hc.failed, hc.why = true, *c.Failure
			case c.Skipped != nil:
				hc.failed, hc.why = true, "skipped"
			}
			cases = append(cases, hc)
		}
	}
	return cases
}

// TestH2spec runs h2spec, the HTTP/2 conformance suite HAProxy and Envoy
// run, against a TLS listener (h2 by ALPN) and a cleartext one (h2c with
// prior knowledge). A case outside the known failures that fails is a
// regression; a known failure that passes means the list and
// docs/http-policy.md are out of date.
func TestH2spec(t *testing.T) {
	bin := h2specBinary(t)
	for _, c := range []struct {
		tlsOn, h2cPod bool
	}{{true, false}, {false, false}, {true, true}, {false, true}} {
		tlsOn := c.tlsOn
		mode := map[bool]string{true: "tls", false: "h2c"}[tlsOn]
		name := mode + map[bool]string{false: "/http1-pod", true: "/h2c-pod"}[c.h2cPod]
		t.Run(name, func(t *testing.T) {
			// A pod of either kind: the streams are forwarded by
			// different code (to an h2c pod, over HTTP/2 both ways).
			cfg := oneRoute(newTestPod(t, "web-0", nil))
			if c.h2cPod {
				cfg = h2cRoute(newH2CPod(t, "web-0"))
			}
			var h *harness
			if tlsOn {
				h = startTLSProxy(t, cfg, config.Listener{}, Options{})
			} else {
				h = startProxy(t, cfg)
			}
			known := h2specKnownFailures
			if !tlsOn {
				known = map[string]string{}
				for _, m := range []map[string]string{h2specKnownFailures, h2specKnownFailuresH2C} {
					for id, why := range m {
						known[id] = why
					}
				}
			}
			cases := runH2spec(t, bin, h.addr, tlsOn, "h2spec-"+strings.ReplaceAll(name, "/", "-")+".xml")
			if len(cases) != 145 {
				t.Errorf("h2spec ran %d cases, want the 145 of h2spec %s", len(cases), h2specVersion)
			}
			passed := 0
			for _, hc := range cases {
				_, isKnown := known[hc.id]
				switch {
				case hc.failed && !isKnown:
					t.Errorf("h2spec %s (%s) failed, and is not a known failure:\n%s", hc.id, hc.name, hc.why)
				case !hc.failed && isKnown:
					t.Errorf("h2spec %s (%s) passes now: take it off the known failures here and in docs/http-policy.md", hc.id, hc.name)
				case !hc.failed:
					passed++
				}
			}
			t.Logf("h2spec %s over %s: %d of %d cases pass", h2specVersion, mode, passed, len(cases))
		})
	}
}
