package k8stest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The pod network. Every [NetNS] uses the same addresses, which is why only
// one exists on a host at a time.
var (
	podNet   = netip.MustParsePrefix("10.244.0.0/24")
	hostAddr = netip.MustParseAddr("10.244.0.1")
	podAddr  = netip.MustParseAddr("10.244.0.2")
)

// innerIf is the veth end inside the namespace; the namespace is new, so the
// name cannot clash.
const innerIf = "eth0"

// netLockWait bounds how long NewNetNS waits for another namespace to go.
const netLockWait = 5 * time.Minute

// NetNS is a network namespace that stands in for a pod network: it holds
// pod addresses in 10.244.0.0/24, reachable from the test process over a veth
// pair whose host end has 10.244.0.1/24. Create it with [NewNetNS].
//
// The namespace has no name in /run/netns: only this process holds it, so it
// vanishes with its veth pair and route when the test cleans up or the
// process dies. Use [NetNS.Command] where a shell would use ip netns exec.
//
// A NetNS is safe for concurrent use.
type NetNS struct {
	// Name is the host end of the veth pair, "podpin-" and 8 random hex
	// digits. It is unique per namespace and names it in messages.
	Name string

	// HostIP is the host end's address, 10.244.0.1: the source address of
	// connections from the test process to the namespace.
	HostIP netip.Addr

	// IP is the namespace's first address, 10.244.0.2.
	IP netip.Addr

	ns *os.File // the namespace, held open for its lifetime

	// mu guards the fields below it.
	mu        sync.Mutex
	addrs     []netip.Addr
	listeners []io.Closer // listeners and packet connections
	closed    bool
}

// NewNetNS creates a network namespace for the test t, joined to the host by
// a veth pair: t's host side gets 10.244.0.1/24 and the namespace's inner
// interface 10.244.0.2/24, with loopback up inside. Everything is removed when
// t ends, including listeners opened with [NetNS.Listen].
//
// Because every NetNS routes 10.244.0.0/24, NewNetNS first waits (up to five
// minutes) for any other NetNS on the host, from this or another test
// process, to be cleaned up; a test that needs more pod addresses adds them
// with [NetNS.AddAddr] rather than creating a second NetNS. It fails if
// something else on the host already uses 10.244.0.0/24.
//
// NewNetNS skips the test when it is not running as root or the ip
// (iproute2) or nsenter (util-linux) commands are missing, or fails it if the
// CI environment variable is set.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "k8stest: creating a network namespace needs root")
	}
	for _, cmd := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(cmd); err != nil {
			unavailable(t, "k8stest: creating a network namespace needs the %s command "+
				"(Debian packages iproute2 and util-linux)", cmd)
		}
	}

	lock := lockPodNet(t)
	t.Cleanup(func() { lock.Close() }) // closing releases the lock; runs last

	if err := podNetUnused(); err != nil {
		t.Fatalf("k8stest: %v", err)
	}

	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("k8stest: naming network namespace: %v", err)
	}
	n := &NetNS{
		Name:   "podpin-" + hex.EncodeToString(b),
		HostIP: hostAddr,
		IP:     podAddr,
		addrs:  []netip.Addr{podAddr},
	}
	ns, err := newNamespace()
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			unavailable(t, "k8stest: creating a network namespace: %v", err)
		}
		t.Fatalf("k8stest: creating network namespace: %v", err)
	}
	n.ns = ns
	t.Cleanup(n.close)

	if err := n.setUp(); err != nil {
		t.Fatalf("k8stest: setting up network namespace %s: %v", n.Name, err)
	}
	if err := n.CheckRoute(); err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	return n
}

// setUp creates the veth pair straight into the namespace and addresses both
// ends.
func (n *NetNS) setUp() error {
	if err := n.ipHost("", "link", "add", n.Name, "type", "veth",
		"peer", "name", innerIf, "netns", "/proc/self/fd/3"); err != nil {
		return err
	}
	if err := n.ipHost(fmt.Sprintf("addr add %s/24 dev %s\nlink set %s up\n", hostAddr, n.Name, n.Name),
		"-batch", "-"); err != nil {
		return err
	}
	return n.ipInside(fmt.Sprintf("link set lo up\naddr add %s/24 dev %s\nlink set %s up\n",
		podAddr, innerIf, innerIf), "-batch", "-")
}

// AddAddr adds the address ip, inside 10.244.0.0/24, to the namespace's inner
// interface, for a test that needs several pods.
func (n *NetNS) AddAddr(t testing.TB, ip string) {
	t.Helper()
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("k8stest: adding %q to %s: want a host address in %s other than %s", ip, n.Name, podNet, hostAddr)
	}
	if err := n.addAddr(addr); err != nil {
		t.Fatalf("k8stest: %v", err)
	}
}

// addAddr is [NetNS.AddAddr] returning its error. Adding an address the
// namespace already has does nothing.
func (n *NetNS) addAddr(addr netip.Addr) error {
	if !podAddrUsable(addr) {
		return fmt.Errorf("adding %s to %s: want a host address in %s other than %s", addr, n.Name, podNet, hostAddr)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if slices.Contains(n.addrs, addr) {
		return nil
	}
	if err := n.ipInside("", "addr", "add", addr.String()+"/24", "dev", innerIf); err != nil {
		return fmt.Errorf("adding %s to %s: %w", addr, n.Name, err)
	}
	n.addrs = append(n.addrs, addr)
	return nil
}

// podAddrCount is how many pod addresses there are, 10.244.0.2 to
// 10.244.0.254.
const podAddrCount = 253

// podAddrUsable reports whether addr can be a pod address: a host address of
// 10.244.0.0/24 that is not the host end's. That leaves 253 addresses,
// 10.244.0.2 to 10.244.0.254.
func podAddrUsable(addr netip.Addr) bool {
	return podNet.Contains(addr) && addr != hostAddr && addr != podNet.Addr() &&
		addr != netip.MustParseAddr("10.244.0.255")
}

// Addrs returns the namespace's addresses, 10.244.0.2 first.
func (n *NetNS) Addrs() []netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.addrs)
}

// Listen is net.Listen inside the namespace: addr is one of its addresses,
// such as "10.244.0.2:8080". The listener is closed when the test ends, if
// the caller has not closed it already.
func (n *NetNS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s %q in %s: %w", network, addr, n.Name, err)
	}
	n.mu.Lock()
	n.listeners = append(n.listeners, l)
	n.mu.Unlock()
	return l, nil
}

// ListenPacket is net.ListenPacket inside the namespace, for UDP: addr is
// one of its addresses, such as "10.244.0.2:8080". The connection is closed
// when the test ends, if the caller has not closed it already.
func (n *NetNS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := n.do(func() error {
		var err error
		c, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s %q in %s: %w", network, addr, n.Name, err)
	}
	n.mu.Lock()
	n.listeners = append(n.listeners, c)
	n.mu.Unlock()
	return c, nil
}

// Command returns a command that runs the program name inside the
// namespace, as ip netns exec would. The program gets SIGKILL if the test
// process dies; the caller still stops it before the test ends, since the
// namespace outlives clean-up while a process is inside.
func (n *NetNS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/proc/self/fd/3", "--", name}, args...)...)
	cmd.ExtraFiles = []*os.File{n.ns}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// CheckRoute returns nil if traffic to every address of the namespace would
// enter it: the host routes each address through this namespace's veth, from
// 10.244.0.1, and the namespace's inner interface holds the address. Call it
// before sending traffic to a pod address, so that a broken set-up fails the
// test instead of sending packets to the host's default route.
func (n *NetNS) CheckRoute() error {
	n.mu.Lock()
	closed := n.closed
	addrs := slices.Clone(n.addrs)
	n.mu.Unlock()
	if closed {
		return fmt.Errorf("network namespace %s: already removed", n.Name)
	}

	out, err := n.ipInsideOutput("-j", "-4", "addr", "show", "dev", innerIf)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", n.Name, err)
	}
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return fmt.Errorf("network namespace %s: reading addresses: %w", n.Name, err)
	}
	var inside []string
	for _, l := range links {
		for _, a := range l.AddrInfo {
			inside = append(inside, a.Local)
		}
	}

	for _, addr := range addrs {
		if !slices.Contains(inside, addr.String()) {
			return fmt.Errorf("network namespace %s: %s missing inside, have %v", n.Name, addr, inside)
		}
		out, err := exec.Command("ip", "-j", "route", "get", addr.String()).Output()
		if err != nil {
			return fmt.Errorf("network namespace %s: ip route get %s: %w", n.Name, addr, err)
		}
		var routes []struct {
			Dev     string `json:"dev"`
			Gateway string `json:"gateway"`
			PrefSrc string `json:"prefsrc"`
		}
		if err := json.Unmarshal(out, &routes); err != nil || len(routes) != 1 {
			return fmt.Errorf("network namespace %s: unreadable route to %s: %s", n.Name, addr, out)
		}
		r := routes[0]
		if r.Dev != n.Name || r.Gateway != "" || r.PrefSrc != hostAddr.String() {
			return fmt.Errorf("network namespace %s: host routes %s via dev %q gateway %q src %q, want dev %q src %s",
				n.Name, addr, r.Dev, r.Gateway, r.PrefSrc, n.Name, hostAddr)
		}
	}
	return nil
}

// close removes the namespace. Deleting the host end first removes the pair
// and the route at once; the kernel frees the namespace itself later, in the
// background, when its last socket closes.
func (n *NetNS) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.closed = true
	for _, l := range n.listeners {
		l.Close()
	}
	n.listeners = nil
	_ = exec.Command("ip", "link", "del", n.Name).Run()
	n.ns.Close()
}

// do runs fn on a thread that has joined the namespace, so sockets fn opens
// belong to it. Other goroutines never run in the namespace.
func (n *NetNS) do(fn func() error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("network namespace already removed")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		host, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer host.Close()
		if err := unix.Setns(int(n.ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the runtime then ends this thread with the
			// goroutine instead of running other goroutines in the namespace.
			errc <- errors.Join(ferr, fmt.Errorf("leaving namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// newNamespace creates a network namespace and returns a handle to it,
// without entering it.
func newNamespace() (*os.File, error) {
	type result struct {
		ns  *os.File
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		host, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{err: err}
			return
		}
		defer host.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			c <- result{err: fmt.Errorf("unshare: %w", err)}
			return
		}
		ns, nsErr := os.Open("/proc/thread-self/ns/net")
		if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err != nil {
			if ns != nil {
				ns.Close()
			}
			c <- result{err: fmt.Errorf("leaving new namespace: %w", err)} // stay locked, as in do
			return
		}
		runtime.UnlockOSThread()
		c <- result{ns: ns, err: nsErr}
	}()
	r := <-c
	return r.ns, r.err
}

// ipHost runs ip on the host with the namespace as fd 3 and stdin as input.
func (n *NetNS) ipHost(stdin string, args ...string) error {
	cmd := exec.Command("ip", args...)
	cmd.ExtraFiles = []*os.File{n.ns}
	return run(cmd, stdin)
}

// ipInside runs ip inside the namespace with stdin as input.
func (n *NetNS) ipInside(stdin string, args ...string) error {
	return run(n.Command(context.Background(), "ip", args...), stdin)
}

func (n *NetNS) ipInsideOutput(args ...string) ([]byte, error) {
	cmd := n.Command(context.Background(), "ip", args...)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	return out, nil
}

func run(cmd *exec.Cmd, stdin string) error {
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// podNetUnused returns an error if the host already has an address or a
// route in 10.244.0.0/24, which would make the pod addresses ambiguous.
func podNetUnused() error {
	addrs, err := exec.Command("ip", "-o", "-4", "addr", "show", "to", podNet.String()).Output()
	if err != nil {
		return fmt.Errorf("listing host addresses: %w", err)
	}
	routes, err := exec.Command("ip", "-o", "-4", "route", "show", "root", podNet.String()).Output()
	if err != nil {
		return fmt.Errorf("listing host routes: %w", err)
	}
	if used := strings.TrimSpace(string(addrs) + string(routes)); used != "" {
		return fmt.Errorf("the host already uses %s, which the pod network needs; "+
			"remove it (a leftover of `ip netns add`? see `ip netns list`):\n%s", podNet, used)
	}
	return nil
}

// lockPodNet takes the host-wide lock on 10.244.0.0/24, waiting while
// another NetNS holds it. Closing the file releases it, as does the process
// dying.
func lockPodNet(t testing.TB) *os.File {
	t.Helper()
	dir := "/run/lock"
	if _, err := os.Stat(dir); err != nil {
		dir = os.TempDir()
	}
	path := dir + "/podpin-k8stest-netns.lock"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("k8stest: opening %s: %v", path, err)
	}
	deadline := time.Now().Add(netLockWait)
	for logged := false; ; {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			t.Fatalf("k8stest: locking %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			t.Fatalf("k8stest: another network namespace has held %s for %v (lock %s); "+
				"a test needing more pod addresses should use AddAddr on one NetNS", podNet, netLockWait, path)
		}
		if !logged {
			t.Logf("k8stest: waiting for another network namespace to release %s", podNet)
			logged = true
		}
		time.Sleep(200 * time.Millisecond)
	}
}
