package rollout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netbootui/netbootui/internal/state"
)

// Assignment is what a node boots before a rollout, as the inventory and the
// image store say.
type Assignment struct {
	Node       string
	Group      string
	Image      string
	Generation string // "" when none is assigned (no image, none published)
	Pinned     bool   // the inventory pins Generation
	Running    string // the generation the node last checked in with
}

// Result is how one node's reboot went.
type Result struct {
	Node       string
	OK         bool
	Generation string // the generation it checked in with
	Error      string
}

// Env is what a rollout needs of the daemon.
type Env interface {
	// Resolve expands a selection into the nodes' current assignments, in
	// selection order.
	Resolve(selection string) ([]Assignment, error)
	// Generation checks that image has generation gen (an id or a unique
	// prefix of one) and returns its full id.
	Generation(image, gen string) (string, error)
	// Reboot reboots nodes to a clean state with the assignments in force
	// (staged ones included) by the path via (Options.Via), waiting up to
	// timeout for each to check in. It returns one Result per node.
	Reboot(ctx context.Context, nodes []string, timeout time.Duration, via string) []Result
	// Promote makes the rollout's generation the inventory's default for its
	// nodes and says what it wrote.
	Promote(r *Rollout) (string, error)
	// Event records a step in the node's history (node "" for the rollout
	// as a whole).
	Event(node, msg string)
	// Audit records a step in the audit log.
	Audit(who, action, target string, nodes int, result string, details []string)
}

// Manager holds every rollout, runs their waves and persists them.
type Manager struct {
	env  Env
	docs state.Documents
	rev  state.Rev // of the document last read or written
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu       sync.Mutex
	rollouts []*Rollout // creation order
	next     int
	running  map[string]*runCtl
	closed   bool
	wg       sync.WaitGroup
	index    atomic.Pointer[map[string]staged]
	watchers map[chan struct{}]struct{} // watch.go

	// Several heads (shared.go): the document is shared, waves run only
	// on the head that leads.
	shared  bool
	head    string
	leadCtx context.Context // nil when this head does not lead
}

type runCtl struct {
	cancel context.CancelFunc
	done   chan struct{}
}

type staged struct{ image, gen string }

// keepFinal is how many promoted or rolled-back rollouts the file keeps.
const keepFinal = 50

// Open loads the rollouts persisted in docs (DocumentName; none when the
// document does not exist). A rollout that was running when the process stopped comes back
// halted, its in-flight nodes staged again for the next resume.
func Open(docs state.Documents, env Env) (*Manager, error) {
	m := &Manager{env: env, docs: docs, running: map[string]*runCtl{}}
	f, rev, err := load(docs)
	if err != nil {
		return nil, err
	}
	m.rev = rev
	m.rollouts, m.next = f.Rollouts, f.Next
	var notes []note
	for _, r := range m.rollouts {
		if r.State != StateRunning {
			continue
		}
		wave := -1
		for _, w := range r.Waves {
			if w.State == WaveRunning {
				w.State, wave = WavePending, w.Index
			}
		}
		for _, n := range r.Nodes {
			if n.Status == NodeRebooting {
				n.Status, n.Error = NodeStaged, "interrupted by a daemon restart"
			}
		}
		r.State, r.Reason = StateHalted, "daemon restarted during wave "+strconv.Itoa(wave+1)
		notes = append(notes, note{msg: fmt.Sprintf("rollout %s halted: %s", r.ID, r.Reason), audit: "rollout halt", r: r})
	}
	if len(notes) > 0 {
		if err := m.saveLocked(m.rollouts); err != nil {
			return nil, err
		}
	}
	m.reindex()
	m.emit(notes)
	return m, nil
}

// note is an event and audit entry to send once the lock is released.
type note struct {
	node    string
	msg     string
	audit   string // audit action; "" for none
	who     string
	result  string
	details []string // the audit entry's details
	r       *Rollout
}

func (m *Manager) emit(notes []note) {
	for _, n := range notes {
		m.env.Event(n.node, n.msg)
		if n.audit != "" {
			res := n.result
			if res == "" {
				res = n.msg
			}
			if n.who == "" && m.shared {
				n.who = "head " + m.head // which head ran the wave (several heads)
			}
			m.env.Audit(n.who, n.audit, n.r.ID+" "+n.r.Selection, len(n.r.Nodes), res, n.details)
		}
	}
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Staged returns the generation a node's next boot uses because of a
// rollout, if any. The boot server consults it before the inventory.
func (m *Manager) Staged(node string) (image, gen string, ok bool) {
	idx := m.index.Load()
	if idx == nil {
		return "", "", false
	}
	s, ok := (*idx)[node]
	return s.image, s.gen, ok
}

// reindex rebuilds the staged-assignment index; call with mu held (or
// before the Manager is shared).
func (m *Manager) reindex() {
	idx := map[string]staged{}
	for _, r := range m.rollouts {
		if r.State.Final() {
			continue
		}
		for _, n := range r.Nodes {
			switch n.Status {
			case NodeStaged, NodeRebooting, NodeDone:
				idx[n.Name] = staged{r.Image, r.Generation}
			case NodeReverted:
				if n.Previous != "" {
					idx[n.Name] = staged{n.Image, n.Previous}
				}
			}
		}
	}
	m.index.Store(&idx)
}

// find returns the rollout with id, or the newest one not final when id is
// "" (the newest of all when every one is final).
func (m *Manager) find(id string) (*Rollout, error) {
	if id == "" {
		for i := len(m.rollouts) - 1; i >= 0; i-- {
			if !m.rollouts[i].State.Final() {
				return m.rollouts[i], nil
			}
		}
		if len(m.rollouts) > 0 {
			return m.rollouts[len(m.rollouts)-1], nil
		}
		return nil, fmt.Errorf("%w: there are none", ErrNotFound)
	}
	for _, r := range m.rollouts {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrNotFound, id)
}

// Get returns a copy of a rollout ("" for the newest active one).
func (m *Manager) Get(id string) (*Rollout, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.find(id)
	if err != nil {
		return nil, err
	}
	return r.clone(), nil
}

// List returns copies of every rollout, oldest first.
func (m *Manager) List() []*Rollout {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Rollout, len(m.rollouts))
	for i, r := range m.rollouts {
		out[i] = r.clone()
	}
	return out
}

// update applies f to a copy of rollout id, saves every rollout with the
// copy in place and only then makes the copy current: a failed f or save
// changes nothing. It returns the new copy.
func (m *Manager) update(id string, f func(r *Rollout) ([]note, error)) (*Rollout, []note, error) {
	out, notes, err := m.updateOnce(id, f)
	if m.shared && errors.Is(err, state.ErrConflict) {
		// Another head changed the document: read it and apply f again.
		if serr := m.syncLocked(); serr != nil {
			return nil, nil, serr
		}
		out, notes, err = m.updateOnce(id, f)
	}
	return out, notes, err
}

func (m *Manager) updateOnce(id string, f func(r *Rollout) ([]note, error)) (*Rollout, []note, error) {
	r, err := m.find(id)
	if err != nil {
		return nil, nil, err
	}
	c := r.clone()
	notes, err := f(c)
	if err != nil {
		return nil, nil, err
	}
	c.Updated = m.now()
	all := make([]*Rollout, len(m.rollouts))
	for i, x := range m.rollouts {
		if x == r {
			x = c
		}
		all[i] = x
	}
	if err := m.saveLocked(all); err != nil {
		return nil, nil, err
	}
	m.rollouts = all
	m.reindex()
	m.changed()
	return c.clone(), notes, nil
}

// Plan works out a rollout of generation (an id or unique prefix, or
// image@id) on a selection without changing anything: which nodes change,
// which already have it, and the waves.
func (m *Manager) Plan(selection, generation string, opts Options) (*Rollout, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.plan(selection, generation, opts)
}

func (m *Manager) plan(selection, generation string, opts Options) (*Rollout, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if strings.TrimSpace(selection) == "" {
		return nil, errors.New("empty selection")
	}
	assigns, err := m.env.Resolve(selection)
	if err != nil {
		return nil, err
	}
	if len(assigns) == 0 {
		return nil, fmt.Errorf("selection %q names no node", selection)
	}
	img, gen, hasImage := strings.Cut(generation, "@")
	if !hasImage {
		img, gen = "", generation
	}
	if gen == "" {
		return nil, fmt.Errorf("generation %q: empty", generation)
	}
	if img == "" {
		img = assigns[0].Image
	}
	for _, a := range assigns {
		if a.Image == "" {
			return nil, fmt.Errorf("node %s has no image assigned", a.Node)
		}
		if a.Image != img {
			return nil, fmt.Errorf("node %s boots image %s, not %s: stage one image at a time", a.Node, a.Image, img)
		}
	}
	full, err := m.env.Generation(img, gen)
	if err != nil {
		return nil, err
	}
	busy := map[string]string{}
	for _, r := range m.rollouts {
		if r.State.Final() {
			continue
		}
		for _, n := range r.Nodes {
			busy[n.Name] = r.ID
		}
	}
	r := &Rollout{Selection: selection, Image: img, Generation: full, Options: opts}
	for _, a := range assigns {
		if id, ok := busy[a.Node]; ok {
			return nil, fmt.Errorf("%w: node %s is in rollout %s (promote, roll back or abort it first)", ErrBusy, a.Node, id)
		}
		if a.Generation == full {
			r.Unchanged = append(r.Unchanged, a.Node)
			continue
		}
		r.Nodes = append(r.Nodes, &Node{Name: a.Node, Group: a.Group, Image: a.Image, Previous: a.Generation,
			Pinned: a.Pinned, Status: NodeStaged})
	}
	size := opts.Wave.Of(len(r.Nodes))
	for i, n := range r.Nodes {
		if i%size == 0 {
			r.Waves = append(r.Waves, &Wave{Index: len(r.Waves), State: WavePending})
		}
		w := r.Waves[len(r.Waves)-1]
		n.Wave = w.Index
		w.Nodes = append(w.Nodes, n.Name)
	}
	return r, nil
}

// Create stages a generation on a selection: every node whose assignment
// differs gets the staged assignment at once; nothing is rebooted.
func (m *Manager) Create(selection, generation string, opts Options, who string) (*Rollout, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("rollouts are closed")
	}
	if err := m.freshLocked(); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	r, err := m.plan(selection, generation, opts)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	if len(r.Nodes) == 0 {
		m.mu.Unlock()
		return nil, fmt.Errorf("every selected node is already assigned %s@%s", r.Image, r.Generation)
	}
	m.next++
	r.ID = strconv.Itoa(m.next)
	r.State, r.Who = StateStaged, who
	r.Created = m.now()
	r.Updated = r.Created
	all := append(append([]*Rollout(nil), m.rollouts...), r)
	all = trimFinal(all)
	if err := m.saveLocked(all); err != nil {
		m.next--
		m.mu.Unlock()
		return nil, err
	}
	m.rollouts = all
	m.reindex()
	m.changed()
	out := r.clone()
	m.mu.Unlock()
	notes := []note{{msg: fmt.Sprintf("rollout %s: %s@%s staged on %d nodes (%d unchanged), %d waves of %s",
		r.ID, r.Image, short(r.Generation), len(r.Nodes), len(r.Unchanged), len(r.Waves), r.Wave),
		audit: "rollout create", who: who, r: out, result: "ok: " + r.Image + "@" + r.Generation}}
	for _, n := range r.Nodes {
		notes = append(notes, note{node: n.Name, msg: fmt.Sprintf("rollout %s: staged %s@%s (was %s), wave %d",
			r.ID, r.Image, short(r.Generation), orNone(short(n.Previous)), n.Wave+1)})
	}
	m.emit(notes)
	return out, nil
}

// trimFinal drops the oldest final rollouts beyond keepFinal.
func trimFinal(all []*Rollout) []*Rollout {
	final := 0
	for _, r := range all {
		if r.State.Final() {
			final++
		}
	}
	out := all[:0:0]
	for _, r := range all {
		if r.State.Final() && final > keepFinal {
			final--
			continue
		}
		out = append(out, r)
	}
	return out
}

func short(gen string) string {
	if len(gen) > 12 {
		return gen[:12]
	}
	return gen
}

// firstLine is s up to its first newline. A node's failure can carry its
// last console lines after the first line (the daemon's reboot-clean adds
// them): the rollout's reason, the node's error and its events keep one line
// each, the audit entry of the wave keeps the whole text.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Run starts rolling a staged rollout; Resume continues a halted one.
func (m *Manager) Run(id, who string) (*Rollout, error) {
	return m.start(id, who, false)
}

// Resume continues a halted rollout (or a completed one whose failed nodes
// are to be tried again): reverted nodes are staged again and every wave not
// passed runs.
func (m *Manager) Resume(id, who string) (*Rollout, error) {
	return m.start(id, who, true)
}

func (m *Manager) start(id, who string, resume bool) (*Rollout, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("rollouts are closed")
	}
	if err := m.freshLocked(); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	r, err := m.find(id)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	if _, busy := m.running[r.ID]; busy {
		m.mu.Unlock()
		return nil, fmt.Errorf("rollout %s: %w: its wave in flight is still finishing its reboots", r.ID, ErrState)
	}
	action := "rollout run"
	out, notes, err := m.update(r.ID, func(r *Rollout) ([]note, error) {
		switch {
		case !resume && r.State == StateStaged:
		case resume && (r.State == StateHalted || (r.State == StateCompleted && r.Counts()[NodeReverted] > 0)):
			action = "rollout resume"
			for _, n := range r.Nodes {
				if n.Status == NodeReverted {
					n.Status = NodeStaged
					r.Waves[n.Wave].State = WavePending
				}
			}
		default:
			verb := "run"
			if resume {
				verb = "resume"
			}
			return nil, fmt.Errorf("rollout %s is %s: %w: cannot %s", r.ID, r.State, ErrState, verb)
		}
		r.State, r.Reason = StateRunning, ""
		return []note{{msg: "rollout " + r.ID + ": " + strings.TrimPrefix(action, "rollout ") + " by " + orNone(who),
			audit: action, who: who, r: r, result: "ok"}}, nil
	})
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	if m.shared {
		// The leading head runs it (now if it is this one; else when its
		// watch brings the change).
		if m.leadCtx != nil {
			m.launchLocked(m.leadCtx, out.ID)
		}
		m.mu.Unlock()
		m.emit(notes)
		return out, nil
	}
	m.launchLocked(context.Background(), out.ID)
	m.mu.Unlock()
	m.emit(notes)
	return out, nil
}

// Wait blocks until rollout id has no wave in flight or ctx ends.
func (m *Manager) Wait(ctx context.Context, id string) error {
	m.mu.Lock()
	ctl := m.running[id]
	m.mu.Unlock()
	if ctl == nil {
		return nil
	}
	select {
	case <-ctl.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loop runs the waves of rollout id until all passed, one halts it or ctx
// ends (halt, abort, close).
func (m *Manager) loop(ctx context.Context, id string, ctl *runCtl) {
	defer m.wg.Done()
	defer close(ctl.done)
	defer func() {
		m.mu.Lock()
		delete(m.running, id)
		m.mu.Unlock()
		ctl.cancel()
	}()
	for {
		nodes, r, stop := m.nextWave(id)
		if stop {
			return
		}
		results := m.reboot(ctx, r, nodes)
		failed, halted := m.finishWave(ctx, id, results)
		if len(failed) > 0 && r.RebootBack && ctx.Err() == nil {
			m.rebootBack(ctx, id, failed)
		}
		if halted || ctx.Err() != nil {
			return
		}
	}
}

// nextWave marks the first wave not passed as running, or completes the
// rollout when there is none.
func (m *Manager) nextWave(id string) (nodes []string, snap *Rollout, stop bool) {
	m.mu.Lock()
	var notes []note
	defer func() { m.mu.Unlock(); m.emit(notes) }()
	cur, err := m.find(id)
	if err != nil || cur.State != StateRunning {
		return nil, nil, true
	}
	out, ns, err := m.update(id, func(r *Rollout) ([]note, error) {
		if r.State != StateRunning {
			return nil, errNotRunning // another head halted it
		}
		for _, w := range r.Waves {
			if w.State == WavePassed {
				continue
			}
			w.State, w.Started, w.Finished, w.OK, w.Failed = WaveRunning, m.now(), time.Time{}, 0, 0
			for _, name := range w.Nodes {
				n := r.Node(name)
				switch n.Status {
				case NodeStaged:
					n.Status, n.Error = NodeRebooting, ""
					n.Attempts++
					nodes = append(nodes, name)
				case NodeDone:
					w.OK++
				}
			}
			return []note{{msg: fmt.Sprintf("rollout %s: wave %d/%d rebooting %s", r.ID, w.Index+1, len(r.Waves),
				strings.Join(nodes, ","))}}, nil
		}
		r.State, r.Reason = StateCompleted, "every wave passed"
		c := r.Counts()
		res := fmt.Sprintf("%d done, %d reverted", c[NodeDone], c[NodeReverted])
		return []note{{msg: "rollout " + r.ID + " completed: " + res, audit: "rollout complete", r: r, result: res}}, nil
	})
	if errors.Is(err, errNotRunning) {
		return nil, nil, true
	}
	if err != nil {
		notes = append(notes, note{msg: "rollout " + id + ": saving state failed: " + err.Error()})
		return nil, nil, true
	}
	notes = ns
	if out.State != StateRunning {
		return nil, nil, true
	}
	for _, n := range nodes {
		notes = append(notes, note{node: n, msg: fmt.Sprintf("rollout %s: rebooting onto %s@%s", id, out.Image, short(out.Generation))})
	}
	return nodes, out, false
}

// reboot runs one wave's nodes through Env.Reboot, MaxInFlight at a time.
func (m *Manager) reboot(ctx context.Context, r *Rollout, nodes []string) []Result {
	timeout := r.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	chunk := r.MaxInFlight
	if chunk <= 0 {
		chunk = len(nodes)
	}
	var out []Result
	for i := 0; i < len(nodes); i += chunk {
		if ctx.Err() != nil || (i > 0 && !m.isRunning(r.ID)) {
			break // halted: the reboots in flight finished, no more start
		}
		out = append(out, m.env.Reboot(ctx, nodes[i:min(i+chunk, len(nodes))], timeout, r.Via)...)
	}
	return out
}

// isRunning says whether rollout id is still running (not halted meanwhile).
func (m *Manager) isRunning(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.find(id)
	return err == nil && r.State == StateRunning
}

// finishWave records a wave's results: nodes that checked in with the staged
// generation are done, the others go back to their previous generation. The
// rollout halts when the failures pass the threshold. When ctx ended
// (halt, abort, close) nodes without a result are staged again (restored
// when aborting) and the wave is pending.
func (m *Manager) finishWave(ctx context.Context, id string, results []Result) (failed []string, halted bool) {
	m.mu.Lock()
	var notes []note
	defer func() { m.mu.Unlock(); m.emit(notes) }()
	byNode := map[string]Result{}
	for _, res := range results {
		byNode[res.Node] = res
	}
	stopped := ctx.Err() != nil
	out, ns, err := m.update(id, func(r *Rollout) ([]note, error) {
		var w *Wave
		for _, x := range r.Waves {
			if x.State == WaveRunning {
				w = x
			}
		}
		if w == nil {
			return nil, nil
		}
		var notes, fails []note
		var details, full []string
		notRun := 0
		for _, name := range w.Nodes {
			n := r.Node(name)
			if n.Status != NodeRebooting {
				continue
			}
			res, ok := byNode[name]
			switch {
			case ok && res.OK && res.Generation == r.Generation:
				n.Status = NodeDone
				w.OK++
				notes = append(notes, note{node: name, msg: fmt.Sprintf("rollout %s: checked in with %s@%s", r.ID, r.Image, short(r.Generation))})
			case stopped:
				n.Status, n.Error = NodeStaged, "interrupted: "+string(r.State)
				if r.State == StateAborted {
					n.Status = NodeRestored
				}
			case !ok && r.State == StateHalted:
				// halted before its turn in the wave came: never rebooted
				n.Status, n.Error = NodeStaged, ""
				notRun++
			default:
				msg := res.Error
				if !ok {
					msg = name + ": no result"
				} else if res.OK {
					msg = fmt.Sprintf("%s: checked in with generation %s, not %s", name, orNone(short(res.Generation)), short(r.Generation))
				}
				n.Status, n.Error = NodeReverted, firstLine(msg)
				w.Failed++
				failed = append(failed, name)
				details = append(details, n.Error)
				full = append(full, msg)
				fails = append(fails, note{node: name, msg: fmt.Sprintf("rollout %s: failed, back to %s@%s: %s", r.ID, n.Image, orNone(short(n.Previous)), n.Error)})
			}
		}
		w.Finished = m.now()
		notes = append(notes, fails...)
		switch {
		case stopped && w.Failed <= r.MaxFailures:
			w.State = WavePending
			if w.OK == len(w.Nodes) {
				w.State = WavePassed
			}
			if r.State == StateAborted {
				m.restoreLocked(r)
			}
			return notes, nil
		case w.Failed > r.MaxFailures:
			w.State = WaveFailed
			halted = true
			if r.State == StateRunning {
				r.State = StateHalted
			}
			if r.State == StateAborted {
				m.restoreLocked(r)
			}
			r.Reason = haltedBy(r.Reason) + fmt.Sprintf("wave %d: %d of %d nodes failed (at most %d allowed): %s", w.Index+1, w.Failed,
				len(w.Nodes), r.MaxFailures, strings.Join(details, "; "))
			notes = append(notes, note{msg: "rollout " + r.ID + " halted: " + r.Reason, audit: "rollout halt", r: r,
				result: r.Reason, details: full})
		case notRun > 0:
			w.State = WavePending
			r.Reason = haltedBy(r.Reason) + fmt.Sprintf("wave %d stopped after its reboots in flight: %d ok, %d failed, %d not started",
				w.Index+1, w.OK, w.Failed, notRun)
			notes = append(notes, note{msg: "rollout " + r.ID + ": " + r.Reason})
		default:
			w.State = WavePassed
			res := fmt.Sprintf("wave %d/%d passed: %d ok, %d failed", w.Index+1, len(r.Waves), w.OK, w.Failed)
			if r.State == StateHalted {
				r.Reason = haltedBy(r.Reason) + "wave " + strconv.Itoa(w.Index+1) + " finished"
			}
			notes = append(notes, note{msg: "rollout " + r.ID + ": " + res, audit: "rollout wave", r: r, result: res, details: full})
		}
		return notes, nil
	})
	if err != nil {
		notes = append(notes, note{msg: "rollout " + id + ": saving state failed: " + err.Error()})
		return nil, true
	}
	_ = out
	notes = ns
	return failed, halted
}

// haltedBy returns the "halted by WHO; " prefix of a reason Halt wrote
// while a wave was in flight, "" for any other reason.
func haltedBy(reason string) string {
	if !strings.HasPrefix(reason, "halted by ") {
		return ""
	}
	who, _, _ := strings.Cut(reason, ";")
	return who + "; "
}

// rebootBack reboots reverted nodes onto their previous generation.
func (m *Manager) rebootBack(ctx context.Context, id string, nodes []string) {
	m.mu.Lock()
	r, err := m.find(id)
	if err != nil {
		m.mu.Unlock()
		return
	}
	snap := r.clone()
	m.mu.Unlock()
	results := m.reboot(ctx, snap, nodes)
	m.mu.Lock()
	var notes []note
	_, notes, err = m.update(id, func(r *Rollout) ([]note, error) {
		var ns []note
		for _, res := range results {
			n := r.Node(res.Node)
			if n == nil {
				continue
			}
			n.RebootedBack = "ok"
			if !res.OK {
				n.RebootedBack = firstLine(res.Error)
			}
			ns = append(ns, note{node: n.Name, msg: fmt.Sprintf("rollout %s: rebooted back onto %s@%s: %s", r.ID, n.Image,
				orNone(short(n.Previous)), n.RebootedBack)})
		}
		return ns, nil
	})
	m.mu.Unlock()
	if err == nil {
		m.emit(notes)
	}
}

// restoreLocked gives every node that did not take the generation its
// previous assignment back.
func (m *Manager) restoreLocked(r *Rollout) {
	for _, n := range r.Nodes {
		if n.Status == NodeStaged || n.Status == NodeRebooting {
			n.Status = NodeRestored
		}
	}
}

// stop cancels the loop of rollout id and waits for it to record how its
// wave ended; call without mu.
func (m *Manager) stop(id string) {
	m.mu.Lock()
	ctl := m.running[id]
	m.mu.Unlock()
	if ctl != nil {
		ctl.cancel()
		<-ctl.done
	}
}

// Halt stops a running rollout after the wave in flight: that wave's
// reboots are not cut off (a node is never left half-rebooted, its PXE boot
// flag set); they finish and are recorded as usual, and no further wave
// starts until Resume. Halt does not wait for the wave.
func (m *Manager) Halt(id, who string) (*Rollout, error) {
	return m.transition(id, who, "halt", func(r *Rollout) error {
		if r.State != StateRunning {
			return fmt.Errorf("rollout %s is %s: %w: only a running rollout halts", r.ID, r.State, ErrState)
		}
		r.State, r.Reason = StateHalted, "halted by "+orNone(who)
		for _, w := range r.Waves {
			if w.State == WaveRunning {
				r.Reason += fmt.Sprintf("; wave %d finishes its reboots", w.Index+1)
			}
		}
		return nil
	}, false)
}

// Abort stops a rollout for good: nodes that did not take the generation get
// their previous assignment back; nodes that did keep it until Promote or
// Rollback.
func (m *Manager) Abort(id, who string) (*Rollout, error) {
	return m.transition(id, who, "abort", func(r *Rollout) error {
		switch r.State {
		case StateStaged, StateRunning, StateHalted:
		default:
			return fmt.Errorf("rollout %s is %s: %w: cannot abort", r.ID, r.State, ErrState)
		}
		if r.State != StateRunning {
			m.restoreLocked(r)
		}
		r.State, r.Reason = StateAborted, "aborted by "+orNone(who)
		return nil
	}, true)
}

// Rollback restores every node's previous assignment (nodes already running
// the staged generation show as dirty until they are rebooted).
func (m *Manager) Rollback(id, who string) (*Rollout, error) {
	return m.transition(id, who, "rollback", func(r *Rollout) error {
		switch r.State {
		case StateRunning:
			return fmt.Errorf("rollout %s is running: %w: halt it first", r.ID, ErrState)
		case StatePromoted, StateRolledBack:
			return fmt.Errorf("rollout %s is %s: %w: cannot roll back", r.ID, r.State, ErrState)
		}
		for _, n := range r.Nodes {
			n.Status = NodeRestored
		}
		r.State, r.Reason = StateRolledBack, "rolled back by "+orNone(who)
		return nil
	}, false)
}

// Promote writes the staged generation to the inventory as the default of
// the rollout's nodes (see Env.Promote) and ends the rollout. Every node must
// have taken the generation.
func (m *Manager) Promote(id, who string) (*Rollout, error) {
	m.mu.Lock()
	err := m.freshLocked()
	var r *Rollout
	if err == nil {
		r, err = m.find(id)
	}
	if err == nil && r.State != StateCompleted {
		err = fmt.Errorf("rollout %s is %s: %w: only a completed rollout is promoted", r.ID, r.State, ErrState)
	}
	if err == nil {
		for _, n := range r.Nodes {
			if n.Status != NodeDone {
				err = fmt.Errorf("rollout %s: %w: node %s is %s (resume to retry it, or roll back)", r.ID, ErrState, n.Name, n.Status)
				break
			}
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	// The inventory write happens under mu so that no other step of this
	// rollout interleaves; the staged index keeps the same answer until the
	// state below is saved, so nodes boot the same generation throughout.
	snap := r.clone()
	what, err := m.env.Promote(snap)
	if err != nil {
		m.mu.Unlock()
		m.env.Audit(who, "rollout promote", snap.ID+" "+snap.Selection, len(snap.Nodes), err.Error(), nil)
		return nil, fmt.Errorf("rollout %s: promote: %w", snap.ID, err)
	}
	out, notes, err := m.update(r.ID, func(r *Rollout) ([]note, error) {
		r.State, r.Promoted, r.Reason = StatePromoted, what, "promoted by "+orNone(who)
		return []note{{msg: "rollout " + r.ID + " promoted: " + what, audit: "rollout promote", who: who, r: r, result: "ok: " + what}}, nil
	})
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m.emit(notes)
	return out, nil
}

func (m *Manager) transition(id, who, verb string, f func(r *Rollout) error, stopLoop bool) (*Rollout, error) {
	m.mu.Lock()
	err := m.freshLocked()
	var cur *Rollout
	if err == nil {
		cur, err = m.find(id)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	rid := cur.ID
	out, notes, err := m.update(rid, func(r *Rollout) ([]note, error) {
		if err := f(r); err != nil {
			return nil, err
		}
		var ns []note
		ns = append(ns, note{msg: "rollout " + r.ID + ": " + r.Reason, audit: "rollout " + verb, who: who, r: r, result: "ok"})
		for _, n := range r.Nodes {
			if n.Status == NodeRestored {
				ns = append(ns, note{node: n.Name, msg: fmt.Sprintf("rollout %s: %s: back to %s@%s", r.ID, verb, n.Image, orNone(short(n.Previous)))})
			}
		}
		return ns, nil
	})
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m.emit(notes)
	if stopLoop {
		m.stop(rid)
		if r, err := m.Get(rid); err == nil {
			out = r
		}
	}
	return out, nil
}

// Close halts every running rollout (its in-flight nodes staged again) and
// waits for their loops to end.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	var ids []string
	for id := range m.running {
		ids = append(ids, id)
	}
	var notes []note
	for _, id := range ids {
		if m.shared {
			break // the rollout keeps running: another head takes it over
		}
		_, ns, err := m.update(id, func(r *Rollout) ([]note, error) {
			if r.State != StateRunning {
				return nil, nil
			}
			r.State, r.Reason = StateHalted, "daemon stopped during a wave"
			return []note{{msg: "rollout " + r.ID + " halted: " + r.Reason, audit: "rollout halt", r: r}}, nil
		})
		if err == nil {
			notes = append(notes, ns...)
		}
	}
	m.mu.Unlock()
	m.emit(notes)
	for _, id := range ids {
		m.stop(id)
	}
	m.wg.Wait()
	m.mu.Lock()
	m.closeWatchers()
	m.mu.Unlock()
}
