package redistest

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of three masters, each with one replica, on
// loopback ports. redis-cli (Debian's redis-tools) creates and reshards it.
type Cluster struct {
	t testing.TB
	// Nodes are the six servers; the first three start as masters.
	Nodes []*Server
}

// StartCluster runs six cluster-enabled redis-servers, joins them as three
// masters with one replica each, and waits until every node reports
// cluster_state:ok, knows all six nodes, and every replica is in sync.
// Node timeout is 1s, so a killed master fails over within seconds.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	need(t, "redis-server")
	cli := need(t, "redis-cli")
	c := &Cluster{t: t}
	addrs := make([]string, 6)
	for i := range addrs {
		// The cluster bus needs a second port; ask for it rather than
		// assume port+10000 is free.
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-port", fmt.Sprint(freePort(t)))
		c.Nodes = append(c.Nodes, s)
		addrs[i] = s.Addr
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(30 * time.Second)
	return c
}

// Addrs are the addresses of all nodes, to seed a cluster client.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, s := range c.Nodes {
		if s.cmd != nil {
			out = append(out, s.Addr)
		}
	}
	return out
}

// Cli runs redis-cli against node s and returns its output.
func (c *Cluster) Cli(s *Server, args ...string) string {
	c.t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(s.Port)}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("redis-cli %v on %s: %v\n%s", args, s.Addr, err, out)
	}
	return strings.TrimSpace(string(out))
}

// WaitOK waits until every running node reports cluster_state:ok, knows
// every node (running or failed), agrees on who serves each slot, and every
// replica's link to its master is up.
func (c *Cluster) WaitOK(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := c.notOK()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redis cluster not ready after %v: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) notOK() string {
	var view string
	for _, s := range c.Nodes {
		if s.cmd == nil {
			continue
		}
		info := c.Cli(s, "cluster", "info")
		if !strings.Contains(info, "cluster_state:ok") {
			return s.Addr + " state not ok"
		}
		if !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(c.Nodes))) {
			return s.Addr + " does not know every node"
		}
		slots := c.masterSlots(s)
		if view != "" && slots != view {
			return s.Addr + " sees another slot map"
		}
		view = slots
		repl := c.Cli(s, "info", "replication")
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return s.Addr + " replica not in sync"
		}
	}
	return ""
}

// masterSlots is node s's view of which live master serves which slots, one
// line per master: "addr slots...".
func (c *Cluster) masterSlots(s *Server) string {
	var lines []string
	for line := range strings.SplitSeq(c.Cli(s, "cluster", "nodes"), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		lines = append(lines, addr+" "+strings.Join(f[8:], " "))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// Masters returns the running masters.
func (c *Cluster) Masters() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.cmd != nil && strings.Contains(c.Cli(s, "info", "replication"), "role:master") {
			out = append(out, s)
		}
	}
	return out
}

// KillMaster kills the master m at once and waits until its replica has
// taken over its slots and every running node reports cluster_state:ok.
func (c *Cluster) KillMaster(m *Server, timeout time.Duration) {
	c.t.Helper()
	m.Kill()
	deadline := time.Now().Add(timeout)
	for {
		down := false
		for _, s := range c.Nodes {
			if s.cmd == nil {
				continue
			}
			for line := range strings.SplitSeq(c.Cli(s, "cluster", "nodes"), "\n") {
				f := strings.Fields(line)
				if len(f) > 2 && strings.HasPrefix(f[1], m.Addr+"@") {
					down = strings.Contains(f[2], "fail") && !strings.Contains(f[2], "fail?")
				}
			}
			break
		}
		if down && c.notOK() == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redis cluster did not fail over from %s in %v", m.Addr, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Reshard moves n slots from master from to master to with their keys
// (redis-cli --cluster reshard, which uses CLUSTER SETSLOT and MIGRATE),
// and waits until every node agrees on the new slot map.
func (c *Cluster) Reshard(from, to *Server, n int) {
	c.t.Helper()
	src, dst := c.Cli(from, "cluster", "myid"), c.Cli(to, "cluster", "myid")
	out, err := exec.Command("redis-cli", "--cluster", "reshard", from.Addr,
		"--cluster-from", src, "--cluster-to", dst, "--cluster-slots", fmt.Sprint(n),
		"--cluster-yes", "--cluster-pipeline", "100").CombinedOutput()
	if err != nil {
		c.t.Fatalf("redis-cli --cluster reshard: %v\n%s", err, out)
	}
	c.WaitOK(30 * time.Second)
}

// Keys returns how many keys master s holds.
func (c *Cluster) Keys(s *Server) int {
	c.t.Helper()
	var n int
	fmt.Sscan(c.Cli(s, "dbsize"), &n)
	return n
}

// Slots returns the slots master m serves, as node m sees it.
func (c *Cluster) Slots(m *Server) []int {
	c.t.Helper()
	var out []int
	for line := range strings.SplitSeq(c.Cli(m, "cluster", "nodes"), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "myself") {
			continue
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") { // a slot being migrated
				continue
			}
			var lo, hi int
			if n, _ := fmt.Sscanf(r, "%d-%d", &lo, &hi); n == 1 {
				hi = lo
			}
			for s := lo; s <= hi; s++ {
				out = append(out, s)
			}
		}
	}
	return out
}

// KeysInSlots returns how many keys node s holds in slots.
func (c *Cluster) KeysInSlots(s *Server, slots []int) int {
	c.t.Helper()
	var in strings.Builder
	for _, slot := range slots {
		fmt.Fprintf(&in, "CLUSTER COUNTKEYSINSLOT %d\n", slot)
	}
	cmd := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", fmt.Sprint(s.Port))
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("redis-cli cluster countkeysinslot on %s: %v\n%s", s.Addr, err, out)
	}
	total := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		var n int
		if _, err := fmt.Sscan(line, &n); err != nil {
			c.t.Fatalf("redis-cli cluster countkeysinslot on %s: %q", s.Addr, line)
		}
		total += n
	}
	return total
}
