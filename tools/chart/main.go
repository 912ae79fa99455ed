// Command chart renders and lints podpin's Helm chart with Helm's own Go
// packages (helm.sh/helm/v4), so that the plain manifests in
// deploy/manifests/podpin.yaml are what `helm template` prints and a chart
// `helm lint --strict` complains about never ships. It is a module of its
// own so that podpin does not depend on Helm. From the repository's root:
//
//	make manifests                                  # deploy/manifests/podpin.yaml
//	go -C tools/chart run . -f "$PWD/my-values.yaml" > podpin.yaml
//
// It lints the chart with the values first and fails on any warning; then
// it writes a comment naming what it rendered, with -create-namespace a
// Namespace object, and the chart as `helm template NAME CHART -n NAMESPACE
// -f FILE...` prints it. Relative paths are taken from the working
// directory, which `go -C tools/chart` sets to this folder. With
// -kubeconfig it renders against that cluster: the chart's lookups read it,
// so a rendering for an upgrade keeps what the cluster holds (the admin
// token); nothing is written to the cluster. With -include-crds the CRDs
// of the chart's crds/ folders come first (the Gateway API CRDs, with
// gateway.installCRDs), as `helm template --include-crds` prints them.
//
// Helm's own command line, at the version this module renders with, is a
// tool of the module, for machines without a helm binary (and for the
// tests that run helm install against a real API server):
//
//	go -C tools/chart tool helm install podpin "$PWD/deploy/helm/podpin" -n podpin-system --create-namespace
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

// valueFiles is the repeatable -f flag.
type valueFiles []string

func (f *valueFiles) String() string { return strings.Join(*f, ",") }

func (f *valueFiles) Set(s string) error {
	*f = append(*f, s)
	return nil
}

// run is the command with its arguments (without the program name): it
// writes the rendering to stdout, or to the -o file, and Helm's warnings to
// stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("chart", "../../deploy/helm/podpin", "chart `folder`")
	name := fs.String("name", "podpin", "release `name`")
	namespace := fs.String("namespace", "podpin-system", "release `namespace`")
	createNS := fs.Bool("create-namespace", true, "start with a Namespace object for the release namespace")
	out := fs.String("o", "", "write to this `file` instead of standard output")
	includeCRDs := fs.Bool("include-crds", false, "put the CRDs of the chart's crds/ folders (its enabled subcharts' included) first, as helm template --include-crds")
	kubeconfig := fs.String("kubeconfig", "", "render against the cluster of this kubeconfig `file` (lookup reads it, nothing is written), as helm upgrade --install --dry-run=server; empty: reach no cluster, as helm template")
	var files valueFiles
	fs.Var(&files, "f", "values `file` merged over the chart's values.yaml, as helm -f does (repeatable; later files win)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	vals, err := ReadValues(files)
	if err != nil {
		return err
	}
	if err := Lint(*dir, *namespace, vals); err != nil {
		return err
	}
	data, err := Render(ctx, *dir, Options{
		Release:         *name,
		Namespace:       *namespace,
		CreateNamespace: *createNS,
		Values:          vals,
		Kubeconfig:      *kubeconfig,
		IncludeCRDs:     *includeCRDs,
		Logger:          slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	if *out == "" {
		_, err := stdout.Write(data)
		return err
	}
	return os.WriteFile(*out, data, 0o644)
}
