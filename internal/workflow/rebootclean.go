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
	DefaultConcurrency = 32
	DefaultTimeout     = apitype.DefaultRebootTimeout // the API documents it
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
	// OnProgress, if set, sees every step and boot-stage change of every
	// node. Calls are serialized; a slow OnProgress slows the run down.
	OnProgress func(Progress)
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// RebootClean reboots nodes to a clean state and returns one Result per
// node, in the order of nodes. For each node: the render check
// (Env.Prepare), next boot from PXE, a power cycle, then it follows the
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

	res.Step = StepBoot
	w := waiter{node: node, gen: gen, cycled: cycled, threshold: r.opts.OverlayThreshold}
	timer := time.NewTimer(r.opts.Timeout - r.opts.Now().Sub(cycled))
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
			res.OK, res.Step = true, StepClean
			res.Duration = r.opts.Now().Sub(start)
			r.info(node, "clean, generation "+gen)
			r.progress(Progress{Node: node, Step: StepClean, Stage: st.Stage, Generation: gen})
			return res
		case verdictFailed:
			return fail("boot failed in stage %s: %s", w.lastStage(), st.Error)
		}
		select {
		case <-c:
		case <-r.gone:
			st, _ := r.tr.Get(node)
			if w.look(st) == verdictClean {
				continue
			}
			return fail("boot-state tracker closed while %s", w.where(st))
		case <-timer.C:
			st, _ := r.tr.Get(node) // one last look: an event may have been dropped
			if w.look(st) == verdictClean {
				continue
			}
			what := "check-in"
			if w.checkedIn {
				what = "clean check-in"
			}
			return fail("no %s within %s: %s", what, r.opts.Timeout, w.where(st))
		case <-ctx.Done():
			return fail("cancelled while %s", w.where(st))
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
		if m.Stage != bootstate.StagePoweringOn {
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
