package workflow

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
)

// kexecEnv is fakeEnv with node agents: alive says whose agent polls,
// kexecErr fails the delivery, kexecs runs what the node does with the
// instruction (after the daemon's kexec event, as pxe.Boot.SendKexec
// records it).
type kexecEnv struct {
	*fakeEnv
	alive    map[string]bool
	kexecErr map[string]error
	kexecs   map[string]func(node string)
}

func (e *kexecEnv) AgentAlive(node string) bool { return e.alive[node] }

func (e *kexecEnv) Kexec(ctx context.Context, node string) error {
	e.note(node + " kexec")
	if err := e.kexecErr[node]; err != nil {
		return err
	}
	e.tr.Apply(bootstate.Event{Node: node, Kind: bootstate.KindKexec, Generation: e.gens[node]})
	if k := e.kexecs[node]; k != nil {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); k(node) }()
	}
	return nil
}

// kexecBoot is what a kexec that works looks like: the agent fetches the
// kernel and initrd, the new kernel the rootfs, then it checks in.
func kexecBoot(tr *bootstate.Tracker, gen string) func(string) {
	return func(n string) {
		for _, s := range []bootstate.Stage{bootstate.StageKernel, bootstate.StageInitrd, bootstate.StageRootfs} {
			tr.Apply(bootstate.Event{Node: n, Kind: bootstate.KindFetch, Stage: s, Proto: "http", Path: "/" + string(s)})
		}
		checkin(tr, n, gen, 0)
	}
}

func TestRebootCleanKexec(t *testing.T) {
	refuse := func(tr *bootstate.Tracker) func(string) {
		return func(n string) {
			tr.Apply(bootstate.Event{Node: n, Kind: bootstate.KindFetch, Stage: bootstate.StageKernel, Proto: "http", Path: "/kernel"})
			tr.Apply(bootstate.Event{Node: n, Kind: bootstate.KindFail,
				Error: "kexec refused by the agent of boot b1: kernel: sha256 00 does not match the manifest (11)"})
		}
	}
	tests := []struct {
		name       string
		via        string
		alive      bool
		kexecErr   error
		kexec      func(tr *bootstate.Tracker) func(string)
		ok         bool
		wantVia    string
		whyHas     string
		errHas     string
		wantLog    []string // the env calls, in order
		wantSteps  []string // a prefix of the progress steps that must appear in order
		kexecLimit time.Duration
	}{
		{name: "auto with a live agent: kexec, no firmware", alive: true, kexec: func(tr *bootstate.Tracker) func(string) { return kexecBoot(tr, "g2") },
			ok: true, wantVia: ViaKexec, whyHas: "agent polling", wantLog: []string{"n01 kexec"},
			wantSteps: []string{"render/", "kexec/", "boot/kexec", "boot/kernel", "boot/initrd", "boot/rootfs", "boot/booted", "clean/booted"}},
		{name: "auto without an agent: power", ok: true, wantVia: ViaPower, whyHas: "agent not polling",
			wantLog: []string{"n01 bootdev", "n01 cycle"}},
		{name: "power asked for, agent alive", via: ViaPower, alive: true, ok: true, wantVia: ViaPower, whyHas: "asked for power",
			wantLog: []string{"n01 bootdev", "n01 cycle"}},
		{name: "auto, sha256 refused by the agent: falls back to power", alive: true, kexec: refuse, ok: true, wantVia: ViaPower,
			whyHas:  "kexec: boot failed in stage kernel: kexec refused by the agent of boot b1: kernel: sha256 00 does not match the manifest (11): fell back to power",
			wantLog: []string{"n01 kexec", "n01 bootdev", "n01 cycle"}},
		{name: "auto, no clean check-in within the bound: falls back to power", alive: true, kexecLimit: 400 * time.Millisecond,
			kexec: func(tr *bootstate.Tracker) func(string) { return func(string) {} }, ok: true, wantVia: ViaPower,
			whyHas: "kexec: no check-in within 400ms", wantLog: []string{"n01 kexec", "n01 bootdev", "n01 cycle"}},
		{name: "auto, not delivered: falls back to power", alive: true, kexecErr: errors.New("the node's agent is not polling"),
			ok: true, wantVia: ViaPower, whyHas: "kexec not delivered: the node's agent is not polling: fell back to power",
			wantLog: []string{"n01 kexec", "n01 bootdev", "n01 cycle"}},
		{name: "kexec only, refused: fails without a power cycle", via: ViaKexec, alive: true, kexec: refuse, wantVia: ViaKexec,
			errHas: "n01: kexec: boot failed in stage kernel: kexec refused by the agent", wantLog: []string{"n01 kexec"}},
		{name: "the old system checking in after the instruction is not clean", via: ViaKexec, alive: true, kexecLimit: 400 * time.Millisecond,
			kexec:   func(tr *bootstate.Tracker) func(string) { return func(n string) { checkin(tr, n, "g2", 0) } },
			wantVia: ViaKexec, errHas: "no check-in within", wantLog: []string{"n01 kexec"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(t, time.Minute)
			tr.Apply(bootstate.Event{Node: "n01", Kind: bootstate.KindPower, Message: bootstate.ActionOn})
			fetches(tr, "n01", bootstate.StageRootfs)
			checkin(tr, "n01", "g2", 5<<20) // dirty
			fe := &fakeEnv{tr: tr, gens: map[string]string{"n01": "g2"}, bootdevErr: map[string]error{},
				cycleErr: map[string]error{}, boots: map[string]func(string){"n01": func(n string) { fetches(tr, n, bootstate.StageRootfs); checkin(tr, n, "g2", 0) }}}
			e := &kexecEnv{fakeEnv: fe, alive: map[string]bool{"n01": tc.alive}, kexecErr: map[string]error{"n01": tc.kexecErr},
				kexecs: map[string]func(string){}}
			if tc.kexec != nil {
				e.kexecs["n01"] = tc.kexec(tr)
			}
			var steps []string
			opts := Options{Via: tc.via, Timeout: 10 * time.Second, KexecTimeout: tc.kexecLimit, OverlayThreshold: 1 << 20,
				OnProgress: func(p Progress) { steps = append(steps, string(p.Step)+"/"+string(p.Stage)) }}
			if tc.via == ViaKexec && tc.kexecLimit > 0 {
				opts.Timeout = tc.kexecLimit
			}
			res := RebootClean(context.Background(), e, tr, []string{"n01"}, opts)
			e.wg.Wait()
			r := res[0]
			if r.OK != tc.ok || r.Via != tc.wantVia || !strings.Contains(r.Why, tc.whyHas) || !strings.Contains(r.Error, tc.errHas) {
				t.Fatalf("result %+v\nwant ok %v via %s why ~%q error ~%q\nsteps %v", r, tc.ok, tc.wantVia, tc.whyHas, tc.errHas, steps)
			}
			if log := e.logged(); !slices.Equal(log, tc.wantLog) {
				t.Errorf("env calls %v, want %v", log, tc.wantLog)
			}
			i := 0
			for _, s := range steps {
				if i < len(tc.wantSteps) && s == tc.wantSteps[i] {
					i++
				}
			}
			if i != len(tc.wantSteps) {
				t.Errorf("steps %v lack %v in order", steps, tc.wantSteps)
			}
			if tc.ok {
				st, _ := tr.Get("n01")
				if dirty, why := st.Dirty("g2", 1<<20); dirty || st.Stage != bootstate.StageBooted {
					t.Errorf("after the run: stage %s, dirty %v", st.Stage, why)
				}
			}
		})
	}
}
