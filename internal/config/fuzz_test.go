package config

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents to Parse: it never panics, returns a
// configuration or an error, and every validation error names a field.
// Seeds are testdata/*.yaml and testdata/fuzz/FuzzParse
// (testdata/fuzz/README.md).
func FuzzParse(f *testing.F) {
	for _, name := range []string{"good", "bad", "unknown"} {
		if data, err := os.ReadFile("testdata/" + name + ".yaml"); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", c != nil, err)
		}
		var errs Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				// An empty YAML key is reported at the empty path of
				// the level it sits at (load.go names it by its text).
				if (e.Path == "" && !strings.HasPrefix(e.Msg, "unknown field")) || e.Msg == "" {
					t.Fatalf("error %q does not name a field", e.Error())
				}
			}
		}
		if c != nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("a parsed config fails validation: %v", err)
			}
		}
	})
}

// FuzzBackendURL feeds arbitrary strings to BackendURL: it accepts only
// http://, h2c:// and https:// URLs with a host and a valid port, and what
// it returns reads back the same. Seeds are below and in
// testdata/fuzz/FuzzBackendURL (testdata/fuzz/README.md).
func FuzzBackendURL(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:9001", "h2c://10.0.0.5:50051", "https://[fd00::1]:8443/",
		"https://web-0.web.shop.svc:8443", "ws://127.0.0.1:80", "http://127.0.0.1",
		"https://u:p@h:1", "h2c://h:0", "h2c://:80", "http://h:80/path", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		addr, protocol, err := BackendURL(raw)
		if err != nil {
			if addr != "" || protocol != "" {
				t.Fatalf("BackendURL(%q) failed (%v) but returned %q, %q", raw, err, addr, protocol)
			}
			return
		}
		switch protocol {
		case PodHTTP, PodH2C, PodHTTPS:
		default:
			t.Fatalf("BackendURL(%q): protocol %q", raw, protocol)
		}
		// Schemes are case-insensitive (RFC 3986, section 3.1).
		if len(raw) < len(protocol)+3 || !strings.EqualFold(raw[:len(protocol)+3], protocol+"://") {
			t.Fatalf("BackendURL(%q): protocol %q is not its scheme", raw, protocol)
		}
		host, port, err := net.SplitHostPort(addr)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			t.Fatalf("BackendURL(%q): address %q is not host:port", raw, addr)
		}
		again, p2, err := BackendURL(protocol + "://" + addr)
		if err != nil || again != addr || p2 != protocol {
			t.Fatalf("BackendURL(%q) = %q, %q; reading it back gave %q, %q, %v", raw, addr, protocol, again, p2, err)
		}
	})
}
