package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// baseFlag declares --base, the revision an inventory change is made
// against.
func baseFlag(fs *pflag.FlagSet) *string {
	return fs.String("base", "", "inventory `revision` the change is based on (fails if the file changed since)")
}

// nodeAddCmd is `netbootui node add NAME mac=MAC [ip=IP] [group=G]
// [bmc.host=H] ...`.
func nodeAddCmd() *cobra.Command {
	c := newVerb("add NAME mac=MAC [ip=IP] [group=GROUP] [bmc.host=HOST] [key=value...]",
		"add a node to the inventory (it boots its group's image from its next request)", argsBetween(2, -1), func(fs *pflag.FlagSet) runner {
			socket := socketFlag(fs)
			base := baseFlag(fs)
			return func(ctx context.Context, pos []string) error {
				fields, err := keyValues(pos[1:])
				if err != nil {
					return err
				}
				rev, err := apiclient.New(*socket).AddNode(ctx, pos[0], apitype.Edit{BaseRevision: *base, Set: fields})
				return revisionLine(fmt.Sprintf("node %s added", pos[0]), rev, err)
			}
		})
	c.Long = "Add a node entry to the inventory through the daemon (comments kept, written atomically).\n" +
		"mac is the boot NIC's MAC; the other keys are those `node set` takes (group, ip, image, arch, loader,\n" +
		"kernel_args, bmc.host, bmc.port, bmc.user, bmc.password, ...)."
	c.ValidArgsFunction = func(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(pos) == 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return []cobra.Completion{"mac=", "ip=", "group=", "bmc.host=", "image=", "arch=", "loader=", "kernel_args="}, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	}
	return c
}

// nodeRemoveCmd is `netbootui node rm NODE...`.
func nodeRemoveCmd() *cobra.Command {
	c := newVerb("rm NODE...", "remove nodes from the inventory (a node of a range leaves the range)", argsBetween(1, -1), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		base := baseFlag(fs)
		return func(ctx context.Context, pos []string) error {
			c := apiclient.New(*socket)
			rev := *base
			for _, name := range pos {
				var err error
				if rev, err = c.RemoveNode(ctx, name, rev); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "node %s removed: inventory revision %s\n", name, rev)
			}
			return nil
		}
	})
	c.Aliases = []string{"remove"}
	c.ValidArgsFunction = func(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return completeNode(c, nil, toComplete)
	}
	return c
}

// nodeRenameCmd is `netbootui node rename OLD NEW`.
func nodeRenameCmd() *cobra.Command {
	c := newVerb("rename NODE NEWNAME", "rename a node (a node of a range leaves the range, keeping its addresses)", exactArgs(2), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		base := baseFlag(fs)
		return func(ctx context.Context, pos []string) error {
			rev, err := apiclient.New(*socket).RenameNode(ctx, pos[0], apitype.NodeRename{NewName: pos[1], BaseRevision: *base})
			return revisionLine(fmt.Sprintf("node %s renamed %s", pos[0], pos[1]), rev, err)
		}
	})
	c.ValidArgsFunction = completeNode
	return c
}

// revisionLine prints what an inventory change did and its new revision.
func revisionLine(what, rev string, err error) error {
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s: inventory revision %s\n", what, rev)
	return err
}

// nodeUnknownCmd is `netbootui node unknown`: the PXE clients that asked
// for a boot and are not in the inventory.
func nodeUnknownCmd() *cobra.Command {
	return newVerb("unknown", "PXE clients not in the inventory that asked for a boot, in the order they first asked", exactArgs(0), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		out := outputFlag(fs, "", "json")
		return func(ctx context.Context, _ []string) error {
			list, err := apiclient.New(*socket).Unknown(ctx)
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(list)
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "MAC\tARCH\tADDRESS\tFIRST SEEN\tLAST SEEN\tREQUESTS")
			now := time.Now()
			for _, u := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", u.MAC, dash(u.Arch), dash(u.Address), ago(now, u.FirstSeen), ago(now, u.LastSeen), u.Requests)
			}
			return tw.Flush()
		}
	})
}

// nodeAdoptCmd is `netbootui node adopt [MAC...] [--bmc HOST[:PORT]]...
// [--group G]`.
func nodeAdoptCmd() *cobra.Command {
	c := newVerb("adopt [MAC...]", "add unknown PXE clients as nodes of a group, named in the order they first asked", argsBetween(0, -1), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		group := fs.String("group", "", "the nodes' `group` (its nodes' names give the pattern: n001..n012 → n013); default: the only group")
		bmcs := fs.StringArray("bmc", nil, "adopt the machine behind this BMC (`HOST[:PORT]`, the group's bmc settings), with the NIC MACs it reports (repeatable)")
		base := baseFlag(fs)
		return func(ctx context.Context, pos []string) error {
			if len(pos) == 0 && len(*bmcs) == 0 {
				return errors.New("node adopt: name a MAC (netbootui node unknown lists them) or a --bmc")
			}
			res, err := apiclient.New(*socket).Adopt(ctx, apitype.AdoptRequest{MACs: pos, BMCs: *bmcs, Group: *group, BaseRevision: *base})
			if err != nil {
				return err
			}
			for _, a := range res.Nodes {
				if a.BMC != "" {
					fmt.Fprintf(stdout, "BMC %s (NICs %s) adopted as %s, booting from %s\n", a.BMC, strings.Join(a.NICs, " "), a.Name, a.MAC)
					continue
				}
				fmt.Fprintf(stdout, "%s adopted as %s\n", a.MAC, a.Name)
			}
			fmt.Fprintf(stdout, "inventory revision %s\n", res.Revision)
			return nil
		}
	})
	c.Long = "Add unknown PXE clients (netbootui node unknown) to the inventory as nodes of --group.\n" +
		"In the order they first asked for a boot, each gets the next free name of the group's pattern,\n" +
		"so machines powered on one by one are named in rack order. Each boots its group's image on its\n" +
		"next request; no restart is needed.\n\n" +
		"--bmc adopts a machine by its BMC, reached with the group's bmc settings (protocol, user,\n" +
		"password, CA): the daemon reads the machine's NIC MACs from it (Redfish EthernetInterfaces;\n" +
		"IPMI does not tell them) and adds one node with those NICs and that BMC. Its boot NIC is the\n" +
		"one that asked as an unknown PXE client, else the first the BMC lists, so a machine can be\n" +
		"adopted before it ever boots and then powered on with netbootui power on. A MAC given too\n" +
		"joins its BMC's node. Nothing is written unless every BMC answers."
	c.ValidArgsFunction = func(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return fromDaemon(c, toComplete, func(ctx context.Context, cl *apiclient.Client) ([]cobra.Completion, error) {
			list, err := cl.Unknown(ctx)
			var out []cobra.Completion
			for _, u := range list {
				if !slices.Contains(pos, u.MAC) {
					out = append(out, withDesc(u.MAC, strings.TrimPrefix(dash(u.Arch)+", "+u.Address, "-, ")))
				}
			}
			return out, err
		})
	}
	c.RegisterFlagCompletionFunc("group", func(c *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return completeGroup(c, nil, toComplete)
	})
	return c
}
