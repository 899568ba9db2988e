package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// cmdRebootClean is `netbootui reboot-clean SELECTION [--timeout D] [--via
// auto|kexec|power] [--kexec-timeout D]`: it prints one line per node step
// or boot-stage change as the daemon reports it, then a table of results
// (with the path each node took and why), and exits 1 when any node
// failed. Ctrl+C stops the run on the daemon.
func cmdRebootClean(ctx context.Context, args []string) error {
	fs, socket := clientFlags("reboot-clean")
	timeout := fs.Duration("timeout", apitype.DefaultRebootTimeout, "per node: from the power cycle to a clean check-in")
	out := fs.String("o", "", "output: json (results only)")
	via := fs.String("via", apitype.ViaAuto, "path: auto (kexec where the node's agent polls, power otherwise or when the kexec fails), kexec, power")
	kexecTimeout := fs.Duration("kexec-timeout", apitype.DefaultKexecTimeout, "with --via auto: from the kexec to a clean check-in, before the power fallback")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return fmt.Errorf("reboot-clean: --timeout %v must be positive", *timeout)
	}
	if *kexecTimeout <= 0 {
		return fmt.Errorf("reboot-clean: --kexec-timeout %v must be positive", *kexecTimeout)
	}
	if !slices.Contains(apitype.RebootVias, *via) {
		return fmt.Errorf("reboot-clean: --via %q: want %s", *via, strings.Join(apitype.RebootVias, ", "))
	}
	quiet := *out == "json"
	req := apitype.RebootRequest{Selection: pos[0], Timeout: *timeout, Via: *via, KexecTimeout: *kexecTimeout}
	res, err := apiclient.New(*socket).RebootCleanRequest(ctx, req, func(p apitype.RebootProgress) error {
		if !quiet {
			fmt.Fprintln(stdout, progressLine(p))
		}
		return nil
	})
	if err != nil {
		return err
	}
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
