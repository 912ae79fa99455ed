// Package redistest runs real redis-server and redis-sentinel processes on
// loopback ports for tests: start, kill, restart empty, Sentinel failover,
// a Redis Cluster (failover and resharding), and a proxy that injects
// latency or cuts connections. The binaries come from Debian's
// redis-server, redis-sentinel and redis-tools packages; without them a test skips, or fails when the
// CI environment variable is set (CI must not skip).
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Port int
	Addr string
	dir  string
	args []string
	cmd  *exec.Cmd
}

// need finds a binary or skips (fails under CI) the test.
func need(t testing.TB, bin string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		msg := fmt.Sprintf("%s not found: install Debian's redis-server, redis-sentinel and redis-tools packages (scripts/test does)", bin)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs a redis-server without persistence on a free loopback port,
// with extra arguments (e.g. "--replicaof", "127.0.0.1", "6379").
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	need(t, "redis-server")
	s := &Server{t: t, Port: freePort(t), dir: t.TempDir()}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", s.Port)
	s.args = append([]string{"--port", fmt.Sprint(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--protected-mode", "no"}, extra...)
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", s.args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	waitPing(s.t, s.Addr)
}

// Kill stops the server at once (SIGKILL), losing its data.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Restart starts the killed server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Do sends one command and returns the reply's first line (redis-cli is not
// needed).
func (s *Server) Do(args ...string) string {
	s.t.Helper()
	return do(s.t, s.Addr, args...)
}

func do(t testing.TB, addr string, args ...string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("redis %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(c, "$%d\r\n%s\r\n", len(a), a)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("redis %s: %v", addr, err)
	}
	return strings.TrimRight(line, "\r\n")
}

func waitPing(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis at %s did not answer PING", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Sentinel is one redis-sentinel process watching a master named "podpin".
type Sentinel struct {
	Addr string
	cmd  *exec.Cmd
}

// MasterName is the name the sentinels give the monitored master.
const MasterName = "podpin"

// StartSentinel runs a sentinel with quorum 1 and fast failover timings.
func StartSentinel(t testing.TB, master *Server) *Sentinel {
	t.Helper()
	need(t, "redis-sentinel")
	port := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
sentinel monitor %s 127.0.0.1 %d 1
sentinel down-after-milliseconds %s 500
sentinel failover-timeout %s 3000
sentinel parallel-syncs %s 1
`, port, dir, MasterName, master.Port, MasterName, MasterName, MasterName)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Sentinel{Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	s.cmd = exec.Command("redis-sentinel", conf)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	})
	waitPing(t, s.Addr)
	return s
}

// WaitMaster waits until the sentinel names a master other than old and
// returns its address.
func (s *Sentinel) WaitMaster(t testing.TB, old string, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(c, "*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$%d\r\n%s\r\n", len(MasterName), MasterName)
			r := bufio.NewReader(c)
			var parts []string
			for range 5 {
				line, err := r.ReadString('\n')
				if err != nil {
					break
				}
				line = strings.TrimRight(line, "\r\n")
				if !strings.HasPrefix(line, "*") && !strings.HasPrefix(line, "$") {
					parts = append(parts, line)
				}
			}
			c.Close()
			if len(parts) == 2 {
				if addr := net.JoinHostPort(parts[0], parts[1]); addr != old {
					return addr
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("sentinel did not elect a new master in %v", timeout)
	return ""
}
