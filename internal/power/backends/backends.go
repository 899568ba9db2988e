// Package backends lists the power backends netbootui is built with. Adding
// a backend (Redfish, say) is its package plus one line in Registry. The
// inventory checks bmc.protocol against this list (unless given another
// registry), so a backend package must not import internal/inventory.
package backends

import (
	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/redfish"
)

// Registry returns a new registry of every built-in backend. The caller owns
// it (a test may Register a backend of its own on it).
func Registry() *power.Registry {
	r, err := power.NewRegistry(
		ipmi.Protocol(ipmi.Options{}),
		redfish.Protocol(redfish.Options{}),
	)
	if err != nil {
		panic(err) // a declaration above is wrong: a programming error
	}
	return r
}
