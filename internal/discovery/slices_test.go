package discovery

import (
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podpin/podpin/internal/config"
)

// svcWith returns a Service with the given ports.
func svcWith(ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: ports},
	}
}

func svcPort(name string, port int32, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: target, Protocol: corev1.ProtocolTCP}
}

// sliceOf returns an IPv4 EndpointSlice of the Service shop/web.
func sliceOf(name string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop",
			Name:      name,
			Labels:    map[string]string{discoveryv1.LabelServiceName: "web"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func ipv6(s *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	s.AddressType = discoveryv1.AddressTypeIPv6
	return s
}

func slicePortOf(name string, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: new(name), Port: new(port), Protocol: new(corev1.ProtocolTCP)}
}

// podAt is a ready endpoint of pod at addr.
func podAt(addr, pod string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{addr},
		Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: pod},
	}
}

// withConditions sets e's conditions; nil leaves one unset.
func withConditions(e discoveryv1.Endpoint, ready, serving, terminating *bool) discoveryv1.Endpoint {
	e.Conditions = discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}
	return e
}

func withApp(p discoveryv1.EndpointPort, app string) discoveryv1.EndpointPort {
	p.AppProtocol = &app
	return p
}

func withProtocol(e Endpoint, protocol string) Endpoint {
	e.Protocol = protocol
	return e
}

func endpoint(name, addr string, st State) Endpoint {
	return Endpoint{Name: name, Address: addr, Weight: 1, State: st}
}

func TestSliceTranslation(t *testing.T) {
	http8080 := []discoveryv1.EndpointPort{slicePortOf("http", 8080)}
	web := svcWith(svcPort("http", 80, intstr.FromString("http")))
	tests := []struct {
		name   string
		svc    *corev1.Service
		slices []*discoveryv1.EndpointSlice
		port   string
		want   []Endpoint
		reason string
	}{
		{
			name:   "A named Service port resolves through the slice port of the same name.",
			svc:    web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080, podAt("10.0.0.1", "web-0"))},
			port:   "http",
			want:   []Endpoint{endpoint("web-0", "10.0.0.1:8080", Ready)},
		},
		{
			name: "A port with appProtocol kubernetes.io/h2c gives its endpoints protocol h2c.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", []discoveryv1.EndpointPort{withApp(slicePortOf("http", 8080), "kubernetes.io/h2c")},
				podAt("10.0.0.1", "web-0"))},
			port: "http",
			want: []Endpoint{withProtocol(endpoint("web-0", "10.0.0.1:8080", Ready), "h2c")},
		},
		{
			name: "Each endpoint takes the appProtocol of the port of its own slice.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{
				sliceOf("web-a", []discoveryv1.EndpointPort{withApp(slicePortOf("http", 8443), "https")}, podAt("10.0.0.1", "web-0")),
				sliceOf("web-b", http8080, podAt("10.0.0.2", "web-1")),
			},
			port: "http",
			want: []Endpoint{withProtocol(endpoint("web-0", "10.0.0.1:8443", Ready), "https"), endpoint("web-1", "10.0.0.2:8080", Ready)},
		},
		{
			name: "The appProtocol of another port of the slice does not count.",
			svc:  svcWith(svcPort("grpc", 50051, intstr.FromInt32(50051)), svcPort("http", 80, intstr.FromString("http"))),
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a",
				[]discoveryv1.EndpointPort{withApp(slicePortOf("grpc", 50051), "grpc"), slicePortOf("http", 8080)},
				podAt("10.0.0.1", "web-0"))},
			port: "http",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", Ready)},
		},
		{
			name: "A numeric Service port resolves to its numeric target port.",
			svc:  svcWith(svcPort("", 80, intstr.FromInt32(8080))),
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", []discoveryv1.EndpointPort{slicePortOf("", 8080)},
				podAt("10.0.0.1", "web-0"))},
			port: "80",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", Ready)},
		},
		{
			name: "A Service port given by number is found among several named ports.",
			svc:  svcWith(svcPort("metrics", 9090, intstr.FromInt32(9090)), svcPort("http", 80, intstr.FromString("web"))),
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a",
				[]discoveryv1.EndpointPort{slicePortOf("metrics", 9090), slicePortOf("http", 8080)},
				podAt("10.0.0.1", "web-0"))},
			port: "80",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", Ready)},
		},
		{
			name: "A named target port resolves per slice, so pods with different container ports each get theirs.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{
				sliceOf("web-a", http8080, podAt("10.0.0.1", "web-0")),
				sliceOf("web-b", []discoveryv1.EndpointPort{slicePortOf("http", 9000)}, podAt("10.0.0.2", "web-1")),
			},
			port: "http",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", Ready), endpoint("web-1", "10.0.0.2:9000", Ready)},
		},
		{
			name: "Every slice of the Service is merged and the result sorted by name.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{
				sliceOf("web-b", http8080, podAt("10.0.0.3", "web-2"), podAt("10.0.0.1", "web-0")),
				sliceOf("web-a", http8080, podAt("10.0.0.2", "web-1")),
			},
			port: "http",
			want: []Endpoint{
				endpoint("web-0", "10.0.0.1:8080", Ready),
				endpoint("web-1", "10.0.0.2:8080", Ready),
				endpoint("web-2", "10.0.0.3:8080", Ready),
			},
		},
		{
			name: "An address in two slices keeps its most ready state.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{
				sliceOf("web-a", http8080, withConditions(podAt("10.0.0.1", "web-0"), new(false), new(false), new(false))),
				sliceOf("web-b", http8080, podAt("10.0.0.1", "web-0")),
				sliceOf("web-c", http8080, withConditions(podAt("10.0.0.1", "web-0"), new(false), new(true), new(true))),
			},
			port: "http",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", Ready)},
		},
		{
			name: "A pod listed at its old and its new address keeps the more ready one.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{
				sliceOf("web-a", http8080, withConditions(podAt("10.0.0.1", "web-0"), new(false), new(false), new(false))),
				sliceOf("web-b", http8080, podAt("10.0.0.9", "web-0")),
			},
			port: "http",
			want: []Endpoint{endpoint("web-0", "10.0.0.9:8080", Ready)},
		},
		{
			name: "A terminating pod that still serves is draining.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080,
				withConditions(podAt("10.0.0.1", "web-0"), new(false), new(true), new(true)))},
			port: "http",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", Draining)},
		},
		{
			name: "A terminating pod reported ready (publishNotReadyAddresses) is draining too.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080,
				withConditions(podAt("10.0.0.1", "web-0"), new(true), new(false), new(true)))},
			port: "http",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", Draining)},
		},
		{
			name: "A terminating pod that stopped serving is not ready.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080,
				withConditions(podAt("10.0.0.1", "web-0"), new(false), new(false), new(true)))},
			port: "http",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", NotReady)},
		},
		{
			name: "A pod that is not serving is not ready.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080,
				withConditions(podAt("10.0.0.1", "web-0"), new(false), new(false), new(false)))},
			port: "http",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", NotReady)},
		},
		{
			name: "Nil conditions mean ready, as the API documents.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080,
				withConditions(podAt("10.0.0.1", "web-0"), nil, nil, nil))},
			port: "http",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", Ready)},
		},
		{
			name: "A nil serving condition follows ready.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080,
				withConditions(podAt("10.0.0.1", "web-0"), new(false), nil, nil))},
			port: "http",
			want: []Endpoint{endpoint("web-0", "10.0.0.1:8080", NotReady)},
		},
		{
			name: "An endpoint without a targetRef is named by its address.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080,
				discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}})},
			port: "http",
			want: []Endpoint{endpoint("10.0.0.1", "10.0.0.1:8080", Ready)},
		},
		{
			name: "An endpoint whose targetRef is not a Pod is named by its address.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080, discoveryv1.Endpoint{
				Addresses: []string{"10.0.0.1"},
				TargetRef: &corev1.ObjectReference{Kind: "Node", Name: "node-1"},
			})},
			port: "http",
			want: []Endpoint{endpoint("10.0.0.1", "10.0.0.1:8080", Ready)},
		},
		{
			name:   "An IPv6 address is bracketed in host:port.",
			svc:    web,
			slices: []*discoveryv1.EndpointSlice{ipv6(sliceOf("web-a", http8080, podAt("fd00::1", "web-0")))},
			port:   "http",
			want:   []Endpoint{endpoint("web-0", "[fd00::1]:8080", Ready)},
		},
		{
			name: "A dual-stack pod is kept once, at the address of the Service's primary family.",
			svc: func() *corev1.Service {
				s := svcWith(svcPort("http", 80, intstr.FromString("http")))
				s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
				return s
			}(),
			slices: []*discoveryv1.EndpointSlice{
				sliceOf("web-a", http8080, podAt("10.0.0.1", "web-0")),
				ipv6(sliceOf("web-b", http8080, podAt("fd00::1", "web-0"))),
			},
			port: "http",
			want: []Endpoint{endpoint("web-0", "[fd00::1]:8080", Ready)},
		},
		{
			name:   "A port the Service does not have gives no endpoints.",
			svc:    web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080, podAt("10.0.0.1", "web-0"))},
			port:   "grpc",
			want:   []Endpoint{},
			reason: `service has no TCP port "grpc"`,
		},
		{
			name:   "A port number the Service does not have gives no endpoints, even if it is a target port.",
			svc:    web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080, podAt("10.0.0.1", "web-0"))},
			port:   "8080",
			want:   []Endpoint{},
			reason: `service has no TCP port "8080"`,
		},
		{
			name: "A slice without the Service port's name contributes nothing.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{
				sliceOf("web-a", []discoveryv1.EndpointPort{slicePortOf("metrics", 9090)}, podAt("10.0.0.1", "web-0")),
				sliceOf("web-b", http8080, podAt("10.0.0.2", "web-1")),
			},
			port: "http",
			want: []Endpoint{endpoint("web-1", "10.0.0.2:8080", Ready)},
		},
		{
			name: "A slice port with no number is skipped.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a",
				[]discoveryv1.EndpointPort{{Name: new("http")}}, podAt("10.0.0.1", "web-0"))},
			port: "http",
			want: []Endpoint{},
		},
		{
			name: "A UDP Service port is not an HTTP port.",
			svc:  svcWith(corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}),
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a",
				[]discoveryv1.EndpointPort{{Name: new("dns"), Port: new(int32(53)), Protocol: new(corev1.ProtocolUDP)}},
				podAt("10.0.0.1", "web-0"))},
			port:   "dns",
			want:   []Endpoint{},
			reason: `service has no TCP port "dns"`,
		},
		{
			name: "FQDN slices are ignored.",
			svc:  web,
			slices: []*discoveryv1.EndpointSlice{func() *discoveryv1.EndpointSlice {
				s := sliceOf("web-a", http8080, discoveryv1.Endpoint{Addresses: []string{"web.example.com"}})
				s.AddressType = discoveryv1.AddressTypeFQDN
				return s
			}()},
			port: "http",
			want: []Endpoint{},
		},
		{
			name:   "A missing Service gives no endpoints.",
			slices: []*discoveryv1.EndpointSlice{sliceOf("web-a", http8080, podAt("10.0.0.1", "web-0"))},
			port:   "http",
			want:   []Endpoint{},
			reason: "service not found",
		},
		{
			name: "A Service without slices has no endpoints and no complaint.",
			svc:  web,
			port: "http",
			want: []Endpoint{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before []any
			var svc *service
			if tt.svc != nil {
				before = append(before, tt.svc.DeepCopy())
				svc = newService(tt.svc)
			}
			var ss []slice
			for _, s := range tt.slices {
				before = append(before, s.DeepCopy())
				ss = append(ss, newSlice(s))
			}
			got, reason := translate(svc, ss, tt.port)
			if !slices.Equal(got, tt.want) {
				t.Errorf("endpoints: got %v, want %v", got, tt.want)
			}
			if reason != tt.reason {
				t.Errorf("reason: got %q, want %q", reason, tt.reason)
			}

			// The objects come from the informer cache: nothing may change them.
			var after []any
			if tt.svc != nil {
				after = append(after, tt.svc)
			}
			for _, s := range tt.slices {
				after = append(after, s)
			}
			if !reflect.DeepEqual(before, after) {
				t.Error("translation changed its input objects")
			}
		})
	}
}

func TestSliceTranslationDoesNotDependOnSliceOrder(t *testing.T) {
	web := newService(svcWith(svcPort("http", 80, intstr.FromString("http"))))
	port := []discoveryv1.EndpointPort{slicePortOf("http", 8080)}
	a := newSlice(sliceOf("web-a", port, podAt("10.0.0.1", "web-0"), podAt("10.0.0.2", "web-1")))
	// The same address under another name, equally ready: one must win the
	// same way whichever slice comes first.
	b := newSlice(sliceOf("web-b", port, podAt("10.0.0.1", "web-9"), podAt("10.0.0.3", "web-2")))
	one, _ := translate(web, []slice{a, b}, "http")
	two, _ := translate(web, []slice{b, a}, "http")
	if !slices.Equal(one, two) {
		t.Errorf("endpoints depend on slice order: got %v and %v", one, two)
	}
}

func TestAppProtocolNamesWhatPodpinSpeaks(t *testing.T) {
	for app, want := range map[string]string{
		"kubernetes.io/h2c":   config.PodH2C,
		"h2c":                 config.PodH2C,
		"grpc":                config.PodH2C,
		"GRPC":                config.PodH2C,
		"https":               config.PodHTTPS,
		"kubernetes.io/https": config.PodHTTPS,
		"kubernetes.io/wss":   config.PodHTTPS,
		"grpcs":               config.PodHTTPS,
		"http":                "",
		"kubernetes.io/ws":    "",
		"http2":               "",
		"":                    "",
	} {
		if got := AppProtocol(app); got != want {
			t.Errorf("AppProtocol(%q) = %q, want %q", app, got, want)
		}
	}
}
