package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/config"
)

// podsCmd prints a route's pods with their state and load.
func podsCmd(args []string, stdout, stderr io.Writer) error {
	f := &clientFlags{}
	fs := flag.NewFlagSet("podpin pods", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	route := fs.String("route", config.DefaultRoute, "`route` whose pods are shown")
	var list admin.PodList
	done, err := fetchListing(fs, f, args, func() string { return routePath(*route) + "/pods" }, &list, stdout)
	if done || err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tSTATE\tADDRESS\tWEIGHT\tIN-FLIGHT\tSESSIONS\tREQUESTS\tREBINDS")
	for _, p := range list.Pods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", p.Name, p.State, p.Address, p.Weight, p.InFlight, p.Sessions, p.Requests, reasons(p.Rebinds))
	}
	return tw.Flush()
}

// routesCmd prints every route with its stick table's size and hit ratio.
func routesCmd(args []string, stdout, stderr io.Writer) error {
	f := &clientFlags{}
	fs := flag.NewFlagSet("podpin routes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	var list admin.RouteList
	done, err := fetchListing(fs, f, args, func() string { return "/api/v1/routes" }, &list, stdout)
	if done || err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tMATCH\tKEY HEADER\tBALANCER\tPODS\tSESSIONS\tHIT RATIO\tREBINDS")
	for _, r := range list.Routes {
		match := r.Host + r.Path
		if match == "" {
			match = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%.1f%%\t%s\n", r.Name, match, r.KeyHeader, r.Balancer, r.Pods, r.Table.Entries, 100*r.Table.HitRatio, reasons(r.Rebinds))
	}
	return tw.Flush()
}

// fetchListing parses the flags of a listing command, which takes no
// arguments, and reads path() from the admin API into v. With -o json it
// writes the answer as it came and reports done.
func fetchListing(fs *flag.FlagSet, f *clientFlags, args []string, path func() string, v any, stdout io.Writer) (done bool, err error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return false, err
	}
	if len(pos) > 0 {
		return false, fmt.Errorf("unexpected argument %q", pos[0])
	}
	c, err := f.client()
	if err != nil {
		return false, err
	}
	raw, err := c.get(path(), v)
	if err != nil || f.output != "json" {
		return false, err
	}
	_, err = stdout.Write(raw)
	return true, err
}

// reasons writes rebind counts as "gone=2 unready=1", or "0".
func reasons(n map[string]uint64) string {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(n)) {
		if n[r] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", r, n[r]))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, " ")
}
