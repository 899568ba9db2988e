package daemon

import (
	"time"

	"github.com/netbootui/netbootui/internal/consolehub"
	"github.com/netbootui/netbootui/internal/power"
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

// CaptureSOL starts reboot-clean's console capture of node (its BMC target
// from the inventory and the secrets file) and returns what stops it.
func (d *Daemon) CaptureSOL(node string) (stop func(), err error) {
	inv := d.Inventory()
	secrets, err := d.secrets(inv)
	if err != nil {
		return nil, err
	}
	n := inv.Node(node)
	if n == nil {
		return nil, ErrUnknownNode
	}
	tg, err := n.BMCTarget(secrets)
	if err != nil {
		return nil, err
	}
	return d.captureSOL(map[string]power.Target{node: tg}), nil
}

// SOLSession is node's serial-console session under way (nil: none).
func (d *Daemon) SOLSession(node string) *consolehub.Hub { return d.consoles.Current(node) }
