package rollout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/netbootui/netbootui/internal/state"
)

// fileVersion is the format of the state file.
const fileVersion = 1

// DocumentName is the state document holding every rollout (in the data
// directory: rollouts.json).
const DocumentName = "rollouts.json"

// File is the content of the state file (Parse reads it).
type File struct {
	Version  int        `json:"version"`
	Next     int        `json:"next"` // the last rollout id handed out
	Rollouts []*Rollout `json:"rollouts"`
}

func (m *Manager) saveLocked(all []*Rollout) error {
	b, err := json.MarshalIndent(File{Version: fileVersion, Next: m.next, Rollouts: all}, "", "  ")
	if err != nil {
		return err
	}
	rev, err := m.docs.Put(DocumentName, append(b, '\n'), m.rev)
	if err != nil {
		return fmt.Errorf("rollout state %s: %w", DocumentName, err)
	}
	m.rev = rev
	return nil
}

// load reads the state document; a missing one is empty.
func load(docs state.Documents) (File, state.Rev, error) {
	b, rev, err := docs.Get(DocumentName)
	if err != nil {
		return File{}, 0, fmt.Errorf("rollout state %s: %w", DocumentName, err)
	}
	if rev == 0 {
		return File{Version: fileVersion}, 0, nil
	}
	f, err := Parse(b)
	if err != nil {
		return File{}, 0, fmt.Errorf("%s: %w", DocumentName, err)
	}
	return f, rev, nil
}

// Parse decodes and checks a state file. Errors name the line and column
// of a syntax error, or the rollout and node that is inconsistent.
func Parse(b []byte) (File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := lineCol(b, se.Offset)
			return File{}, fmt.Errorf("%d:%d: %w", line, col, err)
		case errors.As(err, &te):
			line, col := lineCol(b, te.Offset)
			return File{}, fmt.Errorf("%d:%d: %w", line, col, err)
		}
		return File{}, err
	}
	if f.Version != fileVersion {
		return File{}, fmt.Errorf("version %d, want %d", f.Version, fileVersion)
	}
	ids := map[string]bool{}
	for i, r := range f.Rollouts {
		if r == nil {
			return File{}, fmt.Errorf("rollouts[%d]: null", i)
		}
		if err := r.validate(); err != nil {
			return File{}, fmt.Errorf("rollout %q: %w", r.ID, err)
		}
		if ids[r.ID] {
			return File{}, fmt.Errorf("rollout %q: duplicate id", r.ID)
		}
		ids[r.ID] = true
		if n, err := strconv.Atoi(r.ID); err == nil && n > f.Next {
			f.Next = n
		}
	}
	return f, nil
}

func lineCol(b []byte, off int64) (int, int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	line, col := 1, 1
	for _, c := range b[:off] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

var states = map[State]bool{StateStaged: true, StateRunning: true, StateHalted: true, StateCompleted: true,
	StateAborted: true, StatePromoted: true, StateRolledBack: true}
var nodeStatuses = map[NodeStatus]bool{NodeStaged: true, NodeRebooting: true, NodeDone: true, NodeReverted: true, NodeRestored: true}
var waveStates = map[WaveState]bool{WavePending: true, WaveRunning: true, WavePassed: true, WaveFailed: true}

// validate checks what the manager relies on: known states, every node in
// exactly the wave it names.
func (r *Rollout) validate() error {
	if _, err := strconv.Atoi(r.ID); err != nil {
		return errors.New("id is not a number")
	}
	if !states[r.State] {
		return fmt.Errorf("unknown state %q", r.State)
	}
	if r.Image == "" || r.Generation == "" {
		return errors.New("no image or generation")
	}
	if err := r.Options.check(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, n := range r.Nodes {
		if n == nil || n.Name == "" {
			return fmt.Errorf("nodes[%d]: no name", i)
		}
		if seen[n.Name] {
			return fmt.Errorf("node %s: listed twice", n.Name)
		}
		seen[n.Name] = true
		if !nodeStatuses[n.Status] {
			return fmt.Errorf("node %s: unknown status %q", n.Name, n.Status)
		}
		if n.Wave < 0 || n.Wave >= len(r.Waves) || r.Waves[n.Wave] == nil {
			return fmt.Errorf("node %s: wave %d does not exist", n.Name, n.Wave+1)
		}
	}
	inWave := map[string]bool{}
	for i, w := range r.Waves {
		if w == nil || w.Index != i {
			return fmt.Errorf("waves[%d]: wrong index", i)
		}
		if !waveStates[w.State] {
			return fmt.Errorf("wave %d: unknown state %q", i+1, w.State)
		}
		for _, name := range w.Nodes {
			n := r.Node(name)
			if n == nil || n.Wave != i || inWave[name] {
				return fmt.Errorf("wave %d: node %s does not belong to it", i+1, name)
			}
			inWave[name] = true
		}
	}
	if len(inWave) != len(r.Nodes) {
		return errors.New("a node is in no wave")
	}
	return nil
}
