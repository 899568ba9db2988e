package ui

import (
	"os/exec"
	"time"
)

// Common is what every component of the console shares: the terminal size,
// the styles, the key map and the clock (fixed in tests).
type Common struct {
	Width, Height int
	Styles        *Styles
	Keys          KeyMap
	Now           func() time.Time
}

// Options configure a console Model.
type Options struct {
	// Dark selects styles for a dark background (the default until the
	// terminal reports its background colour).
	Dark bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ClockEvery is how often the screen is redrawn while a power action,
	// reboot or build runs, so its "running for" timer ticks between
	// progress messages; 0 means every second.
	ClockEvery time.Duration
	// Editor is the command run by `e` with the file to edit as its last
	// argument; empty means $VISUAL, then $EDITOR, then vi.
	Editor []string
	// TempDir is where edit files go; empty means os.TempDir().
	TempDir string
	// NoStream disables the live event stream (tests that drive the model
	// message by message).
	NoStream bool
	// NoEdit, when set, is what `e` says instead of opening an editor (the
	// SSH console: an editor would run as the daemon's user).
	NoEdit string
	// SerialConsole returns the command `c` hands the terminal to for a
	// node's serial console (netbootui console NODE); nil: `c` says how to
	// attach from a shell instead.
	SerialConsole func(node string) *exec.Cmd
	// ImageShell returns the command `S` in :images hands the terminal to
	// for a shell in a working copy of an image (netbootui image shell
	// IMAGE); nil: `S` says how to run it from a shell instead.
	ImageShell func(image string) *exec.Cmd
}
