package daemon

import (
	"time"

	"github.com/netbootui/netbootui/internal/pxe"
)

// What the external tests (package daemon_test, which start daemons through
// internal/daemontest) need to see inside a Daemon.

// Token is the check-in token of node.
func (d *Daemon) Token(node string) string { return d.tokens.Token(node) }

// Loaders is the boot root the TFTP and HTTP servers serve.
func (d *Daemon) Loaders() *pxe.FileRoot { return d.boot.Loaders }

// FetchKey is the key that proves node in its image URLs.
func (d *Daemon) FetchKey(node string) string { return d.tokens.FetchKey(node) }

// MaxSessions bounds the image sessions held at once.
const MaxSessions = maxSessions

// SetSessionTTL changes Config.SessionTTL of a daemon already made.
func (d *Daemon) SetSessionTTL(ttl time.Duration) { d.cfg.SessionTTL = ttl }
