package ingress

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// publisher knows the address podpin publishes in the status of the
// Ingresses it serves: a fixed IP or host name, or the address of podpin's
// own Service.
type publisher struct {
	// address is the fixed address; empty: use the Service.
	address string
	// namespace and name of podpin's Service; empty: none.
	namespace, name string
	services        corelisters.ServiceLister
}

// parsePublishService splits "namespace/name".
func parsePublishService(v string) (namespace, name string, err error) {
	namespace, name, ok := strings.Cut(v, "/")
	if !ok || namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("publish service %q must be namespace/name", v)
	}
	return namespace, name, nil
}

// enabled reports whether any address is to be published.
func (p *publisher) enabled() bool { return p.address != "" || p.name != "" }

// addresses returns the status entries to publish. ok is false when the
// Service is not known yet (or has no address), so nothing is written.
func (p *publisher) addresses() (want []networkingv1.IngressLoadBalancerIngress, ok bool) {
	if p.address != "" {
		return []networkingv1.IngressLoadBalancerIngress{entry(p.address)}, true
	}
	if p.services == nil {
		return nil, false
	}
	svc, err := p.services.Services(p.namespace).Get(p.name)
	if err != nil {
		return nil, false
	}
	for _, a := range ServiceAddresses(svc) {
		want = append(want, entry(a))
	}
	sortEntries(want)
	return want, len(want) > 0
}

// ServiceAddresses are the addresses through which svc's clients reach
// it: its load balancer's (IPs or host names), else its external IPs,
// else its cluster IP. None while it has none of them.
func ServiceAddresses(svc *corev1.Service) []string {
	var out []string
	for _, lb := range svc.Status.LoadBalancer.Ingress {
		if lb.IP != "" {
			out = append(out, lb.IP)
		} else if lb.Hostname != "" {
			out = append(out, lb.Hostname)
		}
	}
	if len(out) == 0 {
		out = append(out, svc.Spec.ExternalIPs...)
	}
	if len(out) == 0 && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		out = append(out, svc.Spec.ClusterIP)
	}
	return out
}

// entry is an IP entry when v is an IP address, else a host name entry.
func entry(v string) networkingv1.IngressLoadBalancerIngress {
	if _, err := netip.ParseAddr(v); err == nil {
		return networkingv1.IngressLoadBalancerIngress{IP: v}
	}
	return networkingv1.IngressLoadBalancerIngress{Hostname: v}
}

func sortEntries(es []networkingv1.IngressLoadBalancerIngress) {
	slices.SortFunc(es, func(a, b networkingv1.IngressLoadBalancerIngress) int {
		return strings.Compare(a.IP+"\x00"+a.Hostname, b.IP+"\x00"+b.Hostname)
	})
}

// sameEntries compares status entries by address, ignoring order and ports.
func sameEntries(a, b []networkingv1.IngressLoadBalancerIngress) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	sortEntries(a)
	sortEntries(b)
	for i := range a {
		if a[i].IP != b[i].IP || a[i].Hostname != b[i].Hostname || len(a[i].Ports) != len(b[i].Ports) {
			return false
		}
	}
	return true
}

// writeStatus sets the load balancer addresses of ing to want through the
// status subresource, unless they already are want. ing is a cached object:
// it is copied, never changed.
func writeStatus(ctx context.Context, client kubernetes.Interface, ing *networkingv1.Ingress, want []networkingv1.IngressLoadBalancerIngress) (bool, error) {
	if sameEntries(ing.Status.LoadBalancer.Ingress, want) {
		return false, nil
	}
	cp := ing.DeepCopy()
	cp.Status.LoadBalancer.Ingress = want
	_, err := client.NetworkingV1().Ingresses(cp.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return false, fmt.Errorf("updating the status of ingress %s/%s: %w", ing.Namespace, ing.Name, err)
	}
	return true, nil
}
