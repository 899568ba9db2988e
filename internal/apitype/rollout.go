package apitype

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RolloutState is where a rollout is in its life.
type RolloutState string

// Rollout states. Staged, Running and Halted rollouts are active: their
// staged assignments are in force. Promoted and RolledBack are final.
const (
	RolloutStaged     RolloutState = "staged"      // assignments in force, no wave run yet
	RolloutRunning    RolloutState = "running"     // a wave is in flight
	RolloutHalted     RolloutState = "halted"      // stopped (by the gate, an admin or a restart); resumable
	RolloutCompleted  RolloutState = "completed"   // every wave passed
	RolloutAborted    RolloutState = "aborted"     // stopped for good; nodes not rolled went back
	RolloutPromoted   RolloutState = "promoted"    // the generation is the inventory's default now
	RolloutRolledBack RolloutState = "rolled-back" // every node's previous assignment restored
)

// Final reports whether the rollout holds no staged assignment any more.
func (s RolloutState) Final() bool { return s == RolloutPromoted || s == RolloutRolledBack }

// RolloutStates lists every rollout state.
var RolloutStates = []RolloutState{RolloutStaged, RolloutRunning, RolloutHalted, RolloutCompleted,
	RolloutAborted, RolloutPromoted, RolloutRolledBack}

// RolloutNodeStatus is where one node is in a rollout.
type RolloutNodeStatus string

// Node statuses in a rollout.
const (
	NodeStaged    RolloutNodeStatus = "staged"    // next boot uses the staged generation; not rebooted yet
	NodeRebooting RolloutNodeStatus = "rebooting" // its wave is in flight
	NodeDone      RolloutNodeStatus = "done"      // checked in with the staged generation
	NodeReverted  RolloutNodeStatus = "reverted"  // failed; assigned its previous generation again
	NodeRestored  RolloutNodeStatus = "restored"  // rolled back or aborted before its wave
)

// RolloutNodeStatuses lists every node status.
var RolloutNodeStatuses = []RolloutNodeStatus{NodeStaged, NodeRebooting, NodeDone, NodeReverted, NodeRestored}

// WaveState is where a wave is.
type WaveState string

// Wave states.
const (
	WavePending WaveState = "pending"
	WaveRunning WaveState = "running"
	WavePassed  WaveState = "passed"
	WaveFailed  WaveState = "failed" // more failures than allowed: the rollout halted here
)

// WaveStates lists every wave state.
var WaveStates = []WaveState{WavePending, WaveRunning, WavePassed, WaveFailed}

// LatestStage is the rollout id that names the newest rollout not yet
// promoted or rolled back.
const LatestStage = "latest"

// DefaultStageTimeout is the daemon's per-node check-in timeout of a
// rollout when a request gives none.
const DefaultStageTimeout = 10 * time.Minute

// Stage actions (POST /v1/stages/{id}/{action}).
const (
	StageRun      = "run"
	StageResume   = "resume"
	StageHalt     = "halt"
	StageAbort    = "abort"
	StagePromote  = "promote"
	StageRollback = "rollback"
)

// StageRequest stages a generation on a selection (POST /v1/stages/ and
// /v1/stages/preview).
type StageRequest struct {
	Selection string `json:"selection"`
	// Generation is an id (or a unique prefix of one) of the nodes' image,
	// or image@id.
	Generation string `json:"generation"`
	// Wave is "N" nodes or "N%" of the rollout's nodes per wave ("": 1); see
	// ParseWaveSize.
	Wave        string        `json:"wave,omitempty"`
	MaxInFlight int           `json:"max_in_flight,omitempty"`
	MaxFailures int           `json:"max_failures,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"` // per node; 0: DefaultStageTimeout
	RebootBack  bool          `json:"reboot_back,omitempty"`
	// Via is how waves reboot: ViaAuto ("" too), ViaKexec or ViaPower
	// (RebootRequest.Via).
	Via string `json:"via,omitempty"`
	// Who is the caller, for the audit log (set by the API server, never
	// on the wire).
	Who string `json:"-"`
}

// WaveSize is how many nodes a wave holds: a count, or a percentage of the
// rollout's nodes (rounded up, at least one).
type WaveSize struct {
	Count   int `json:"count,omitempty"`
	Percent int `json:"percent,omitempty"`
}

// ParseWaveSize reads "N" or "N%" (1..100 for a percentage, N >= 1), the
// syntax of StageRequest.Wave.
func ParseWaveSize(s string) (WaveSize, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100 {
			return WaveSize{}, fmt.Errorf("wave size %q: a percentage is 1%% to 100%%", s)
		}
		return WaveSize{Percent: n}, nil
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 1 {
		return WaveSize{}, fmt.Errorf("wave size %q: want a count >= 1 or a percentage like 25%%", s)
	}
	return WaveSize{Count: n}, nil
}

// String renders the size as ParseWaveSize reads it.
func (w WaveSize) String() string {
	if w.Percent > 0 {
		return strconv.Itoa(w.Percent) + "%"
	}
	return strconv.Itoa(w.Count)
}

// Of returns the wave size for a rollout of n nodes.
func (w WaveSize) Of(n int) int {
	size := w.Count
	if w.Percent > 0 {
		size = (n*w.Percent + 99) / 100
	}
	if size < 1 {
		size = 1
	}
	return size
}

// RolloutNode is one node of a rollout with what it booted before and where
// it is.
type RolloutNode struct {
	Name string `json:"name"`
	// Image and Previous are the assignment before the rollout (Pinned: the
	// inventory pinned Previous).
	Image    string            `json:"image"`
	Previous string            `json:"previous"`
	Pinned   bool              `json:"pinned,omitempty"`
	Group    string            `json:"group,omitempty"`
	Wave     int               `json:"wave"` // index into Rollout.Waves
	Status   RolloutNodeStatus `json:"status"`
	Attempts int               `json:"attempts,omitempty"`
	Error    string            `json:"error,omitempty"` // why it last failed
	// RebootedBack says a reverted node was rebooted onto Previous (and how
	// that went, when it failed).
	RebootedBack string `json:"rebooted_back,omitempty"`
}

// Wave is a batch of nodes of a rollout rebooted together.
type Wave struct {
	Index    int       `json:"index"`
	Nodes    []string  `json:"nodes"`
	State    WaveState `json:"state"`
	OK       int       `json:"ok"`
	Failed   int       `json:"failed"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// Rollout is a staged rollout as the API shows it (GET /v1/stages/...; the
// daemon converts its stored rollout.Rollout to it).
type Rollout struct {
	ID          string        `json:"id"`
	Selection   string        `json:"selection"`
	Image       string        `json:"image"`
	Generation  string        `json:"generation"`
	Wave        WaveSize      `json:"wave"`
	MaxInFlight int           `json:"max_in_flight,omitempty"`
	MaxFailures int           `json:"max_failures,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
	RebootBack  bool          `json:"reboot_back,omitempty"`
	Via         string        `json:"via,omitempty"` // how waves reboot: auto, kexec or power ("": auto)
	State       RolloutState  `json:"state"`
	// Reason says why the rollout halted or ended.
	Reason string `json:"reason,omitempty"`
	// Nodes are the nodes whose assignment changes, in selection order;
	// Unchanged are selected nodes already assigned the generation.
	Nodes     []*RolloutNode `json:"nodes"`
	Unchanged []string       `json:"unchanged,omitempty"`
	Waves     []*Wave        `json:"waves"`
	Who       string         `json:"who,omitempty"`
	Created   time.Time      `json:"created"`
	Updated   time.Time      `json:"updated"`
	// Promoted says what promote wrote to the inventory.
	Promoted string `json:"promoted,omitempty"`
}

// Node returns the rollout's entry for a node, or nil.
func (r *Rollout) Node(name string) *RolloutNode {
	for _, n := range r.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Counts returns how many nodes are in each status.
func (r *Rollout) Counts() map[RolloutNodeStatus]int {
	c := map[RolloutNodeStatus]int{}
	for _, n := range r.Nodes {
		c[n.Status]++
	}
	return c
}
