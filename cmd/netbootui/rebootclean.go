package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/hostlist"
)

// cmdRebootClean is `netbootui reboot-clean SELECTION [--timeout D]`: it
// prints one line per node step or boot-stage change as the daemon reports
// it, then a table of results, and exits 1 when any node failed. Ctrl+C
// stops the run on the daemon.
func rebootCleanCmd() *cobra.Command {
	c := newVerb("reboot-clean SELECTION", "power-cycle nodes into their assigned generation and wait for clean check-ins", exactArgs(1), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		timeout := fs.Duration("timeout", apitype.DefaultRebootTimeout, "per node: from the power cycle to a clean check-in")
		out := outputFlag(fs, " (results only)", "json")
		return func(ctx context.Context, pos []string) error {
			return rebootClean(ctx, apiclient.New(*socket), pos[0], *timeout, *out)
		}
	})
	c.ValidArgsFunction = completeSelection
	return c
}

func rebootClean(ctx context.Context, c *apiclient.Client, selection string, timeout time.Duration, out string) error {
	if timeout <= 0 {
		return fmt.Errorf("reboot-clean: --timeout %v must be positive", timeout)
	}
	quiet := out == "json"
	res, err := c.RebootClean(ctx, selection, timeout, func(p apitype.RebootProgress) error {
		if !quiet {
			fmt.Fprintln(stdout, progressLine(p))
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(res, func(a, b apitype.RebootResult) int { return hostlist.Compare(a.Node, b.Node) })
	if quiet {
		if err := printJSON(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout)
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tRESULT\tGENERATION\tSTAGE\tTIME\tERROR")
		for _, r := range res {
			result := "clean"
			if !r.OK {
				result = "FAILED"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Node, result, dash(r.Generation), dash(string(r.Stage)),
				r.Duration.Round(100*time.Millisecond), dash(r.Error))
		}
		tw.Flush()
		fmt.Fprintln(stdout, apitype.RebootSummary(res))
	}
	for _, r := range res {
		if !r.OK {
			return exitError(1)
		}
	}
	return nil
}

// progressLine renders one progress report: "14:02:11 n07 boot kernel".
func progressLine(p apitype.RebootProgress) string {
	s := p.Time.Local().Format("15:04:05") + " " + p.Node + " " + string(p.Step)
	if p.Stage != "" && p.Step != apitype.StepFailed {
		s += " " + string(p.Stage)
	}
	if p.Step == apitype.StepClean && p.Generation != "" {
		s += " generation " + p.Generation
	}
	if p.Message != "" {
		s += ": " + strings.TrimPrefix(p.Message, p.Node+": ")
	}
	return s
}
