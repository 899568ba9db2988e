package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// kexecLab is the reboot lab with r1 and r3 running the real node agent
// (simulated kexec), r2 without one; every node network-boots when
// powered on and checks in every 200 ms, its overlay growing by 2 MiB a
// check-in from nothing at boot. It waits until the three are booted dirty
// and the agents poll.
func kexecLab(t *testing.T) *rebootLab {
	t.Helper()
	l := startRebootLabWith(t, func(name string, o *simnode.Options) {
		o.Agent = name != "r2"
		o.PXEFirst = true
		o.OverlayGrowth = 2 << 20
		o.CheckinEvery = 200 * time.Millisecond
	})
	for _, n := range l.nodes {
		if err := n.PowerOn(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := l.d.AgentAlive("r1") && l.d.AgentAlive("r3")
		for _, name := range []string{"r1", "r2", "r3"} {
			st, _ := l.d.NodeState(name)
			ready = ready && st.Stage == bootstate.StageBooted && st.OverlayBytes > 1<<20
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes not booted with their agents polling: r1 %v r3 %v", l.d.AgentAlive("r1"), l.d.AgentAlive("r3"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l.d.AgentAlive("r2") {
		t.Fatal("r2 has no agent but counts as alive")
	}
	return l
}

func stagesSince(st bootstate.NodeState) []bootstate.Stage {
	var out []bootstate.Stage
	for _, m := range st.Timeline {
		out = append(out, m.Stage)
	}
	return out
}

// TestRebootCleanByKexec: with the default path (auto), r1, whose agent
// polls, is cleaned by kexec: the real agent verifies the signed
// instruction, fetches and checks the generation's kernel and initrd, and
// the node boots them without firmware or BMC; r2, without an agent, is
// power-cycled. The results, the timeline and the audit entry say which
// path each took and why.
func TestRebootCleanByKexec(t *testing.T) {
	l := kexecLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var steps []string
	res, err := l.d.RebootClean(ctx, RebootRequest{Selection: "r[1-2]", Timeout: 30 * time.Second, Who: "tester"},
		func(p RebootProgress) {
			if p.Node == "r1" {
				steps = append(steps, string(p.Step)+"/"+string(p.Stage))
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].OK || !res[1].OK {
		t.Fatalf("results %+v", res)
	}
	if res[0].Via != "kexec" || res[0].Why != "agent polling" || res[1].Via != "power" || res[1].Why != "agent not polling" {
		t.Errorf("paths: r1 %s (%s), r2 %s (%s)", res[0].Via, res[0].Why, res[1].Via, res[1].Why)
	}
	r1, r2 := l.nodes["r1"].Stats(), l.nodes["r2"].Stats()
	if r1.Kexecs != 1 || r1.NetBoots != 1 || r2.Kexecs != 0 || r2.NetBoots != 2 {
		t.Errorf("r1 kexecs %d net boots %d; r2 kexecs %d net boots %d", r1.Kexecs, r1.NetBoots, r2.Kexecs, r2.NetBoots)
	}
	st, _ := l.d.NodeState("r1")
	if got, want := stagesSince(st), []bootstate.Stage{bootstate.StageKexec, bootstate.StageKernel, bootstate.StageInitrd,
		bootstate.StageRootfs, bootstate.StageBooted}; !slices.Equal(got, want) {
		t.Errorf("r1 timeline %v, want %v", got, want)
	}
	if st.Generation != l.gen {
		t.Errorf("r1 runs %s, want %s", st.Generation, l.gen)
	}
	if i := slices.Index(steps, "kexec/"); i < 0 || slices.Contains(steps, "cycle/") || steps[len(steps)-1] != "clean/booted" {
		t.Errorf("r1 steps %v", steps)
	}
	// No power action on r1: the BMC was never asked.
	for _, ev := range l.d.History("r1", 200) {
		if ev.Kind == bootstate.KindPower && ev.Message == bootstate.ActionCycle {
			t.Errorf("r1 was power-cycled: %+v", ev)
		}
	}
	var paths []string
	for _, e := range l.d.Audit(10) {
		if e.Action == "reboot-clean" {
			paths = e.Paths
		}
	}
	if want := []string{"r1: kexec (agent polling)", "r2: power (agent not polling)"}; !slices.Equal(paths, want) {
		t.Errorf("audit paths %q, want %q", paths, want)
	}
	// The old boot's check-ins no longer count; the new boot's agent polls.
	deadline := time.Now().Add(10 * time.Second)
	for !l.d.AgentAlive("r1") {
		if time.Now().After(deadline) {
			t.Fatal("r1's agent does not poll after the kexec")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRebootCleanKexecCorruptedKernel: the generation's kernel on the head
// no longer matches its manifest; r1's agent refuses it (sha256), the
// daemon hears why at once and power-cycles r1 instead. With --via kexec
// the same refusal fails r3 without a power cycle.
func TestRebootCleanKexecCorruptedKernel(t *testing.T) {
	l := kexecLab(t)
	kernels, _ := filepath.Glob(filepath.Join(l.dir, "data", "images", "compute", "generations", "*", image.FileKernel))
	if len(kernels) != 1 {
		t.Fatalf("kernels %v", kernels)
	}
	os.Chmod(kernels[0], 0o644)
	b, err := os.ReadFile(kernels[0])
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 0xff
	if err := os.WriteFile(kernels[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The kexec bound is longer than the run may take: only the refusal
	// can send r1 to power in time.
	res, err := l.d.RebootClean(ctx, RebootRequest{Selection: "r1", Timeout: 30 * time.Second, KexecTimeout: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if !r.OK || r.Via != "power" || !strings.Contains(r.Why, "kernel: sha256") || !strings.Contains(r.Why, "does not match the manifest") ||
		!strings.HasSuffix(r.Why, "fell back to power") {
		t.Fatalf("r1 %+v", r)
	}
	if s := l.nodes["r1"].Stats(); s.Kexecs != 0 || s.NetBoots != 2 {
		t.Errorf("r1 kexecs %d net boots %d", s.Kexecs, s.NetBoots)
	}
	res, err = l.d.RebootClean(ctx, RebootRequest{Selection: "r3", Via: "kexec", Timeout: 30 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := res[0]; r.OK || r.Via != "kexec" || !strings.Contains(r.Error, "r3: kexec: boot failed in stage kernel: kexec refused by the agent") {
		t.Errorf("r3 %+v", r)
	}
	if s := l.nodes["r3"].Stats(); s.Kexecs != 0 || s.NetBoots != 1 {
		t.Errorf("r3 kexecs %d net boots %d: a kexec-only run cycled it", s.Kexecs, s.NetBoots)
	}
	if _, err := l.d.RebootClean(ctx, RebootRequest{Selection: "r3", Via: "pxe"}, nil); err == nil || !strings.Contains(err.Error(), `via "pxe"`) {
		t.Errorf("a bad via: %v", err)
	}
}
