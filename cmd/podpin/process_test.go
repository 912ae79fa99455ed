package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the podpin executable built once for the tests of this package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "podpin-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "podpin")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building podpin: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running podpin.
type process struct {
	t     *testing.T
	cmd   *exec.Cmd
	addr  string // client listener
	admin string // admin listener

	// guards log
	mu  sync.Mutex
	log strings.Builder

	exited chan struct{}
	err    error
}

// servingLine matches the line podpin logs once it serves, in text and in
// JSON.
var servingLine = regexp.MustCompile(`msg="podpin serving".* listen=(\S+) admin=(\S+)|"msg":"podpin serving".*"listen":"([^"]+)","admin":"([^"]+)"`)

// startPodpin runs podpin serve with args and waits until it serves.
func startPodpin(t *testing.T, args ...string) *process {
	t.Helper()
	return startCommand(t, exec.Command(binary, append([]string{"serve"}, args...)...))
}

// startCommand is startPodpin for a command that runs podpin serve.
func startCommand(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{t: t, cmd: cmd, exited: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := servingLine.FindStringSubmatch(line); m != nil {
				ready <- [2]string{m[1] + m[3], m[2] + m[4]}
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("podpin log:\n%s", p.logText())
		}
	})
	select {
	case a := <-ready:
		p.addr, p.admin = a[0], a[1]
	case <-p.exited:
		t.Fatalf("podpin exited before serving: %v\n%s", p.err, p.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("podpin did not start serving\n%s", p.logText())
	}
	return p
}

func (p *process) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// waitLog waits until a line of the log matches the regular expression re.
func (p *process) waitLog(t testing.TB, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for !rx.MatchString(p.logText()) {
		if time.Now().After(deadline) {
			t.Fatalf("podpin never logged %q:\n%s", re, p.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *process) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its error.
func (p *process) wait() error {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(30 * time.Second):
		p.t.Fatalf("podpin did not exit\n%s", p.logText())
		return nil
	}
}

// get sends a request with a session key; it returns the status and body.
func (p *process) get(key string) (int, string, error) {
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/", nil)
	if key != "" {
		req.Header.Set("X-Session", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// podOf returns the pod serving key, failing the test on any error.
func (p *process) podOf(key string) string {
	p.t.Helper()
	code, body, err := p.get(key)
	if err != nil || code != 200 {
		p.t.Fatalf("key %q: %d %q %v", key, code, body, err)
	}
	return body
}

// namedPod is a real HTTP server answering with its name, after delay.
func namedPod(t *testing.T, name string, delay time.Duration) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		fmt.Fprint(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

// writeConfig writes a configuration with one route over pods (name=URL).
func writeConfig(t *testing.T, path, extra string, pods ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("listeners: [{address: 127.0.0.1:0}]\nadmin: {address: 127.0.0.1:0}\n")
	b.WriteString(extra)
	b.WriteString("routes:\n- name: default\n  backends:\n")
	for _, p := range pods {
		name, url, _ := strings.Cut(p, "=")
		fmt.Fprintf(&b, "  - {name: %s, url: %q}\n", name, url)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// httpGet returns the status of a GET.
func httpGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
