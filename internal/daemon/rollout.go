package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/rollout"
)

// Rollout is a staged rollout as the API and the console show it.
type Rollout = rollout.Rollout

// StageRequest is a request to stage a generation on a selection (the API type;
// Who is set by the API server).
type StageRequest = apitype.StageRequest

// Stage actions for StageAction.
var stageActions = map[string]func(m *rollout.Manager, id, who string) (*rollout.Rollout, error){
	"run":      (*rollout.Manager).Run,
	"resume":   (*rollout.Manager).Resume,
	"halt":     (*rollout.Manager).Halt,
	"abort":    (*rollout.Manager).Abort,
	"promote":  (*rollout.Manager).Promote,
	"rollback": (*rollout.Manager).Rollback,
}

// openRollouts loads the persisted rollouts and makes the boot server
// consult their staged assignments. A rollout that was running comes back
// halted.
func (d *Daemon) openRollouts() error {
	if d.cluster != nil {
		return d.openSharedRollouts()
	}
	m, err := rollout.Open(d.store.Documents(), &rolloutEnv{d: d})
	if err != nil {
		return err
	}
	d.rollouts = m
	d.boot.Staged = m.Staged
	return nil
}

// Staged is the image and generation a staged rollout hands node at its
// next boot (ok false when no rollout stages it).
func (d *Daemon) Staged(node string) (img, gen string, ok bool) { return d.rollouts.Staged(node) }

// closeRollouts halts running rollouts and waits for their waves to stop.
func (d *Daemon) closeRollouts() {
	if d.rollouts != nil {
		d.rollouts.Close()
	}
}

// stageOptions reads a stage request's rollout options.
func stageOptions(r StageRequest) (rollout.Options, error) {
	o := rollout.Options{MaxInFlight: r.MaxInFlight, MaxFailures: r.MaxFailures, Timeout: r.Timeout, RebootBack: r.RebootBack, Via: r.Via}
	if r.Wave != "" {
		w, err := rollout.ParseWaveSize(r.Wave)
		if err != nil {
			return o, err
		}
		o.Wave = w
	}
	return o, nil
}

// StagePreview works out a rollout without changing anything: which nodes
// change generation, which already have it, and the waves.
func (d *Daemon) StagePreview(req StageRequest) (*Rollout, error) {
	o, err := stageOptions(req)
	if err != nil {
		return nil, err
	}
	return d.rollouts.Plan(req.Selection, req.Generation, o)
}

// StageCreate stages a generation on a selection: the nodes' next boot uses
// it; nothing is rebooted until StageAction "run".
func (d *Daemon) StageCreate(req StageRequest) (*Rollout, error) {
	o, err := stageOptions(req)
	if err != nil {
		return nil, err
	}
	return d.rollouts.Create(req.Selection, req.Generation, o, req.Who)
}

// StageAction applies run, resume, halt, abort, promote or rollback to
// rollout id ("" the newest active one).
func (d *Daemon) StageAction(id, action, who string) (*Rollout, error) {
	f := stageActions[action]
	if f == nil {
		return nil, fmt.Errorf("unknown stage action %q (run, resume, halt, abort, promote, rollback)", action)
	}
	return f(d.rollouts, id, who)
}

// StageGet returns rollout id ("" the newest active one).
func (d *Daemon) StageGet(id string) (*Rollout, error) { return d.rollouts.Get(id) }

// StageList returns every rollout kept, oldest first.
func (d *Daemon) StageList() []*Rollout { return d.rollouts.List() }

// StageWait blocks until rollout id has no wave in flight or ctx ends.
func (d *Daemon) StageWait(ctx context.Context, id string) error { return d.rollouts.Wait(ctx, id) }

// rolloutEnv is rollout.Env on the daemon.
type rolloutEnv struct{ d *Daemon }

// inventoryAssignment is what the inventory alone assigns (no staging).
func (e *rolloutEnv) inventoryAssignment(n *inventory.Node) (gen string, pinned bool) {
	if n.Generation != "" {
		return n.Generation, true
	}
	if n.Image == "" {
		return "", false
	}
	gen, _ = e.d.images.Current(n.Image)
	return gen, false
}

func (e *rolloutEnv) Resolve(selection string) ([]rollout.Assignment, error) {
	nodes, err := e.d.Inventory().Select(selection)
	if err != nil {
		return nil, err
	}
	out := make([]rollout.Assignment, len(nodes))
	for i, n := range nodes {
		gen, pinned := e.inventoryAssignment(n)
		a := rollout.Assignment{Node: n.Name, Group: n.Group, Image: n.Image, Generation: gen, Pinned: pinned}
		if st, ok := e.d.tracker.Get(n.Name); ok {
			a.Running = st.Generation
		}
		out[i] = a
	}
	return out, nil
}

func (e *rolloutEnv) Generation(img, gen string) (string, error) {
	gens, err := e.d.images.Generations(img)
	if err != nil {
		return "", err
	}
	var match []string
	for _, m := range gens {
		if m.ID == gen {
			return gen, nil
		}
		if strings.HasPrefix(m.ID, gen) {
			match = append(match, m.ID)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("image %s has no generation %q: %w", img, gen, image.ErrNotFound)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("generation %q of image %s is ambiguous: %s", gen, img, strings.Join(match, ", "))
}

func (e *rolloutEnv) Reboot(ctx context.Context, nodes []string, timeout time.Duration, via string) []rollout.Result {
	res, err := e.d.rebootClean(ctx, RebootRequest{Selection: strings.Join(nodes, ","), Timeout: timeout, Via: via, Who: "rollout"}, nil, rolloutClaimWait)
	out := make([]rollout.Result, 0, len(nodes))
	if err != nil {
		for _, n := range nodes {
			out = append(out, rollout.Result{Node: n, Error: n + ": " + err.Error()})
		}
		return out
	}
	for _, r := range res {
		out = append(out, rollout.Result{Node: r.Node, OK: r.OK, Generation: r.Generation, Error: r.Error})
	}
	return out
}

// Promote pins image@generation on the groups of the rollout's nodes (their
// "image" key, comments kept), then on any node still not assigned it (a
// node with its own image key, or no group).
func (e *rolloutEnv) Promote(r *rollout.Rollout) (string, error) {
	pin := r.Image + "@" + r.Generation
	inv := e.d.Inventory()
	var groups []string
	seen := map[string]bool{}
	for _, rn := range r.Nodes {
		n := inv.Node(rn.Name)
		if n == nil {
			return "", fmt.Errorf("node %s is no longer in the inventory", rn.Name)
		}
		g := inv.Groups[n.Group]
		if g == nil || seen[g.Name] || g.Image != r.Image {
			continue
		}
		seen[g.Name] = true
		groups = append(groups, g.Name)
	}
	var wrote []string
	for _, g := range groups {
		if _, err := e.d.EditGroup(g, Edit{Set: map[string]any{"image": pin}, Who: "rollout " + r.ID}); err != nil {
			return strings.Join(wrote, ", "), fmt.Errorf("group %s: %w", g, err)
		}
		wrote = append(wrote, "group "+g+" image: "+pin)
	}
	inv = e.d.Inventory()
	for _, rn := range r.Nodes {
		n := inv.Node(rn.Name)
		if n == nil || (n.Image == r.Image && n.Generation == r.Generation) {
			continue
		}
		if _, err := e.d.EditNode(n.Name, Edit{Set: map[string]any{"image": pin}, Who: "rollout " + r.ID}); err != nil {
			return strings.Join(wrote, ", "), fmt.Errorf("node %s: %w", n.Name, err)
		}
		wrote = append(wrote, "node "+n.Name+" image: "+pin)
	}
	if len(wrote) == 0 {
		return "", errors.New("nothing to write")
	}
	return strings.Join(wrote, ", "), nil
}

func (e *rolloutEnv) Event(node, msg string) {
	e.d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "rollout", Node: node, Message: msg})
}

func (e *rolloutEnv) Audit(who, action, target string, nodes int, result string, details []string) {
	e.d.auditRecord(audit.Entry{Who: who, Action: action, Target: target, Nodes: nodes, Result: result, Details: details})
}
