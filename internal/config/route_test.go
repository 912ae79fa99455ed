package config

import (
	"strings"
	"testing"
	"time"
)

// TestGatewayRouteFieldsAreChecked covers the route fields a Gateway API
// controller fills: hostSuffix, respond and timeouts.
func TestGatewayRouteFieldsAreChecked(t *testing.T) {
	const pods = "backends: [{name: p, url: 'http://127.0.0.1:1'}]"
	for _, tt := range []struct {
		name  string
		route string
		want  string // "" for valid
	}{
		{"a host suffix", "{name: a, match: {hostSuffix: .example.com}, " + pods + "}", ""},
		{"a host suffix without its dot", "{name: a, match: {hostSuffix: example.com}, " + pods + "}",
			`routes[0].match.hostSuffix: "example.com" must be '.' and a domain, such as .example.com`},
		{"a host suffix that is only a dot", "{name: a, match: {hostSuffix: .}, " + pods + "}",
			`routes[0].match.hostSuffix: "." must be '.' and a domain`},
		{"a host suffix with a wildcard", "{name: a, match: {hostSuffix: '*.example.com'}, " + pods + "}",
			`routes[0].match.hostSuffix: "*.example.com" must be '.' and a domain`},
		{"a host suffix with a port", "{name: a, match: {hostSuffix: '.example.com:80'}, " + pods + "}",
			`routes[0].match.hostSuffix: ".example.com:80" must be '.' and a domain`},
		{"a host suffix beside a host", "{name: a, match: {host: a.example.com, hostSuffix: .example.com}, " + pods + "}",
			"routes[0].match.hostSuffix: cannot be combined with host"},

		{"a route that responds has no pods", "{name: a, respond: {status: 500}}", ""},
		{"a route that responds, with response headers", "{name: a, respond: {status: 503}, responseHeaders: {set: {X-A: b}}}", ""},
		{"a route that responds and has pods", "{name: a, respond: {status: 500}, " + pods + "}",
			"routes[0].respond: a route that responds by itself has no pods"},
		{"a status under 200", "{name: a, respond: {status: 101}}", "routes[0].respond.status: 101 must be between 200 and 599"},
		{"a status over 599", "{name: a, respond: {status: 600}}", "routes[0].respond.status: 600 must be between 200 and 599"},
		{"no status", "{name: a, respond: {}}", "routes[0].respond.status: 0 must be between 200 and 599"},
		{"respond beside redirect", "{name: a, respond: {status: 500}, redirect: {scheme: https}}", "routes[0].respond: cannot be combined with redirect"},
		{"respond beside rewrite", "{name: a, respond: {status: 500}, rewrite: {host: b}}", "routes[0].respond: cannot be combined with rewrite"},

		{"both timeouts", "{name: a, timeouts: {request: 10s, backendRequest: 2s}, " + pods + "}", ""},
		{"timeouts turned off", "{name: a, timeouts: {request: 0s, backendRequest: 0s}, " + pods + "}", ""},
		{"a backend timeout without a request timeout", "{name: a, timeouts: {backendRequest: 2s}, " + pods + "}", ""},
		{"a backend timeout longer than the request's", "{name: a, timeouts: {request: 1s, backendRequest: 2s}, " + pods + "}",
			"routes[0].timeouts.backendRequest: 2s must not be longer than timeouts.request (1s)"},
		{"a backend timeout under an unbounded request", "{name: a, timeouts: {request: 0s, backendRequest: 2s}, " + pods + "}", ""},
		{"a negative request timeout", "{name: a, timeouts: {request: -1s}, " + pods + "}", "routes[0].timeouts.request: must not be negative"},
		{"a negative backend timeout", "{name: a, timeouts: {backendRequest: -1s}, " + pods + "}", "routes[0].timeouts.backendRequest: must not be negative"},
		{"an unknown timeout", "{name: a, timeouts: {idle: 1s}, " + pods + "}", "routes[0].timeouts.idle: unknown field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("routes: [" + tt.route + "]\n"))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestTimeoutsTellUnsetFromZero(t *testing.T) {
	c, err := Parse([]byte("routes: [{name: a, timeouts: {request: 0s, backendRequest: 1500ms}, backends: [{name: p, url: 'http://127.0.0.1:1'}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	to := c.Routes[0].Timeouts
	if to.Request == nil || *to.Request != 0 {
		t.Errorf("request: got %v, want 0 (no bound), set", to.Request)
	}
	if to.BackendRequest == nil || *to.BackendRequest != 1500*time.Millisecond {
		t.Errorf("backendRequest: got %v, want 1.5s", to.BackendRequest)
	}
	c, err = Parse([]byte("routes: [{name: a, backends: [{name: p, url: 'http://127.0.0.1:1'}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if to := c.Routes[0].Timeouts; to.Request != nil || to.BackendRequest != nil {
		t.Errorf("unset timeouts: got %v, %v, want both nil", to.Request, to.BackendRequest)
	}
}
