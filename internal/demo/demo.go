package demo

import (
	"fmt"
	"io"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// DefaultPods are the pods of 'podpin demo': web-0, web-1 and web-2 on
// 127.0.0.1:9001-9003.
func DefaultPods() []Pod {
	return []Pod{
		{Name: "web-0", Addr: "127.0.0.1:9001"},
		{Name: "web-1", Addr: "127.0.0.1:9002"},
		{Name: "web-2", Addr: "127.0.0.1:9003"},
	}
}

// Config returns the demo's configuration, defaulted and validated: one
// route over pods, keyed by the default header, with the listener, admin
// address and balancer given. Its table keeps raw keys: the demo's keys
// are names, not credentials, and the console and the CLI can show them.
func Config(pods []Pod, listen, admin, balancer string) (*config.Config, error) {
	route := config.Route{Name: config.DefaultRoute, Balancer: balancer, Table: config.Table{KeepRawKeys: true}}
	for _, p := range pods {
		route.Backends = append(route.Backends, config.Backend{Name: p.Name, URL: "http://" + p.Addr})
	}
	cfg := &config.Config{
		Listeners: []config.Listener{{Address: listen}},
		Admin:     config.Admin{Address: admin},
		Shutdown:  config.Shutdown{DrainTimeout: 2 * time.Second},
		Routes:    []config.Route{route},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// WriteGuide writes what to try once the demo serves on listen, with its
// admin listener on admin.
func WriteGuide(w io.Writer, listen, admin string) {
	fmt.Fprintf(w, `podpin demo: three pods (web-0, web-1, web-2 on 127.0.0.1:9001-9003) behind podpin on %[1]s.

A session sticks to its pod; the same key always reaches the same pod:
  curl -H 'X-Session: alice' http://%[1]s/
  curl -H 'X-Session: alice' http://%[1]s/
A new session is placed by the balancer (round-robin):
  curl -H 'X-Session: bob' http://%[1]s/
  curl -H 'X-Session: carol' http://%[1]s/
No key: balanced, nothing pinned:
  curl http://%[1]s/
The X-Podpin-Pod response header names the pod:
  curl -si -H 'X-Session: alice' http://%[1]s/ | grep -i x-podpin-pod
Where every session lives: the console at http://%[2]s/ or the CLI
(go build -o podpin ./cmd/podpin):
  podpin sessions list
  podpin sessions get alice
  podpin sessions pin alice web-2
  podpin pods
Metrics:
  curl -s http://%[2]s/metrics | grep ^podpin_

Press Ctrl-C to stop.
`, listen, admin)
}
