package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/config"
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

// sessions lists, shows and edits the pinned sessions of a running podpin.
func (e Env) sessions(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.Stderr, sessionsUsage)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "list", "ls":
		return e.sessionsList(ctx, args)
	case "get", "pin", "unpin":
		return e.sessionsEdit(ctx, cmd, args)
	case "clear":
		return e.sessionsClear(ctx, args)
	case "help", "-h", "--help":
		fmt.Fprint(e.Stdout, sessionsUsage)
		return nil
	}
	fmt.Fprint(e.Stderr, sessionsUsage)
	return fmt.Errorf("unknown command %q for 'podpin sessions'", cmd)
}

// sessionFlags are the flags of every 'podpin sessions' command.
func (e Env) sessionFlags(name string) (*flag.FlagSet, *clientFlags, *string) {
	fs, f := e.flags("sessions " + name)
	route := fs.String("route", config.DefaultRoute, "`route` whose stick table is used")
	return fs, f, route
}

func (e Env) sessionsList(ctx context.Context, args []string) error {
	fs, f, route := e.sessionFlags("list")
	var q admin.SessionQuery
	fs.StringVar(&q.Pod, "pod", "", "only sessions pinned to this `pod`")
	fs.StringVar(&q.Prefix, "prefix", "", "only keys starting with this `prefix` (routes that keep raw keys)")
	fs.DurationVar(&q.MinAge, "min-age", 0, "only sessions created at least this long ago")
	fs.DurationVar(&q.MaxAge, "max-age", 0, "only sessions created at most this long ago")
	fs.DurationVar(&q.Idle, "idle", 0, "only sessions unused for at least this long")
	fs.IntVar(&q.Limit, "limit", 0, "most sessions per page, 1 to 1000 (default 100)")
	fs.StringVar(&q.Cursor, "cursor", "", "continue a listing from this `cursor`")
	all := fs.Bool("all", false, "follow every page to the end")
	c, err := f.noArgs(fs, args)
	if err != nil {
		return err
	}
	list := c.Sessions
	if *all {
		list = c.AllSessions
	}
	page, err := list(ctx, *route, q)
	if err != nil {
		return err
	}
	return f.print(page, func() error {
		if err := printSessions(e.Stdout, page.Sessions); err != nil {
			return err
		}
		if page.Next != "" {
			fmt.Fprintf(e.Stderr, "more sessions: add --cursor %s, or --all\n", page.Next)
		}
		return nil
	})
}

// sessionsEdit runs get KEY, pin KEY POD and unpin KEY.
func (e Env) sessionsEdit(ctx context.Context, cmd string, args []string) error {
	fs, f, route := e.sessionFlags(cmd)
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
	var s admin.Session
	switch cmd {
	case "get":
		s, err = c.Session(ctx, *route, pos[0])
	case "pin":
		s, err = c.Pin(ctx, *route, pos[0], pos[1])
	case "unpin":
		if err := c.Unpin(ctx, *route, pos[0]); err != nil {
			return err
		}
		if f.output == "table" {
			fmt.Fprintf(e.Stdout, "unpinned %q in route %s\n", pos[0], *route)
		}
		return nil
	}
	if err != nil {
		return err
	}
	return f.print(s, func() error {
		if s.Key == "" {
			s.Key = pos[0] // the route does not keep raw keys, but we know this one
		}
		return printSessions(e.Stdout, []admin.Session{s})
	})
}

func (e Env) sessionsClear(ctx context.Context, args []string) error {
	fs, f, route := e.sessionFlags("clear")
	pod := fs.String("pod", "", "`pod` whose sessions are all unpinned (required)")
	c, err := f.noArgs(fs, args)
	if err != nil {
		return err
	}
	if *pod == "" {
		return errors.New("--pod is required: the pod whose sessions are cleared")
	}
	res, err := c.Clear(ctx, *route, *pod)
	if err != nil {
		return err
	}
	return f.print(res, func() error {
		_, err := fmt.Fprintf(e.Stdout, "cleared %d session(s) of pod %s in route %s\n", res.Cleared, *pod, *route)
		return err
	})
}

// printSessions writes sessions as an aligned table. Keys a route does not
// keep show as "-"; the digest identifies them.
func printSessions(w io.Writer, sessions []admin.Session) error {
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
