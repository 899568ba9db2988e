package bootstate

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

func newTracker(t testing.TB, opts Options) *Tracker {
	t.Helper()
	tr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{StallTimeout: -time.Second},
		{HistoryPerNode: -1},
		{GlobalHistory: -1},
		{FlushInterval: -1},
		{FlushEvents: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestApplyAssignsSeqAndTime(t *testing.T) {
	clk := newFakeClock()
	tr := newTracker(t, Options{Clock: clk.Now})
	given := time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	tr.Apply(Event{Node: "a", Kind: KindInfo, Seq: 99})
	tr.Apply(Event{Node: "b", Kind: KindInfo, Time: given})
	tr.Apply(Event{Kind: KindUnknown, MAC: "52:54:00:00:00:01"})
	evs := tr.Recent(0)
	if len(evs) != 3 {
		t.Fatalf("Recent = %d events, want 3", len(evs))
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Errorf("event %d has Seq %d", i, ev.Seq)
		}
	}
	if !evs[0].Time.Equal(clk.Now()) {
		t.Errorf("zero time became %v, want the clock's %v", evs[0].Time, clk.Now())
	}
	if !evs[1].Time.Equal(given) || evs[1].Time.Location() != time.UTC {
		t.Errorf("given time became %v", evs[1].Time)
	}
	if tr.Seq() != 3 {
		t.Errorf("Seq() = %d", tr.Seq())
	}
}

func TestUnknownClients(t *testing.T) {
	tr := newTracker(t, Options{})
	sub := tr.Subscribe(10)
	st := tr.Apply(Event{Kind: KindUnknown, MAC: "52:54:00:12:34:56", Remote: "10.0.2.15:1234", Path: "/pxelinux.cfg/01-52-54-00-12-34-56"})
	if !reflect.DeepEqual(st, NodeState{}) {
		t.Errorf("Apply returned %+v for an unknown client", st)
	}
	if n := len(tr.All()); n != 0 {
		t.Errorf("All has %d nodes", n)
	}
	if ev := <-sub.C; ev.MAC != "52:54:00:12:34:56" || ev.Seq != 1 {
		t.Errorf("published %+v", ev)
	}
	if r := tr.Recent(1); len(r) != 1 || r[0].Kind != KindUnknown {
		t.Errorf("Recent = %+v", r)
	}
}

func TestAllSortedAndGet(t *testing.T) {
	tr := newTracker(t, Options{})
	for _, n := range []string{"n10", "n02", "n01", "head"} {
		tr.Apply(Event{Node: n, Kind: KindFetch, Stage: StageNBP})
	}
	var names []string
	for _, st := range tr.All() {
		names = append(names, st.Node)
	}
	if want := []string{"head", "n01", "n02", "n10"}; !reflect.DeepEqual(names, want) {
		t.Errorf("All order %v, want %v", names, want)
	}
	if _, ok := tr.Get("n99"); ok {
		t.Error("Get of an unseen node succeeded")
	}
	if h := tr.History("n99", 5); h != nil {
		t.Errorf("History of an unseen node: %v", h)
	}
}

func TestProgressThrottledAndCoalesced(t *testing.T) {
	clk := newFakeClock()
	tr := newTracker(t, Options{Clock: clk.Now})
	sub := tr.Subscribe(1000)
	tr.Apply(Event{Node: "n1", Kind: KindFetch, Stage: StageRootfs, Path: "/r", Total: 1000})
	// 100 chunks 10 ms apart: one second of transfer.
	for i := 1; i <= 100; i++ {
		clk.Advance(10 * time.Millisecond)
		st := tr.Apply(Event{Node: "n1", Kind: KindProgress, Path: "/r", Bytes: int64(i * 10), Total: 1000})
		if st.Bytes != int64(i*10) || !st.LastProgress.Equal(clk.Now()) {
			t.Fatalf("chunk %d: state %d bytes, last progress %v", i, st.Bytes, st.LastProgress)
		}
	}
	sub.Close()
	var got []int64
	for ev := range sub.C {
		if ev.Kind == KindProgress {
			got = append(got, ev.Bytes)
		}
	}
	// Recorded at 250 ms, 500 ms, 750 ms, 1 s (which is also the last chunk).
	if want := []int64{250, 500, 750, 1000}; !reflect.DeepEqual(got, want) {
		t.Errorf("published progress %v, want %v", got, want)
	}
	h := tr.History("n1", 0)
	if len(h) != 2 || h[0].Kind != KindFetch || h[1].Kind != KindProgress || h[1].Bytes != 1000 {
		t.Errorf("history %+v, want the fetch and one coalesced progress", h)
	}
	if len(tr.Recent(0)) != 5 {
		t.Errorf("global history has %d events, want 5", len(tr.Recent(0)))
	}
	// A progress of another file is not coalesced with the last.
	clk.Advance(time.Second)
	tr.Apply(Event{Node: "n1", Kind: KindProgress, Path: "/other", Bytes: 1})
	if h := tr.History("n1", 0); len(h) != 3 {
		t.Errorf("history has %d events, want 3", len(h))
	}
}

func TestProgressUnthrottled(t *testing.T) {
	tr := newTracker(t, Options{ProgressInterval: -1})
	for i := range 10 {
		tr.Apply(Event{Node: "n1", Kind: KindProgress, Path: "/r", Bytes: int64(i)})
	}
	if n := tr.Seq(); n != 10 {
		t.Errorf("recorded %d of 10 progress events", n)
	}
}

// seqCase is a list of events read from a tracker and the Seqs it should
// hold.
type seqCase struct {
	name string
	got  []Event
	want []uint64
}

func checkSeqs(t *testing.T, cases []seqCase) {
	t.Helper()
	for _, c := range cases {
		var got []uint64
		for _, e := range c.got {
			got = append(got, e.Seq)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRoutineHistoryApart: check-ins (and power observations that change
// nothing) are kept to a bound of their own, so a flood of them does not
// push out the event that says a node turned dirty: Recent keeps it beside
// the newest check-ins, Notable has it.
func TestRoutineHistoryApart(t *testing.T) {
	tr := newTracker(t, Options{GlobalHistory: 5, RoutineHistory: 3})
	tr.Apply(Event{Node: "n1", Kind: KindInfo, Message: "turned dirty"})
	for range 20 {
		tr.Apply(Event{Node: "n2", Kind: KindCheckin})
	}
	tr.Apply(Event{Node: "n1", Kind: KindFail, Error: "x"})
	// the power poller: n2 still on changes nothing (routine); off is news
	tr.Apply(Event{Node: "n2", Kind: KindPower, Proto: "ipmi", Power: PowerOn})
	tr.Apply(Event{Node: "n2", Kind: KindPower, Proto: "ipmi", Power: PowerOff})
	cases := []seqCase{
		{"Recent all", tr.Recent(0), []uint64{1, 20, 21, 22, 23, 24}},
		{"Recent 2", tr.Recent(2), []uint64{23, 24}},
		{"Recent 10", tr.Recent(10), []uint64{1, 20, 21, 22, 23, 24}},
		{"Notable all", tr.Notable(0), []uint64{1, 22, 24}},
		{"Notable 1", tr.Notable(1), []uint64{24}},
		{"Since 0", tr.Since(0), []uint64{1, 20, 21, 22, 23, 24}},
		{"Since 21", tr.Since(21), []uint64{22, 23, 24}},
	}
	checkSeqs(t, cases)
	if _, err := New(Options{RoutineHistory: -1}); err == nil {
		t.Error("a negative routine history was accepted")
	}
}

func TestHistoryBounds(t *testing.T) {
	tr := newTracker(t, Options{HistoryPerNode: 5, GlobalHistory: 7})
	for i := 1; i <= 20; i++ {
		tr.Apply(Event{Node: "n1", Kind: KindInfo, Message: fmt.Sprint(i)})
	}
	cases := []seqCase{
		{"History all", tr.History("n1", 0), []uint64{16, 17, 18, 19, 20}},
		{"History 2", tr.History("n1", 2), []uint64{19, 20}},
		{"History 50", tr.History("n1", 50), []uint64{16, 17, 18, 19, 20}},
		{"Recent all", tr.Recent(0), []uint64{14, 15, 16, 17, 18, 19, 20}},
		{"Recent 3", tr.Recent(3), []uint64{18, 19, 20}},
		{"Since 0 (gap)", tr.Since(0), []uint64{14, 15, 16, 17, 18, 19, 20}},
		{"Since 18", tr.Since(18), []uint64{19, 20}},
		{"Since 20", tr.Since(20), nil},
		{"Since future", tr.Since(1000), nil},
	}
	checkSeqs(t, cases)
}

func TestForget(t *testing.T) {
	tr := newTracker(t, Options{})
	tr.Apply(Event{Node: "n1", Kind: KindFetch, Stage: StageNBP})
	tr.Apply(Event{Node: "n2", Kind: KindFetch, Stage: StageNBP})
	if !tr.Forget("n1") {
		t.Fatal("Forget of a known node returned false")
	}
	if tr.Forget("n1") {
		t.Error("second Forget returned true")
	}
	if _, ok := tr.Get("n1"); ok {
		t.Error("forgotten node still there")
	}
	if h := tr.History("n1", 0); h != nil {
		t.Errorf("forgotten node's history: %v", h)
	}
	if r := tr.Recent(0); len(r) != 2 {
		t.Errorf("global history lost events: %v", r)
	}
	st := tr.Apply(Event{Node: "n1", Kind: KindInfo})
	if st.Stage != StageUnknown || len(tr.History("n1", 0)) != 1 {
		t.Errorf("node reborn with old state: %+v", st)
	}
}

func TestStallDetection(t *testing.T) {
	clk := newFakeClock()
	tr := newTracker(t, Options{Clock: clk.Now, StallTimeout: 2 * time.Minute})
	sub := tr.Subscribe(100)
	tr.Apply(Event{Node: "kern", Kind: KindFetch, Stage: StageKernel})
	tr.Apply(Event{Node: "root", Kind: KindFetch, Stage: StageRootfs})
	tr.Apply(Event{Node: "boot", Kind: KindCheckin, Generation: "g1"})
	tr.Apply(Event{Node: "off", Kind: KindPower, Power: PowerOff})
	tr.Apply(Event{Node: "pwr", Kind: KindPower, Message: ActionCycle})

	clk.Advance(time.Minute)
	tr.Apply(Event{Node: "root", Kind: KindProgress, Bytes: 10})
	if n := tr.checkStalls(clk.Now()); n != 0 {
		t.Fatalf("stalled %d nodes after 1 minute", n)
	}
	clk.Advance(time.Minute) // kern and pwr: 2 min; root: 1 min since its progress
	if n := tr.checkStalls(clk.Now()); n != 2 {
		t.Fatalf("stalled %d nodes after 2 minutes, want 2", n)
	}
	want := map[string]struct {
		stage Stage
		err   string
	}{
		"kern": {StageStalled, "no progress in stage kernel for 2m0s"},
		"pwr":  {StageStalled, "no progress in stage powering-on for 2m0s"},
		"root": {StageRootfs, ""},
		"boot": {StageBooted, ""},
		"off":  {StageOff, ""},
	}
	for _, st := range tr.All() {
		if w := want[st.Node]; st.Stage != w.stage || st.Error != w.err {
			t.Errorf("%s: stage %s error %q, want %s %q", st.Node, st.Stage, st.Error, w.stage, w.err)
		}
	}
	// The stalls were published as events, in name order.
	var stalls []Event
	for len(sub.C) > 0 {
		if ev := <-sub.C; ev.Kind == KindStall {
			stalls = append(stalls, ev)
		}
	}
	if len(stalls) != 2 || stalls[0].Node != "kern" || stalls[1].Node != "pwr" ||
		stalls[0].Stage != StageKernel || stalls[0].Error != "no progress in stage kernel for 2m0s" {
		t.Errorf("stall events %+v", stalls)
	}
	// A stalled node does not stall again; root stalls one minute later.
	clk.Advance(time.Minute + 30*time.Second)
	if n := tr.checkStalls(clk.Now()); n != 1 {
		t.Fatalf("second check stalled %d, want 1", n)
	}
	if st, _ := tr.Get("root"); st.Error != "no progress in stage rootfs for 2m30s" {
		t.Errorf("root: %q", st.Error)
	}
	// Progress brings it back; the timeline shows the stall.
	st := tr.Apply(Event{Node: "root", Kind: KindProgress, Bytes: 20})
	if st.Stage != StageRootfs || st.Error != "" || len(st.Timeline) != 3 || st.Timeline[1].Stage != StageStalled {
		t.Errorf("after progress: %+v", st)
	}
}

func TestRunStallsWithRealClock(t *testing.T) {
	tr := newTracker(t, Options{StallTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	sub := tr.Subscribe(10)
	start := time.Now()
	tr.Apply(Event{Node: "n1", Kind: KindFetch, Stage: StageInitrd})
	var stall Event
	timeout := time.After(5 * time.Second)
	for stall.Kind != KindStall {
		select {
		case stall = <-sub.C:
		case <-timeout:
			t.Fatal("no stall within 5 s")
		}
	}
	if el := time.Since(start); el < 50*time.Millisecond || el > 5*time.Second {
		t.Errorf("stalled after %v with a 50ms timeout", el)
	}
	if st, _ := tr.Get("n1"); st.Stage != StageStalled || stall.Node != "n1" {
		t.Errorf("state %+v after stall %+v", st, stall)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// Run on a closed tracker returns ErrClosed.
	tr.Close()
	if err := tr.Run(context.Background()); err != ErrClosed {
		t.Errorf("Run on closed tracker = %v", err)
	}
}

func TestSlowSubscriberNeverBlocks(t *testing.T) {
	tr := newTracker(t, Options{ProgressInterval: -1})
	stuck := tr.Subscribe(100) // never read
	reader := tr.Subscribe(1000)
	var got []uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range reader.C {
			got = append(got, ev.Seq)
		}
	}()
	const n = 100000
	start := time.Now()
	done := make(chan struct{})
	go func() {
		for i := range n {
			tr.Apply(Event{Node: fmt.Sprintf("n%d", i%50), Kind: KindProgress, Path: "/r", Bytes: int64(i)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("100,000 Applies did not finish in 30 s: a subscriber blocks Apply")
	}
	t.Logf("%d Applies with a stuck subscriber in %v", n, time.Since(start))
	if d := stuck.Dropped(); d != n-100 {
		t.Errorf("stuck subscriber dropped %d, want %d", d, n-100)
	}
	if len(stuck.C) != 100 {
		t.Errorf("stuck subscriber holds %d events", len(stuck.C))
	}
	reader.Close()
	reader.Close() // twice is fine
	wg.Wait()
	// What the reader got is in order, and with what it dropped accounts for
	// every event before it closed.
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("reader got seq %d after %d", got[i], got[i-1])
		}
	}
	if uint64(len(got))+reader.Dropped() != n {
		t.Errorf("reader got %d + dropped %d != %d", len(got), reader.Dropped(), n)
	}
	// Closing the tracker closes the remaining subscription.
	tr.Close()
	for range stuck.C {
	}
	if _, ok := <-tr.Subscribe(1).C; ok {
		t.Error("subscription on a closed tracker delivers")
	}
}

func TestConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenStore(dir + "/state.db")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tr := newTracker(t, Options{Store: store, StallTimeout: 20 * time.Millisecond, FlushInterval: 5 * time.Millisecond, HistoryPerNode: 20})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- tr.Run(ctx) }()
	var wg sync.WaitGroup
	const workers, each = 8, 1000
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stages := []Stage{StageNBP, StageConfig, StageKernel, StageInitrd, StageRootfs}
			for i := range each {
				node := fmt.Sprintf("n%02d", (w*7+i)%30)
				switch i % 9 {
				case 0, 1, 2, 3, 4:
					tr.Apply(Event{Node: node, Kind: KindFetch, Stage: stages[i%9]})
				case 5:
					tr.Apply(Event{Node: node, Kind: KindProgress, Bytes: int64(i)})
				case 6:
					tr.Apply(Event{Node: node, Kind: KindCheckin, Generation: "g1"})
				case 7:
					tr.Apply(Event{Node: node, Kind: KindPower, Message: ActionCycle})
				case 8:
					if i%90 == 8 {
						tr.Forget(node)
					} else {
						tr.Apply(Event{Kind: KindUnknown})
					}
				}
			}
		}()
	}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				s := tr.Subscribe(16)
				for range 10 {
					select {
					case <-s.C:
					default:
					}
				}
				s.Close()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			for _, st := range tr.All() {
				_ = len(st.Timeline)
				for _, m := range st.Timeline {
					_ = m.Stage
				}
				tr.History(st.Node, 5)
			}
			tr.Since(tr.Seq() - 10)
			tr.Recent(10)
		}
	}()
	wg.Wait()
	cancel()
	<-runDone
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	// What was persisted is what the tracker held.
	tr2 := newTracker(t, Options{Store: store, HistoryPerNode: 20})
	if !reflect.DeepEqual(tr.All(), tr2.All()) {
		t.Error("reloaded states differ")
	}
	for _, st := range tr.All() {
		if !reflect.DeepEqual(tr.History(st.Node, 0), tr2.History(st.Node, 0)) {
			t.Errorf("%s: reloaded history differs", st.Node)
		}
	}
}

func TestMarkDirtyHelpers(t *testing.T) {
	tr := newTracker(t, Options{})
	cases := []struct {
		do      func() NodeState
		reasons []string
	}{
		{func() NodeState { return tr.MarkDirty("n1", "kernel debugging") }, []string{"marked by admin: kernel debugging"}},
		{func() NodeState { return tr.ClearMark("n1") }, nil},
		{func() NodeState { return tr.MarkDirty("n1", "") }, []string{"marked by admin: no reason given"}},
	}
	for i, c := range cases {
		st := c.do()
		if _, r := st.Dirty("", 0); !reflect.DeepEqual(r, c.reasons) {
			t.Errorf("step %d: reasons %q, want %q", i, r, c.reasons)
		}
	}
	if h := tr.History("n1", 0); len(h) != 3 || h[0].Kind != KindMark || h[0].Proto != "api" {
		t.Errorf("history %+v", h)
	}
}

// countingStore is a Persister that counts the events written to it.
type countingStore struct {
	mu     sync.Mutex
	events []Event
}

func (c *countingStore) Load(int) (*Snapshot, error) {
	return &Snapshot{History: map[string][]Event{}}, nil
}

func (c *countingStore) Write(b *Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, be := range b.Events {
		c.events = append(c.events, be.Event)
	}
	return nil
}

// TestObserve: an event another head recorded steps the node's state and
// reaches the histories and subscribers, and is not written again; an
// event applied here is.
func TestObserve(t *testing.T) {
	store := &countingStore{}
	tr, err := New(Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	sub := tr.Subscribe(4)
	st := tr.Observe(Event{Node: "n1", Kind: KindFetch, Stage: StageKernel, Path: "/g/vmlinuz", Seq: 77})
	if st.Stage != StageKernel {
		t.Errorf("observed fetch: stage %s, want kernel", st.Stage)
	}
	if ev := <-sub.C; ev.Node != "n1" || ev.Seq != 1 {
		t.Errorf("subscriber got %+v, want n1 numbered 1 here", ev)
	}
	if h := tr.History("n1", 5); len(h) != 1 {
		t.Errorf("history after Observe: %d events", len(h))
	}
	tr.Apply(Event{Node: "n2", Kind: KindInfo, Message: "here"})
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if len(store.events) != 1 || store.events[0].Node != "n2" {
		t.Errorf("written: %+v, want n2's event only", store.events)
	}
}
