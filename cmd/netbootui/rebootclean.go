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

// rebootCleanCmd is `netbootui reboot-clean SELECTION [--timeout D] [--via
// auto|kexec|power] [--kexec-timeout D]`: it prints one line per node step
// or boot-stage change as the daemon reports it, then a table of results
// (with the path each node took and why), and exits 1 when any node
// failed. Ctrl+C stops the run on the daemon.
func rebootCleanCmd() *cobra.Command {
	c := newVerb("reboot-clean SELECTION", "kexec or power-cycle nodes into their assigned generation and wait for clean check-ins", exactArgs(1), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		timeout := fs.Duration("timeout", apitype.DefaultRebootTimeout, "per node: from the power cycle (or, with --via kexec, the kexec) to a clean check-in")
		out := outputFlag(fs, " (results only)", "json")
		via := fs.String("via", apitype.ViaAuto, "path: auto (kexec where the node's agent polls, power otherwise or when the kexec fails), kexec, power")
		kexecTimeout := fs.Duration("kexec-timeout", apitype.DefaultKexecTimeout, "with --via auto: from the kexec to a clean check-in, before the power fallback")
		return func(ctx context.Context, pos []string) error {
			req := apitype.RebootRequest{Selection: pos[0], Timeout: *timeout, Via: *via, KexecTimeout: *kexecTimeout}
			return rebootClean(ctx, apiclient.New(*socket), req, *out)
		}
	})
	c.ValidArgsFunction = completeSelection
	return c
}

func rebootClean(ctx context.Context, c *apiclient.Client, req apitype.RebootRequest, out string) error {
	if req.Timeout <= 0 {
		return fmt.Errorf("reboot-clean: --timeout %v must be positive", req.Timeout)
	}
	if req.KexecTimeout <= 0 {
		return fmt.Errorf("reboot-clean: --kexec-timeout %v must be positive", req.KexecTimeout)
	}
	if !slices.Contains(apitype.RebootVias, req.Via) {
		return fmt.Errorf("reboot-clean: --via %q: want %s", req.Via, strings.Join(apitype.RebootVias, ", "))
	}
	quiet := out == "json"
	res, err := c.RebootCleanRequest(ctx, req, func(p apitype.RebootProgress) error {
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
		fmt.Fprintln(tw, "NODE\tRESULT\tGENERATION\tSTAGE\tTIME\tVIA\tERROR")
		for _, r := range res {
			result := "clean"
			if !r.OK {
				result = "FAILED"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Node, result, dash(r.Generation), dash(string(r.Stage)),
				r.Duration.Round(100*time.Millisecond), viaText(r), dash(r.Error))
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

// viaText is a result's path and why: "kexec (agent polling)".
func viaText(r apitype.RebootResult) string {
	if r.Via == "" {
		return "-"
	}
	return r.Via + " (" + r.Why + ")"
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
