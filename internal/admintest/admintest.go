// Package admintest serves the admin API of a real proxy, for the tests of
// the API's clients. Production code never imports it.
package admintest

import (
	"net/http/httptest"
	"testing"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/proxy"
)

// Start serves, until the test ends, the admin API of a proxy with one
// route, "default", that keeps raw keys, over two pods (web-0 and web-1)
// at addresses that are never contacted. A token, when not empty, is
// required.
func Start(t testing.TB, token string) *httptest.Server {
	t.Helper()
	cfg := &config.Config{Routes: []config.Route{{
		Name:  "default",
		Table: config.Table{KeepRawKeys: true},
		Backends: []config.Backend{
			{Name: "web-0", URL: "http://192.0.2.10:8080"},
			{Name: "web-1", URL: "http://192.0.2.11:8080"},
		},
	}}}
	cfg.SetDefaults()
	p := proxy.New(proxy.Options{})
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.Handler = admin.New(admin.Options{Address: srv.Listener.Addr().String(), Token: token, Inspector: p})
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
