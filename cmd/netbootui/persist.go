package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// persistCmd groups the verbs on a node's persisted paths (its group's
// persist:, kept in the node's own directory on the head, or on a partition
// of its own disk with the group's persist_disk).
func persistCmd() *cobra.Command {
	return newGroup("persist", "what a node keeps across reboots (its persisted paths): show, wipe",
		persistShowCmd(), persistWipeCmd())
}

func persistShowCmd() *cobra.Command {
	return newVerb("show NODE", "the node's persisted paths and what each holds on the head (or its persist disk and what the node reports)", exactArgs(1), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		out := outputFlag(fs, "", "json")
		return func(ctx context.Context, pos []string) error {
			v, err := apiclient.New(*socket).Persist(ctx, pos[0])
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(v)
			}
			return printPersist(v)
		}
	})
}

func persistWipeCmd() *cobra.Command {
	return newVerb("wipe NODE --yes", "empty the node's persisted paths on the head, or on its disk at its next boot (admin; audited)", exactArgs(1), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		yes := fs.Bool("yes", false, "confirm: the node's persisted files are removed for good")
		return func(ctx context.Context, pos []string) error {
			if !*yes {
				return usageErr("persist wipe NODE --yes (the node's persisted files are removed for good)")
			}
			v, err := apiclient.New(*socket).WipePersist(ctx, pos[0])
			if err != nil {
				return err
			}
			if v.Disk != nil {
				fmt.Fprintf(stdout, "%s: wipe %s recorded; the node empties the paths on its disk at its next boot (netbootui reboot-clean %s)\n", v.Node, v.Disk.Wipe, v.Node)
			} else {
				fmt.Fprintf(stdout, "%s: %d entries removed\n", v.Node, v.Removed)
			}
			return printPersist(v)
		}
	})
}

// printPersist writes a persist view as a table (or its note).
func printPersist(v apitype.PersistView) error {
	if v.Note != "" {
		fmt.Fprintf(stdout, "%s persists nothing: %s\n", v.Node, v.Note)
		return nil
	}
	if d := v.Disk; d != nil {
		fmt.Fprintf(stdout, "%s keeps them on its disk: the partition labelled %s (missing: %s, format: %t)\n", v.Node, d.Label, d.Missing, d.Format)
		reported := "nothing since the daemon started"
		if d.Reported != "" {
			reported = d.Reported + " (" + d.ReportedAt.Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(stdout, "node says: %s\n", reported)
		if d.Wipe != "" {
			state := "applied"
			if d.WipePending {
				state = "pending, applied at the node's next boot"
			}
			fmt.Fprintf(stdout, "wipe %s by %s at %s: %s\n", d.Wipe, d.WipeBy, d.WipeAt.Format(time.RFC3339), state)
		}
	} else {
		fmt.Fprintf(stdout, "%s mounts %s\n", v.Node, v.Export)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tFILES\tBYTES")
	for _, p := range v.Paths {
		if p.OnNode {
			fmt.Fprintf(tw, "%s\t-\t- (on the node's disk)\n", p.Path)
			continue
		}
		if p.Missing {
			fmt.Fprintf(tw, "%s\t-\t- (not made yet)\n", p.Path)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\n", p.Path, p.Files, p.Bytes)
	}
	return tw.Flush()
}
