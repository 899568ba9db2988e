package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/bootstate"
)

// Defaults of Options.
const (
	DefaultConcurrency  = 32
	DefaultTimeout      = apitype.DefaultRebootTimeout // the API documents it
	DefaultKexecTimeout = apitype.DefaultKexecTimeout
	// DefaultAgentWait covers an agent between two polls, or one whose
	// poll is in flight.
	DefaultAgentWait = 30 * time.Second
)

// Env is what RebootClean needs from the outside world for one node.
type Env interface {
	// Prepare is the render check: it returns the generation the node's
	// next boot gets, or an error naming the node when it gets none
	// ("node n07: image compute has no published generation").
	Prepare(node string) (generation string, err error)
	// BootdevPXE sets the node's next boot (once) to PXE.
	BootdevPXE(ctx context.Context, node string) error
	// Cycle power-cycles the node (powering it on when it is off) and
	// records the action with the Tracker, as a KindPower event.
	Cycle(ctx context.Context, node string) error
}

// KexecEnv is what an Env offers when it can reach node agents: an Env
// that implements it gets kexec clean reboots (Options.Via).
type KexecEnv interface {
	// AgentAlive reports whether the node's agent is polling now.
	AgentAlive(node string) bool
	// Kexec hands the node's agent its instruction to kexec into its
	// assigned generation, waiting for the agent's poll until ctx ends,
	// and records it with the Tracker (a KindKexec event).
	Kexec(ctx context.Context, node string) error
}

// Tracker is the boot-state tracker, as *bootstate.Tracker implements it.
type Tracker interface {
	Get(node string) (bootstate.NodeState, bool)
	Subscribe(buffer int) *bootstate.Subscription
	Apply(ev bootstate.Event) bootstate.NodeState
}

// Options tune RebootClean. The zero value uses the defaults.
type Options struct {
	// Concurrency bounds how many nodes are in their BMC steps (bootdev,
	// cycle) at once (default DefaultConcurrency). Waiting for the boot is
	// not bounded: a waiting node costs one parked goroutine.
	Concurrency int
	// Timeout is how long a node may take from its power cycle to a clean
	// check-in (default DefaultTimeout).
	Timeout time.Duration
	// OverlayThreshold is the overlay size above which a node is dirty
	// (the inventory's overlay_dirty_bytes; 0: any write makes it dirty).
	OverlayThreshold int64
	// Via is the path: ViaAuto (""), ViaKexec or ViaPower.
	Via string
	// KexecTimeout is how long, with ViaAuto, a node may take from the
	// kexec instruction to a clean check-in before the power fallback
	// (default DefaultKexecTimeout). With ViaKexec, Timeout applies.
	KexecTimeout time.Duration
	// AgentWait bounds the wait for the agent's poll to hand it the
	// instruction (default DefaultAgentWait).
	AgentWait time.Duration
	// OnProgress, if set, sees every step and boot-stage change of every
	// node. Calls are serialized; a slow OnProgress slows the run down.
	OnProgress func(Progress)
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// RebootClean reboots nodes to a clean state and returns one Result per
// node, in the order of nodes. For each node: the render check
// (Env.Prepare), then the path Options.Via picks: by kexec (KexecEnv: the
// node's agent gets the instruction and the run follows the boot it
// starts; with ViaAuto a kexec that is not delivered, fails or does not
// check in clean within KexecTimeout falls back to power), or by power:
// next boot from PXE, a power cycle, then it follows the
// node's boot state until the node checks in, after a boot it fetched from
// us since the cycle, with the assigned generation and not dirty. A
// check-in with another generation, or dirty, keeps it waiting; a failed
// boot fails the node at once; Timeout fails it naming the stage it was in.
// Cancelling ctx fails every node still under way. Each node's history gets
// KindInfo events saying what the workflow did.
func RebootClean(ctx context.Context, env Env, tr Tracker, nodes []string, opts Options) []Result {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.KexecTimeout <= 0 {
		opts.KexecTimeout = DefaultKexecTimeout
	}
	if opts.AgentWait <= 0 {
		opts.AgentWait = DefaultAgentWait
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &run{env: env, tr: tr, opts: opts, sem: make(chan struct{}, opts.Concurrency),
		watch: map[string]chan struct{}{}, gone: make(chan struct{})}
	for _, n := range nodes {
		r.watch[n] = make(chan struct{}, 1)
	}
	// Subscribe before anything is sent so that no event falls between.
	sub := tr.Subscribe(4096)
	stopped := make(chan struct{})
	go r.dispatch(sub, stopped)
	defer func() { sub.Close(); <-stopped }()

	results := make([]Result, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = r.node(ctx, n)
		}()
	}
	wg.Wait()
	return results
}

type run struct {
	env   Env
	tr    Tracker
	opts  Options
	sem   chan struct{}
	watch map[string]chan struct{} // read-only once the run starts
	gone  chan struct{}            // closed when the subscription ends early
	pmu   sync.Mutex
}

// dispatch wakes the worker of every node an event is about. When the
// subscription dropped events, every worker is woken: each re-reads its
// node's state, so nothing is lost but time.
func (r *run) dispatch(sub *bootstate.Subscription, stopped chan struct{}) {
	defer close(stopped)
	var dropped uint64
	for ev := range sub.C {
		if d := sub.Dropped(); d != dropped {
			dropped = d
			for _, c := range r.watch {
				wake(c)
			}
			continue
		}
		if c, ok := r.watch[ev.Node]; ok {
			wake(c)
		}
	}
	close(r.gone)
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (r *run) progress(p Progress) {
	if r.opts.OnProgress == nil {
		return
	}
	if p.Time.IsZero() {
		p.Time = r.opts.Now()
	}
	r.pmu.Lock()
	defer r.pmu.Unlock()
	r.opts.OnProgress(p)
}

func (r *run) info(node, msg string) {
	r.tr.Apply(bootstate.Event{Node: node, Kind: bootstate.KindInfo, Proto: "api", Message: "reboot-clean: " + msg})
}

// node runs the workflow for one node.
func (r *run) node(ctx context.Context, node string) (res Result) {
	start := r.opts.Now()
	res = Result{Node: node, Step: StepRender}
	fail := func(format string, args ...any) Result {
		res.Error = node + ": " + fmt.Sprintf(format, args...)
		res.Duration = r.opts.Now().Sub(start)
		r.info(node, "failed: "+strings.TrimPrefix(res.Error, node+": "))
		r.progress(Progress{Node: node, Step: StepFailed, Stage: res.Stage, Generation: res.Generation, Message: res.Error})
		res.Step = StepFailed
		return res
	}

	r.progress(Progress{Node: node, Step: StepRender})
	gen, err := r.env.Prepare(node)
	if err != nil {
		res.Error = err.Error()
		if !strings.Contains(res.Error, node) {
			res.Error = node + ": " + res.Error
		}
		res.Step, res.Duration = StepFailed, r.opts.Now().Sub(start)
		r.progress(Progress{Node: node, Step: StepFailed, Message: res.Error})
		return res
	}
	res.Generation = gen

	kx, canKexec := r.env.(KexecEnv)
	switch r.opts.Via {
	case ViaPower:
		res.Why = "asked for power"
	case ViaKexec:
		if !canKexec {
			return fail("kexec: this daemon cannot reach node agents")
		}
		res.Via, res.Why = ViaKexec, "asked for kexec"
	default:
		if canKexec && kx.AgentAlive(node) {
			res.Via, res.Why = ViaKexec, "agent polling"
		} else {
			res.Why = "agent not polling"
		}
	}
	if res.Via == ViaKexec {
		why, ok := r.kexec(ctx, kx, node, gen, &res)
		switch {
		case ok:
			res.OK, res.Step = true, StepClean
			res.Duration = r.opts.Now().Sub(start)
			return res
		case r.opts.Via == ViaKexec || ctx.Err() != nil:
			return fail("%s", why)
		}
		res.Why = why + ": fell back to power"
		r.info(node, why+"; falling back to a power cycle")
	}
	res.Via = ViaPower

	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return fail("cancelled before the power cycle")
	}
	res.Step = StepBootdev
	r.progress(Progress{Node: node, Step: StepBootdev, Generation: gen})
	if err := r.env.BootdevPXE(ctx, node); err != nil {
		<-r.sem
		return fail("bootdev pxe: %v", err)
	}
	r.info(node, "bootdev pxe set")
	res.Step = StepCycle
	r.progress(Progress{Node: node, Step: StepCycle, Generation: gen})
	cycled := r.opts.Now()
	err = r.env.Cycle(ctx, node)
	<-r.sem
	if err != nil {
		return fail("power cycle: %v", err)
	}
	r.info(node, "power cycle sent")

	w := waiter{node: node, gen: gen, cycled: cycled, threshold: r.opts.OverlayThreshold}
	if msg, ok := r.follow(ctx, &w, &res, r.opts.Timeout); !ok {
		return fail("%s", msg)
	}
	res.OK, res.Step = true, StepClean
	res.Duration = r.opts.Now().Sub(start)
	return res
}

// kexec sends the node's agent the kexec instruction and follows the boot
// it starts for KexecTimeout (Timeout when kexec is all there is). It
// reports whether the node came back clean, and if not why, for the
// result's error or the power fallback.
func (r *run) kexec(ctx context.Context, kx KexecEnv, node, gen string, res *Result) (string, bool) {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return "cancelled before the kexec", false
	}
	res.Step = StepKexec
	r.progress(Progress{Node: node, Step: StepKexec, Generation: gen})
	sent := r.opts.Now()
	dctx, cancel := context.WithTimeout(ctx, r.opts.AgentWait)
	err := kx.Kexec(dctx, node)
	cancel()
	<-r.sem
	if err != nil {
		return fmt.Sprintf("kexec not delivered: %v", err), false
	}
	r.info(node, "kexec instruction sent to the agent")
	timeout := r.opts.KexecTimeout
	if r.opts.Via == ViaKexec {
		timeout = r.opts.Timeout
	}
	// Only a boot that fetched from us after the instruction counts: the
	// agent's own kernel and initrd fetches, then the new kernel's.
	w := waiter{node: node, gen: gen, cycled: sent, threshold: r.opts.OverlayThreshold, afterKexec: true}
	msg, ok := r.follow(ctx, &w, res, timeout)
	if !ok {
		return "kexec: " + msg, false
	}
	return "", true
}

// follow watches the node's boot state after a power cycle or a kexec
// (w.cycled) until it checks in clean (true), its boot fails, the timeout
// passes or ctx ends (false, with why).
func (r *run) follow(ctx context.Context, w *waiter, res *Result, timeout time.Duration) (string, bool) {
	node, gen := w.node, w.gen
	res.Step = StepBoot
	timer := time.NewTimer(timeout - r.opts.Now().Sub(w.cycled))
	defer timer.Stop()
	c := r.watch[node]
	for {
		st, _ := r.tr.Get(node)
		verdict := w.look(st)
		for _, m := range w.newMarks(st) {
			msg := ""
			switch {
			case m.Unproven:
				msg = "unproven request (by MAC) seen; stage not moved"
			case m.Stage == st.Stage:
				msg = st.Error
			}
			if !m.Unproven {
				res.Stage = m.Stage
			}
			r.progress(Progress{Node: node, Step: StepBoot, Stage: m.Stage, Generation: gen, Message: msg, Time: m.Time})
		}
		switch verdict {
		case verdictClean:
			r.info(node, "clean, generation "+gen)
			r.progress(Progress{Node: node, Step: StepClean, Stage: st.Stage, Generation: gen})
			return "", true
		case verdictFailed:
			return fmt.Sprintf("boot failed in stage %s: %s", w.lastStage(), st.Error), false
		}
		select {
		case <-c:
		case <-r.gone:
			st, _ := r.tr.Get(node)
			if w.look(st) == verdictClean {
				continue
			}
			return "boot-state tracker closed while " + w.where(st), false
		case <-timer.C:
			st, _ := r.tr.Get(node) // one last look: an event may have been dropped
			if w.look(st) == verdictClean {
				continue
			}
			what := "check-in"
			if w.checkedIn {
				what = "clean check-in"
			}
			return fmt.Sprintf("no %s within %s: %s", what, timeout, w.where(st)), false
		case <-ctx.Done():
			return "cancelled while " + w.where(st), false
		}
	}
}

type verdict int

const (
	verdictWait verdict = iota
	verdictClean
	verdictFailed
)

// waiter judges one node's boot state after the power cycle.
type waiter struct {
	node, gen string
	cycled    time.Time
	threshold int64
	// afterKexec: the boot follows a kexec instruction, not a power cycle;
	// the kexec mark alone does not make it a boot (a fetch must follow).
	afterKexec bool

	booting   bool            // a boot fetched from us since the cycle
	inStage   bootstate.Stage // the last in-progress stage seen
	checkedIn bool            // a check-in after our boot was seen
	dirty     []string        // why the last check-in was not clean

	last     bootstate.StageMark // the last timeline mark reported
	reported int                 // how many marks of the current timeline were looked at
	first    time.Time           // time of the current timeline's first mark
}

// newMarks returns the stage marks of st's timeline since the power cycle
// that were not returned before: every stage the node passed, even when
// several events came between two looks.
func (w *waiter) newMarks(st bootstate.NodeState) []bootstate.StageMark {
	tl := st.Timeline
	if len(tl) == 0 {
		return nil
	}
	if !tl[0].Time.Equal(w.first) || w.reported > len(tl) { // a new boot (or a trimmed timeline)
		w.first, w.reported = tl[0].Time, 0
	}
	var out []bootstate.StageMark
	for _, m := range tl[w.reported:] {
		if m.Time.Before(w.cycled) || m == w.last {
			continue
		}
		out = append(out, m)
		w.last = m
	}
	w.reported = len(tl)
	return out
}

func (w *waiter) lastStage() bootstate.Stage {
	if w.inStage == "" {
		return bootstate.StagePoweringOn
	}
	return w.inStage
}

func (w *waiter) look(st bootstate.NodeState) verdict {
	for _, m := range st.Timeline {
		// An unproven mark (a request that only named the node by MAC)
		// is no proof that the node booted from us.
		if m.Time.Before(w.cycled) || !m.Stage.InProgress() || m.Unproven {
			continue
		}
		w.inStage = m.Stage
		if m.Stage != bootstate.StagePoweringOn && (!w.afterKexec || m.Stage != bootstate.StageKexec) {
			w.booting = true
		}
	}
	switch st.Stage {
	case bootstate.StageBooted:
		if !w.booting || st.LastCheckin.Before(w.cycled) {
			return verdictWait // the old OS still talking, before it went down
		}
		w.checkedIn = true
		if dirty, why := st.Dirty(w.gen, w.threshold); dirty {
			w.dirty = why
			return verdictWait
		}
		return verdictClean
	case bootstate.StageFailed:
		if !st.StageSince.Before(w.cycled) {
			return verdictFailed
		}
	}
	return verdictWait
}

// where says where the node is, for a timeout or cancel message.
func (w *waiter) where(st bootstate.NodeState) string {
	clock := func(t time.Time) string { return t.Local().Format("15:04:05") }
	switch {
	case w.checkedIn && len(w.dirty) > 0:
		return "checked in dirty: " + strings.Join(w.dirty, "; ")
	case st.Stage == bootstate.StageStalled && w.inStage != "":
		return fmt.Sprintf("stalled in stage %s since %s", w.inStage, clock(st.LastProgress))
	case st.Stage.InProgress() && !st.StageSince.Before(w.cycled):
		return fmt.Sprintf("in stage %s since %s", st.Stage, clock(st.StageSince))
	default:
		return fmt.Sprintf("no boot seen since the power cycle at %s (stage %s)", clock(w.cycled), stageName(st.Stage))
	}
}

func stageName(s bootstate.Stage) string {
	if s == "" {
		return "unknown"
	}
	return string(s)
}

// Summary counts results: "5 ok, 1 failed".
func Summary(results []Result) string {
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
		}
	}
	return fmt.Sprintf("%d ok, %d failed", len(results)-failed, failed)
}

// ErrNoNodes is returned by callers given an empty selection.
var ErrNoNodes = errors.New("reboot-clean: the selection names no nodes")
