package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestShortForms(t *testing.T) {
	for _, tt := range []struct {
		name    string
		backend string
		service string
		dns     string
		want    any // Backend, *Service or *DNS; nil: refused
	}{
		{name: "a backend", backend: "web-0=http://10.0.0.10:8080", want: Backend{Name: "web-0", URL: "http://10.0.0.10:8080"}},
		{name: "a backend whose URL has an equals sign", backend: "web-0=http://h:1/?a=b", want: Backend{Name: "web-0", URL: "http://h:1/?a=b"}},
		{name: "a backend without a name", backend: "=http://h:1"},
		{name: "a backend without a URL", backend: "web-0"},
		{name: "a service with namespace and named port", service: "shop/web:http", want: &Service{Namespace: "shop", Name: "web", Port: "http"}},
		{name: "a service without namespace", service: "web:8080", want: &Service{Name: "web", Port: "8080"}},
		{name: "a service without port", service: "shop/web"},
		{name: "a service with an empty namespace", service: "/web:http"},
		{name: "a service with two slashes", service: "a/b/c:http"},
		{name: "a service with two ports", service: "shop/web:http:80"},
		{name: "a DNS name and port", dns: "web.shop.svc.cluster.local:8080", want: &DNS{Name: "web.shop.svc.cluster.local", Port: 8080}},
		{name: "an IPv6 address and port", dns: "[::1]:8080", want: &DNS{Name: "::1", Port: 8080}},
		{name: "an SRV name needs no port", dns: "_http._tcp.web", want: &DNS{Name: "_http._tcp.web"}},
		{name: "a DNS name without port", dns: "web.shop.svc.cluster.local"},
		{name: "a port out of range", dns: "web:65536"},
		{name: "a port that is a name", dns: "web:http"},
		{name: "no name", dns: ":80"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got any
			var err error
			switch {
			case tt.backend != "":
				got, err = ParseBackend(tt.backend)
			case tt.service != "":
				got, err = ParseService(tt.service)
			default:
				got, err = ParseDNS(tt.dns)
			}
			switch {
			case tt.want == nil && err == nil:
				t.Errorf("got %+v, want an error", got)
			case tt.want != nil && (err != nil || !reflect.DeepEqual(got, tt.want)):
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseService checks that a parsed short form names a Service fully
// and reads the same when written back.
func FuzzParseService(f *testing.F) {
	for _, seed := range []string{"shop/web:http", "web:8080", "/web:http", "a/b/c:d", ":"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := ParseService(v)
		if err != nil {
			return
		}
		if s.Name == "" || s.Port == "" {
			t.Fatalf("%q: got %+v, want a name and a port", v, s)
		}
		again := s.Name + ":" + s.Port
		if s.Namespace != "" {
			again = s.Namespace + "/" + again
		}
		if s2, err := ParseService(again); err != nil || *s2 != *s {
			t.Fatalf("%q parsed as %+v; written back as %q it parses as %+v, %v", v, s, again, s2, err)
		}
	})
}

// FuzzParseDNS checks that a parsed short form has a name and a valid port,
// or none for an SRV name.
func FuzzParseDNS(f *testing.F) {
	for _, seed := range []string{"web:8080", "[::1]:80", "_http._tcp.web", "web", "web:0"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := ParseDNS(v)
		if err != nil {
			return
		}
		srv := d.Port == 0 && strings.HasPrefix(d.Name, "_")
		if d.Name == "" || !srv && (d.Port < 1 || d.Port > 65535) {
			t.Fatalf("%q: got %+v, want a name with a port, or an SRV name", v, d)
		}
	})
}
