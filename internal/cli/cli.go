// Package cli is podpin's command line for operators: 'podpin sessions',
// 'podpin pods' and 'podpin routes' read and edit a running podpin's stick
// tables through its admin API (internal/adminclient), and print what they
// get as aligned tables, or with -o json as the API's JSON.
//
// Every command takes --admin ADDRESS (env PODPIN_ADMIN, default
// 127.0.0.1:9901), --token TOKEN (env PODPIN_ADMIN_TOKEN) and -o table|json.
// Flags may come before or after the arguments; "--" ends them, for keys
// that start with '-'. Errors are one line; those of the admin API name the
// flag or variable that fixes them.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/podpin/podpin/internal/adminclient"
	"github.com/podpin/podpin/internal/config"
)

// Env is what the commands read and write besides their arguments.
type Env struct {
	// Stdout receives the tables and the JSON, Stderr usage and hints.
	Stdout, Stderr io.Writer
	// Getenv reads PODPIN_ADMIN and PODPIN_ADMIN_TOKEN, the defaults of
	// --admin and --token. Nil: neither is set.
	Getenv func(string) string
	// UserAgent names the command line in its requests. Empty: Go's
	// default.
	UserAgent string
}

// Run runs command (sessions, pods or routes) with its arguments. It
// returns flag.ErrHelp when it printed the usage instead.
func Run(ctx context.Context, command string, args []string, e Env) error {
	var err error
	switch command {
	case "sessions":
		err = e.sessions(ctx, args)
	case "pods":
		err = e.pods(ctx, args)
	case "routes":
		err = e.routes(ctx, args)
	default:
		return fmt.Errorf("unknown command %q", command)
	}
	return withHint(err)
}

func (e Env) getenv(name string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(name)
}

// clientFlags are the flags every command shares.
type clientFlags struct {
	env    Env
	admin  string
	token  string
	output string
}

// flags returns the flag set of the command name with the shared flags,
// their defaults from the environment.
func (e Env) flags(name string) (*flag.FlagSet, *clientFlags) {
	f := &clientFlags{env: e}
	fs := flag.NewFlagSet("podpin "+name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	addr := e.getenv("PODPIN_ADMIN")
	if addr == "" {
		addr = config.DefaultAdmin
	}
	fs.StringVar(&f.admin, "admin", addr, "admin API `address` (host:port or URL; env PODPIN_ADMIN)")
	fs.StringVar(&f.token, "token", "", "bearer `token` of the admin API (env PODPIN_ADMIN_TOKEN)")
	fs.StringVar(&f.output, "o", "table", "output `format`: table or json")
	return fs, f
}

// client checks the shared flags and returns the client they describe.
func (f *clientFlags) client() (*adminclient.Client, error) {
	if f.output != "table" && f.output != "json" {
		return nil, fmt.Errorf("-o %q: want table or json", f.output)
	}
	token := f.token
	if token == "" {
		token = strings.TrimSpace(f.env.getenv("PODPIN_ADMIN_TOKEN"))
	}
	c, err := adminclient.New(adminclient.Options{Address: f.admin, Token: token, UserAgent: f.env.UserAgent})
	if err != nil {
		return nil, fmt.Errorf("--admin %q: %w", f.admin, err)
	}
	return c, nil
}

// noArgs parses args, which must hold no positional argument, and returns
// the client the flags describe.
func (f *clientFlags) noArgs(fs *flag.FlagSet, args []string) (*adminclient.Client, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, fmt.Errorf("unexpected argument %q", pos[0])
	}
	return f.client()
}

// print writes v, an answer of the API, as the API's JSON with -o json,
// and calls table otherwise.
func (f *clientFlags) print(v any, table func() error) error {
	if f.output != "json" {
		return table()
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = f.env.Stdout.Write(append(b, '\n'))
	return err
}

// withHint adds to an admin API error the flag or variable that fixes it.
func withHint(err error) error {
	var se *adminclient.StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusUnauthorized:
		return fmt.Errorf("%w (give --token or set PODPIN_ADMIN_TOKEN)", err)
	case errors.Is(err, adminclient.ErrUnreachable):
		return fmt.Errorf("%w (set --admin or PODPIN_ADMIN)", err)
	}
	return err
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
