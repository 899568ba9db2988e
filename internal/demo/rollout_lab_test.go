package demo

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/demo/qemubmc"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/rollout"
)

// Sizes of the QEMU staged-rollout lab. lab02 has too little memory for the
// second generation: the live init downloads the root into /run, a tmpfs of
// half the RAM, and gen2 carries labPayload incompressible bytes.
const (
	labSmallMemory = 128      // MiB: /run holds at most 64 MiB; gen1's root fits
	labPayload     = 72 << 20 // bytes of random data in gen2's overlay: more than /run holds
)

// buildLabGen2 builds the default recipe again with a changed overlay
// (another /etc/motd and /opt/payload.bin of random bytes) into the demo's
// image store, unpublished, and returns its id.
func buildLabGen2(t *testing.T, d *Demo, kernelDir string) string {
	t.Helper()
	recipe := filepath.Join(t.TempDir(), "default")
	if err := os.CopyFS(recipe, os.DirFS("../../assets/recipes/default")); err != nil {
		t.Fatal(err)
	}
	motd := filepath.Join(recipe, "overlay", "etc", "motd")
	if err := os.WriteFile(motd, []byte("netbootui lab: generation 2 with a payload\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, labPayload)
	rand.NewChaCha8([32]byte{'n', 'b'}).Read(payload)
	if err := os.MkdirAll(filepath.Join(recipe, "overlay", "opt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(recipe, "overlay", "opt", "payload.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := image.NewBuilder(d.Daemon.Images())
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Build(context.Background(), recipe, image.BuildOptions{KernelDir: kernelDir})
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// setLabMemory rewrites a lab node's chassis program so that its next power
// on starts QEMU with mib MiB: the node's "hardware" changes, its BMC and
// inventory entry stay.
func setLabMemory(t *testing.T, d *Demo, i, mib int) {
	t.Helper()
	name := labName(i)
	n := d.LabNodes[name]
	o := n.Options()
	o.Memory = mib
	if err := qemubmc.WriteChassisControl(filepath.Join(n.Dir(), "chassis_control"), o); err != nil {
		t.Fatal(err)
	}
}

// TestLabStagedRollout is the staged rollout end to end on two QEMU nodes
// (TCG) whose BMCs are ipmi_sim instances driving them (`demo --lab 2`): a
// real daemon serving HTTP, two generations of the default recipe. lab02
// has 128 MiB of memory, too little for gen2's root: staged on both in waves
// of one, lab01 checks in with gen2, lab02's boot runs out of room in /run,
// the rollout halts at wave 2 and lab02 is rebooted back onto gen1 (and
// checks in with it) while lab01 keeps gen2. lab02 gets 512 MiB, resume
// boots it onto gen2, and promote pins gen2 on group lab in the inventory
// file with its comments intact.
func TestLabStagedRollout(t *testing.T) {
	lab.RequireTools(t, append([]string{"mksquashfs"}, LabTools...)...)
	vmlinuz, _ := lab.Kernel(t)
	kernelDir := filepath.Dir(vmlinuz)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute) // a bound for a loaded machine; it takes about 3 min
	defer cancel()
	d, err := Start(ctx, Config{Lab: 2, DataDir: t.TempDir(), KernelDir: kernelDir, RecipeDir: "../../assets/recipes/default"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
		if left := qemubmc.Procs(d.LabDir); len(left) > 0 {
			t.Errorf("processes left in %s: %v", d.LabDir, left)
		}
	}()
	gen1 := d.Generation
	gen2 := buildLabGen2(t, d, kernelDir)
	if gen2 == gen1 {
		t.Fatal("the changed overlay built the same generation")
	}
	t.Logf("gen1 %s and gen2 %s built after %s", gen1[:12], gen2[:12], time.Since(start).Round(100*time.Millisecond))
	dd := d.Daemon
	nodes := []string{"lab01", "lab02"}
	state := func(name string) bootstate.NodeState {
		st, _ := dd.NodeState(name)
		return st
	}
	assigned := func(name string) string {
		v, err := dd.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		return v.Assigned
	}
	// lab02 has little memory; both nodes are off. Staged on both, the
	// rollout powers them on (a cycle of a node that is off powers it on).
	setLabMemory(t, d, 1, labSmallMemory)
	r, err := dd.StageCreate(daemon.StageRequest{Selection: "@lab", Generation: gen2, Wave: "1",
		// A node boots in about 30 s under TCG; 90 s leaves room for a CI
		// machine running every package's tests at once (at 50 s lab02's
		// reboot back to gen1 timed out in rootfs at a load of 40).
		Timeout: 90 * time.Second, RebootBack: true, Who: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Waves) != 2 || r.Waves[0].Nodes[0] != "lab01" || r.Waves[1].Nodes[0] != "lab02" {
		t.Fatalf("waves %+v", r.Waves)
	}
	if _, err := dd.StageAction(r.ID, "run", "test"); err != nil {
		t.Fatal(err)
	}
	if err := dd.StageWait(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	r, _ = dd.StageGet(r.ID)
	t.Logf("rollout %s after %s: %q", r.State, time.Since(start).Round(100*time.Millisecond), r.Reason)
	if r.State != rollout.StateHalted || !strings.HasPrefix(r.Reason, "wave 2: 1 of 1 nodes failed (at most 0 allowed): lab02: ") {
		t.Fatalf("after the run: %s %q", r.State, r.Reason)
	}
	if n := r.Node("lab01"); n.Status != rollout.NodeDone || state("lab01").Generation != gen2 || assigned("lab01") != gen2 {
		t.Errorf("lab01: %+v, runs %s, assigned %s", n, state("lab01").Generation, assigned("lab01"))
	}
	b := r.Node("lab02")
	if b.Status != rollout.NodeReverted || b.RebootedBack != "ok" || assigned("lab02") != gen1 {
		t.Errorf("lab02: %+v, assigned %s", b, assigned("lab02"))
	}
	if st := state("lab02"); st.Stage != bootstate.StageBooted || st.Generation != gen1 {
		t.Errorf("lab02 after the reboot back: %s %s", st.Stage, st.Generation)
	}
	// Why it failed: lab02 fetched gen2's root (again, as its live init
	// retries) and never had room for all of it.
	fetches, most, total := 0, int64(0), int64(0)
	for _, ev := range dd.History("lab02", 2000) {
		if ev.Stage != bootstate.StageRootfs || ev.Generation != gen2 {
			continue
		}
		switch ev.Kind {
		case bootstate.KindFetch:
			fetches++
			total = ev.Total
		case bootstate.KindProgress:
			most = max(most, ev.Bytes)
		}
	}
	t.Logf("lab02 fetched gen2's root %d times, at most %d of %d bytes", fetches, most, total)
	if fetches < 2 || total < labPayload || most >= total || !strings.Contains(b.Error, "in stage rootfs") {
		t.Errorf("lab02's failure: %d fetches of gen2's root, at most %d of %d bytes: %s", fetches, most, total, b.Error)
	}
	// The halt's audit entry keeps the whole failure, console lines and all.
	halts := 0
	for _, e := range dd.Audit(100) {
		if e.Action == "rollout halt" {
			halts++
			if len(e.Details) != 1 || !strings.HasPrefix(e.Details[0], b.Error) {
				t.Errorf("halt audit details %q, want lab02's failure", e.Details)
			} else {
				t.Logf("lab02's failure as audited:\n%s", e.Details[0])
			}
		}
	}
	if halts != 1 {
		t.Errorf("%d rollout halt audit entries, want 1", halts)
	}

	// The fix: lab02 gets 512 MiB; resume boots it onto gen2.
	setLabMemory(t, d, 1, 512)
	if _, err := dd.StageAction(r.ID, "resume", "test"); err != nil {
		t.Fatal(err)
	}
	if err := dd.StageWait(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	r, _ = dd.StageGet(r.ID)
	t.Logf("resumed rollout %s after %s", r.State, time.Since(start).Round(100*time.Millisecond))
	if r.State != rollout.StateCompleted {
		t.Fatalf("after resume: %s %q\n%+v", r.State, r.Reason, r.Node("lab02"))
	}
	for _, name := range nodes {
		if st := state(name); r.Node(name).Status != rollout.NodeDone || st.Stage != bootstate.StageBooted || st.Generation != gen2 {
			t.Errorf("%s: %s, %s with %s", name, r.Node(name).Status, st.Stage, st.Generation)
		}
	}

	if _, err := dd.StageAction(r.ID, "promote", "test"); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(d.InventoryPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"# netbootui demo --lab: QEMU nodes (TCG), each powered by an ipmi_sim BMC\n# of its own on 127.0.0.1.\n",
		"  lab:\n    image: default@" + gen2 + "\n"} {
		if !bytes.Contains(text, []byte(s)) {
			t.Errorf("inventory lacks %q:\n%s", s, text)
		}
	}
	for _, name := range nodes {
		if _, _, staged := dd.Staged(name); staged || assigned(name) != gen2 {
			t.Errorf("%s after promote: staged %v, assigned %s", name, staged, assigned(name))
		}
	}
	if cur, _ := dd.Images().Current("default"); cur != gen1 {
		t.Errorf("promote moved the image's current generation to %s", cur)
	}
	t.Logf("done after %s", time.Since(start).Round(100*time.Millisecond))
}
