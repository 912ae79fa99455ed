package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOverridesApplyOverTheFile(t *testing.T) {
	ptr := func(s string) *string { return &s }
	file := func() *Config {
		return &Config{
			Listeners: []Listener{{Address: "0.0.0.0:80", TrustedProxies: []string{"10.0.0.0/8"}, TLS: &ListenerTLS{MinVersion: "1.3"}}},
			Admin:     Admin{Address: "127.0.0.1:9000", TokenEnv: "TOKEN"},
			State:     State{File: "/var/lib/podpin/state"},
			Shutdown:  Shutdown{DrainTimeout: time.Minute, Delay: time.Second},
			Routes:    []Route{{Name: "a", Store: StoreMemory}, {Name: "b"}},
		}
	}

	t.Run("nothing given leaves the file as it is", func(t *testing.T) {
		c := file()
		if err := (Overrides{}).Apply(c, "podpin.yaml"); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, file()) {
			t.Errorf("got %+v, want the file unchanged", c)
		}
	})

	t.Run("every setting given", func(t *testing.T) {
		c := file()
		drain, delay := 5*time.Second, 2*time.Second
		o := Overrides{
			Listen: ptr(":8443"), TLS: &Certificate{CertFile: "c.pem", KeyFile: "k.pem"},
			Admin: ptr(":9901"), AdminTokenFile: ptr("/run/token"), LogFormat: ptr(LogJSON),
			StateFile: ptr("/tmp/state"), Redis: ptr("redis://r:6379"),
			DrainTimeout: &drain, ShutdownDelay: &delay,
		}
		if err := o.Apply(c, "podpin.yaml"); err != nil {
			t.Fatal(err)
		}
		l := c.Listeners[0]
		if l.Address != ":8443" || !reflect.DeepEqual(l.TrustedProxies, []string{"10.0.0.0/8"}) {
			t.Errorf("listener %+v: want the new address and the file's trusted proxies", l)
		}
		if l.TLS.MinVersion != "1.3" || !reflect.DeepEqual(l.TLS.Certificates, []Certificate{{CertFile: "c.pem", KeyFile: "k.pem"}}) {
			t.Errorf("listener TLS %+v: want the given certificate and the file's minimum version", l.TLS)
		}
		if c.Admin.Address != ":9901" || c.Admin.TokenFile != "/run/token" || c.Admin.TokenEnv != "" {
			t.Errorf("admin %+v: want the given address and token file, no token variable", c.Admin)
		}
		if c.Log.Format != LogJSON || c.State.File != "/tmp/state" || c.Shutdown.DrainTimeout != drain || c.Shutdown.Delay != delay {
			t.Errorf("log %q, state %q, shutdown %+v: want the given ones", c.Log.Format, c.State.File, c.Shutdown)
		}
		if c.Store.Type != StoreRedis || c.Store.Redis.URL != "redis://r:6379" || c.Routes[0].Store != "" {
			t.Errorf("store %+v, route a's store %q: want every table in the given Redis", c.Store, c.Routes[0].Store)
		}
	})

	t.Run("a listener is made for a file without one", func(t *testing.T) {
		c := &Config{}
		if err := (Overrides{Listen: ptr(":8080"), TLS: &Certificate{CertFile: "c", KeyFile: "k"}}).Apply(c, ""); err != nil {
			t.Fatal(err)
		}
		if len(c.Listeners) != 1 || c.Listeners[0].Address != ":8080" || c.Listeners[0].TLS == nil {
			t.Errorf("listeners %+v: want one TLS listener on :8080", c.Listeners)
		}
	})

	for _, tc := range []struct {
		name string
		c    *Config
		o    Overrides
		want string
	}{
		{"a certificate without the listener it is for", file(), Overrides{TLS: &Certificate{CertFile: "c", KeyFile: "k"}}, "give --listen too"},
		{"an address for one of several listeners", &Config{Listeners: []Listener{{}, {}}}, Overrides{Listen: ptr(":80")}, "among the 2 listeners of podpin.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Apply(tc.c, "podpin.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
