package ui

import (
	"slices"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// stageTo is the key sequence that stages compute@g3 on n01-n03 with the
// default wave size and says yes.
var stageTo = []string{"<space>", "<space>", "<space>", "s", "<enter>", "<enter>", "<wait>", "y"}

// rolloutCalls are the calls staging n01-n03 in waves of 2 makes when
// every node passes: create, run, then one follow stream of the rollout
// that delivers each wave (no read, no poll), and the node list after the
// run and once the rollout completed.
var rolloutCalls = []string{
	"Images", "StagePreview n[01-03] compute@g3 wave=2", "DiffImages compute:g2 compute:g3", "StageCreate n[01-03] compute@g3 wave=2", "StageAction r1 run",
	"FollowStage r1", "Nodes", "Nodes",
}

func TestStageKeysMakeCalls(t *testing.T) {
	cases := []struct {
		name string
		fail map[string]string
		keys []string
		want []string
	}{
		{"stage marked nodes in waves of 2, followed to the end", nil, stageTo, rolloutCalls},
		{"the stage dialog defaults to no", nil, []string{"<space>", "<space>", "<space>", "s", "<enter>", "<enter>", "<wait>", "<enter>"},
			[]string{"Images", "StagePreview n[01-03] compute@g3 wave=2", "DiffImages compute:g2 compute:g3"}},
		{"keys typed before the dialog appeared are swallowed", nil, []string{"s", "<enter>", "<enter>", "y", "<enter>"},
			[]string{"Images", "StagePreview n01 compute@g3 wave=2", "DiffImages compute:g2 compute:g3"}},
		{"typed wave size", nil, []string{"s", "<enter>", "<bs>", "1", "0", "0", "%", "<enter>", "<wait>", "y"},
			[]string{"Images", "StagePreview n01 compute@g3 wave=2", "DiffImages compute:g2 compute:g3", "StageCreate n01 compute@g3 wave=100%", "StageAction r1 run", "FollowStage r1", "Nodes", "Nodes"}},
		{"a bad wave size asks again and calls nothing", nil, []string{"s", "<enter>", "<bs>", "0", "<enter>", "<wait>", "y"},
			[]string{"Images", "StagePreview n01 compute@g3 wave=2", "DiffImages compute:g2 compute:g3"}},
		{"an older generation", nil, []string{"s", "j", "j", "<enter>"}, []string{"Images", "StagePreview n01 compute@g1 wave=2", "DiffImages compute:g2 compute:g1"}},
		{"esc goes back to the generations", nil, []string{"s", "<enter>", "<esc>", "j", "<enter>"},
			[]string{"Images", "StagePreview n01 compute@g3 wave=2", "DiffImages compute:g2 compute:g3", "StagePreview n01 compute@g2 wave=2"}},
		{"nodes of two images are refused", nil, []string{"<space>", "<space>", "<space>", "<space>", "<space>", "s"}, nil},
		{"resume after the gate halted it", map[string]string{"n03": "no check-in"}, append(slices.Clone(stageTo), "u", "<wait>", "y"),
			[]string{"StageAction r1 resume", "FollowStage r1", "Nodes", "Nodes"}},
		{"roll back defaults to no", map[string]string{"n03": "no check-in"}, append(slices.Clone(stageTo), "B", "<wait>", "<enter>"), nil},
		{"roll back", map[string]string{"n03": "no check-in"}, append(slices.Clone(stageTo), "B", "<wait>", "y"),
			[]string{"StageAction r1 rollback", "Nodes"}},
		{"abort", map[string]string{"n03": "no check-in"}, append(slices.Clone(stageTo), "x", "<wait>", "y"),
			[]string{"StageAction r1 abort", "FollowStage r1", "Nodes", "Nodes"}}, // aborted may still be rolled back: followed
		{"promote once complete", nil, append(slices.Clone(stageTo), "P", "<wait>", "y"), []string{"StageAction r1 promote", "Nodes"}},
		{"halt refused by the daemon when complete", nil, append(slices.Clone(stageTo), "h", "<wait>", "y"), []string{"StageAction r1 halt"}},
		// a rolled-back rollout is final: P and u ask nothing, call nothing
		// (the flash says why: TestStageFinalRolloutSaysWhy)
		{"promote after roll back calls nothing", map[string]string{"n03": "no check-in"},
			append(slices.Clone(stageTo), "B", "<wait>", "y", "P", "<wait>", "y"), []string{"StageAction r1 rollback", "Nodes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs := newHarness(t, 20, 80, 24)
			hs.be.stageFail = c.fail
			hs.be.reset()
			keys := c.keys
			if c.fail != nil && len(keys) > len(stageTo) { // only the calls after the rollout halted
				hs.press(stageTo...)
				hs.be.reset()
				keys = keys[len(stageTo):]
			} else if strings.HasPrefix(c.name, "promote") || strings.HasPrefix(c.name, "halt") {
				hs.press(stageTo...)
				hs.be.reset()
				keys = keys[len(stageTo):]
			}
			hs.press(keys...)
			if got := hs.be.Calls(); !slices.Equal(got, c.want) {
				t.Errorf("calls %q,\nwant %q", got, c.want)
			}
		})
	}
}

// TestStageFinalRolloutSaysWhy: P or u on a rolled-back rollout say that
// it is final instead of doing nothing silently.
func TestStageFinalRolloutSaysWhy(t *testing.T) {
	hs := newHarness(t, 20, 80, 24)
	hs.be.stageFail = map[string]string{"n03": "no check-in"}
	hs.press(stageTo...)
	hs.press("B", "<wait>", "y")
	for _, k := range []string{"P", "u"} {
		hs.be.reset()
		hs.press(k)
		scr := hs.screen()
		if !strings.Contains(scr, "nothing to do: rollout r1 is rolled-back, which is final") || strings.Contains(scr, "[ No ]") ||
			len(hs.be.Calls()) != 0 {
			t.Errorf("%s on a rolled-back rollout: calls %q\n%s", k, hs.be.Calls(), scr)
		}
	}
}

func TestStageRolloutOutcome(t *testing.T) {
	hs := newHarness(t, 20, 120, 40)
	hs.be.stageFail = map[string]string{"n03": "n03: no check-in with g3 within 10m0s"}
	hs.press("<space>", "<space>", "<space>", "<space>", "s", "<enter>", "<enter>", "<wait>", "y")
	ro := hs.m.stage.ro
	if ro == nil || ro.State != apitype.RolloutHalted {
		t.Fatalf("rollout %+v, want halted by the gate", ro)
	}
	scr := hs.screen()
	for _, want := range []string{
		"rollout r1: compute@g3 on n[01-04]  halted",
		"rollout r1 is halted: wave 2: 1 of 2 nodes failed",
		"1     n[01-02]         passed   ██████████ 2 ok, 0 failed",
		"n03        2    reverted   g2           no check-in with g3 within 10m0s",
	} {
		if !strings.Contains(scr, want) {
			t.Errorf("rollout view lacks %q:\n%s", want, scr)
		}
	}
	// nothing polls: the rollout came through its follow stream alone
	if hs.m.stage.fetching || slices.Contains(hs.be.Calls(), "Stage r1") {
		t.Errorf("the rollout was read, not followed: %q", hs.be.Calls())
	}
	// the fix, then resume completes it; promote ends it
	hs.be.stageFail = nil
	hs.press("u", "<wait>", "y")
	if st := hs.m.stage.ro.State; st != apitype.RolloutCompleted {
		t.Fatalf("after resume: %s, want completed", st)
	}
	hs.press("P", "<wait>", "y")
	if st := hs.m.stage.ro.State; st != apitype.RolloutPromoted {
		t.Fatalf("after promote: %s", st)
	}
	if scr := hs.screen(); !strings.Contains(scr, "promoted: images.compute.current: g3") {
		t.Errorf("promotion not shown:\n%s", scr)
	}
	// the node list was refreshed: the nodes run... are assigned g3 now
	for _, n := range hs.m.nodes.all[:4] {
		if n.Assigned != "g3" {
			t.Errorf("%s assigned %s after the rollout", n.Name, n.Assigned)
		}
	}
	// esc goes back; :stage brings the rollout view back
	hs.press("<esc>")
	if hs.m.view != viewNodes {
		t.Errorf("view %v after esc", hs.m.view)
	}
	hs.be.reset()
	hs.keys(":")
	hs.typeText("stage")
	hs.keys("<enter>")
	if hs.m.view != viewStage || !slices.Equal(hs.be.Calls(), []string{"Stage r1", "Nodes"}) {
		t.Errorf("view %v, calls %q", hs.m.view, hs.be.Calls())
	}
}

func TestStageRefusals(t *testing.T) {
	hs := newHarness(t, 20, 120, 40)
	hs.press("<space>", "<space>", "<space>", "<space>", "<space>", "s")
	if scr := hs.screen(); !strings.Contains(scr, "stage: the nodes use different images (compute, gpu): mark nodes of one image") {
		t.Errorf("mixed images not refused:\n%s", scr)
	}
	if hs.m.view != viewNodes {
		t.Errorf("view %v", hs.m.view)
	}
	// a node already on the generation: nothing to stage
	hs = newHarness(t, 20, 120, 40)
	hs.press("s", "j", "<enter>") // g2: n01 has it
	scr := hs.screen()
	if !strings.Contains(scr, "0 nodes change, 1 already have it") {
		t.Errorf("preview:\n%s", scr)
	}
	hs.press("<enter>")
	if hs.m.dialog != nil || !strings.Contains(hs.screen(), "every selected node already has g2; nothing to do") {
		t.Errorf("staged nothing:\n%s", hs.screen())
	}
	// a bad wave size is named
	hs = newHarness(t, 20, 120, 40)
	hs.press("s", "<enter>", "<bs>", "0", "<enter>")
	if !strings.Contains(hs.screen(), `wave size "0": want a count >= 1`) || hs.m.dialog != nil {
		t.Errorf("bad wave size:\n%s", hs.screen())
	}
	// 12 nodes: the count must be typed
	hs = newHarness(t, 12, 120, 40)
	hs.be.reset()
	for i := 0; i < 12; i++ {
		if hs.m.nodes.all[i].Image == "compute" {
			hs.m.nodes.marks[hs.m.nodes.all[i].Name] = true
		}
	}
	hs.press("s", "<enter>", "<enter>", "<wait>", "y", "<enter>")
	if slices.Contains(hs.be.Calls(), "StageCreate n[01-04,06-09,11-12] compute@g3 wave=2") {
		t.Error("y staged 10 nodes")
	}
	hs.press("<enter>", "<wait>", "1", "0", "<enter>")
	if !slices.Contains(hs.be.Calls(), "StageCreate n[01-04,06-09,11-12] compute@g3 wave=2") {
		t.Errorf("typed count did not stage: %q", hs.be.Calls())
	}
}

func TestImagesKeysMakeCalls(t *testing.T) {
	open := []string{":", "i", "m", "a", "g", "e", "s", "<enter>"}
	cases := []struct {
		name string
		keys []string
		want []string
	}{
		{"b builds the image under the cursor, unpublished", []string{"b"}, []string{"Build compute publish=false force=false", "Images", "Nodes"}},
		{"b on the second image", []string{"j", "b"}, []string{"Build gpu publish=false force=false", "Images", "Nodes"}},
		{"b publishes after the count (16 nodes follow compute)", []string{"b", "<wait>", "1", "6", "<enter>"}, []string{"Build compute publish=false force=false", "Images", "Nodes",
			"Publish compute g4", "Images", "Nodes"}},
		{"b publish: esc is no", []string{"b", "<wait>", "<esc>"}, []string{"Build compute publish=false force=false", "Images", "Nodes"}},
		{"b publish early keys swallowed", []string{"b", "1", "6", "<enter>"}, []string{"Build compute publish=false force=false", "Images", "Nodes"}},
		{"r rolls back after yes", []string{"r", "<wait>", "y"}, []string{"Rollback compute", "Images", "Nodes"}},
		{"r defaults to no", []string{"r", "<wait>", "<enter>"}, nil},
		{"r early keys swallowed", []string{"r", "y"}, nil},
		{"r without a previous generation asks nothing", []string{"j", "r", "<wait>", "y"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs := newHarness(t, 20, 80, 24)
			hs.press(open...)
			hs.be.reset()
			hs.press(c.keys...)
			if got := hs.be.Calls(); !slices.Equal(got, c.want) {
				t.Errorf("calls %q, want %q", got, c.want)
			}
		})
	}
}

func TestImagesBuildAndRollback(t *testing.T) {
	hs := newHarness(t, 20, 120, 40)
	hs.press(":", "i", "m", "<enter>", "b")
	scr := hs.screen()
	for _, want := range []string{"Publish compute@g4?", "generation g4 is built, not published", "(now g2)", "16 nodes that follow the image",
		"the 7 running turn dirty", "Type 16", "* g2"} {
		if !strings.Contains(scr, want) {
			t.Errorf("after the build the screen lacks %q:\n%s", want, scr)
		}
	}
	hs.press("<wait>", "<esc>")
	if scr := hs.screen(); !strings.Contains(scr, "generation g4 built, not published (s stages it") || !strings.Contains(scr, "* g2") ||
		!strings.Contains(scr, "mksquashfs: 412 files") || hs.be.images[0].Current != "g2" {
		t.Errorf("after no, g4 should stay unpublished:\n%s", scr)
	}
	// b again: nothing new is built here (the fake builds g5), and yes publishes it
	hs.press("b", "<wait>", "1", "6", "<enter>")
	scr = hs.screen()
	for _, want := range []string{"build compute: generation g5 published: 16 nodes follow it", "* g5"} {
		if !strings.Contains(scr, want) {
			t.Errorf("after the build the screen lacks %q:\n%s", want, scr)
		}
	}
	hs.press("r", "<wait>")
	if scr := hs.screen(); !strings.Contains(scr, "Roll back image compute?") || !strings.Contains(scr, "current g5 → g4") {
		t.Errorf("rollback dialog:\n%s", scr)
	}
	hs.press("y")
	if scr := hs.screen(); !strings.Contains(scr, "image compute rolled back: current generation is g4") || !strings.Contains(scr, "* g4") {
		t.Errorf("after the rollback:\n%s", scr)
	}
	// a failed build is shown with the daemon's words and keeps the list
	hs.be.buildFail = "recipe compute/recipe.yaml:3:1: unknown key \"pakages\""
	hs.press("b")
	if scr := hs.screen(); !strings.Contains(scr, `build compute failed: build compute: recipe compute/recipe.yaml:3:1: unknown key "pakages"`) {
		t.Errorf("failed build:\n%s", scr)
	}
	if got := hs.be.images[0].Current; got != "g4" {
		t.Errorf("a failed build changed current to %s", got)
	}
}

// TestStageFollowsStream: `:stage` opens one follow stream of the newest
// rollout; a change the daemon streams (another admin halted it) updates
// the view at once, and the only command scheduled after a streamed change
// is the wait for the next one: no tick, no read. A promoted rollout ends
// the stream.
func TestStageFollowsStream(t *testing.T) {
	hs := newHarness(t, 20, 120, 40)
	hs.press("<space>", "<space>", "<space>", "s", "<enter>", "<enter>", "<wait>", "y") // staged and run: completes in the fake
	hs.press("<esc>")
	hs.m.stage = nil // a console that did not stage it
	hs.be.mu.Lock()
	ro := hs.be.rollouts["r1"]
	ro.State, ro.Reason = apitype.RolloutStaged, "" // as if staged again, waiting
	hs.be.mu.Unlock()
	hs.be.stageFeed = make(chan *apitype.Rollout, 4)
	hs.be.reset()
	hs.keys(":")
	hs.typeText("stage")
	_, cmd := hs.m.Update(keyMsg("<enter>"))
	wait := hs.startStream(cmd)
	_, wait = hs.m.Update(hs.next(wait))
	if hs.m.stage.ro == nil || hs.m.stage.ro.State != apitype.RolloutStaged || !strings.Contains(hs.screen(), "staged") {
		t.Fatalf("first state not shown:\n%s", hs.screen())
	}
	halted := cloneRollout(ro)
	halted.State, halted.Reason = apitype.RolloutHalted, "halted by uid 1000 (ada)"
	hs.be.stageFeed <- halted
	msg := hs.next(wait)
	if _, ok := msg.(followMsg[*apitype.Rollout]); !ok {
		t.Fatalf("the command after a streamed change gave %T, want only the stream's next change (no tick, no read)", msg)
	}
	_, next := hs.m.Update(msg)
	if scr := hs.screen(); hs.m.stage.ro.State != apitype.RolloutHalted || !strings.Contains(scr, "rollout r1 is halted: halted by uid 1000 (ada)") {
		t.Errorf("streamed halt not shown:\n%s", scr)
	}
	// a halted rollout fetches the node list, and still waits on the stream
	b, ok := next().(tea.BatchMsg)
	if !ok || len(b) != 2 {
		t.Fatalf("after a halt: want the stream's wait and the node list, got %#v", b)
	}
	if calls := hs.be.Calls(); !slices.Equal(calls, []string{"FollowStage "}) {
		t.Errorf("calls %q, want the one follow stream", calls)
	}
	promoted := cloneRollout(halted)
	promoted.State = apitype.RolloutPromoted
	hs.be.stageFeed <- promoted
	hs.m.Update(hs.next(b[0]))
	if hs.m.stage.ro.State != apitype.RolloutPromoted || hs.m.follows[followStage].running {
		t.Errorf("promoted: state %s, stream still followed %v", hs.m.stage.ro.State, hs.m.follows[followStage].running)
	}
}
