// Package builtin is the list of root transports netbootui knows: the one
// place a new transport is registered.
package builtin

import (
	"sync"

	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/httplive"
)

// registry is built once; a Registry is immutable.
var registry = sync.OnceValue(func() *roottransport.Registry {
	r, err := roottransport.NewRegistry(
		httplive.Transport{}, // the default: the first one
		// A new transport: one line here, e.g. nfs.Transport{}.
	)
	if err != nil {
		panic(err) // the list above is wrong: a programming error
	}
	return r
})

// Registry returns the registry of every built-in transport, http-live the
// default.
func Registry() *roottransport.Registry { return registry() }
