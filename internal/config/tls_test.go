package config

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/certstest"
)

func TestListenerTLSErrorsNameTheField(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	cert, key := ca.WriteFiles(t, dir, "a", "a.test")
	otherCert, otherKey := ca.WriteFiles(t, dir, "b", "b.test")
	junk := filepath.Join(dir, "junk.crt")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tls  ListenerTLS
		want string // "" for valid
	}{
		{"a matching pair is valid", ListenerTLS{Certificates: []Certificate{{cert, key}, {otherCert, otherKey}}, MinVersion: "1.3"}, ""},
		{"a missing certificate file is named",
			ListenerTLS{Certificates: []Certificate{{cert, key}, {filepath.Join(dir, "none.crt"), key}}},
			`listeners[0].tls.certificates[1].certFile: "` + filepath.Join(dir, "none.crt") + `" cannot be read: no such file or directory`},
		{"a missing key file is named",
			ListenerTLS{Certificates: []Certificate{{cert, filepath.Join(dir, "none.key")}}},
			`listeners[0].tls.certificates[0].keyFile: "` + filepath.Join(dir, "none.key") + `" cannot be read`},
		{"a key of another certificate is refused",
			ListenerTLS{Certificates: []Certificate{{cert, otherKey}}},
			"listeners[0].tls.certificates[0]: certificate " + `"` + cert + `" with key "` + otherKey + `": tls: private key does not match public key`},
		{"a file that is not PEM is refused",
			ListenerTLS{Certificates: []Certificate{{junk, key}}},
			"listeners[0].tls.certificates[0]: certificate " + `"` + junk + `"`},
		{"a managed listener needs no certificate", ListenerTLS{Managed: true}, ""},
		{"a managed listener takes no files",
			ListenerTLS{Managed: true, Certificates: []Certificate{{cert, key}}},
			"listeners[0].tls.certificates: a listener whose certificates a controller sets takes no certificate files"},
		{"a managed listener's hostnames", ListenerTLS{Managed: true, Hostnames: []string{"", "a.test", "*.apps.test"}}, ""},
		{"a bad hostname is named",
			ListenerTLS{Managed: true, Hostnames: []string{"a.test", "a b"}},
			`listeners[0].tls.hostnames[1]: "a b" must be a host name, *.domain or empty`},
		{"a listener of files needs one",
			ListenerTLS{},
			"listeners[0].tls.certificates: at least one certificate is required"},
		{"a bad minVersion is named",
			ListenerTLS{Certificates: []Certificate{{cert, key}}, MinVersion: "1.0"},
			`listeners[0].tls.minVersion: "1.0" must be one of 1.2, 1.3`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := &Config{
				Listeners: []Listener{{Address: ":8443", TLS: &c.tls}},
				Routes:    []Route{{Name: "web", Backends: []Backend{{Name: "web-0", URL: "http://127.0.0.1:8081"}}}},
			}
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

func TestManagedIsNotSetFromTheFile(t *testing.T) {
	_, err := Parse([]byte("listeners: [{address: ':8443', tls: {managed: true}}]\nroutes: [{name: a, backends: [{name: p, url: 'http://127.0.0.1:1'}]}]\n"))
	if err == nil || !strings.Contains(err.Error(), "listeners[0].tls.managed: unknown field") {
		t.Errorf("got %v, want managed refused as an unknown field", err)
	}
}

func TestListenerTLSDefaultsToTLS12(t *testing.T) {
	cfg := &Config{Listeners: []Listener{{Address: ":8443", TLS: &ListenerTLS{}}}}
	cfg.SetDefaults()
	if got := cfg.Listeners[0].TLS.MinVersion; got != TLS12 {
		t.Errorf("got minVersion %q, want %q", got, TLS12)
	}
}

func TestEventLoopListenersHaveNoProxyProtocol(t *testing.T) {
	cert, key := certstest.NewCA(t).WriteFiles(t, t.TempDir(), "a", "a.test")
	tls := fmt.Sprintf("tls: {certificates: [{certFile: %q, keyFile: %q}]}", cert, key)
	for _, c := range []struct {
		yaml string
		want string // "" for valid
	}{
		{"{address: ':8080', eventLoop: true}", ""},
		{"{address: ':8443', eventLoop: true, " + tls + "}", ""},
		{"{address: ':8080', eventLoop: true, proxyProtocol: true}", "listeners[0].eventLoop: serves listeners without proxyProtocol only"},
		{"{address: ':8443', eventLoop: true, proxyProtocol: true, " + tls + "}", "listeners[0].eventLoop: serves listeners without proxyProtocol only"},
	} {
		_, err := Parse([]byte("listeners: [" + c.yaml + "]\nroutes: [{name: a, backends: [{name: p, url: 'http://127.0.0.1:1'}]}]\n"))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: got %v, want valid", c.yaml, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}

func TestEventLoopsServeListenersByDefault(t *testing.T) {
	off := false
	for _, c := range []struct {
		name string
		l    Listener
		want bool
	}{
		{"a cleartext listener", Listener{}, runtime.GOOS == "linux"},
		{"a TLS listener", Listener{TLS: &ListenerTLS{}}, runtime.GOOS == "linux"},
		{"a PROXY protocol listener", Listener{ProxyProtocol: true}, false},
		{"eventLoop: false", Listener{EventLoop: &off}, false},
	} {
		if got := c.l.EventLoopEnabled(); got != c.want {
			t.Errorf("%s: EventLoopEnabled() = %v, want %v", c.name, got, c.want)
		}
	}
}
