package main

import (
	"context"
	"os"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/netbootui/netbootui/internal/api"
	"github.com/netbootui/netbootui/internal/ui"
)

// The API client is the console's backend.
var _ ui.Backend = (*api.Client)(nil)

// cmdConsole opens the console on the daemon at --api-socket.
func cmdConsole(ctx context.Context, args []string) error {
	fs, socket := clientFlags("console")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	m := ui.New(api.NewClient(*socket), ui.Options{Dark: lipgloss.HasDarkBackground(os.Stdin, os.Stdout)})
	defer m.Close()
	_, err := tea.NewProgram(m, tea.WithContext(ctx)).Run()
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}
