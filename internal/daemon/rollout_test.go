package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/rollout"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// stageNames are the six simulated nodes of the rollout lab.
var stageNames = []string{"s1", "s2", "s3", "s4", "s5", "s6"}

func stageMAC(i int) string { return fmt.Sprintf("52:54:00:5a:00:%02x", i+1) }

// writeStageInventory writes an inventory with comments: group g (image
// compute) holds s1..s6 whose BMCs are at ports.
func writeStageInventory(t *testing.T, dir string, ports map[string]int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(`# staged rollout lab
settings:
  secrets: secrets.yaml
images:
  compute: {} # the one image
groups:
  # the compute group keeps this comment
  g:
    image: compute # default image of the group
    bmc: {user: admin, password: lab}
nodes:
`)
	for i, name := range stageNames {
		fmt.Fprintf(&b, "  - name: %s\n    group: g\n    nics: [{mac: %q}]\n", name, stageMAC(i))
		if p := ports[name]; p != 0 {
			fmt.Fprintf(&b, "    bmc: {host: 127.0.0.1, port: %d}\n", p)
		}
	}
	p := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("bmc_passwords:\n  lab: "+rebootPassword+"\n"), 0o600)
	return p
}

// importGen imports a generation of image compute whose files are filled
// with fill.
func importGen(t *testing.T, d *Daemon, dir string, fill byte, publish bool) string {
	t.Helper()
	src := map[string]string{}
	for i, name := range image.BootFiles {
		p := filepath.Join(dir, fmt.Sprintf("%s-%c", name, fill))
		os.WriteFile(p, bytes.Repeat([]byte{fill + byte(i)}, 16<<10), 0o644)
		src[name] = p
	}
	m, err := d.ImportImage(ImportRequest{Image: "compute", Kernel: src[image.FileKernel], Initrd: src[image.FileInitrd],
		Rootfs: src[image.FileRootfs], Publish: publish})
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// TestStagedRollout: six simulated nodes (real go-ipmi BMCs whose power-on
// boots from the daemon over HTTP) in waves of two; s3's firmware hangs after
// the kernel. The rollout halts at wave 2, s3 goes back to the old
// generation, s1, s2 and s4 keep the new one, s5 and s6 are staged but not
// rebooted. After s3's firmware is fixed, resume completes the rollout and
// promote pins the generation on the group with the file's comments intact.
// stageLab is the rollout lab: a daemon with generations old (published)
// and new of image compute, and s1..s6, simulated nodes whose BMCs are in
// the inventory file at invPath.
type stageLab struct {
	d              *Daemon
	dir, invPath   string
	oldGen, newGen string
	base           string // the daemon's URL
	nodes          map[string]*simnode.Node
}

// startStageLab starts the rollout lab with the daemon's stall timeout
// stall, each node's options set by opt.
func startStageLab(t *testing.T, stall time.Duration, opt func(name string, o *simnode.Options)) *stageLab {
	t.Helper()
	l := &stageLab{dir: t.TempDir(), nodes: map[string]*simnode.Node{}}
	l.invPath = writeStageInventory(t, l.dir, nil)
	l.d = daemontest.Start(t, daemontest.Options{Dir: l.dir, Config: Config{InventoryPath: l.invPath,
		StallTimeout: stall, ReloadInterval: 50 * time.Millisecond,
		Power: power.Config{CallTimeout: 3 * time.Second}}}).D
	l.oldGen = importGen(t, l.d, l.dir, 'a', true)
	l.newGen = importGen(t, l.d, l.dir, 'n', false)
	l.base = "http://" + l.d.HTTPAddr().String()
	ports := map[string]int{}
	for i, name := range stageNames {
		o := simnode.Options{MAC: stageMAC(i), Password: rebootPassword, BaseURL: l.base}
		opt(name, &o)
		n, err := simnode.Start(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		l.nodes[name], ports[name] = n, n.Port()
	}
	writeStageInventory(t, l.dir, ports)
	if err := l.d.Reload(); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestStagedRollout(t *testing.T) {
	l := startStageLab(t, 500*time.Millisecond, func(name string, o *simnode.Options) {
		if name == "s3" {
			o.StopAfter = "kernel"
		}
	})
	d, invPath, oldGen, newGen, base, nodes := l.d, l.invPath, l.oldGen, l.newGen, l.base, l.nodes
	assigned := func(name string) string {
		v, err := d.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		return v.Assigned
	}

	// Bad requests change nothing.
	bad := []struct {
		req  StageRequest
		want string
	}{
		{StageRequest{Selection: "@g", Generation: "zzzz"}, `image compute has no generation "zzzz"`},
		{StageRequest{Selection: "@nosuch", Generation: newGen}, "nosuch"},
		{StageRequest{Selection: "@g", Generation: "other@" + newGen}, "node s1 boots image compute, not other"},
		{StageRequest{Selection: "@g", Generation: newGen, Wave: "0"}, `wave size "0"`},
		{StageRequest{Selection: "@g", Generation: newGen, Wave: "150%"}, `wave size "150%"`},
		{StageRequest{Selection: "@g", Generation: newGen, MaxFailures: -1}, "max failures -1 is negative"},
		{StageRequest{Selection: "@g", Generation: oldGen}, "every selected node is already assigned"},
	}
	for _, tc := range bad {
		if _, err := d.StageCreate(tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.req, err, tc.want)
		}
	}
	if len(d.StageList()) != 0 || assigned("s1") != oldGen {
		t.Fatal("a refused stage changed something")
	}

	// Preview changes nothing and lists exactly the nodes that change.
	req := StageRequest{Selection: "@g", Generation: newGen[:10], Wave: "2", Timeout: 8 * time.Second, Who: "tester"}
	p, err := d.StagePreview(req)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range p.Nodes {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, stageNames) || len(p.Waves) != 3 || p.Generation != newGen || assigned("s1") != oldGen {
		t.Fatalf("preview %v waves %d gen %s", names, len(p.Waves), p.Generation)
	}

	r, err := d.StageCreate(req)
	if err != nil {
		t.Fatal(err)
	}
	// Staged: every node's next boot uses the new generation, and the
	// boot entry says so; nothing was rebooted.
	for _, name := range stageNames {
		if g := assigned(name); g != newGen {
			t.Errorf("%s assigned %s after stage, want %s", name, g, newGen)
		}
	}
	if e, _ := d.BootEntry("s6", "ipxe"); !strings.Contains(e, "/images/compute/"+newGen+"/vmlinuz") {
		t.Errorf("s6 entry does not boot the staged generation:\n%s", e)
	}
	if _, err := d.StageCreate(StageRequest{Selection: "s1", Generation: newGen}); err == nil || !strings.Contains(err.Error(), "node s1 is in rollout "+r.ID) {
		t.Errorf("a node in two rollouts: %v", err)
	}
	// Promote before the waves ran is refused.
	if _, err := d.StageAction(r.ID, "promote", "tester"); err == nil {
		t.Error("promote of a staged rollout accepted")
	}

	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	if _, err := d.StageAction(r.ID, "run", "tester"); err != nil {
		t.Fatal(err)
	}
	if err := d.StageWait(wctx, r.ID); err != nil {
		t.Fatal(err)
	}
	r, _ = d.StageGet(r.ID)
	if r.State != rollout.StateHalted || !strings.HasPrefix(r.Reason, "wave 2: 1 of 2 nodes failed (at most 0 allowed): s3: ") {
		t.Fatalf("after the run: %s %q", r.State, r.Reason)
	}
	wantStatus := map[string]rollout.NodeStatus{"s1": rollout.NodeDone, "s2": rollout.NodeDone, "s3": rollout.NodeReverted,
		"s4": rollout.NodeDone, "s5": rollout.NodeStaged, "s6": rollout.NodeStaged}
	wantGen := map[string]string{"s1": newGen, "s2": newGen, "s3": oldGen, "s4": newGen, "s5": newGen, "s6": newGen}
	for _, name := range stageNames {
		if st := r.Node(name).Status; st != wantStatus[name] {
			t.Errorf("%s status %s, want %s", name, st, wantStatus[name])
		}
		if g := assigned(name); g != wantGen[name] {
			t.Errorf("%s assigned %s, want %s", name, g, wantGen[name])
		}
	}
	for _, name := range []string{"s1", "s2", "s4"} {
		st, _ := d.NodeState(name)
		if st.Stage != bootstate.StageBooted || st.Generation != newGen {
			t.Errorf("%s runs %s in %s, want booted %s", name, st.Generation, st.Stage, newGen)
		}
	}
	for _, name := range []string{"s5", "s6"} {
		if s := nodes[name].Stats(); s.NetBoots != 0 {
			t.Errorf("%s was rebooted before its wave: %+v", name, s)
		}
	}
	if ws := []rollout.WaveState{r.Waves[0].State, r.Waves[1].State, r.Waves[2].State}; !slices.Equal(ws,
		[]rollout.WaveState{rollout.WavePassed, rollout.WaveFailed, rollout.WavePending}) {
		t.Errorf("waves %v", ws)
	}
	if !strings.Contains(r.Node("s3").Error, "stalled in stage kernel") {
		t.Errorf("s3 error %q", r.Node("s3").Error)
	}

	// The fix: s3 gets working firmware (a new BMC, written to the
	// inventory), then resume finishes waves 2 and 3.
	nodes["s3"].Close()
	fixed, err := simnode.Start(simnode.Options{MAC: stageMAC(2), Password: rebootPassword, BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fixed.Close)
	if _, err := d.EditNode("s3", Edit{Set: map[string]any{"bmc.port": fixed.Port()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.StageAction(r.ID, "resume", "tester"); err != nil {
		t.Fatal(err)
	}
	if err := d.StageWait(wctx, r.ID); err != nil {
		t.Fatal(err)
	}
	r, _ = d.StageGet(r.ID)
	if r.State != rollout.StateCompleted {
		t.Fatalf("after resume: %s %q", r.State, r.Reason)
	}
	for _, name := range stageNames {
		st, _ := d.NodeState(name)
		if r.Node(name).Status != rollout.NodeDone || st.Generation != newGen || assigned(name) != newGen {
			t.Errorf("%s: %s, runs %s, assigned %s", name, r.Node(name).Status, st.Generation, assigned(name))
		}
	}

	// Promote: the group's image key pins the generation, every comment
	// is still there, and the rollout holds no staged assignment.
	if _, err := d.StageAction(r.ID, "promote", "tester"); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(invPath)
	for _, s := range []string{"# staged rollout lab", "# the one image", "# the compute group keeps this comment",
		"image: compute@" + newGen + " # default image of the group"} {
		if !bytes.Contains(text, []byte(s)) {
			t.Errorf("inventory lacks %q:\n%s", s, text)
		}
	}
	if g := d.Inventory().Groups["g"]; g.Generation != newGen {
		t.Errorf("group g pins %q", g.Generation)
	}
	for _, name := range stageNames {
		if _, _, ok := d.Staged(name); ok || assigned(name) != newGen {
			t.Errorf("%s after promote: staged %v, assigned %s", name, ok, assigned(name))
		}
	}
	r, _ = d.StageGet(r.ID)
	if r.State != rollout.StatePromoted || r.Promoted != "group g image: compute@"+newGen {
		t.Errorf("promoted: %s %q", r.State, r.Promoted)
	}

	// Every step is an event and an audit entry.
	var infos []string
	for _, ev := range d.History("s3", 200) {
		if ev.Kind == bootstate.KindInfo && ev.Proto == "rollout" {
			infos = append(infos, ev.Message)
		}
	}
	wantInfos := []string{"rollout 1: staged compute@" + newGen[:12] + " (was " + oldGen[:12] + "), wave 2",
		"rollout 1: rebooting onto compute@" + newGen[:12], "rollout 1: failed, back to compute@" + oldGen[:12] + ": s3: ",
		"rollout 1: rebooting onto compute@" + newGen[:12], "rollout 1: checked in with compute@" + newGen[:12]}
	if len(infos) != len(wantInfos) {
		t.Errorf("s3 rollout events %q", infos)
	} else {
		for i := range infos {
			if !strings.HasPrefix(infos[i], wantInfos[i]) {
				t.Errorf("s3 event %d %q, want %q", i, infos[i], wantInfos[i])
			}
		}
	}
	var actions []string
	for _, e := range d.Audit(100) {
		if strings.HasPrefix(e.Action, "rollout") {
			actions = append(actions, e.Action)
		}
	}
	wantActions := []string{"rollout create", "rollout run", "rollout wave", "rollout halt", "rollout resume",
		"rollout wave", "rollout wave", "rollout complete", "rollout promote"}
	if !slices.Equal(actions, wantActions) {
		t.Errorf("audit %q\nwant %q", actions, wantActions)
	}
}

// TestStageRollbackAndAbort: rollback restores every node's previous
// assignment (a pin stays the pin); abort before a run restores the nodes
// too and then only rollback or nothing is allowed.
func TestStageRollbackAndAbort(t *testing.T) {
	dir := t.TempDir()
	invPath := writeStageInventory(t, dir, nil)
	d := daemontest.Start(t, daemontest.Options{Dir: dir, NoHTTP: true, Config: Config{InventoryPath: invPath}}).D
	oldGen := importGen(t, d, dir, 'a', true)
	newGen := importGen(t, d, dir, 'n', false)
	if _, err := d.EditNode("s6", Edit{Set: map[string]any{"image": "compute@" + newGen}}); err != nil {
		t.Fatal(err)
	}
	r, err := d.StageCreate(StageRequest{Selection: "s[1-6]", Generation: "compute@" + newGen, Wave: "50%"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nodes) != 5 || !slices.Equal(r.Unchanged, []string{"s6"}) || len(r.Waves) != 2 || len(r.Waves[0].Nodes) != 3 {
		t.Fatalf("plan: %d nodes, unchanged %v, %d waves", len(r.Nodes), r.Unchanged, len(r.Waves))
	}
	if _, err := d.StageAction(r.ID, "halt", "t"); err == nil {
		t.Error("halt of a staged rollout accepted")
	}
	if _, err := d.StageAction(r.ID, "fly", "t"); err == nil {
		t.Error("unknown action accepted")
	}
	if _, err := d.StageAction(r.ID, "rollback", "t"); err != nil {
		t.Fatal(err)
	}
	for _, name := range stageNames[:5] {
		if v, _ := d.Node(name); v.Assigned != oldGen {
			t.Errorf("%s after rollback: %s", name, v.Assigned)
		}
	}
	if v, _ := d.Node("s6"); v.Assigned != newGen {
		t.Errorf("s6 lost its pin: %s", v.Assigned)
	}
	if _, err := d.StageAction(r.ID, "run", "t"); err == nil {
		t.Error("run after rollback accepted")
	}
	r2, err := d.StageCreate(StageRequest{Selection: "s1", Generation: newGen})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.StageAction("", "abort", "t"); err != nil {
		t.Fatal(err)
	}
	r2, _ = d.StageGet(r2.ID)
	if v, _ := d.Node("s1"); r2.State != rollout.StateAborted || v.Assigned != oldGen || r2.Node("s1").Status != rollout.NodeRestored {
		t.Errorf("abort: %s, s1 %s assigned %s", r2.State, r2.Node("s1").Status, v.Assigned)
	}
	if _, err := d.StageAction(r2.ID, "promote", "t"); err == nil {
		t.Error("promote of an aborted rollout accepted")
	}
}

// TestStagedRolloutByKexec: a staged rollout whose waves reboot by kexec.
// Six simulated nodes run the real node agent (simulated kexec) except s5.
// With the default path (auto) every wave's nodes whose agent polls get
// the signed instruction, fetch and check the staged generation's kernel
// and initrd and boot it without firmware; s5, without an agent, is
// power-cycled in its wave. The timelines start at the kexec stage and the
// audit's reboot-clean entries, made by the rollout, say which path each
// node took and why. A second rollout asks for kexec outright (s1-s4 back
// to the old generation): every node is kexec'd again, none power-cycled.
func TestStagedRolloutByKexec(t *testing.T) {
	l := startStageLab(t, 2*time.Second, func(name string, o *simnode.Options) {
		o.Agent, o.PXEFirst, o.CheckinEvery = name != "s5", true, 200*time.Millisecond
	})
	d, oldGen, newGen, nodes := l.d, l.oldGen, l.newGen, l.nodes
	for _, n := range nodes {
		if err := n.PowerOn(); err != nil {
			t.Fatal(err)
		}
	}
	// Booted on the old generation, the agents polling.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := true
		for _, name := range stageNames {
			st, _ := d.NodeState(name)
			ready = ready && st.Stage == bootstate.StageBooted && st.Generation == oldGen && (name == "s5" || d.AgentAlive(name))
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the nodes did not boot the old generation with their agents polling")
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rollOut := func(req StageRequest) *Rollout {
		t.Helper()
		r, err := d.StageCreate(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.StageAction(r.ID, "run", "tester"); err != nil {
			t.Fatal(err)
		}
		if err := d.StageWait(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		r, _ = d.StageGet(r.ID)
		if r.State != rollout.StateCompleted {
			t.Fatalf("rollout %s: %s %q", r.ID, r.State, r.Reason)
		}
		return r
	}
	// auditPaths is every path the reboot-cleans of the rollout
	// (Who "rollout") recorded since the audit held skip of them.
	auditPaths := func(skip int) (paths []string, entries int) {
		for _, e := range d.Audit(200) {
			if e.Action == "reboot-clean" && e.Who == "rollout" {
				if entries++; entries > skip {
					paths = append(paths, e.Paths...)
				}
			}
		}
		slices.Sort(paths)
		return paths, entries
	}

	// 1. Auto: kexec where the agent polls, power for s5.
	start := time.Now()
	rollOut(StageRequest{Selection: "@g", Generation: newGen, Wave: "2", Timeout: 20 * time.Second, Who: "tester"})
	t.Logf("six nodes in three waves by auto in %v", time.Since(start).Round(time.Millisecond))
	for _, name := range stageNames {
		s := nodes[name].Stats()
		wantKexecs, wantNet := 1, 1
		if name == "s5" {
			wantKexecs, wantNet = 0, 2
		}
		if s.Kexecs != wantKexecs || s.NetBoots != wantNet {
			t.Errorf("%s: %d kexecs and %d network boots, want %d and %d", name, s.Kexecs, s.NetBoots, wantKexecs, wantNet)
		}
		// A kexec starts the node's timeline; s5's network boot has none
		// (it may start at powering-on or, when the simulated firmware is
		// quicker than the power event, at its boot script).
		st, _ := d.NodeState(name)
		got := stagesSince(st)
		if st.Generation != newGen || len(got) == 0 || got[len(got)-1] != bootstate.StageBooted ||
			(name != "s5") != (got[0] == bootstate.StageKexec) || (name == "s5" && slices.Contains(got, bootstate.StageKexec)) {
			t.Errorf("%s runs %s, timeline %v", name, st.Generation, got)
		}
	}
	var kexecEvents int
	for _, ev := range d.History("s1", 200) {
		if ev.Kind == bootstate.KindKexec && ev.Generation == newGen {
			kexecEvents++
		}
		if ev.Kind == bootstate.KindPower && ev.Message == bootstate.ActionCycle {
			t.Errorf("s1 was power-cycled in the rollout: %+v", ev)
		}
	}
	if kexecEvents != 1 {
		t.Errorf("s1: %d kexec events for %s, want 1", kexecEvents, newGen)
	}
	paths, seen := auditPaths(0)
	want := []string{"s1: kexec (agent polling)", "s2: kexec (agent polling)", "s3: kexec (agent polling)",
		"s4: kexec (agent polling)", "s5: power (agent not polling)", "s6: kexec (agent polling)"}
	if seen != 3 || !slices.Equal(paths, want) {
		t.Errorf("%d reboot-cleans by the rollout, audit paths %q\nwant %q", seen, paths, want)
	}

	// 2. Kexec asked for: s1-s4 back to the old generation.
	r, err := d.StageGet("")
	if err == nil {
		_, err = d.StageAction(r.ID, "promote", "tester")
	}
	if err != nil {
		t.Fatal(err)
	}
	r = rollOut(StageRequest{Selection: "s[1-4]", Generation: oldGen, Wave: "2", Timeout: 20 * time.Second, Via: "kexec", Who: "tester"})
	if r.Via != "kexec" {
		t.Errorf("rollout via %q", r.Via)
	}
	for _, name := range stageNames[:4] {
		st, _ := d.NodeState(name)
		if s := nodes[name].Stats(); s.Kexecs != 2 || s.NetBoots != 1 || st.Generation != oldGen || stagesSince(st)[0] != bootstate.StageKexec {
			t.Errorf("%s: %d kexecs, %d network boots, runs %s, timeline %v", name, s.Kexecs, s.NetBoots, st.Generation, stagesSince(st))
		}
	}
	paths, _ = auditPaths(seen)
	want = []string{"s1: kexec (asked for kexec)", "s2: kexec (asked for kexec)", "s3: kexec (asked for kexec)", "s4: kexec (asked for kexec)"}
	if !slices.Equal(paths, want) {
		t.Errorf("audit paths of the kexec rollout %q\nwant %q", paths, want)
	}
}
