package discovery

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/podpin/podpin/internal/logtest"
)

// dnsServer is a real DNS server on loopback whose answers a test changes.
type dnsServer struct {
	addr string

	// guards the fields below
	mu       sync.Mutex
	addrs    map[string][]string   // name (rooted, lower case) to its IPs
	srv      map[string][]*dns.SRV // name to its SRV records
	servfail bool
}

func startDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{addr: pc.LocalAddr().String(), addrs: map[string][]string{}, srv: map[string][]*dns.SRV{}}
	started := make(chan struct{})
	server := &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: func() { close(started) }}
	go server.ActivateAndServe()
	<-started
	t.Cleanup(func() { server.Shutdown() })
	return s
}

// resolver returns a resolver that asks only this server.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", s.addr)
		},
	}
}

func (s *dnsServer) setAddrs(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs[name] = ips
}

func (s *dnsServer) setSRV(name string, records ...*dns.SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv[name] = records
}

func (s *dnsServer) setServfail(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail = on
}

func srvRecord(target string, port uint16) *dns.SRV {
	return &dns.SRV{Priority: 10, Weight: 50, Port: port, Target: target}
}

func (s *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	s.mu.Lock()
	defer s.mu.Unlock()
	defer w.WriteMsg(m)
	if s.servfail {
		m.Rcode = dns.RcodeServerFailure
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	ips, hasAddrs := s.addrs[name]
	srvs, hasSRV := s.srv[name]
	if !hasAddrs && !hasSRV {
		m.Rcode = dns.RcodeNameError
		return
	}
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 0}
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA:
		for _, ip := range ips {
			a := netip.MustParseAddr(ip)
			switch {
			case a.Is4() && q.Qtype == dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case a.Is6() && q.Qtype == dns.TypeAAAA:
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
	case dns.TypeSRV:
		for _, rec := range srvs {
			rr := *rec
			rr.Hdr = hdr
			m.Answer = append(m.Answer, &rr)
		}
	}
}

// runSource starts src, stops it when the test ends, and returns its
// reports.
func runSource(t *testing.T, src Source) <-chan []Endpoint {
	t.Helper()
	updates := make(chan []Endpoint, 100)
	t.Cleanup(src.Start(func(eps []Endpoint) { updates <- eps }))
	return updates
}

// nextUpdate returns the next report, failing the test after 10 seconds.
func nextUpdate(t *testing.T, updates <-chan []Endpoint) []Endpoint {
	t.Helper()
	select {
	case eps := <-updates:
		return eps
	case <-time.After(10 * time.Second):
		t.Fatal("no report within 10s")
		return nil
	}
}

// noUpdate fails the test if a report comes within d.
func noUpdate(t *testing.T, updates <-chan []Endpoint, d time.Duration) {
	t.Helper()
	select {
	case eps := <-updates:
		t.Fatalf("got report %v, want none", eps)
	case <-time.After(d):
	}
}

const dnsInterval = 20 * time.Millisecond

func TestDNSReportsAddressesNamedByIP(t *testing.T) {
	srv := startDNSServer(t)
	srv.setAddrs("web.podpin.test.", "10.0.0.2", "fd00::1", "10.0.0.1")
	updates := runSource(t, NewDNS("web.podpin.test.", 8080, dnsInterval, srv.resolver(), nil))

	want := []Endpoint{
		endpoint("10.0.0.1", "10.0.0.1:8080", Ready),
		endpoint("10.0.0.2", "10.0.0.2:8080", Ready),
		endpoint("fd00::1", "[fd00::1]:8080", Ready),
	}
	if got := nextUpdate(t, updates); !slices.Equal(got, want) {
		t.Fatalf("first report: got %v, want %v", got, want)
	}
	// Resolved again and again with the same answer: no report.
	noUpdate(t, updates, 10*dnsInterval)

	// The A and AAAA questions are asked apart, so one resolution may see
	// the new IPv4 answer beside the old IPv6 one: wait for the new set.
	srv.setAddrs("web.podpin.test.", "10.0.0.3", "10.0.0.1")
	waitFor(t, updates, []Endpoint{endpoint("10.0.0.1", "10.0.0.1:8080", Ready), endpoint("10.0.0.3", "10.0.0.3:8080", Ready)})
}

func TestDNSReportsSRVTargetsNamedByHost(t *testing.T) {
	srv := startDNSServer(t)
	const name = "_http._tcp.web.default.svc.cluster.local."
	srv.setSRV(name,
		srvRecord("web-1.web.default.svc.cluster.local.", 8080),
		srvRecord("web-0.web.default.svc.cluster.local.", 8080))
	srv.setAddrs("web-0.web.default.svc.cluster.local.", "10.0.0.1")
	srv.setAddrs("web-1.web.default.svc.cluster.local.", "10.0.0.2")
	updates := runSource(t, NewDNS(name, 0, dnsInterval, srv.resolver(), nil))

	want := []Endpoint{
		endpoint("web-0.web.default.svc.cluster.local", "10.0.0.1:8080", Ready),
		endpoint("web-1.web.default.svc.cluster.local", "10.0.0.2:8080", Ready),
	}
	if got := nextUpdate(t, updates); !slices.Equal(got, want) {
		t.Fatalf("first report: got %v, want %v", got, want)
	}

	// web-0 comes back with a new IP: same name, so it keeps its sessions.
	srv.setAddrs("web-0.web.default.svc.cluster.local.", "10.0.0.7")
	want[0].Address = "10.0.0.7:8080"
	if got := nextUpdate(t, updates); !slices.Equal(got, want) {
		t.Fatalf("after web-0 moved: got %v, want %v", got, want)
	}

	// A target whose address is gone is left out; the rest stay.
	srv.mu.Lock()
	delete(srv.addrs, "web-1.web.default.svc.cluster.local.")
	srv.mu.Unlock()
	if got := nextUpdate(t, updates); !slices.Equal(got, want[:1]) {
		t.Fatalf("after web-1's address went: got %v, want %v", got, want[:1])
	}
}

func TestDNSKeepsTheLastGoodSetWhileTheServerFails(t *testing.T) {
	srv := startDNSServer(t)
	srv.setAddrs("web.podpin.test.", "10.0.0.1", "10.0.0.2")
	var logs logtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	updates := runSource(t, NewDNS("web.podpin.test.", 80, dnsInterval, srv.resolver(), log))
	first := nextUpdate(t, updates)
	if len(first) != 2 {
		t.Fatalf("first report: got %v, want two pods", first)
	}

	srv.setServfail(true)
	noUpdate(t, updates, 20*dnsInterval)
	if n := strings.Count(logs.String(), "resolving failed"); n != 1 {
		t.Errorf("failure logged %d times over many failed resolutions, want once:\n%s", n, logs.String())
	}

	srv.setAddrs("web.podpin.test.", "10.0.0.1")
	srv.setServfail(false)
	want := []Endpoint{endpoint("10.0.0.1", "10.0.0.1:80", Ready)}
	if got := nextUpdate(t, updates); !slices.Equal(got, want) {
		t.Fatalf("after the server recovered: got %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "resolving again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}

func TestDNSWaitsForAFirstAnswerWhenTheServerFails(t *testing.T) {
	srv := startDNSServer(t)
	srv.setAddrs("web.podpin.test.", "10.0.0.1")
	srv.setServfail(true)
	updates := runSource(t, NewDNS("web.podpin.test.", 80, dnsInterval, srv.resolver(), nil))
	// Nothing is known yet, so nothing is reported: the route stays unsynced
	// and podpin unready rather than serving an empty set.
	noUpdate(t, updates, 10*dnsInterval)
	srv.setServfail(false)
	want := []Endpoint{endpoint("10.0.0.1", "10.0.0.1:80", Ready)}
	if got := nextUpdate(t, updates); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestDNSNameThatDoesNotExistIsAnEmptySet(t *testing.T) {
	srv := startDNSServer(t)
	updates := runSource(t, NewDNS("_http._tcp.nothing.podpin.test.", 0, dnsInterval, srv.resolver(), nil))
	if got := nextUpdate(t, updates); got == nil || len(got) != 0 {
		t.Fatalf("got %#v, want an empty set", got)
	}
	srv.setSRV("_http._tcp.nothing.podpin.test.", srvRecord("web-0.podpin.test.", 80))
	srv.setAddrs("web-0.podpin.test.", "10.0.0.1")
	want := []Endpoint{endpoint("web-0.podpin.test", "10.0.0.1:80", Ready)}
	if got := nextUpdate(t, updates); !slices.Equal(got, want) {
		t.Fatalf("after the name appeared: got %v, want %v", got, want)
	}
}

func TestFactoryMakesServiceAndDNSSources(t *testing.T) {
	f := &Factory{}
	_, err := f.Source("web", Spec{Service: &Service{Namespace: "shop", Name: "web", Port: "http"}})
	if !errors.Is(err, ErrNoKubernetes) {
		t.Errorf("service route without a Kubernetes client: got %v, want ErrNoKubernetes", err)
	}
	if _, err := f.Source("web", Spec{DNS: &DNS{Name: "web.podpin.test", Port: 80}}); err != nil {
		t.Errorf("dns route: got %v, want a source", err)
	}
	if _, err := f.Source("web", Spec{DNS: &DNS{Name: "web.podpin.test"}}); err == nil {
		t.Error("dns route with neither a port nor an SRV name: got a source, want an error")
	}
	f.Kube = NewKubernetes(nil, nil)
	src, err := f.Source("web", Spec{Service: &Service{Name: "web", Port: "80"}})
	if err != nil {
		t.Fatalf("service route: got %v, want a source", err)
	}
	if got := src.(*serviceSource).key; got != (serviceKey{"default", "web"}) {
		t.Errorf("service route without a namespace: got %v, want default/web", got)
	}
	if _, err := f.Source("web", Spec{}); err == nil {
		t.Error("route with no backends, service or dns: got a source, want an error")
	}
	if _, err := f.Source("web", Spec{Service: &Service{Name: "web", Port: "80"}, DNS: &DNS{Name: "web.podpin.test", Port: 80}}); err == nil {
		t.Error("route with a service and a dns name: got a source, want an error")
	}
}
