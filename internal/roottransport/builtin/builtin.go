// Package builtin is the list of root transports netbootui knows: the one
// place a new transport is registered.
package builtin

import (
	"sync"

	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/httplive"
	"github.com/netbootui/netbootui/internal/roottransport/nbd"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

// registry is built once; a Registry is immutable.
var registry = sync.OnceValue(func() *roottransport.Registry {
	r, err := roottransport.NewRegistry(
		httplive.Transport{}, // the default: the first one
		nfs.Transport{},      // the generation's tree over NFSv4
		nbd.Transport{},      // the generation's squashfs as a network block device
		// A new transport: one line here.
	)
	if err != nil {
		panic(err) // the list above is wrong: a programming error
	}
	return r
})

// Registry returns the registry of every built-in transport, http-live the
// default.
func Registry() *roottransport.Registry { return registry() }
