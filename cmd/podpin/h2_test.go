package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/podpin/podpin/internal/certstest"
)

// curlH2C asks podpin's cleartext listener at addr for / with args, as
// curl does; the session key goes in X-Session.
func curlH2C(t *testing.T, addr, key string, args ...string) curlResult {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed (Debian package curl)")
	}
	all := append([]string{"-sS", "--max-time", "10", "-w", "\n%{http_code} %{http_version}", "-H", "X-Session: " + key}, args...)
	out, err := exec.Command("curl", append(all, "http://"+addr+"/")...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", all, err)
	}
	return parseCurl(string(out))
}

// TestCurlH2CWithPriorKnowledge: a cleartext listener serves HTTP/2 to a
// client that starts with the HTTP/2 preface (curl --http2-prior-knowledge)
// and HTTP/1.1 to the others, and a session keeps its pod whichever it
// speaks.
func TestCurlH2CWithPriorKnowledge(t *testing.T) {
	p := startPodpin(t, "--listen", "127.0.0.1:0",
		"--backend", "web-0="+namedPod(t, "web-0", 0).URL,
		"--backend", "web-1="+namedPod(t, "web-1", 0).URL,
		"--backend", "web-2="+namedPod(t, "web-2", 0).URL)
	pods := map[string]bool{}
	for i := range 6 {
		key := fmt.Sprintf("h2c-%d", i)
		h2 := curlH2C(t, p.addr, key, "--http2-prior-knowledge")
		if h2.code != "200" || h2.version != "2" || !strings.HasPrefix(h2.body, "web-") {
			t.Fatalf("%s with prior knowledge: got %s over HTTP/%s (%q), want 200 over HTTP/2 from a pod", key, h2.code, h2.version, h2.body)
		}
		h1 := curlH2C(t, p.addr, key, "--http1.1")
		if h1.code != "200" || h1.version != "1.1" || h1.body != h2.body {
			t.Errorf("%s over HTTP/1.1: got %s over HTTP/%s from %q, want 200 over HTTP/1.1 from %q", key, h1.code, h1.version, h1.body, h2.body)
		}
		pods[h2.body] = true
	}
	if len(pods) < 2 {
		t.Errorf("6 sessions all landed on %v: want them spread", pods)
	}
}

// h2Page is the page the browser loads through podpin. It fetches /api
// with a session key and shows the protocol the browser itself used for
// the page and for the fetch (nextHopProtocol, from the browser's network
// stack: a server cannot claim it), and the pod's answer.
const h2Page = `<!doctype html>
<title>podpin over h2</title>
<pre id="out"></pre>
<script>
fetch('/api', {headers: {'X-Session': 'browser-1'}}).then(r => r.text()).then(body => {
  const page = performance.getEntriesByType('navigation')[0].nextHopProtocol;
  const api = performance.getEntriesByName(location.origin + '/api')[0].nextHopProtocol;
  document.getElementById('out').textContent = page + ' ' + api + ' ' + body;
});
</script>
`

// TestChromiumLoadsAPageOverH2 loads a page through podpin's TLS listener
// in headless Chromium: the browser negotiates h2 by ALPN for the page and
// its fetch, and the fetch reaches the pod.
func TestChromiumLoadsAPageOverH2(t *testing.T) {
	pod := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/api" {
			fmt.Fprint(w, "web-0:"+r.Header.Get("X-Session"))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, h2Page)
	}))
	t.Cleanup(pod.Close)
	ca := certstest.NewCA(t)
	crt, key := ca.WriteFiles(t, t.TempDir(), "podpin", "podpin.test")
	p := startPodpin(t, "--listen", "127.0.0.1:0", "--backend", "web-0="+pod.URL, "--tls-cert", crt, "--tls-key", key)
	_, port, _ := strings.Cut(p.addr, ":")

	// The browser trusts no test CA: it is told to accept the
	// certificate, and to find podpin.test on the loopback address, so it
	// sends podpin.test as SNI.
	ctx := browser(t,
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("host-resolver-rules", "MAP podpin.test 127.0.0.1"))
	do(t, ctx, "loading the page", chromedp.Navigate("https://podpin.test:"+port+"/"))
	got := do(t, ctx, "waiting for the fetch", chromedp.Poll[string](
		`(() => { const t = document.getElementById('out').textContent; return t === '' ? null : t })()`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	if want := "h2 h2 web-0:browser-1"; got != want {
		t.Errorf("the page shows %q, want %q (protocol of the page, of the fetch, the pod's answer)", got, want)
	}
	screenshot(t, ctx, "h2-page")
}
