package bootstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/fanout"
)

// Defaults of Options.
const (
	DefaultStallTimeout     = 2 * time.Minute
	DefaultHistoryPerNode   = 200
	DefaultGlobalHistory    = 10000
	DefaultRoutineHistory   = 10000
	DefaultProgressInterval = 250 * time.Millisecond
	DefaultFlushInterval    = 200 * time.Millisecond
	DefaultFlushEvents      = 1000
	defaultSubBuffer        = 64
	maxPending              = 100000 // events waiting for the store before new ones are not persisted
)

// Options configure a Tracker. The zero value gives a memory-only tracker
// with the defaults.
type Options struct {
	// Store persists state and history; nil keeps everything in memory.
	// The caller opens and closes it; Tracker.Close flushes to it.
	Store Persister
	// StallTimeout is how long a boot stage may go without progress
	// before the node is stalled (default 2 min).
	StallTimeout time.Duration
	// HistoryPerNode bounds each node's event history (default 200).
	HistoryPerNode int
	// GlobalHistory bounds the history of all events but the routine ones
	// (Kind.Routine: check-ins, progress), used by Recent, Notable and
	// Since (default 10,000); RoutineHistory bounds the routine ones apart
	// (default 10,000), so that they never push the others out.
	GlobalHistory  int
	RoutineHistory int
	// ProgressInterval is the least time between two recorded Progress
	// events of a node (default 250 ms); Progress events in between only
	// update the node's Bytes. Negative records every one.
	ProgressInterval time.Duration
	// FlushInterval and FlushEvents say when a batch is written to the
	// Store: every FlushInterval (default 200 ms) or as soon as
	// FlushEvents (default 1000) events are waiting.
	FlushInterval time.Duration
	FlushEvents   int
	// Clock returns the current time (default time.Now); for tests.
	Clock func() time.Time
	// Logger receives persistence errors (default slog.Default()).
	Logger *slog.Logger

	// afterFlush, when set, is called with the highest Seq written after
	// every successful batch; for the crash test.
	afterFlush func(seq uint64)
}

// Tracker follows every node through its boot. It is safe for concurrent
// use. Apply never blocks on I/O or on subscribers.
type Tracker struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	seq     uint64
	nodes   map[string]*nodeEntry
	global  ring              // events of every kind but the routine ones
	routine ring              // check-ins and progress (Kind.Routine)
	subs    fanout.Hub[Event] // published under mu, in Seq order
	closed  bool
	pending []BatchEvent        // events not yet in the store
	spare   []BatchEvent        // the flusher's previous batch, reused
	dirty   map[string]struct{} // nodes whose state is not yet in the store
	forgets map[string]struct{} // nodes to delete from the store
	dropped uint64              // events not persisted because pending was full
	lastErr error

	flushMu   sync.Mutex // one batch at a time
	closeOnce sync.Once
	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
}

type nodeEntry struct {
	st           NodeState
	hist         ring
	lastRecorded time.Time // of the last recorded Progress or Fetch
}

// New returns a Tracker. With a Store, the state and history saved there
// are loaded back (a node that was mid-boot keeps its stage; stall
// detection takes over) and a background goroutine persists changes until
// Close.
func New(opts Options) (*Tracker, error) {
	switch {
	case opts.StallTimeout < 0:
		return nil, fmt.Errorf("bootstate: stall timeout %v is negative", opts.StallTimeout)
	case opts.HistoryPerNode < 0:
		return nil, fmt.Errorf("bootstate: history per node %d is negative", opts.HistoryPerNode)
	case opts.GlobalHistory < 0:
		return nil, fmt.Errorf("bootstate: global history %d is negative", opts.GlobalHistory)
	case opts.RoutineHistory < 0:
		return nil, fmt.Errorf("bootstate: routine history %d is negative", opts.RoutineHistory)
	case opts.FlushInterval < 0:
		return nil, fmt.Errorf("bootstate: flush interval %v is negative", opts.FlushInterval)
	case opts.FlushEvents < 0:
		return nil, fmt.Errorf("bootstate: flush events %d is negative", opts.FlushEvents)
	}
	if opts.StallTimeout == 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	if opts.HistoryPerNode == 0 {
		opts.HistoryPerNode = DefaultHistoryPerNode
	}
	if opts.GlobalHistory == 0 {
		opts.GlobalHistory = DefaultGlobalHistory
	}
	if opts.RoutineHistory == 0 {
		opts.RoutineHistory = DefaultRoutineHistory
	}
	if opts.ProgressInterval == 0 {
		opts.ProgressInterval = DefaultProgressInterval
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.FlushEvents == 0 {
		opts.FlushEvents = DefaultFlushEvents
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	t := &Tracker{
		opts:    opts,
		log:     opts.Logger,
		nodes:   make(map[string]*nodeEntry),
		global:  newRing(opts.GlobalHistory),
		routine: newRing(opts.RoutineHistory),
		dirty:   make(map[string]struct{}),
		forgets: make(map[string]struct{}),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	if opts.Store == nil {
		close(t.done)
		return t, nil
	}
	if err := t.load(); err != nil {
		return nil, err
	}
	// Room for a full batch in both buffers, so that Apply rarely grows one.
	room := min(2*opts.FlushEvents, 4096)
	t.pending = make([]BatchEvent, 0, room)
	t.spare = make([]BatchEvent, 0, room)
	go t.flushLoop()
	return t, nil
}

// load fills the tracker from the store.
func (t *Tracker) load() error {
	d, err := t.opts.Store.Load(t.opts.HistoryPerNode)
	if err != nil {
		return err
	}
	t.seq = d.Seq
	var all []Event
	for _, st := range d.States {
		e := &nodeEntry{st: st, hist: newRing(t.opts.HistoryPerNode)}
		for i := range d.History[st.Node] {
			e.hist.push(&d.History[st.Node][i])
		}
		all = append(all, d.History[st.Node]...)
		t.nodes[st.Node] = e
		t.seq = max(t.seq, st.Seq)
	}
	all = append(all, d.Unknown...)
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	for i := range all {
		all[i].Routine = all[i].Routine || all[i].Kind.Routine() // a store written before the mark
		t.pushGlobal(&all[i])
		t.seq = max(t.seq, all[i].Seq)
	}
	return nil
}

// Apply records ev and returns the node's new state (the zero NodeState for
// an event with Node ""). It assigns ev.Seq, and ev.Time when zero; times
// are kept in UTC. See the package README for what each event does.
func (t *Tracker) Apply(ev Event) NodeState {
	if ev.Time.IsZero() {
		ev.Time = t.opts.Clock()
	}
	ev.Time = ev.Time.Round(0).UTC()
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Node == "" {
		t.record(nil, &ev)
		return NodeState{}
	}
	e := t.entry(ev.Node)
	before := e.st.powerView()
	if e.st.step(&ev, &e.lastRecorded, t.opts.ProgressInterval) {
		ev.Routine = routine(&ev, before, e.st.powerView())
		t.record(e, &ev)
	}
	if t.opts.Store != nil && !t.closed {
		t.dirty[ev.Node] = struct{}{}
	}
	return e.st
}

// Observe applies an event another head recorded and persisted (several
// heads share one store, internal/state/etcd): the node's state steps and
// the histories and subscribers get the event, numbered by this tracker,
// but nothing is queued for the store again.
func (t *Tracker) Observe(ev Event) NodeState {
	ev.Time = ev.Time.Round(0).UTC()
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Node == "" {
		t.recordAs(nil, &ev, false)
		return NodeState{}
	}
	e := t.entry(ev.Node)
	before := e.st.powerView()
	if e.st.step(&ev, &e.lastRecorded, t.opts.ProgressInterval) {
		ev.Routine = routine(&ev, before, e.st.powerView())
		t.recordAs(e, &ev, false)
	}
	return e.st
}

// MarkDirty records that an admin marked node dirty for reason; ClearMark
// removes the mark. A new boot of the node also removes it.
func (t *Tracker) MarkDirty(node, reason string) NodeState {
	if reason == "" {
		reason = "no reason given" // an empty Message would clear the mark
	}
	return t.Apply(Event{Node: node, Kind: KindMark, Proto: "api", Message: reason})
}

// ClearMark removes an admin's dirty mark from node.
func (t *Tracker) ClearMark(node string) NodeState {
	return t.Apply(Event{Node: node, Kind: KindMark, Proto: "api"})
}

func (t *Tracker) entry(node string) *nodeEntry {
	e := t.nodes[node]
	if e == nil {
		e = &nodeEntry{st: NodeState{Node: node, Power: PowerUnknown}, hist: newRing(t.opts.HistoryPerNode)}
		t.nodes[node] = e
	}
	return e
}

// record numbers ev and puts it in the histories, the store's queue and
// the subscribers' channels. t.mu is held.
func (t *Tracker) record(e *nodeEntry, ev *Event) { t.recordAs(e, ev, true) }

// recordAs is record, queueing ev for the store only when persist.
func (t *Tracker) recordAs(e *nodeEntry, ev *Event, persist bool) {
	t.seq++
	ev.Seq = t.seq
	var replaces uint64
	if e != nil {
		e.st.Seq = ev.Seq
		replaces = e.hist.pushCoalesce(ev)
	}
	t.pushGlobal(ev)
	if persist && t.opts.Store != nil && !t.closed {
		if len(t.pending) < maxPending {
			t.pending = append(t.pending, BatchEvent{Event: *ev, Replaces: replaces})
			if len(t.pending) >= t.opts.FlushEvents {
				select {
				case t.kick <- struct{}{}:
				default:
				}
			}
		} else {
			t.dropped++
		}
	}
	t.subs.Publish(*ev)
}

// Get returns the state of node.
func (t *Tracker) Get(node string) (NodeState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.nodes[node]
	if !ok {
		return NodeState{}, false
	}
	return e.st, true
}

// All returns the state of every node the tracker knows, sorted by name.
func (t *Tracker) All() []NodeState {
	t.mu.Lock()
	out := make([]NodeState, 0, len(t.nodes))
	for _, e := range t.nodes {
		out = append(out, e.st)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// History returns the newest n events of node (all kept if n <= 0),
// newest last. Consecutive Progress events of one file are kept as one.
func (t *Tracker) History(node string, n int) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.nodes[node]
	if !ok {
		return nil
	}
	return e.hist.newest(n)
}

// powerFields is what a power observation can change of a node.
type powerFields struct {
	power, powerErr string
	stage           Stage
}

func (s *NodeState) powerView() powerFields { return powerFields{s.Power, s.PowerError, s.Stage} }

// routine says whether ev is routine (Event.Routine): a check-in or
// progress, or a power observation (no action, no error) that left the
// node's power, power error and stage as they were.
func routine(ev *Event, before, after powerFields) bool {
	if ev.Kind.Routine() {
		return true
	}
	return ev.Kind == KindPower && ev.Message == "" && ev.Error == "" && before == after
}

// pushGlobal puts ev in the history of all nodes: the routine ring or the
// other. t.mu is held.
func (t *Tracker) pushGlobal(ev *Event) {
	if ev.Routine {
		t.routine.push(ev)
	} else {
		t.global.push(ev)
	}
}

// Recent returns the newest n events of all nodes and unknown clients
// (all kept if n <= 0), newest last. The routine events (Kind.Routine) and
// the others are kept to bounds of their own, so with n <= 0 or n above
// what is kept of one, the result may hold older events of the other.
func (t *Tracker) Recent(n int) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := MergeSeq(t.global.newest(n), t.routine.newest(n))
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Notable returns the newest n events that are not routine (Kind.Routine:
// check-ins, progress) of all nodes and unknown clients (all kept if
// n <= 0), newest last: what happened, however busy the cluster is.
func (t *Tracker) Notable(n int) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.global.newest(n)
}

// Since returns the kept events with a Seq above seq, oldest first, for a
// client that reconnects after seeing seq. When the first event returned
// has a Seq above seq+1, events in between were no longer kept and the
// client should reload the state with All.
func (t *Tracker) Since(seq uint64) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return MergeSeq(t.global.since(seq), t.routine.since(seq))
}

// MergeSeq merges two lists of events, each in Seq order, into one in Seq
// order, an event in both (the same Seq) once.
func MergeSeq(a, b []Event) []Event {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]Event, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0].Seq < b[0].Seq:
			out, a = append(out, a[0]), a[1:]
		case b[0].Seq < a[0].Seq:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// Seq returns the Seq of the newest event.
func (t *Tracker) Seq() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// Forget drops node, for a node removed from the inventory: its state and
// its own history go, in memory and in the store, so that a later node of
// the same name starts clean. Its events stay in the global history
// (Recent, Since) until they age out. It reports whether node was known.
func (t *Tracker) Forget(node string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.nodes[node]; !ok {
		return false
	}
	delete(t.nodes, node)
	if t.opts.Store != nil && !t.closed {
		delete(t.dirty, node)
		t.forgets[node] = struct{}{}
		kept := t.pending[:0]
		for _, p := range t.pending {
			if p.Event.Node != node {
				kept = append(kept, p)
			}
		}
		clear(t.pending[len(kept):])
		t.pending = kept
	}
	return true
}

// Run detects stalls until ctx is done or the tracker is closed: every
// second (or a quarter of the stall timeout, if that is shorter) a node
// whose stage is in progress and whose LastProgress is older than the
// stall timeout becomes stalled, through a KindStall event. Run returns
// nil when ctx is done and ErrClosed when the tracker was closed.
func (t *Tracker) Run(ctx context.Context) error {
	every := min(time.Second, max(t.opts.StallTimeout/4, 5*time.Millisecond))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.stop:
			return ErrClosed
		case <-tick.C:
			t.checkStalls(t.opts.Clock())
		}
	}
}

// ErrClosed is returned by Run once the Tracker is closed.
var ErrClosed = errors.New("bootstate: tracker closed")

// checkStalls stalls every node in progress without progress since
// now-StallTimeout and returns how many it stalled.
func (t *Tracker) checkStalls(now time.Time) int {
	now = now.Round(0).UTC()
	t.mu.Lock()
	defer t.mu.Unlock()
	var names []string
	for name, e := range t.nodes {
		if e.st.Stage.InProgress() && now.Sub(e.st.LastProgress) >= t.opts.StallTimeout {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		e := t.nodes[name]
		ev := Event{Node: name, Kind: KindStall, Time: now, Stage: e.st.Stage,
			Error: stallText(e.st.Stage, now.Sub(e.st.LastProgress))}
		if e.st.step(&ev, &e.lastRecorded, t.opts.ProgressInterval) {
			t.record(e, &ev)
		}
		if t.opts.Store != nil && !t.closed {
			t.dirty[name] = struct{}{}
		}
	}
	return len(names)
}

// PersistStatus returns how many events were not persisted because the
// store fell too far behind, and the error of the last batch written to
// the store (nil once a batch succeeds again).
func (t *Tracker) PersistStatus() (dropped uint64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped, t.lastErr
}

// Close stops the background work, writes what is pending to the store,
// and closes every subscription. The tracker still answers queries and
// Apply after Close, but nothing more is persisted or published. Close
// returns the error of the final write; later calls return nil.
func (t *Tracker) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true // from here on nothing new is queued for the store
		t.mu.Unlock()
		close(t.stop)
		<-t.done
		if t.opts.Store != nil {
			err = t.flush()
		}
		t.mu.Lock()
		t.subs.Close()
		clear(t.dirty)
		t.pending = nil
		t.mu.Unlock()
	})
	return err
}
