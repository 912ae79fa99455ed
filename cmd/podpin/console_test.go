package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// needChromium returns the browser's path, installing Debian's package when
// it is missing and the tests run as root. Without it the test is skipped,
// or fails when CI is set.
func needChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	var why string
	if os.Geteuid() == 0 {
		t.Logf("%s is missing; installing Debian's chromium package", chromiumPath)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		apt := func(args ...string) error {
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, lastLines(string(out), 10))
			}
			return nil
		}
		err := apt("install", "-y", "--no-install-recommends", "chromium")
		if err != nil {
			if err = apt("update"); err == nil {
				err = apt("install", "-y", "--no-install-recommends", "chromium")
			}
		}
		if err == nil {
			return chromiumPath
		}
		why = err.Error()
	} else {
		why = "not root, so it cannot be installed here"
	}
	msg := fmt.Sprintf("headless Chromium is needed at %s (apt-get install -y chromium): %s", chromiumPath, why)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// browser starts a headless Chromium with a fresh profile and the extra
// options, and returns a tab's context, ended when the test ends.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := needChromium(t)
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 860),
	}
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	// Registered after TempDir, so the browser is gone before its profile
	// folder is removed.
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
	})
	return ctx
}

// artifactPath is where a test writes a file for people to look at:
// $PODPIN_ARTIFACTS when set, else the test's temporary folder.
func artifactPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("PODPIN_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// pin pins key to pod through the admin API.
func (p *process) pin(key, pod string) {
	p.t.Helper()
	req, _ := http.NewRequest("PUT", "http://"+p.admin+"/api/v1/routes/default/sessions/"+key, strings.NewReader(`{"pod": "`+pod+`"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		p.t.Fatalf("pin %s to %s: got %s", key, pod, resp.Status)
	}
}

// do runs a browser action and fails the test when it fails.
func do[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// screenshot saves the whole page as name.png among the test's artifacts.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := do(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	path := artifactPath(t, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("console screenshot: %s", path)
}

// shown waits until an element matching sel is displayed and returns its
// text. It reads the page with JavaScript, so the console redrawing its
// tables every two seconds does not leave it holding a removed node.
func shown(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	expr := fmt.Sprintf(`(() => { const n = document.querySelector(%q); return n && n.getClientRects().length > 0 ? n.textContent : null })()`, sel)
	return do(t, ctx, "waiting for "+sel, chromedp.Poll[string](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
}

func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	p := startRoutePodpin(t)
	// Round robin puts user-0..user-5 two on each pod; the operator then
	// moves user-0 to web-1 (one rebind, reason admin) and pins three
	// more keys on web-2.
	for i := range 6 {
		p.podOf(fmt.Sprintf("user-%d", i))
	}
	p.pin("user-0", "web-1")
	for i := range 3 {
		p.pin(fmt.Sprintf("vip-%d", i), "web-2")
	}
	want := map[string]string{"web-0": "1", "web-1": "3", "web-2": "5"}
	route := `section[data-route="default"] `

	do(t, ctx, "loading the console", chromedp.Navigate("http://"+p.admin+"/"))
	for _, pod := range []string{"web-0", "web-1", "web-2"} {
		if got := shown(t, ctx, route+`tr[data-pod="`+pod+`"] td.sessions`); got != want[pod] {
			t.Errorf("console shows %s sessions on %s, want %s", got, pod, want[pod])
		}
		if got := shown(t, ctx, route+`tr[data-pod="`+pod+`"] .state`); got != "ready" {
			t.Errorf("console shows %s as %q, want ready", pod, got)
		}
		if got := shown(t, ctx, route+`.bar-row[data-pod="`+pod+`"] .bar-value`); !strings.HasPrefix(got, want[pod]+" · ") {
			t.Errorf("chart shows %q for %s, want %s sessions", got, pod, want[pod])
		}
	}
	if got := shown(t, ctx, route+`li[data-reason="admin"]`); got != "admin 1" {
		t.Errorf("rebinds show %q, want admin 1", got)
	}
	if got := shown(t, ctx, route+`tr[data-pod="web-0"] td.rebinds`); got != "1" {
		t.Errorf("web-0 shows %q rebinds, want 1 (user-0 moved off it)", got)
	}
	if n := do(t, ctx, "token form", chromedp.Evaluate[int](`document.getElementById('token-form').getClientRects().length`)); n != 0 {
		t.Error("the token form is shown although no token is configured")
	}

	// Look keys up: one that is not pinned, then one that is.
	input, find, result := route+`input[name="key"]`, route+`form.lookup button`, route+`.lookup-result`
	do(t, ctx, "looking up an unpinned key", chromedp.Steps(
		chromedp.SendKeys(input, "nobody"),
		chromedp.Click(find),
	))
	if got := shown(t, ctx, result+" .missing"); !strings.Contains(got, "not pinned") {
		t.Errorf("lookup of an unpinned key shows %q, want not pinned", got)
	}
	do(t, ctx, "looking up a pinned key", chromedp.Steps(
		chromedp.Evaluate[chromedp.Void](`document.querySelector('`+input+`').value = ''`),
		chromedp.SendKeys(input, "user-4"),
		chromedp.Click(find),
	))
	found := shown(t, ctx, result+" .found-pod")
	hits := shown(t, ctx, result+" dd:nth-of-type(4)")
	if wantPod := p.podOf("user-4"); found != wantPod {
		t.Errorf("lookup of user-4 shows pod %q, want %q", found, wantPod)
	}
	if hits != "0" {
		t.Errorf("lookup of user-4 shows %q hits, want 0 (it came before this key's second request)", hits)
	}

	// The page follows the table by itself.
	p.pin("late-0", "web-0")
	deadline := time.Now().Add(6 * time.Second)
	for {
		n := shown(t, ctx, route+`tr[data-pod="web-0"] td.sessions`)
		if n == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("console still shows %s sessions on web-0 6s after a pin, want 2", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	screenshot(t, ctx, "console")
}

func TestConsoleAsksForTheToken(t *testing.T) {
	ctx := browser(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("console-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startRoutePodpin(t, "--admin-token-file", tokenFile)
	p.podOf("alice")

	do(t, ctx, "loading the console", chromedp.Navigate("http://"+p.admin+"/"))
	shown(t, ctx, "#token-form")
	if got := shown(t, ctx, "#status"); got != "token required" {
		t.Errorf("status before the token: got %q, want token required", got)
	}
	do(t, ctx, "giving the token", chromedp.Steps(
		chromedp.SendKeys(`#token`, "console-token"),
		chromedp.Click(`#token-form button`),
	))
	if got := shown(t, ctx, `tr[data-pod="web-0"] td.sessions`); got != "1" {
		t.Errorf("console shows %s sessions on web-0, want 1", got)
	}
	if n := do(t, ctx, "token form", chromedp.Evaluate[int](`document.getElementById('token-form').getClientRects().length`)); n != 0 {
		t.Error("the token form is still shown after a good token")
	}
	stored := do(t, ctx, "storage", chromedp.Evaluate[int](`localStorage.length + sessionStorage.length + document.cookie.length`))
	if stored != 0 {
		t.Errorf("the page stored %d items, want the token in memory only", stored)
	}
	screenshot(t, ctx, "console-token")
}
