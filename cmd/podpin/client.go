package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// adminClient talks to a running podpin's admin API for the CLI commands.
type adminClient struct {
	base  string // scheme://host:port
	token string
	http  *http.Client
}

// clientFlags are the flags every CLI command shares.
type clientFlags struct {
	admin  string
	token  string
	output string
}

// register adds --admin, --token and -o to fs, with defaults from the
// environment (PODPIN_ADMIN, PODPIN_ADMIN_TOKEN).
func (c *clientFlags) register(fs *flag.FlagSet) {
	addr := os.Getenv("PODPIN_ADMIN")
	if addr == "" {
		addr = config.DefaultAdmin
	}
	fs.StringVar(&c.admin, "admin", addr, "admin API `address` (host:port or URL; env PODPIN_ADMIN)")
	fs.StringVar(&c.token, "token", "", "bearer `token` of the admin API (env PODPIN_ADMIN_TOKEN)")
	fs.StringVar(&c.output, "o", "table", "output `format`: table or json")
}

// client checks the shared flags and returns the client they describe.
func (c *clientFlags) client() (*adminClient, error) {
	if c.output != "table" && c.output != "json" {
		return nil, fmt.Errorf("-o %q: want table or json", c.output)
	}
	base := c.admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--admin %q: want host:port or http://host:port", c.admin)
	}
	token := c.token
	if token == "" {
		token = strings.TrimSpace(os.Getenv("PODPIN_ADMIN_TOKEN"))
	}
	return &adminClient{
		base:  u.Scheme + "://" + u.Host,
		token: token,
		http:  &http.Client{Timeout: 30 * time.Second},
	}, nil
}

// apiError is an error answer of the admin API.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// do sends a request to the API; in (when not nil) is sent as JSON. It
// returns the raw answer body of a 2xx status, or an error of one line.
func (c *adminClient) do(method, path string, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "podpin-cli/"+versionString())
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.reachError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", c.base, err)
	}
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	msg := resp.Status
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if resp.StatusCode == http.StatusUnauthorized {
		msg += " (give --token or set PODPIN_ADMIN_TOKEN)"
	}
	return nil, &apiError{status: resp.StatusCode, msg: msg}
}

// reachError turns a transport failure into one line that says where the
// CLI looked.
func (c *adminClient) reachError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && errors.Is(err, syscall.ECONNREFUSED) {
		err = errors.New("connection refused")
	}
	return fmt.Errorf("cannot reach the admin API at %s: %v (set --admin or PODPIN_ADMIN)", c.base, err)
}

// get decodes the JSON answer of a GET into out and returns it raw too.
func (c *adminClient) get(path string, out any) ([]byte, error) {
	data, err := c.do(http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("decoding the answer of %s: %w", path, err)
		}
	}
	return data, nil
}

// routePath is the API path of a route, with name escaped.
func routePath(route string) string {
	return "/api/v1/routes/" + url.PathEscape(route)
}

// parseArgs parses flags wherever they appear among the positional
// arguments ("pin KEY POD --route r" as well as "pin --route r KEY POD").
// "--" ends the flags, for keys that start with '-'.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
