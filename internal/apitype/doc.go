// Package apitype is the contract between the netbootui daemon and its
// clients: every type that crosses the local API (JSON over HTTP on the unix
// socket, or in-process for the SSH console), the error body and its codes,
// and the constants clients switch on (boot stages, event kinds, reboot
// steps, rollout, wave and node states, build steps).
//
// It imports nothing of the project and nothing outside the standard
// library, so that the console, the SSH console and the CLI verbs can link
// it without the daemon. The daemon keeps its own types (bootstate.Event,
// rollout.Rollout, workflow.Progress, image.Manifest, audit.Entry, ...) and
// converts them to these at the API boundary: a stored type is not a wire
// type, and a wire type is not the console's model.
//
// Request types that the daemon also takes as its own input carry a Who
// field tagged json:"-": the API server fills it from the connection's
// identity; it is never encoded or decoded, so no client can set it.
package apitype
