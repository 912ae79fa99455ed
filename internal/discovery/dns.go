package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dnsSource finds pods by resolving a name again and again.
type dnsSource struct {
	name     string
	port     int
	interval time.Duration
	r        *net.Resolver
	log      *slog.Logger
}

var _ Source = (*dnsSource)(nil)

// NewDNS returns a source that resolves name every interval.
//
// With port > 0 it looks up A and AAAA records (a headless Service's name):
// each address is a pod named by its IP. With port 0 and a name that starts
// with "_" (_http._tcp.web.default.svc.cluster.local) it looks up SRV
// records: each target is a pod named by the target host name without its
// trailing dot (a StatefulSet pod's own DNS name, web-0.web.default.svc...,
// which keeps its sessions when its IP changes), at the target's first
// address and the record's port. Every pod has weight 1 and is Ready.
//
// A name that does not exist, or has no records, is an empty set. Any other
// failure (a timeout, SERVFAIL) keeps the last good set, and is logged once
// until it changes or resolution succeeds again. The source reports the
// first good set, then only changes. nil r uses net.DefaultResolver; nil log
// discards.
func NewDNS(name string, port int, interval time.Duration, r *net.Resolver, log *slog.Logger) Source {
	if r == nil {
		r = net.DefaultResolver
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &dnsSource{name: name, port: port, interval: interval, r: r, log: log.With("dns", name)}
}

// Start resolves the name in a goroutine of its own until stop.
func (d *dnsSource) Start(update func([]Endpoint)) (stop func()) {
	return startLoop(func(ctx context.Context) { d.run(ctx, update) })
}

// run resolves the name every interval until ctx ends.
func (d *dnsSource) run(ctx context.Context, update func([]Endpoint)) {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	var (
		last     []Endpoint
		reported bool
		failure  string
	)
	for {
		eps, err := d.resolve(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if msg := err.Error(); msg != failure {
				d.log.Warn("resolving failed; keeping the last endpoints", "error", err, "endpoints", len(last))
				failure = msg
			}
		default:
			if failure != "" {
				d.log.Info("resolving again", "endpoints", len(eps))
				failure = ""
			}
			if !reported || !slices.Equal(eps, last) {
				update(slices.Clone(eps))
				last, reported = eps, true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// resolve returns the current endpoint set, sorted by name.
func (d *dnsSource) resolve(ctx context.Context) ([]Endpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, max(d.interval, 5*time.Second))
	defer cancel()
	if d.port == 0 && strings.HasPrefix(d.name, "_") {
		return d.resolveSRV(ctx)
	}
	ips, err := d.lookupIPs(ctx, d.name)
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(d.port)
	eps := make([]Endpoint, 0, len(ips))
	for _, ip := range ips {
		eps = append(eps, Endpoint{Name: ip.String(), Address: net.JoinHostPort(ip.String(), port), Weight: 1, State: Ready})
	}
	return eps, nil
}

// resolveSRV resolves the SRV records of d.name and each target's address.
// A target without addresses (its pod just went) is left out.
func (d *dnsSource) resolveSRV(ctx context.Context) ([]Endpoint, error) {
	_, srvs, err := d.r.LookupSRV(ctx, "", "", d.name)
	if notFound(err) {
		return []Endpoint{}, nil
	}
	if err != nil {
		return nil, err
	}
	// Lowest priority first, so a target listed twice keeps its preferred
	// record.
	slices.SortStableFunc(srvs, func(a, b *net.SRV) int { return cmp.Compare(a.Priority, b.Priority) })
	eps := []Endpoint{}
	for _, srv := range srvs {
		name := strings.ToLower(strings.TrimSuffix(srv.Target, "."))
		if name == "" || slices.ContainsFunc(eps, func(e Endpoint) bool { return e.Name == name }) {
			continue
		}
		// The target keeps its trailing dot: a rooted name skips the
		// resolver's search list.
		ips, err := d.lookupIPs(ctx, srv.Target)
		if err != nil {
			return nil, fmt.Errorf("resolving SRV target %q: %w", name, err)
		}
		if len(ips) == 0 {
			continue
		}
		addr := net.JoinHostPort(ips[0].String(), strconv.Itoa(int(srv.Port)))
		eps = append(eps, Endpoint{Name: name, Address: addr, Weight: 1, State: Ready})
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.Name, b.Name) })
	return eps, nil
}

// lookupIPs returns host's addresses, IPv4 first, each once; none when the
// name does not exist.
func (d *dnsSource) lookupIPs(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, err := d.r.LookupNetIP(ctx, "ip", host)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap().WithZone("")
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int {
		if a.Is4() != b.Is4() {
			if a.Is4() {
				return -1
			}
			return 1
		}
		return a.Compare(b)
	})
	return slices.Compact(addrs), nil
}

// notFound reports whether err says the name has no such records: an
// answer, not a failure.
func notFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}
