// Package rollout stages a new image generation on a selection of nodes and
// rolls it out in waves: every node of the rollout gets a staged assignment
// (its next boot uses the new generation) that the boot server consults
// before the inventory; waves of nodes are rebooted to a clean state and pass
// when their nodes check in with the staged generation; the rollout halts by
// itself when a wave fails more nodes than allowed, and failed nodes go back
// to their previous generation. A finished rollout is promoted (the staged
// generation written to the inventory as the default) or rolled back (every
// node's previous assignment restored).
//
// The package knows nothing of the daemon: it drives it through Env. Its state
// lives in one JSON file written atomically before every step, so a process
// killed mid-rollout comes back with the rollout halted and every node's
// previous and staged generation known.
package rollout

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
)

// State is where a rollout is in its life.
type State string

// Rollout states. Staged, Running and Halted rollouts are active: their
// staged assignments are in force. Completed and Aborted rollouts keep the
// staged generation on the nodes that took it until they are promoted or
// rolled back; Promoted and RolledBack are final and hold no assignment.
const (
	StateStaged     State = "staged"      // assignments in force, no wave run yet
	StateRunning    State = "running"     // a wave is in flight
	StateHalted     State = "halted"      // stopped (by the gate, an admin or a restart); resumable
	StateCompleted  State = "completed"   // every wave passed
	StateAborted    State = "aborted"     // stopped for good; nodes not rolled went back
	StatePromoted   State = "promoted"    // the generation is the inventory's default now
	StateRolledBack State = "rolled-back" // every node's previous assignment restored
)

// Final reports whether the rollout holds no staged assignment any more.
func (s State) Final() bool { return s == StatePromoted || s == StateRolledBack }

// NodeStatus is where one node is in a rollout.
type NodeStatus string

// Node statuses.
const (
	NodeStaged    NodeStatus = "staged"    // next boot uses the staged generation; not rebooted yet
	NodeRebooting NodeStatus = "rebooting" // its wave is in flight
	NodeDone      NodeStatus = "done"      // checked in with the staged generation
	NodeReverted  NodeStatus = "reverted"  // failed; assigned its previous generation again
	NodeRestored  NodeStatus = "restored"  // rolled back or aborted before its wave: previous assignment
)

// WaveState is where a wave is.
type WaveState string

// Wave states.
const (
	WavePending WaveState = "pending"
	WaveRunning WaveState = "running"
	WavePassed  WaveState = "passed"
	WaveFailed  WaveState = "failed" // more failures than allowed: the rollout halted here
)

// Node is one node of a rollout with what it booted before and where it is.
type Node struct {
	Name string `json:"name"`
	// Image and Previous are the assignment before the rollout (Pinned: the
	// inventory pinned Previous; otherwise the node followed the image's
	// current generation, which was Previous).
	Image    string     `json:"image"`
	Previous string     `json:"previous"`
	Pinned   bool       `json:"pinned,omitempty"`
	Group    string     `json:"group,omitempty"`
	Wave     int        `json:"wave"` // index into Rollout.Waves
	Status   NodeStatus `json:"status"`
	Attempts int        `json:"attempts,omitempty"`
	Error    string     `json:"error,omitempty"` // why it last failed
	// RebootedBack says a reverted node was rebooted onto Previous (and how
	// that went, when it failed).
	RebootedBack string `json:"rebooted_back,omitempty"`
}

// Wave is a batch of nodes rebooted together.
type Wave struct {
	Index    int       `json:"index"`
	Nodes    []string  `json:"nodes"`
	State    WaveState `json:"state"`
	OK       int       `json:"ok"`
	Failed   int       `json:"failed"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// Rollout is one staged generation on a set of nodes.
type Rollout struct {
	ID         string `json:"id"`
	Selection  string `json:"selection"`
	Image      string `json:"image"`
	Generation string `json:"generation"`
	Options
	State State `json:"state"`
	// Reason says why the rollout halted or ended.
	Reason string `json:"reason,omitempty"`
	// Nodes are the nodes whose assignment changes, in selection order;
	// Unchanged are selected nodes already assigned the generation.
	Nodes     []*Node   `json:"nodes"`
	Unchanged []string  `json:"unchanged,omitempty"`
	Waves     []*Wave   `json:"waves"`
	Who       string    `json:"who,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	// Promoted says what promote wrote to the inventory.
	Promoted string `json:"promoted,omitempty"`
}

// Node returns the rollout's entry for a node, or nil.
func (r *Rollout) Node(name string) *Node {
	for _, n := range r.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Counts returns how many nodes are in each status.
func (r *Rollout) Counts() map[NodeStatus]int {
	c := map[NodeStatus]int{}
	for _, n := range r.Nodes {
		c[n.Status]++
	}
	return c
}

// clone returns a deep copy, safe to hand out.
func (r *Rollout) clone() *Rollout {
	c := *r
	c.Nodes = make([]*Node, len(r.Nodes))
	for i, n := range r.Nodes {
		nn := *n
		c.Nodes[i] = &nn
	}
	c.Waves = make([]*Wave, len(r.Waves))
	for i, w := range r.Waves {
		ww := *w
		ww.Nodes = append([]string(nil), w.Nodes...)
		c.Waves[i] = &ww
	}
	c.Unchanged = append([]string(nil), r.Unchanged...)
	return &c
}

// WaveSize is how many nodes a wave holds: a count, or a percentage of the
// rollout's nodes. Its syntax is the API's (apitype.ParseWaveSize), so the
// console checks a size as the daemon will.
type WaveSize = apitype.WaveSize

// ParseWaveSize reads "N" or "N%" (1..100 for a percentage, N >= 1).
func ParseWaveSize(s string) (WaveSize, error) { return apitype.ParseWaveSize(s) }

// Options tune a rollout.
type Options struct {
	Wave WaveSize `json:"wave"` // default: one node per wave
	// MaxInFlight is how many nodes of a wave reboot at once (0: the whole
	// wave).
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// MaxFailures is how many failed nodes a wave tolerates; one more halts
	// the rollout. 0: any failure halts.
	MaxFailures int `json:"max_failures,omitempty"`
	// Timeout is how long each node has to check in (0: DefaultTimeout).
	Timeout time.Duration `json:"timeout,omitempty"`
	// RebootBack reboots failed nodes onto their previous generation.
	RebootBack bool `json:"reboot_back,omitempty"`
	// Via is how the waves reboot: "auto" ("" too: kexec where the node's
	// agent polls, else power), "kexec" or "power" (Env.Reboot's via).
	Via string `json:"via,omitempty"`
}

// DefaultTimeout is a node's check-in timeout when Options.Timeout is 0.
const DefaultTimeout = apitype.DefaultStageTimeout

func (o *Options) check() error {
	switch {
	case o.Wave.Count < 0 || o.Wave.Percent < 0 || o.Wave.Percent > 100:
		return fmt.Errorf("wave size %s is out of range", o.Wave)
	case o.MaxInFlight < 0:
		return fmt.Errorf("max in flight %d is negative", o.MaxInFlight)
	case o.MaxFailures < 0:
		return fmt.Errorf("max failures %d is negative", o.MaxFailures)
	case o.Timeout < 0:
		return fmt.Errorf("timeout %v is negative", o.Timeout)
	case !slices.Contains([]string{"", apitype.ViaAuto, apitype.ViaKexec, apitype.ViaPower}, o.Via):
		return fmt.Errorf("via %q: want %s", o.Via, strings.Join(apitype.RebootVias, ", "))
	}
	if o.Wave.Count == 0 && o.Wave.Percent == 0 {
		o.Wave.Count = 1
	}
	return nil
}

// Errors callers can test for.
var (
	ErrNotFound = errors.New("no such rollout")
	ErrState    = errors.New("not allowed in this state")
	ErrBusy     = errors.New("node is in another rollout")
)
