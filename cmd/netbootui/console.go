package main

import (
	"context"
	"os"
	"os/exec"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/ui"
)

// The API client is the console's backend.
var _ ui.Backend = (*apiclient.Client)(nil)

// consoleVerb is the root command's action: the full-screen console on the
// daemon at --api-socket.
func consoleVerb(fs *pflag.FlagSet) runner {
	socket := socketFlag(fs)
	return func(ctx context.Context, _ []string) error { return console(ctx, *socket) }
}

// console opens the full-screen console on the daemon at socket.
func console(ctx context.Context, socket string) error {
	opts, err := terminalOptions(socket)
	if err != nil {
		return err
	}
	m := ui.New(apiclient.New(socket), opts)
	defer m.Close()
	_, err = tea.NewProgram(m, tea.WithContext(ctx)).Run()
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}

// terminalOptions are the options of a console on this terminal, talking
// to the daemon at sock (the console verb's and the demo's): c hands the
// terminal to `netbootui console NODE` (~. comes back), S in :images to
// `netbootui image shell IMAGE`.
func terminalOptions(sock string) (ui.Options, error) {
	self, err := os.Executable()
	if err != nil {
		return ui.Options{}, err
	}
	return ui.Options{
		Dark: lipgloss.HasDarkBackground(os.Stdin, os.Stdout),
		SerialConsole: func(node string) *exec.Cmd {
			return exec.Command(self, "console", node, "--api-socket", sock)
		},
		ImageShell: func(image string) *exec.Cmd {
			return exec.Command(self, "image", "shell", image, "--api-socket", sock)
		},
	}, nil
}
