package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// stageShow is `netbootui stage show ID -o json`: the rollout as the CLI
// sees it, to cross-check the console.
func stageShow(t *testing.T, sock, id string) *apitype.Rollout {
	t.Helper()
	out, errOut, code := runCLI(t, "stage", "show", id, "-o", "json", sock)
	var r apitype.Rollout
	if code != 0 {
		t.Fatalf("stage show %s: %d %s", id, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("stage show %s: %v\n%s", id, err, out)
	}
	return &r
}

// TestConsoleStageInTmux drives the console's Stage view in tmux against
// `netbootui serve` and four simulated nodes (real IPMI, real HTTP boots),
// every step checked on the screen and cross-checked with `netbootui stage
// show`, the node list or the inventory file.
//
// Rollout 1: mark k1..k4, `s`, pick gen2, the preview lists the four nodes
// going from gen1 to gen2, wave size 2, confirm; both waves pass on screen,
// then P promotes (the group's image key in the file, comments kept).
// Rollout 2: k1's firmware hangs after the kernel; gen1 on k1,k2 in waves
// of 1; h halts it while wave 1 waits for k1: k1's reboot is not cut off,
// k1 is fixed and its wave finishes (no further wave starts), u resumes and
// wave 2 passes, B rolls it back (both assigned the
// promoted gen2 again). Rollout 3: gen1 on k3 whose firmware hangs; x
// aborts it in flight and k3 is restored.
func TestConsoleStageInTmux(t *testing.T) {
	lab.RequireTools(t, "tmux")
	dir := t.TempDir()
	inv := writeStageCLIInventory(t, dir, nil)
	data := filepath.Join(dir, "data")
	p, st := startStageServe(t, inv, data, "127.0.0.1:0")
	defer p.stop(t)
	sock := "--api-socket=" + p.socket
	c := apiclient.New(p.socket)
	ctx := context.Background()

	var gens []string
	for i, publish := range []string{"--publish", "--publish=false"} {
		var args []string
		for _, f := range image.BootFiles {
			path := filepath.Join(dir, fmt.Sprintf("gen%d-%s", i+1, f))
			os.WriteFile(path, []byte(strings.Repeat(fmt.Sprintf("generation %d %s\n", i+1, f), 2000)), 0o644)
			args = append(args, "--"+map[string]string{apitype.FileKernel: "kernel", apitype.FileInitrd: "initrd", apitype.FileRootfs: "rootfs"}[f], path)
		}
		out, errOut, code := runCLI(t, append([]string{"image", "import", "compute", publish, "-o", "json", sock}, args...)...)
		var m apitype.Manifest
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
			t.Fatalf("image import: %d %s%s", code, out, errOut)
		}
		gens = append(gens, m.ID)
	}
	gen1, gen2 := gens[0], gens[1]

	// Four nodes with BMCs; startNode replaces a node's BMC and firmware.
	sims := map[string]*simnode.Node{}
	startNode := func(name string, hang bool) int {
		stop := ""
		if hang {
			stop = "kernel"
		}
		n, err := simnode.Start(simnode.Options{MAC: "52:54:00:6b:00:0" + name[1:], Password: cliBMCPassword,
			BaseURL: "http://" + st.HTTP, StopAfter: stop})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		if old := sims[name]; old != nil {
			old.Close()
		}
		sims[name] = n
		return n.Port()
	}
	var ports []int
	for _, name := range []string{"k1", "k2", "k3", "k4"} {
		ports = append(ports, startNode(name, false))
	}
	writeStageCLIInventory(t, dir, ports)
	if _, err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	setBMC := func(name string, hang bool) {
		t.Helper()
		if _, err := c.EditNode(ctx, name, apitype.Edit{Set: map[string]any{"bmc.port": startNode(name, hang)}}); err != nil {
			t.Fatal(err)
		}
	}
	assigned := func(name string) string {
		t.Helper()
		v, err := c.Node(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return v.Assigned
	}

	con := startConsole(t, p.socket, "TERM=xterm-256color")
	con.waitFor("start", regexp.MustCompile(`4 nodes · 0 marked`))
	confirm := func(what string, title *regexp.Regexp) string {
		t.Helper()
		s := con.waitFor(what+" dialog", title)
		con.waitFor(what+" dialog", regexp.MustCompile(`\[ No \]`))
		time.Sleep(300 * time.Millisecond) // the dialog drops keys typed as it opens
		con.keys("y")
		return s
	}

	// waitRollout waits up to a minute for the rollout's screen (its waves
	// reboot nodes: slower than a key on a loaded machine).
	waitRollout := func(what string, re *regexp.Regexp) string {
		t.Helper()
		for end := time.Now().Add(time.Minute); time.Now().Before(end) && !re.MatchString(con.capture(false)); {
			time.Sleep(200 * time.Millisecond)
		}
		return con.waitFor(what, re)
	}
	// backToNodes leaves the Stage view for the node list (marked nodes
	// marked), clears the marks and puts the cursor on k1.
	backToNodes := func(marked int) {
		t.Helper()
		con.keys("Escape")
		con.waitFor("node list", regexp.MustCompile(fmt.Sprintf(`netbootui nodes .*4 nodes · %d marked`, marked)))
		con.keys("C-u", "g")
		con.waitFor("marks cleared", regexp.MustCompile(`netbootui nodes .*4 nodes · 0 marked`))
	}

	// Rollout 1: all four nodes onto gen2 in waves of two, then promote.
	con.keys("C-a")
	con.waitFor("marks", regexp.MustCompile(`4 nodes · 4 marked`))
	con.keys("s")
	s := con.waitFor("generations", regexp.MustCompile(`Stage compute on k\[1-4\] \(4 nodes\)(?s:.*)`+gen1[:12]))
	if !regexp.MustCompile(`(?m)^ +\* ` + gen1 + ` .*4 assigned`).MatchString(s) {
		t.Errorf("gen1 is not shown current with 4 nodes assigned:\n%s", s)
	}
	if i, j := strings.Index(s, gen2), strings.Index(s, gen1); i < 0 || j < i {
		t.Fatalf("gen2 is not listed above gen1 (newest first):\n%s", s)
	}
	con.keys("Enter")
	s = con.waitFor("preview", regexp.MustCompile(`Stage compute@`+gen2+` on k\[1-4\](?s:.*)4 nodes change, 0 already have it`))
	for _, n := range []string{"k1", "k2", "k3", "k4"} {
		if !regexp.MustCompile(`(?m)^  ` + n + ` +g +` + gen1 + ` +→ ` + gen2).MatchString(s) {
			t.Errorf("preview lacks %s from gen1 to gen2:\n%s", n, s)
		}
	}
	if assigned("k1") != gen1 || len(stageList(t, sock)) != 0 {
		t.Fatal("the preview changed something")
	}
	con.keys("BSpace", "2")
	con.waitFor("wave size 2", regexp.MustCompile(`wave size: 2_`))
	con.keys("Enter")
	s = confirm("stage", regexp.MustCompile(`Stage compute@`+gen2+` on 4 nodes\?`))
	if !strings.Contains(s, "2 waves of up to 2") {
		t.Errorf("the confirmation does not say the waves:\n%s", s)
	}
	s = waitRollout("rollout 1 done", regexp.MustCompile(`rollout 1: compute@`+gen2+` on k\[1-4\] +completed`))
	for _, w := range []string{`(?m)^  1 +k\[1-2\] +passed +██████████ 2 ok, 0 failed`, `(?m)^  2 +k\[3-4\] +passed +██████████ 2 ok, 0 failed`,
		`4 done, 0 rebooting, 0 staged, 0 reverted, 0 restored · waves of 2`} {
		if !regexp.MustCompile(w).MatchString(s) {
			t.Errorf("rollout 1 screen lacks %s:\n%s", w, s)
		}
	}
	r := stageShow(t, sock, "1")
	if r.State != apitype.RolloutCompleted || r.Wave.String() != "2" || len(r.Waves) != 2 || r.Waves[1].State != apitype.WavePassed {
		t.Errorf("stage show 1: %s, waves of %s, %d waves", r.State, r.Wave, len(r.Waves))
	}
	for _, n := range r.Nodes {
		if v, _ := c.Node(ctx, n.Name); n.Status != apitype.NodeDone || v.State.Generation != gen2 {
			t.Errorf("%s: %s, runs %q", n.Name, n.Status, v.State.Generation)
		}
	}
	revBefore := regexp.MustCompile(`rev ([0-9a-f]{8})`).FindStringSubmatch(con.capture(false))
	con.keys("P")
	s = confirm("promote", regexp.MustCompile(`Promote compute@`+gen2+`\?`))
	if !strings.Contains(s, "it reaches 4 nodes: the rollout's 4 and 0 more of group g") {
		t.Errorf("the promote confirmation does not say how many nodes it reaches:\n%s", s)
	}
	con.waitFor("promoted", regexp.MustCompile(`rollout 1: .* promoted(?s:.*)promoted: group g image: compute@`+gen2))
	// the header's revision follows the inventory the promote wrote, with
	// no ctrl+r
	st2, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if revBefore == nil || strings.HasPrefix(st2.Inventory.Revision, revBefore[1]) {
		t.Fatalf("the promote did not change the revision (%v, now %s)", revBefore, st2.Inventory.Revision)
	}
	con.waitFor("rev after promote", regexp.MustCompile(`rev `+st2.Inventory.Revision[:8]))
	text, _ := os.ReadFile(inv)
	if !strings.Contains(string(text), "  # kept through promote\n  g:\n    image: compute@"+gen2+" # group default\n") {
		t.Errorf("inventory after promote:\n%s", text)
	}
	if r := stageShow(t, sock, "1"); r.State != apitype.RolloutPromoted {
		t.Errorf("stage show 1 after P: %s", r.State)
	}

	// Rollout 2: gen1 on k1,k2 in waves of one; k1 hangs after its kernel.
	setBMC("k1", true)
	backToNodes(4)
	con.keys("Space", "Space")
	con.waitFor("k1, k2 marked", regexp.MustCompile(`4 nodes · 2 marked`))
	con.keys("s")
	s = con.waitFor("generations", regexp.MustCompile(`Stage compute on k\[1-2\] \(2 nodes\)(?s:.*)`+gen1[:12]))
	con.keys("j")
	con.waitFor("gen1 chosen", regexp.MustCompile(`(?m)^ +\S* *`+gen1))
	con.keys("Enter")
	s = con.waitFor("preview", regexp.MustCompile(`Stage compute@`+gen1+` on k\[1-2\](?s:.*)2 nodes change, 0 already have it`))
	if !regexp.MustCompile(`(?m)^  k2 +g +` + gen2 + ` +→ ` + gen1).MatchString(s) {
		t.Errorf("preview lacks k2 from gen2 to gen1:\n%s", s)
	}
	con.keys("BSpace", "1")
	con.waitFor("wave size 1", regexp.MustCompile(`wave size: 1_`))
	con.keys("Enter")
	confirm("stage", regexp.MustCompile(`Stage compute@`+gen1+` on 2 nodes\?`))
	con.waitFor("wave 1 in flight", regexp.MustCompile(`rollout 2: compute@`+gen1+` on k\[1-2\] +running(?s:.*)  1 +k1 +running `))
	con.keys("h")
	confirm("halt", regexp.MustCompile(`Halt the rollout\?`))
	// the halt does not cut k1's reboot off: it is still rebooting, and
	// finishes once k1 is fixed (its firmware no longer hangs, a power
	// cycle); no further wave starts
	con.waitFor("halted", regexp.MustCompile(`(?m)rollout 2: .* halted(?s:.*)halted by [^;\n]+; wave 1 finishes its reboots(?s:.*)^  k1 +1 +rebooting `))
	if r := stageShow(t, sock, "2"); r.State != apitype.RolloutHalted || r.Node("k1").Status != apitype.NodeRebooting {
		t.Errorf("stage show 2 right after h: %s, k1 %s", r.State, r.Node("k1").Status)
	}
	sims["k1"].SetStopAfter("")
	if err := sims["k1"].SetNextBootPXE(false); err != nil {
		t.Fatal(err)
	}
	if err := sims["k1"].PowerCycle(); err != nil {
		t.Fatal(err)
	}
	s = waitRollout("wave 1 finished after the halt", regexp.MustCompile(`(?m)rollout 2: .* halted(?s:.*)wave 1 finished(?s:.*)^  1 +k1 +passed `))
	if strings.Contains(s, "interrupted") || !regexp.MustCompile(`(?m)^  2 +k2 +pending `).MatchString(s) {
		t.Errorf("after the halt, wave 1 should finish and wave 2 not start:\n%s", s)
	}
	r = stageShow(t, sock, "2")
	if r.State != apitype.RolloutHalted || r.Node("k1").Status != apitype.NodeDone || r.Node("k2").Status != apitype.NodeStaged ||
		r.Waves[0].State != apitype.WavePassed || assigned("k1") != gen1 {
		t.Errorf("stage show 2 after h: %s, k1 %s, k2 %s, wave 1 %s, k1 assigned %s", r.State, r.Node("k1").Status,
			r.Node("k2").Status, r.Waves[0].State, assigned("k1"))
	}
	if pending, _ := sims["k1"].NextBootPXE(); pending {
		t.Error("k1's PXE boot flag is left set after the halt")
	}
	con.keys("u")
	confirm("resume", regexp.MustCompile(`Resume the rollout\?`))
	s = waitRollout("rollout 2 done", regexp.MustCompile(`rollout 2: compute@`+gen1+` on k\[1-2\] +completed`))
	for _, w := range []string{`(?m)^  1 +k1 +passed `, `(?m)^  2 +k2 +passed `, `2 done, 0 rebooting`} {
		if !regexp.MustCompile(w).MatchString(s) {
			t.Errorf("rollout 2 screen lacks %s:\n%s", w, s)
		}
	}
	if v, _ := c.Node(ctx, "k1"); v.State.Generation != gen1 || assigned("k1") != gen1 {
		t.Errorf("k1 after resume: runs %s, assigned %s", v.State.Generation, assigned("k1"))
	}
	before, _ := os.ReadFile(inv)
	con.keys("B")
	confirm("roll back", regexp.MustCompile(`Roll back the rollout\?`))
	s = con.waitFor("rolled back", regexp.MustCompile(`rollout 2: .* rolled-back`))
	if r := stageShow(t, sock, "2"); r.State != apitype.RolloutRolledBack || r.Node("k2").Status != apitype.NodeRestored {
		t.Errorf("stage show 2 after B: %s", r.State)
	}
	for _, n := range []string{"k1", "k2"} {
		if a := assigned(n); a != gen2 {
			t.Errorf("%s assigned %s after the roll back, want the promoted %s", n, a, gen2)
		}
	}
	if after, _ := os.ReadFile(inv); string(after) != string(before) {
		t.Errorf("the roll back changed the inventory:\n%s", after)
	}
	// P and u on the rolled-back rollout say why nothing happens
	con.keys("P")
	con.waitFor("P on rolled back", regexp.MustCompile(`promote: nothing to do: rollout 2 is rolled-back, which is final`))
	con.keys("u")
	con.waitFor("u on rolled back", regexp.MustCompile(`resume: nothing to do: rollout 2 is rolled-back, which is final`))

	// Rollout 3: gen1 on k3, whose firmware hangs; x aborts it in flight.
	setBMC("k3", true)
	backToNodes(2)
	con.keys("j", "j", "s")
	con.waitFor("generations", regexp.MustCompile(`Stage compute on k3 \(1 node\)`))
	con.keys("j", "Enter")
	con.waitFor("preview", regexp.MustCompile(`Stage compute@`+gen1+` on k3(?s:.*)1 node change`))
	con.keys("Enter")
	confirm("stage", regexp.MustCompile(`Stage compute@`+gen1+` on 1 node\?`))
	con.waitFor("k3 in flight", regexp.MustCompile(`rollout 3: .* running(?s:.*)  k3 +1 +rebooting`))
	con.keys("x")
	confirm("abort", regexp.MustCompile(`Abort the rollout\?`))
	// The rollout turns aborted first; k3's restore (its previous
	// generation assigned back) follows and shows on the same screen.
	con.waitFor("aborted, k3 restored", regexp.MustCompile(`rollout 3: .* aborted(?s:.*)\n  k3 +1 +restored `))
	if r := stageShow(t, sock, "3"); r.State != apitype.RolloutAborted || r.Node("k3").Status != apitype.NodeRestored || assigned("k3") != gen2 {
		t.Errorf("stage show 3 after x: %s, k3 %s assigned %s", r.State, r.Node("k3").Status, assigned("k3"))
	}
	con.keys("Escape")
	con.waitFor("node list", regexp.MustCompile(`netbootui nodes `))
	con.keys("q")
}

// stageList is `netbootui stage list -o json`.
func stageList(t *testing.T, sock string) []*apitype.Rollout {
	t.Helper()
	out, errOut, code := runCLI(t, "stage", "list", "-o", "json", sock)
	var list []*apitype.Rollout
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("stage list: %d %s%s", code, out, errOut)
	}
	return list
}
