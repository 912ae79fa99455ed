package main

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// machine describes where the figures were taken.
type machine struct {
	CPUs    string
	CPU     string
	Kernel  string
	HAProxy string
	Nginx   string
	Wrk     string
	Go      string
	Podpin  string
	// OpenSSL and H2load are measured by the TLS suite only.
	OpenSSL string `json:",omitempty"`
	H2load  string `json:",omitempty"`
	// LoadStart and LoadEnd are the 1-minute load averages when the
	// benchmark started and ended: other work on the machine skews figures.
	LoadStart string
	LoadEnd   string
}

func describeMachine(c config) machine {
	m := machine{
		CPUs:      firstLine(command("nproc")),
		CPU:       cpuModel(),
		Kernel:    firstLine(command("uname", "-r")),
		HAProxy:   match(`HAProxy version (\S+)`, command("haproxy", "-v")),
		Nginx:     match(`nginx/(\S+)`, command("nginx", "-v")),
		Wrk:       match(`wrk (\S+)`, command("wrk", "-v")),
		Go:        goVersion(),
		Podpin:    podpinRevision(c.repo),
		LoadStart: loadAverage(),
	}
	if c.suite == suiteTLS {
		m.OpenSSL = match(`OpenSSL (\S+)`, command("openssl", "version"))
		m.H2load = match(`nghttp2/(\S+)`, command("h2load", "--version"))
	}
	return m
}

// busy reports whether the load average when the benchmark started
// exceeded the number of CPUs. The load at the end is not judged: it
// counts the benchmark's own processes (the proxy, wrk and the pods keep
// both CPUs busy in the two-processor layout).
func (m machine) busy() bool {
	cpus, err := strconv.ParseFloat(m.CPUs, 64)
	if err != nil {
		return false
	}
	v, err := strconv.ParseFloat(m.LoadStart, 64)
	return err == nil && v > cpus
}

// loadAverage returns the 1-minute load average.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

// command returns what argv printed on stdout and stderr, whatever its exit
// status (wrk -v exits 1).
func command(argv ...string) string {
	out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	return string(out)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if s == "" {
		return "unknown"
	}
	return s
}

func match(pattern, s string) string {
	if m := regexp.MustCompile(pattern).FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return firstLine(s)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func goVersion() string {
	if v := match(`go version (\S+)`, command("go", "version")); strings.HasPrefix(v, "go1") {
		return v
	}
	return runtime.Version()
}

// podpinRevision names the commit podpin was built from, marked when the
// work tree differed from it.
func podpinRevision(repo string) string {
	rev := firstLine(command("git", "-C", repo, "rev-parse", "--short", "HEAD"))
	if strings.Contains(rev, " ") {
		return "unknown"
	}
	// The benchmark's own folders do not count: they change with every run.
	if strings.TrimSpace(command("git", "-C", repo, "status", "--porcelain", "--", ".", ":!bench", ":!docs")) != "" {
		rev += " with uncommitted changes"
	}
	return rev
}
