package main

import (
	"context"
	"os"
	"os/exec"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/ui"
)

// The API client is the console's backend.
var _ ui.Backend = (*apiclient.Client)(nil)

// cmdConsole opens the console on the daemon at --api-socket.
func cmdConsole(ctx context.Context, args []string) error {
	fs, socket := clientFlags("console")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	sock := *socket
	m := ui.New(apiclient.New(sock), ui.Options{
		Dark: lipgloss.HasDarkBackground(os.Stdin, os.Stdout),
		// c hands the terminal to `netbootui console NODE` (~. comes back).
		SerialConsole: func(node string) *exec.Cmd {
			return exec.Command(self, "console", node, "--api-socket", sock)
		},
		// S in :images hands it to `netbootui image shell IMAGE`.
		ImageShell: func(image string) *exec.Cmd {
			return exec.Command(self, "image", "shell", image, "--api-socket", sock)
		},
	})
	defer m.Close()
	_, err = tea.NewProgram(m, tea.WithContext(ctx)).Run()
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}
