package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// persistCmd groups the verbs on a node's persisted paths (its group's
// persist:, kept in the node's own directory on the head).
func persistCmd() *cobra.Command {
	return newGroup("persist", "what a node keeps across reboots (its persisted paths): show, wipe",
		persistShowCmd(), persistWipeCmd())
}

func persistShowCmd() *cobra.Command {
	return newVerb("show NODE", "the node's persisted paths and what each holds on the head", exactArgs(1), func(fs *pflag.FlagSet) runner {
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
	return newVerb("wipe NODE --yes", "empty the node's persisted paths on the head (admin; audited)", exactArgs(1), func(fs *pflag.FlagSet) runner {
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
			fmt.Fprintf(stdout, "%s: %d entries removed\n", v.Node, v.Removed)
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
	fmt.Fprintf(stdout, "%s mounts %s\n", v.Node, v.Export)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tFILES\tBYTES")
	for _, p := range v.Paths {
		if p.Missing {
			fmt.Fprintf(tw, "%s\t-\t- (not made yet)\n", p.Path)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\n", p.Path, p.Files, p.Bytes)
	}
	return tw.Flush()
}
