package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
)

// fakeEnv stands in for the daemon and the BMCs; the Tracker is a real
// memory-only bootstate.Tracker. Cycle records the power action with the
// tracker as the daemon does, then runs the node's simulated boot.
type fakeEnv struct {
	tr         *bootstate.Tracker
	gens       map[string]string
	bootdevErr map[string]error
	cycleErr   map[string]error
	boots      map[string]func(node string)

	inflight, maxInflight atomic.Int32
	mu                    sync.Mutex
	log                   []string
	wg                    sync.WaitGroup
}

func (e *fakeEnv) note(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

func (e *fakeEnv) logged() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.log)
}

func (e *fakeEnv) Prepare(node string) (string, error) {
	g, ok := e.gens[node]
	if !ok {
		return "", fmt.Errorf("node %s: image compute has no published generation", node)
	}
	return g, nil
}

func (e *fakeEnv) bmc() func() {
	n := e.inflight.Add(1)
	for {
		m := e.maxInflight.Load()
		if n <= m || e.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(2 * time.Millisecond) // let other nodes overlap
	return func() { e.inflight.Add(-1) }
}

func (e *fakeEnv) BootdevPXE(ctx context.Context, node string) error {
	defer e.bmc()()
	e.note(node + " bootdev")
	return e.bootdevErr[node]
}

func (e *fakeEnv) Cycle(ctx context.Context, node string) error {
	defer e.bmc()()
	e.note(node + " cycle")
	if err := e.cycleErr[node]; err != nil {
		e.tr.Apply(bootstate.Event{Node: node, Kind: bootstate.KindPower, Message: bootstate.ActionCycle, Error: err.Error()})
		return err
	}
	e.tr.Apply(bootstate.Event{Node: node, Kind: bootstate.KindPower, Message: bootstate.ActionCycle, Power: "on"})
	if b := e.boots[node]; b != nil {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); b(node) }()
	}
	return nil
}

// fetches applies the fetch events of a boot up to and including stage.
func fetches(tr *bootstate.Tracker, node string, upto bootstate.Stage) {
	for _, s := range []bootstate.Stage{bootstate.StageConfig, bootstate.StageKernel, bootstate.StageInitrd, bootstate.StageRootfs} {
		tr.Apply(bootstate.Event{Node: node, Kind: bootstate.KindFetch, Stage: s, Proto: "http", Path: "/" + string(s)})
		if s == upto {
			return
		}
	}
}

func checkin(tr *bootstate.Tracker, node, gen string, overlay int64) {
	tr.Apply(bootstate.Event{Node: node, Kind: bootstate.KindCheckin, Generation: gen, OverlayBytes: overlay})
}

func newTracker(t *testing.T, stall time.Duration) *bootstate.Tracker {
	t.Helper()
	tr, err := bootstate.New(bootstate.Options{StallTimeout: stall})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; tr.Close() })
	return tr
}

func TestRebootClean(t *testing.T) {
	type env = fakeEnv
	goodBoot := func(tr *bootstate.Tracker, gen string) func(string) {
		return func(n string) { fetches(tr, n, bootstate.StageRootfs); checkin(tr, n, gen, 0) }
	}
	tests := []struct {
		name    string
		setup   func(tr *bootstate.Tracker, e *env, release <-chan struct{})
		timeout time.Duration
		cancel  bool // cancel once the cycle step is reported
		// release is closed when the node's boot reaches this stage (for
		// boots that must be seen half-way before they go on).
		releaseAt bootstate.Stage
		ok        bool
		errHas    []string
		noCycle   bool
	}{
		{name: "success", ok: true, setup: func(tr *bootstate.Tracker, e *env, _ <-chan struct{}) {
			e.gens["n01"] = "g2"
			e.boots["n01"] = goodBoot(tr, "g2")
		}},
		{name: "render check", errHas: []string{"node n01: image compute has no published generation"}, noCycle: true,
			setup: func(tr *bootstate.Tracker, e *env, _ <-chan struct{}) {}},
		{name: "bootdev failure", noCycle: true, errHas: []string{"n01: bootdev pxe: BMC 127.0.0.1:623: boot flags read back as disk"},
			setup: func(tr *bootstate.Tracker, e *env, _ <-chan struct{}) {
				e.gens["n01"] = "g2"
				e.bootdevErr["n01"] = errors.New("BMC 127.0.0.1:623: boot flags read back as disk")
			}},
		{name: "BMC error on cycle", errHas: []string{"n01: power cycle: BMC 127.0.0.1:623: timeout after 5s"},
			setup: func(tr *bootstate.Tracker, e *env, _ <-chan struct{}) {
				e.gens["n01"] = "g2"
				e.cycleErr["n01"] = errors.New("BMC 127.0.0.1:623: timeout after 5s")
			}},
		{name: "boot fails with a 404", errHas: []string{"n01: boot failed in stage kernel: GET /kernel: 404 not found"},
			setup: func(tr *bootstate.Tracker, e *env, _ <-chan struct{}) {
				e.gens["n01"] = "g2"
				e.boots["n01"] = func(n string) {
					fetches(tr, n, bootstate.StageKernel)
					tr.Apply(bootstate.Event{Node: n, Kind: bootstate.KindFail, Error: "GET /kernel: 404 not found"})
				}
			}},
		{name: "timeout names the stage", timeout: 1500 * time.Millisecond,
			errHas: []string{"n01: no check-in within 1.5s: stalled in stage kernel since "},
			setup: func(tr *bootstate.Tracker, e *env, _ <-chan struct{}) {
				e.gens["n01"] = "g2"
				e.boots["n01"] = func(n string) { fetches(tr, n, bootstate.StageKernel) }
			}},
		{name: "old OS check-in without a boot does not count", timeout: 500 * time.Millisecond,
			errHas: []string{"n01: no check-in within 500ms: no boot seen since the power cycle at "},
			setup: func(tr *bootstate.Tracker, e *env, _ <-chan struct{}) {
				e.gens["n01"] = "g2"
				e.boots["n01"] = func(n string) { checkin(tr, n, "g2", 0) }
			}},
		{name: "an old OS check-in after forged MAC requests does not count", timeout: 500 * time.Millisecond,
			errHas: []string{"n01: no check-in within 500ms: no boot seen since the power cycle at "},
			setup: func(tr *bootstate.Tracker, e *env, _ <-chan struct{}) {
				e.gens["n01"] = "g2"
				e.boots["n01"] = func(n string) {
					for _, s := range []bootstate.Stage{bootstate.StageDHCP, bootstate.StageNBP, bootstate.StageConfig, bootstate.StageKernel, bootstate.StageRootfs} {
						tr.Apply(bootstate.Event{Node: n, Kind: bootstate.KindClaim, Stage: s, Proto: "http", Path: "/" + string(s)})
					}
					checkin(tr, n, "g2", 0)
				}
			}},
		{name: "wrong generation then right one", ok: true, releaseAt: bootstate.StageBooted,
			setup: func(tr *bootstate.Tracker, e *env, release <-chan struct{}) {
				e.gens["n01"] = "g2"
				e.boots["n01"] = func(n string) {
					fetches(tr, n, bootstate.StageRootfs)
					checkin(tr, n, "g1", 0)
					<-release
					e.note(n + " second boot")
					tr.Apply(bootstate.Event{Node: n, Kind: bootstate.KindPower, Message: bootstate.ActionReset})
					fetches(tr, n, bootstate.StageRootfs)
					checkin(tr, n, "g2", 0)
				}
			}},
		{name: "dirty overlay then clean", ok: true, releaseAt: bootstate.StageBooted,
			setup: func(tr *bootstate.Tracker, e *env, release <-chan struct{}) {
				e.gens["n01"] = "g2"
				e.boots["n01"] = func(n string) {
					fetches(tr, n, bootstate.StageRootfs)
					checkin(tr, n, "g2", 10<<20)
					<-release
					e.note(n + " second boot")
					checkin(tr, n, "g2", 100)
				}
			}},
		{name: "wrong generation until the deadline", timeout: 700 * time.Millisecond,
			errHas: []string{"n01: no clean check-in within 700ms: checked in dirty: running generation g1, assigned g2"},
			setup: func(tr *bootstate.Tracker, e *env, _ <-chan struct{}) {
				e.gens["n01"] = "g2"
				e.boots["n01"] = func(n string) { fetches(tr, n, bootstate.StageRootfs); checkin(tr, n, "g1", 0) }
			}},
		{name: "cancel", cancel: true, errHas: []string{"n01: cancelled while in stage kernel since "},
			setup: func(tr *bootstate.Tracker, e *env, _ <-chan struct{}) {
				e.gens["n01"] = "g2"
				e.boots["n01"] = func(n string) { fetches(tr, n, bootstate.StageKernel) }
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(t, 300*time.Millisecond)
			// A clean boot from before the run must not count either.
			tr.Apply(bootstate.Event{Node: "n01", Kind: bootstate.KindPower, Message: bootstate.ActionOn})
			fetches(tr, "n01", bootstate.StageRootfs)
			checkin(tr, "n01", "g2", 0)
			e := &fakeEnv{tr: tr, gens: map[string]string{}, bootdevErr: map[string]error{},
				cycleErr: map[string]error{}, boots: map[string]func(string){}}
			release := make(chan struct{})
			tc.setup(tr, e, release)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var once sync.Once
			var steps []string
			opts := Options{Timeout: tc.timeout, OverlayThreshold: 1 << 20, OnProgress: func(p Progress) {
				steps = append(steps, string(p.Step)+"/"+string(p.Stage))
				if p.Step == StepClean {
					e.note(p.Node + " clean")
				}
				if tc.cancel && p.Step == StepBoot && p.Stage == bootstate.StageKernel {
					cancel()
				}
				if tc.releaseAt != "" && p.Step == StepBoot && p.Stage == tc.releaseAt {
					once.Do(func() { close(release) })
				}
			}}
			if opts.Timeout == 0 {
				opts.Timeout = 10 * time.Second
			}
			res := RebootClean(ctx, e, tr, []string{"n01"}, opts)
			e.wg.Wait()
			if len(res) != 1 {
				t.Fatalf("results %v", res)
			}
			r := res[0]
			if r.OK != tc.ok {
				t.Fatalf("ok %v, want %v: %+v (steps %v)", r.OK, tc.ok, r, steps)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(r.Error, s) {
					t.Errorf("error %q does not contain %q", r.Error, s)
				}
			}
			log := e.logged()
			if cycled := slices.Contains(log, "n01 cycle"); cycled == tc.noCycle {
				t.Errorf("cycle sent %v, want %v (log %v)", cycled, !tc.noCycle, log)
			}
			if tc.ok {
				if r.Step != StepClean || r.Generation != "g2" || r.Error != "" {
					t.Errorf("result %+v", r)
				}
				if tc.releaseAt != "" && slices.Index(log, "n01 second boot") > slices.Index(log, "n01 clean") {
					t.Errorf("clean before the second check-in: %v", log)
				}
				if !slices.Contains(steps, "boot/kernel") || steps[len(steps)-1] != "clean/booted" {
					t.Errorf("steps %v", steps)
				}
				var infos []string
				for _, ev := range tr.History("n01", 100) {
					if ev.Kind == bootstate.KindInfo {
						infos = append(infos, ev.Message)
					}
				}
				want := []string{"reboot-clean: bootdev pxe set", "reboot-clean: power cycle sent", "reboot-clean: clean, generation g2"}
				if !slices.Equal(infos, want) {
					t.Errorf("history infos %q, want %q", infos, want)
				}
			} else if r.Step != StepFailed || steps[len(steps)-1] != "failed/"+string(r.Stage) {
				t.Errorf("failed result %+v, steps %v", r, steps)
			}
		})
	}
}

// TestRebootCleanConcurrency: many nodes, a bound of 2 on BMC steps, every
// node clean, results in input order.
func TestRebootCleanConcurrency(t *testing.T) {
	tr := newTracker(t, time.Minute)
	e := &fakeEnv{tr: tr, gens: map[string]string{}, bootdevErr: map[string]error{},
		cycleErr: map[string]error{}, boots: map[string]func(string){}}
	var nodes []string
	for i := range 12 {
		n := fmt.Sprintf("n%02d", i)
		nodes = append(nodes, n)
		e.gens[n] = "g1"
		e.boots[n] = func(n string) { fetches(tr, n, bootstate.StageRootfs); checkin(tr, n, "g1", 0) }
	}
	var calls atomic.Int32
	res := RebootClean(context.Background(), e, tr, nodes, Options{Concurrency: 2, Timeout: 10 * time.Second,
		OnProgress: func(Progress) { calls.Add(1) }})
	e.wg.Wait()
	for i, r := range res {
		if r.Node != nodes[i] || !r.OK {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if m := e.maxInflight.Load(); m > 2 || m < 1 {
		t.Errorf("max BMC calls in flight %d, want 1..2", m)
	}
	if got := Summary(res); got != "12 ok, 0 failed" {
		t.Errorf("summary %q", got)
	}
	if calls.Load() < int32(len(nodes))*5 {
		t.Errorf("only %d progress calls", calls.Load())
	}
}
