package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/certstest"
)

func TestPodsSettingsErrorsNameTheField(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	caFile := ca.WriteCAFile(t, dir)
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "none.pem")
	https := []Backend{{Name: "web-0", URL: "https://127.0.0.1:8443"}}
	cleartext := []Backend{{Name: "web-0", URL: "http://127.0.0.1:8080"}}
	for _, c := range []struct {
		name     string
		backends []Backend
		pods     Pods
		want     string // "" for valid
	}{
		{"https backends with a CA and a server name are valid", https,
			Pods{TLS: PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}}, ""},
		{"an h2c backend is valid", []Backend{{Name: "g-0", URL: "h2c://127.0.0.1:50051"}}, Pods{}, ""},
		{"a route's protocol may override cleartext backends", cleartext,
			Pods{Protocol: PodHTTPS, TLS: PodTLS{InsecureSkipVerify: true}}, ""},
		{"an IP address is a server name", https, Pods{TLS: PodTLS{ServerName: "10.0.0.1"}}, ""},
		{"an unknown protocol is named", cleartext, Pods{Protocol: "grpc"},
			`routes[0].pods.protocol: "grpc" must be one of http, h2c, https, or empty for what each pod says`},
		{"a missing CA file is named", https, Pods{TLS: PodTLS{CAFile: missing}},
			`routes[0].pods.tls.caFile: "` + missing + `" cannot be read: no such file or directory`},
		{"a CA file without a certificate is named", https, Pods{TLS: PodTLS{CAFile: junk}},
			`routes[0].pods.tls.caFile: "` + junk + `" holds no PEM certificate`},
		{"a CA with insecureSkipVerify is refused", https, Pods{TLS: PodTLS{CAFile: caFile, InsecureSkipVerify: true}},
			"routes[0].pods.tls.caFile: cannot be combined with insecureSkipVerify"},
		{"a server name with a port is refused", https, Pods{TLS: PodTLS{ServerName: "web:8443"}},
			`routes[0].pods.tls.serverName: "web:8443" must be a host name or an IP address, without port`},
		{"tls for h2c pods is refused", https, Pods{Protocol: PodH2C, TLS: PodTLS{ServerName: "web"}},
			`routes[0].pods.tls: applies only to pods that speak https, and pods.protocol is "h2c"`},
		{"tls without an https backend is refused", cleartext, Pods{TLS: PodTLS{ServerName: "web"}},
			"routes[0].pods.tls: applies only to pods that speak https, and no backend url is https://"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := &Config{Routes: []Route{{Name: "web", Backends: c.backends, Pods: c.pods}}}
			cfg.SetDefaults()
			err := cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestPodsTLSOfAServiceRouteIsAccepted(t *testing.T) {
	// A Service's pods say their protocol at run time (appProtocol), so a
	// TLS block cannot be judged against them in advance.
	cfg := &Config{Routes: []Route{{
		Name:    "web",
		Service: &Service{Name: "web", Port: "https"},
		Pods:    Pods{TLS: PodTLS{ServerName: "web.shop.svc"}},
	}}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("got %v, want valid", err)
	}
}

func TestPodsSettingsDecodeFromYAML(t *testing.T) {
	ca := certstest.NewCA(t)
	caFile := ca.WriteCAFile(t, t.TempDir())
	c, err := Parse([]byte(`routes:
- name: grpc
  pods: {protocol: h2c}
  backends: [{name: g-0, url: "http://127.0.0.1:50051"}]
- name: secure
  pods:
    protocol: https
    tls: {caFile: "` + caFile + `", serverName: web.shop.svc}
  backends: [{name: s-0, url: "https://127.0.0.1:8443"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Routes[0].Pods.Protocol; got != PodH2C {
		t.Errorf("got protocol %q, want %q", got, PodH2C)
	}
	want := PodTLS{CAFile: caFile, ServerName: "web.shop.svc"}
	if got := c.Routes[1].Pods.TLS; got != want {
		t.Errorf("got tls %+v, want %+v", got, want)
	}
	pool, err := c.Routes[1].Pods.TLS.RootCAs()
	if err != nil || pool == nil {
		t.Errorf("got pool %v, %v; want the CA", pool, err)
	}
}
