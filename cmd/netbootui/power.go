package main

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/hostlist"
)

// powerOps are the operations of `netbootui power`, in the order its help
// lists them.
var powerOps = []struct {
	op, short string
	aliases   []string
}{
	{apitype.OpStatus, "read each node's power state from its BMC", nil},
	{apitype.OpOn, "power the nodes on", nil},
	{apitype.OpOff, "power the nodes off at once (no shutdown)", nil},
	{apitype.OpSoft, "ask the nodes' OS to shut down (ACPI)", nil},
	{apitype.OpCycle, "power the nodes off and on again", nil},
	{apitype.OpReset, "hard-reset the nodes", nil},
	{apitype.OpBootdevPXE, "make the nodes' next boot (once) a network (PXE) boot, read back and verified", []string{"pxe", "bootdev"}},
	{"bootflags", "read the nodes' boot flags from their BMCs", nil},
	{"deviceid", "read the BMCs' device IDs", nil},
}

// powerCmd is `netbootui power on|off|soft|cycle|reset|status|bootdev-pxe
// SELECTION`: one verb per operation, results ordered by node name.
func powerCmd() *cobra.Command {
	var verbs []*cobra.Command
	for _, o := range powerOps {
		c := newVerb(o.op+" SELECTION", o.short, exactArgs(1), func(fs *pflag.FlagSet) runner {
			socket := socketFlag(fs)
			out := outputFlag(fs, "", "json")
			return func(ctx context.Context, pos []string) error {
				return power(ctx, apiclient.New(*socket), o.op, pos[0], *out)
			}
		})
		c.Aliases = o.aliases
		c.ValidArgsFunction = completeSelection
		verbs = append(verbs, c)
	}
	g := newGroup("power", "power operations through the nodes' BMCs (on, off, soft, cycle, reset, status, bootdev-pxe, ...)", verbs...)
	g.Long = "Power operations on a SELECTION (a hostlist such as n[01-08],gpu1 or @group) through the nodes' BMCs.\n" +
		"Results are printed ordered by node name; the exit status is 1 when any node failed."
	return g
}

func power(ctx context.Context, c *apiclient.Client, op, selection, out string) error {
	res, err := c.Power(ctx, op, selection)
	if err != nil {
		return err
	}
	slices.SortFunc(res, func(a, b apitype.PowerResult) int { return hostlist.Compare(a.Node, b.Node) })
	if out == "json" {
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

// auditCmd is `netbootui audit [-n N]`.
func auditCmd() *cobra.Command {
	return newVerb("audit", "the newest entries of the audit log (who did what, with which result)", exactArgs(0), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		n := fs.IntP("lines", "n", 50, "how many of the newest entries")
		out := outputFlag(fs, "", "json")
		return func(ctx context.Context, _ []string) error {
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
	})
}
