package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
)

// cmdPower is `netbootui power on|off|soft|cycle|reset|status|bootdev-pxe SELECTION`.
func cmdPower(ctx context.Context, args []string) error {
	fs, socket := clientFlags("power")
	out := fs.String("o", "", "output: json")
	pos, err := parseArgs(fs, args, 2)
	if err != nil {
		return err
	}
	res, err := apiclient.New(*socket).Power(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	if *out == "json" {
		if err := printJSON(res); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tBMC\tPOWER\tRESULT")
		for _, r := range res {
			result := r.Detail
			if r.Error != "" {
				result = "FAILED: " + r.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Node, dash(r.BMC), dash(r.Power), dash(result))
		}
		tw.Flush()
	}
	for _, r := range res {
		if r.Error != "" {
			return exitError(1)
		}
	}
	return nil
}

// cmdAudit is `netbootui audit [-n N]`.
func cmdAudit(ctx context.Context, args []string) error {
	fs, socket := clientFlags("audit")
	n := fs.Int("n", 50, "how many of the newest entries")
	out := fs.String("o", "", "output: json")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	entries, err := apiclient.New(*socket).Audit(ctx, *n)
	if err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(entries)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHO\tACTION\tTARGET\tRESULT")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Who, e.Action, dash(e.Target), e.Result)
	}
	return tw.Flush()
}
