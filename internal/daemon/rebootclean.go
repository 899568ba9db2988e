package daemon

import (
	"time"

	"github.com/netbootui/netbootui/internal/workflow"
)

// RebootRequest asks for a reboot to a clean state of a selection of nodes.
type RebootRequest struct {
	Selection string        `json:"selection"`         // hostlist or @group; never empty
	Timeout   time.Duration `json:"timeout,omitempty"` // per node; 0: workflow.DefaultTimeout
	// Who is the caller, for the audit log (set by the API from the
	// connection, never by the client).
	Who string `json:"-"`
}

// RebootProgress is one change of a node's reboot-clean step or boot stage.
type RebootProgress = workflow.Progress

// RebootResult is how reboot-clean ended for one node.
type RebootResult = workflow.Result
