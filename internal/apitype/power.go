package apitype

import (
	"fmt"
	"time"
)

// Power operations a PowerRequest names.
const (
	OpStatus     = "status"
	OpOn         = "on"
	OpOff        = "off"
	OpSoft       = "soft"
	OpCycle      = "cycle"
	OpReset      = "reset"
	OpBootdevPXE = "bootdev-pxe"
)

// PowerRequest asks for one power operation on a selection of nodes
// (POST /v1/power).
type PowerRequest struct {
	Selection string `json:"selection"` // hostlist or @group; never empty
	Op        string `json:"op"`        // one of the Op constants
	// Who is the caller, for the audit log (set by the API server, never
	// on the wire).
	Who string `json:"-"`
}

// PowerResult is the outcome for one node. It never holds credentials.
type PowerResult struct {
	Node     string        `json:"node"`
	BMC      string        `json:"bmc,omitempty"`
	Op       string        `json:"op"`
	Power    string        `json:"power,omitempty"`
	Detail   string        `json:"detail,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// RebootStep is a node's step in a reboot-clean run (the wire form of
// workflow.Step).
type RebootStep string

// Reboot-clean steps.
const (
	StepRender  RebootStep = "render"  // checking the node has a published generation
	StepKexec   RebootStep = "kexec"   // sending the kexec instruction to the node's agent
	StepBootdev RebootStep = "bootdev" // setting the next boot to PXE
	StepCycle   RebootStep = "cycle"   // sending the power cycle
	StepBoot    RebootStep = "boot"    // following the boot (RebootProgress.Stage says where)
	StepClean   RebootStep = "clean"   // booted the assigned generation, not dirty
	StepFailed  RebootStep = "failed"  // gave up (RebootProgress.Message says why)
)

// RebootSteps lists every reboot-clean step in the order a run takes them.
var RebootSteps = []RebootStep{StepRender, StepKexec, StepBootdev, StepCycle, StepBoot, StepClean, StepFailed}

// DefaultRebootTimeout is the daemon's per-node reboot-clean timeout when a
// request gives none.
const DefaultRebootTimeout = 10 * time.Minute

// DefaultKexecTimeout is how long, with RebootRequest.Via auto, a node may
// take from its kexec instruction to a clean check-in before the daemon
// falls back to a power cycle.
const DefaultKexecTimeout = 3 * time.Minute

// Reboot-clean paths (RebootRequest.Via, RebootResult.Via).
const (
	ViaAuto  = "auto"  // kexec when the node's agent is polling, else power; power after a kexec that fails
	ViaKexec = "kexec" // kexec only: no firmware POST
	ViaPower = "power" // the BMC's power cycle only
)

// RebootVias lists the paths RebootRequest.Via takes.
var RebootVias = []string{ViaAuto, ViaKexec, ViaPower}

// RebootRequest asks for a reboot to a clean state of a selection of nodes
// (POST /v1/reboot-clean).
type RebootRequest struct {
	Selection string        `json:"selection"`         // hostlist or @group; never empty
	Timeout   time.Duration `json:"timeout,omitempty"` // per node; 0: DefaultRebootTimeout
	// Via is the path: ViaAuto ("" too), ViaKexec or ViaPower.
	Via string `json:"via,omitempty"`
	// KexecTimeout bounds, with Via auto, a kexec'd node's way to a clean
	// check-in before the power fallback; 0: DefaultKexecTimeout.
	KexecTimeout time.Duration `json:"kexec_timeout,omitempty"`
	// Who is the caller, for the audit log (set by the API server, never
	// on the wire).
	Who string `json:"-"`
}

// RebootProgress is one change of a node's reboot-clean step or boot stage.
type RebootProgress struct {
	Node       string     `json:"node"`
	Step       RebootStep `json:"step"`
	Stage      Stage      `json:"stage,omitempty"`      // boot stage during StepBoot
	Generation string     `json:"generation,omitempty"` // assigned generation
	Message    string     `json:"message,omitempty"`
	Time       time.Time  `json:"time"`
}

// RebootResult is how reboot-clean ended for one node.
type RebootResult struct {
	Node       string        `json:"node"`
	OK         bool          `json:"ok"`
	Step       RebootStep    `json:"step"`            // last step: StepClean when OK
	Stage      Stage         `json:"stage,omitempty"` // last boot stage seen
	Generation string        `json:"generation,omitempty"`
	Error      string        `json:"error,omitempty"` // starts with the node name
	Duration   time.Duration `json:"duration"`
	Via        string        `json:"via,omitempty"` // the path that ran last: ViaKexec or ViaPower
	Why        string        `json:"why,omitempty"` // why that path ("agent polling", "kexec ...: fell back to power")
}

// RebootLine is one line of the NDJSON stream of POST /v1/reboot-clean: a
// progress line per node step or stage change, then one final line with
// Done set and the Results (or Error when the run was cut short).
type RebootLine struct {
	Progress *RebootProgress `json:"progress,omitempty"`
	Results  []RebootResult  `json:"results,omitempty"`
	Done     bool            `json:"done,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// RebootSummary says how many results are ok and how many failed, as
// "3 ok, 1 failed".
func RebootSummary(results []RebootResult) string {
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
		}
	}
	return fmt.Sprintf("%d ok, %d failed", len(results)-failed, failed)
}
