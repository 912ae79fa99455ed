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
	var list admin.PodList
	raw, err := c.get(routePath(*route)+"/pods", &list)
	if err != nil {
		return err
	}
	if f.output == "json" {
		_, err := stdout.Write(raw)
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
	var list admin.RouteList
	raw, err := c.get("/api/v1/routes", &list)
	if err != nil {
		return err
	}
	if f.output == "json" {
		_, err := stdout.Write(raw)
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
