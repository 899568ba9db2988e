package workflow

import (
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
)

// Step is where a node is in the reboot-clean workflow.
type Step string

// Workflow steps, in order. A node ends in StepClean or StepFailed.
const (
	StepRender  Step = "render"  // checking the node has a published generation
	StepKexec   Step = "kexec"   // sending the kexec instruction to the node's agent
	StepBootdev Step = "bootdev" // setting the next boot to PXE
	StepCycle   Step = "cycle"   // sending the power cycle
	StepBoot    Step = "boot"    // following the boot (Progress.Stage says where)
	StepClean   Step = "clean"   // booted the assigned generation, not dirty
	StepFailed  Step = "failed"  // gave up (Progress.Message says why)
)

// Progress is one change of a node's step or boot stage.
type Progress struct {
	Node       string          `json:"node"`
	Step       Step            `json:"step"`
	Stage      bootstate.Stage `json:"stage,omitempty"`      // boot stage during StepBoot
	Generation string          `json:"generation,omitempty"` // assigned generation
	Message    string          `json:"message,omitempty"`
	Time       time.Time       `json:"time"`
}

// Result is how the workflow ended for one node.
type Result struct {
	Node       string          `json:"node"`
	OK         bool            `json:"ok"`
	Step       Step            `json:"step"`            // last step: StepClean when OK
	Stage      bootstate.Stage `json:"stage,omitempty"` // last boot stage seen
	Generation string          `json:"generation,omitempty"`
	Error      string          `json:"error,omitempty"` // starts with the node name
	Duration   time.Duration   `json:"duration"`
	// Via is the path that ran last: ViaKexec or ViaPower ("" when the
	// node failed before either).
	Via string `json:"via,omitempty"`
	// Why says why that path: "agent polling", "agent not polling",
	// "asked for power", "kexec refused by the agent ...: fell back to power".
	Why string `json:"why,omitempty"`
}

// Paths of reboot-clean (Options.Via, Result.Via).
const (
	ViaAuto  = "auto"  // kexec when the node's agent is polling, else power; power after a kexec that fails
	ViaKexec = "kexec" // kexec only
	ViaPower = "power" // BMC power cycle only
)
