package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/podpin/podpin/internal/config"
)

// pods prints a route's pods with their state and load.
func (e Env) pods(ctx context.Context, args []string) error {
	fs, f := e.flags("pods")
	route := fs.String("route", config.DefaultRoute, "`route` whose pods are shown")
	c, err := f.noArgs(fs, args)
	if err != nil {
		return err
	}
	list, err := c.Pods(ctx, *route)
	if err != nil {
		return err
	}
	return f.print(list, func() error {
		tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POD\tSTATE\tADDRESS\tWEIGHT\tIN-FLIGHT\tSESSIONS\tREQUESTS\tREBINDS")
		for _, p := range list.Pods {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", p.Name, p.State, p.Address, p.Weight, p.InFlight, p.Sessions, p.Requests, reasons(p.Rebinds))
		}
		return tw.Flush()
	})
}

// routes prints every route with its stick table's size and hit ratio.
func (e Env) routes(ctx context.Context, args []string) error {
	fs, f := e.flags("routes")
	c, err := f.noArgs(fs, args)
	if err != nil {
		return err
	}
	list, err := c.Routes(ctx)
	if err != nil {
		return err
	}
	return f.print(list, func() error {
		tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROUTE\tMATCH\tKEY HEADER\tBALANCER\tPODS\tSESSIONS\tHIT RATIO\tREBINDS")
		for _, r := range list.Routes {
			match := r.Host + r.Path
			if match == "" {
				match = "*"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%.1f%%\t%s\n", r.Name, match, r.KeyHeader, r.Balancer, r.Pods, r.Table.Entries, 100*r.Table.HitRatio, reasons(r.Rebinds))
		}
		return tw.Flush()
	})
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
