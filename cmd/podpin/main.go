// Command podpin is an HTTP load balancer that pins each session to one
// backend pod by the value of a request header.
//
//	podpin demo                       three local pods and the proxy in front of them
//	podpin serve --config podpin.yaml run from a configuration file
//	podpin serve --backend web-0=http://127.0.0.1:9001 ...
//	podpin validate --config podpin.yaml
//	podpin sessions list|get|pin|unpin|clear   inspect and edit a running podpin's sessions
//	podpin pods | podpin routes               a running podpin's pods and routes
//	podpin version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/podpin/podpin/internal/cli"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); otherwise
// the module version from the build info is used.
var version = ""

const usage = `podpin pins each session to one pod by a request header.

Usage:
  podpin demo                         start three demo pods and the proxy in front of them
  podpin serve [flags]                run the proxy (--config FILE, or quick flags)
  podpin validate --config FILE       check a configuration file
  podpin sessions list|get|pin|unpin|clear
                                      list and edit the sessions of a running podpin
  podpin pods [--route R]             a running podpin's pods: state, load, sessions
  podpin routes                       a running podpin's routes and stick tables
  podpin version                      print the version

Run 'podpin serve -h' for the flags, 'podpin sessions' for the session commands.
The commands that talk to a running podpin use its admin API: --admin ADDRESS
(env PODPIN_ADMIN, default 127.0.0.1:9901) and --token (env PODPIN_ADMIN_TOKEN).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "podpin:", err)
		}
		os.Exit(exitCode(err))
	}
}

// run dispatches a subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "validate":
		return validateCmd(args[1:], stdout, stderr)
	case "sessions", "pods", "routes":
		env := cli.Env{Stdout: stdout, Stderr: stderr, Getenv: os.Getenv, UserAgent: "podpin-cli/" + versionString()}
		return cli.Run(ctx, args[0], args[1:], env)
	case "version":
		fmt.Fprintln(stdout, "podpin", versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}
