package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/sol"
)

// stdin is the console's input (a variable for tests).
var stdin io.Reader = os.Stdin

// consoleCmd is `netbootui console NODE` (attach to the node's
// serial-over-LAN through the daemon; "~." at the start of a line detaches)
// and `netbootui console --log NODE [-n N]` (print the captured console
// lines). Without a node it opens the full-screen console.
func consoleCmd() *cobra.Command {
	c := newVerb("console [NODE]", "attach to a node's serial console (~. at line start detaches); without NODE the full-screen console",
		argsBetween(0, 1), func(fs *pflag.FlagSet) runner {
			socket := socketFlag(fs)
			logOnly := fs.Bool("log", false, "print the node's captured console lines and exit")
			n := fs.IntP("lines", "n", 40, "with --log: how many lines")
			out := outputFlag(fs, " (with --log)", "json")
			return func(ctx context.Context, pos []string) error {
				if len(pos) == 0 {
					return console(ctx, *socket)
				}
				c := apiclient.New(*socket)
				if *logOnly {
					return consoleLog(ctx, c, pos[0], *n, *out)
				}
				return serialConsole(ctx, c, pos[0])
			}
		})
	c.ValidArgsFunction = completeNode
	return c
}

// consoleLog prints the node's captured console lines; it fails (exit 1)
// when the daemon's last session to the node's console failed.
func consoleLog(ctx context.Context, c *apiclient.Client, node string, n int, out string) error {
	l, err := c.SOLLog(ctx, node, n)
	if err != nil {
		return err
	}
	if out == "json" {
		if err := printJSON(l); err != nil {
			return err
		}
	} else {
		for _, line := range l.Lines {
			fmt.Fprintln(stdout, line)
		}
	}
	if l.Error != "" {
		// the capture failed: what was captured is printed, and the exit
		// status says it is not the node's console
		return fmt.Errorf("last SOL session of %s: %s", node, l.Error)
	}
	return nil
}

// serialConsole attaches the terminal to the node's serial console.
func serialConsole(ctx context.Context, c *apiclient.Client, node string) error {
	conn, err := c.Console(ctx, node)
	if err != nil {
		return err
	}
	defer conn.Close()
	nl := "\n"
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		old, err := term.MakeRaw(int(f.Fd()))
		if err != nil {
			return fmt.Errorf("console %s: raw terminal: %w", node, err)
		}
		defer term.Restore(int(f.Fd()), old)
		nl = "\r\n"
	}
	fmt.Fprintf(os.Stderr, "netbootui: connected to %s's serial console; type %s at the start of a line to detach%s", node, sol.Escape, nl)
	esc := sol.NewEscapeReader(stdin)
	go func() {
		io.Copy(conn, esc)
		conn.CloseWrite()
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_, err = io.Copy(stdout, conn)
	switch {
	case esc.Escaped():
		fmt.Fprintf(os.Stderr, "%snetbootui: detached from %s%s", nl, node, nl)
		return nil
	case ctx.Err() != nil:
		return nil
	case err != nil && !strings.Contains(err.Error(), "use of closed network connection"):
		return fmt.Errorf("console %s: %w", node, err)
	}
	fmt.Fprintf(os.Stderr, "%snetbootui: console of %s closed%s", nl, node, nl)
	return nil
}
