// Package haproxytest runs a real HAProxy for tests: a load balancer in
// front of podpin, as users deploy it.
package haproxytest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartTCP runs HAProxy in TCP mode on a free loopback port in front of
// backend, with the server option send ("send-proxy" for PROXY protocol
// version 1, "send-proxy-v2" for version 2), and returns its address. It
// stops when the test ends. Without the haproxy binary the test skips, or
// fails under CI.
func StartTCP(t testing.TB, backend, send string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		msg := "haproxy not found: install Debian's haproxy package (scripts/test does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	conf := fmt.Sprintf(`defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
listen front
  bind %s
  server podpin %s %s
`, addr, backend, send)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not listen on %s: %v\n%s", addr, err, out)
		}
	}
}
