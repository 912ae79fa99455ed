package k8stest

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestNetNSServesHTTPToTheHost(t *testing.T) {
	netns := NewNetNS(t)
	netns.AddAddr(t, "10.244.0.3")

	for _, addr := range []string{"10.244.0.2:8080", "10.244.0.3:8080"} {
		l, err := netns.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Reply with the server's address and the client's, to show
			// which side of the veth each one is on.
			io.WriteString(w, addr+" from "+r.RemoteAddr)
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}

	if err := netns.CheckRoute(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"10.244.0.2:8080", "10.244.0.3:8080"} {
		body := get(t, "http://"+addr+"/")
		server, client, ok := strings.Cut(body, " from ")
		if !ok || server != addr {
			t.Errorf("GET %s: got %q, want an answer from %s", addr, body, addr)
		}
		if host, _, _ := net.SplitHostPort(client); host != "10.244.0.1" {
			t.Errorf("GET %s: server saw client %q, want 10.244.0.1", addr, client)
		}
	}
}

func TestNetNSListenerIsNotOnTheHost(t *testing.T) {
	netns := NewNetNS(t)

	// The host does not hold 10.244.0.2, so only the namespace can bind it.
	if l, err := net.Listen("tcp", "10.244.0.2:0"); err == nil {
		l.Close()
		t.Fatal("listening on 10.244.0.2 on the host: got nil error, want address not available")
	}
	l, err := netns.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The namespace has its own loopback, which the host cannot reach.
	if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
		c.Close()
		t.Fatalf("dialing the namespace's %s from the host: got nil error, want refused", l.Addr())
	}
}

func TestNetNSCommandRunsInside(t *testing.T) {
	netns := NewNetNS(t)
	out, err := netns.Command(t.Context(), "ip", "-o", "-4", "addr", "show", "dev", "eth0").Output()
	if err != nil {
		t.Fatalf("ip addr inside: %v", err)
	}
	if !strings.Contains(string(out), "10.244.0.2/24") {
		t.Errorf("ip addr inside: got %q, want 10.244.0.2/24", out)
	}
}

func TestCleanupLeavesNothingBehind(t *testing.T) {
	var (
		link string
		pids []int
	)
	t.Run("inner", func(t *testing.T) {
		netns := NewNetNS(t)
		link = netns.Name
		cp := Start(t)
		cp.StartControllerManager(t)
		cp.mu.Lock()
		for _, p := range []*process{cp.etcd, cp.apiServer, cp.controllerManager} {
			pids = append(pids, p.cmd.Process.Pid)
		}
		cp.mu.Unlock()
	})

	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d after clean-up: got %v, want no such process", pid, err)
		}
	}
	if err := exec.Command("ip", "link", "show", link).Run(); err == nil {
		t.Errorf("link %s after clean-up: still exists", link)
	}
	if err := podNetUnused(); err != nil {
		t.Errorf("after clean-up: %v", err)
	}
}
