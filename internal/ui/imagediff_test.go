package ui

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStageShowsTheDiff: the Stage flow's preview and its confirmation
// say what the staged generation changes from the generation the nodes
// have, before anything is staged.
func TestStageShowsTheDiff(t *testing.T) {
	hs := newHarness(t, 20, 120, 40)
	hs.keys("<space>", "<space>", "<space>", "s", "<enter>")
	const want = "from g2 (3 nodes): +1 -0 ~2 files, kernel changed (initramfs same)"
	if !strings.Contains(hs.screen(), want) {
		t.Fatalf("the preview lacks %q:\n%s", want, hs.screen())
	}
	hs.keys("<enter>")
	if hs.m.dialog == nil || !strings.Contains(hs.screen(), want) || !strings.Contains(hs.screen(), "Stage compute@g3 on 3 nodes?") {
		t.Fatalf("the confirmation lacks %q:\n%s", want, hs.screen())
	}
	for _, c := range hs.be.Calls() {
		if strings.HasPrefix(c, "StageCreate") {
			t.Fatalf("staged before the confirmation: %q", hs.be.Calls())
		}
	}
}

// TestDetailSaysWhatARebootChanges: a node that runs another generation
// than it is assigned says yes and what; one that runs its assigned
// generation says no.
func TestDetailSaysWhatARebootChanges(t *testing.T) {
	hs := newHarness(t, 5, 120, 40)
	hs.keys("j", "j", "<enter>") // n03 runs g1, is assigned g2
	if s := hs.screen(); !strings.Contains(s, "on reboot      yes: g1 → g2  +1 -0 ~2 files, kernel changed (initramfs same)") {
		t.Fatalf("detail of a drifted node:\n%s", s)
	}
	hs.keys("<esc>", "k", "k", "<enter>") // n01 runs g2
	if s := hs.screen(); !strings.Contains(s, "on reboot      no change: it runs g2, which it is assigned") {
		t.Fatalf("detail of a node on its generation:\n%s", s)
	}
}

// TestImageShellKey: S in :images hands the terminal to the image shell
// command for the image under the cursor, or says how to run it.
func TestImageShellKey(t *testing.T) {
	hs := newHarness(t, 5, 120, 40)
	hs.keys(":")
	hs.typeText("images")
	hs.keys("<enter>", "S")
	if !strings.Contains(hs.screen(), noImageShell) {
		t.Fatalf("S without a hook:\n%s", hs.screen())
	}
	var asked string
	hs.m.opts.ImageShell = func(image string) *exec.Cmd { asked = image; return exec.Command("true") }
	im := hs.m.images.current()
	if im == nil {
		t.Fatal("no image under the cursor")
	}
	if cmd := hs.m.imageShell(im.Name); cmd == nil || asked != im.Name {
		t.Fatalf("image shell command for %q, cmd %v", asked, cmd)
	}
	hs.send(imageShellDoneMsg{image: im.Name})
	if !strings.Contains(hs.screen(), "image shell of "+im.Name+" ended") {
		t.Fatalf("after the shell:\n%s", hs.screen())
	}
}
