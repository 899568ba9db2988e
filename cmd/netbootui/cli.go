package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runner is a verb's action once its flags are parsed: pos are its
// positional arguments.
type runner func(ctx context.Context, pos []string) error

// newVerb makes a command whose flags setup declares on the command's flag
// set; setup returns the action that reads them.
func newVerb(use, short string, args cobra.PositionalArgs, setup func(fs *pflag.FlagSet) runner) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: args}
	run := setup(c.Flags())
	c.RunE = func(c *cobra.Command, pos []string) error { return run(c.Context(), pos) }
	return c
}

// newGroup makes a command that only holds verbs: bare, it prints its help
// (every verb); an unknown verb is a usage error (unknownVerb).
func newGroup(use, short string, verbs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, ValidArgsFunction: cobra.NoFileCompletions}
	// Accepted so that a wrong verb followed by the socket flag is still
	// reported as an unknown verb.
	c.Flags().String("api-socket", "", "")
	c.Flags().MarkHidden("api-socket")
	c.AddCommand(verbs...)
	return c
}

// unknownVerb finds a command line that names a group and then something
// that is none of its verbs (cobra would print the group's help).
func unknownVerb(root *cobra.Command, args []string) error {
	c, rest, err := root.Find(args)
	if err != nil || c == root || c.Runnable() || !c.HasSubCommands() {
		return nil
	}
	for i := 0; i < len(rest); i++ {
		switch a := rest[i]; {
		case a == "--":
			return nil
		case a == "--api-socket":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			return usageError{cmd: c, msg: fmt.Sprintf("unknown verb %q", a)}
		}
	}
	return nil
}

// usageError is a command-line mistake: the program prints it with a hint
// to the verb's help and exits 2.
type usageError struct {
	cmd *cobra.Command
	msg string
}

func (e usageError) Error() string { return e.msg }

// usageErr is a usage mistake a verb's action finds, said by the usage
// line it breaks.
func usageErr(usage string) error {
	return usageError{msg: "usage: netbootui " + usage}
}

// argsBetween wants min to max positional arguments (max < 0: no limit).
func argsBetween(min, max int) cobra.PositionalArgs {
	return func(c *cobra.Command, pos []string) error {
		switch {
		case len(pos) < min:
			return usageError{cmd: c, msg: fmt.Sprintf("needs %d argument(s), got %d", min, len(pos))}
		case max >= 0 && len(pos) > max:
			return usageError{cmd: c, msg: fmt.Sprintf("takes at most %d argument(s), got %d: %s", max, len(pos), strings.Join(pos, " "))}
		}
		return nil
	}
}

func exactArgs(n int) cobra.PositionalArgs { return argsBetween(n, n) }

// socketFlag declares --api-socket on a client verb.
func socketFlag(fs *pflag.FlagSet) *string {
	return fs.String("api-socket", defaultSocket(), "unix socket `path` of the daemon's API")
}

// outputFlag declares -o/--output with the formats it takes (completed) and
// a note on them.
func outputFlag(fs *pflag.FlagSet, note string, formats ...string) *string {
	p := fs.StringP("output", "o", "", "output: "+strings.Join(formats, " or ")+note)
	flagWords(fs, "output", formats...)
	return p
}

// newRoot is the whole command tree. Without a verb it opens the console.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "netbootui",
		Short: "a console and boot server for clusters of network-booted nodes",
		Long: `netbootui: a console and boot server for clusters of network-booted nodes.

Without a verb it opens the full-screen console on the daemon at --api-socket
(default $NETBOOTUI_SOCKET or ` + defaultSocketDoc + `).

SELECTION is a hostlist (n[01-08],gpu1) or @group; it is never empty.`,
		Args:          rootArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	run := consoleVerb(root.Flags())
	root.RunE = func(c *cobra.Command, pos []string) error { return run(c.Context(), pos) }
	root.AddGroup(
		&cobra.Group{ID: "daemon", Title: "Daemon and inventory files:"},
		&cobra.Group{ID: "client", Title: "Client verbs (talk to the daemon at --api-socket):"},
		&cobra.Group{ID: "sim", Title: "Simulation (loopback high ports, no root, no hardware):"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add("daemon", serveCmd(), validateCmd(), dhcpConfigCmd(), nfsExportsCmd(), nbdConfigCmd(), restoreCmd(), clusterCmd(), versionCmd())
	add("client", statusCmd(), nodeCmd(), groupCmd(), bootCmd(), eventsCmd(), imageCmd(), reloadCmd(), powerCmd(),
		rebootCleanCmd(), auditCmd(), consoleCmd(), stageCmd(), backupCmd(), persistCmd())
	add("sim", demoCmd(), benchCmd())
	root.SetHelpCommandGroupID("daemon")
	root.SetCompletionCommandGroupID("daemon")
	registerFlagWords(root)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{cmd: c, msg: err.Error()} })
	return root
}

// defaultSocketDoc is how the help names the default socket (not the
// environment's value, so that the help is the same everywhere).
const defaultSocketDoc = "/run/netbootui/api.sock"

func rootArgs(c *cobra.Command, pos []string) error {
	if len(pos) > 0 {
		return usageError{cmd: c, msg: fmt.Sprintf("unknown verb %q", pos[0])}
	}
	return nil
}

// run executes the command line args (without the program name).
func run(ctx context.Context, args []string) error {
	root := newRoot()
	args = goStyleFlags(root, args)
	err := unknownVerb(root, args)
	if err == nil {
		root.SetArgs(args)
		err = root.ExecuteContext(ctx)
	}
	var ue usageError
	if errors.As(err, &ue) && ue.cmd == nil {
		fmt.Fprintf(os.Stderr, "netbootui: %s\n", ue.msg)
		return exitError(2)
	}
	if errors.As(err, &ue) {
		path := ue.cmd.CommandPath()
		fmt.Fprintf(os.Stderr, "%s: %s\nusage: %s\nRun '%s --help' for usage.\n", path, ue.msg, useLine(ue.cmd), path)
		return exitError(2)
	}
	return err
}

func useLine(c *cobra.Command) string {
	if !c.Runnable() || !c.HasParent() {
		return c.CommandPath() + " VERB ..."
	}
	return c.UseLine()
}

// goStyleFlags keeps the single-dash long flags the CLI took before it used
// cobra (-api-socket=PATH, -timeout 1m): an argument "-name" or
// "-name=value" whose name is a long flag of some verb becomes "--name".
// Positional arguments after "--" are left alone.
func goStyleFlags(root *cobra.Command, args []string) []string {
	names := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && names[name] {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}
