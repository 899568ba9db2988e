// Package workflow runs multi-step operations on nodes. RebootClean brings a
// selection of nodes back to a clean state: render check, PXE as next boot
// device, power cycle, then it follows each node's boot state until the node
// checks in with its assigned generation and is not dirty, fails, or runs
// out of time. It talks to the BMCs and the boot-state tracker through small
// interfaces (Env, Tracker) so that it does not depend on the daemon.
package workflow
