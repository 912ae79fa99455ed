package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/proxy"
)

const sessionsUsage = `Usage:
  podpin sessions list [--route R] [--pod P] [--prefix X] [--limit N] [--all]
  podpin sessions get KEY [--route R]
  podpin sessions pin KEY POD [--route R]
  podpin sessions unpin KEY [--route R]
  podpin sessions clear --pod P [--route R]

Every command takes --admin ADDRESS (env PODPIN_ADMIN, default 127.0.0.1:9901),
--token TOKEN (env PODPIN_ADMIN_TOKEN) and -o table|json.
Run 'podpin sessions list -h' for a command's flags.
`

// sessionsCmd lists, shows and edits the pinned sessions of a running
// podpin through its admin API.
func sessionsCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, sessionsUsage)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "list", "ls":
		return sessionsList(args, stdout, stderr)
	case "get", "pin", "unpin":
		return sessionsEdit(cmd, args, stdout, stderr)
	case "clear":
		return sessionsClear(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, sessionsUsage)
		return nil
	}
	fmt.Fprint(stderr, sessionsUsage)
	return fmt.Errorf("unknown command %q for 'podpin sessions'", cmd)
}

// sessionFlags are the flags of every 'podpin sessions' command.
type sessionFlags struct {
	clientFlags
	route string
}

func newSessionFlags(name string, stderr io.Writer) (*flag.FlagSet, *sessionFlags) {
	f := &sessionFlags{}
	fs := flag.NewFlagSet("podpin sessions "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	fs.StringVar(&f.route, "route", config.DefaultRoute, "`route` whose stick table is used")
	return fs, f
}

func sessionsList(args []string, stdout, stderr io.Writer) error {
	fs, f := newSessionFlags("list", stderr)
	pod := fs.String("pod", "", "only sessions pinned to this `pod`")
	prefix := fs.String("prefix", "", "only keys starting with this `prefix` (routes that keep raw keys)")
	minAge := fs.Duration("min-age", 0, "only sessions created at least this long ago")
	maxAge := fs.Duration("max-age", 0, "only sessions created at most this long ago")
	idle := fs.Duration("idle", 0, "only sessions unused for at least this long")
	limit := fs.Int("limit", 0, "most sessions per page, 1 to 1000 (default 100)")
	cursor := fs.String("cursor", "", "continue a listing from this `cursor`")
	all := fs.Bool("all", false, "follow every page to the end")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	for name, v := range map[string]string{"pod": *pod, "prefix": *prefix} {
		if v != "" {
			q.Set(name, v)
		}
	}
	for name, d := range map[string]time.Duration{"minAge": *minAge, "maxAge": *maxAge, "idle": *idle} {
		if d != 0 {
			q.Set(name, d.String())
		}
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if *cursor != "" {
		q.Set("cursor", *cursor)
	}

	var merged proxy.SessionPage
	for {
		var page proxy.SessionPage
		raw, err := c.get(routePath(f.route)+"/sessions?"+q.Encode(), &page)
		if err != nil {
			return err
		}
		if !*all {
			if f.output == "json" {
				_, err := stdout.Write(raw)
				return err
			}
			if err := printSessions(stdout, page.Sessions); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(stderr, "more sessions: add --cursor %s, or --all\n", page.Next)
			}
			return nil
		}
		merged.Sessions = append(merged.Sessions, page.Sessions...)
		if page.Next == "" {
			break
		}
		q.Set("cursor", page.Next)
	}
	if merged.Sessions == nil {
		merged.Sessions = []proxy.Session{}
	}
	if f.output == "json" {
		return writeJSON(stdout, merged)
	}
	return printSessions(stdout, merged.Sessions)
}

// sessionsEdit runs get KEY, pin KEY POD and unpin KEY.
func sessionsEdit(cmd string, args []string, stdout, stderr io.Writer) error {
	fs, f := newSessionFlags(cmd, stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	want := map[string]int{"get": 1, "pin": 2, "unpin": 1}[cmd]
	if len(pos) != want {
		shape := map[string]string{"get": "KEY", "pin": "KEY POD", "unpin": "KEY"}[cmd]
		return fmt.Errorf("usage: podpin sessions %s %s [--route R]", cmd, shape)
	}
	if pos[0] == "" {
		return errors.New("KEY must not be empty")
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	path := routePath(f.route) + "/sessions/" + url.PathEscape(pos[0])
	var raw []byte
	switch cmd {
	case "get":
		raw, err = c.do(http.MethodGet, path, nil)
	case "pin":
		raw, err = c.do(http.MethodPut, path, admin.PinRequest{Pod: pos[1]})
	case "unpin":
		if _, err := c.do(http.MethodDelete, path, nil); err != nil {
			return err
		}
		if f.output == "table" {
			fmt.Fprintf(stdout, "unpinned %q in route %s\n", pos[0], f.route)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if f.output == "json" {
		_, err := stdout.Write(raw)
		return err
	}
	var s proxy.Session
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	if s.Key == "" {
		s.Key = pos[0] // the route does not keep raw keys, but we know this one
	}
	return printSessions(stdout, []proxy.Session{s})
}

func sessionsClear(args []string, stdout, stderr io.Writer) error {
	fs, f := newSessionFlags("clear", stderr)
	pod := fs.String("pod", "", "`pod` whose sessions are all unpinned (required)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	if *pod == "" {
		return errors.New("--pod is required: the pod whose sessions are cleared")
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	raw, err := c.do(http.MethodDelete, routePath(f.route)+"/sessions?"+url.Values{"pod": {*pod}}.Encode(), nil)
	if err != nil {
		return err
	}
	if f.output == "json" {
		_, err := stdout.Write(raw)
		return err
	}
	var res admin.Cleared
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	fmt.Fprintf(stdout, "cleared %d session(s) of pod %s in route %s\n", res.Cleared, *pod, f.route)
	return nil
}

// printSessions writes sessions as an aligned table. Keys a route does not
// keep show as "-"; the digest identifies them.
func printSessions(w io.Writer, sessions []proxy.Session) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tPOD\tAGE\tIDLE\tHITS\tDIGEST")
	now := time.Now()
	for _, s := range sessions {
		key := s.Key
		if key == "" {
			key = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", key, s.Pod, since(now, s.Created), since(now, s.LastUsed), s.Hits, s.Digest)
	}
	return tw.Flush()
}

// since is the time from t to now in whole seconds, as 1h2m3s.
func since(now, t time.Time) string {
	return max(0, now.Sub(t)).Round(time.Second).String()
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
