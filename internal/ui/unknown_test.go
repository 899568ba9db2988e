package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
)

// TestUnknownView: :unknown lists the machines in the order they first
// asked; `a` on marked entries asks first and a plain enter (No) changes
// nothing; `t` changes the group; `y` adopts the marked machines in list
// order into that group, and they leave the view for the node list.
func TestUnknownView(t *testing.T) {
	hs := newHarness(t, 10, 120, 30)
	first := epoch.Add(-time.Minute)
	hs.be.unknown = []apitype.UnknownNode{
		{MAC: "52:54:00:aa:00:03", Arch: "UEFI x86-64", Address: "10.0.0.53:68", FirstSeen: first, LastSeen: epoch, Requests: 3},
		{MAC: "52:54:00:aa:00:01", Address: "10.0.0.51:41000", FirstSeen: first.Add(time.Second), LastSeen: epoch, Requests: 1},
		{MAC: "52:54:00:aa:00:02", FirstSeen: first.Add(2 * time.Second), LastSeen: epoch, Requests: 1},
	}
	hs.press(":", "u", "n", "k", "n", "o", "w", "n", "<enter>")
	scr := hs.screen()
	i1, i2, i3 := strings.Index(scr, "52:54:00:aa:00:03"), strings.Index(scr, "52:54:00:aa:00:01"), strings.Index(scr, "52:54:00:aa:00:02")
	if !strings.Contains(scr, "UNKNOWN PXE CLIENTS  3  (adopt into group compute)") || i1 < 0 || i1 > i2 || i2 > i3 ||
		!strings.Contains(scr, "UEFI x86-64") || !strings.Contains(scr, "1m  ") {
		t.Fatalf(":unknown:\n%s", scr)
	}
	// Mark the first and the third (space moves down), then a: the dialog
	// defaults to No.
	hs.press("<space>", "j", "<space>", "a")
	if hs.m.dialog == nil || !strings.Contains(hs.screen(), "Adopt 2 machines into group compute?") {
		t.Fatalf("no confirmation:\n%s", hs.screen())
	}
	hs.press("<wait>", "<enter>")
	for _, c := range hs.be.Calls() {
		if strings.HasPrefix(c, "Adopt") {
			t.Fatalf("adopted on a plain enter: %v", hs.be.Calls())
		}
	}
	hs.press("t", "a", "<wait>", "y")
	if adopt := lastAdopt(hs); adopt != "Adopt [52:54:00:aa:00:03 52:54:00:aa:00:02] group=gpu" {
		t.Fatalf("adopt call %q (calls %v)", adopt, hs.be.Calls())
	}
	scr = hs.screen()
	if !strings.Contains(scr, "adopted 52:54:00:aa:00:03 → new11, 52:54:00:aa:00:02 → new12") || strings.Contains(scr, "52:54:00:aa:00:02  ") ||
		!strings.Contains(scr, "52:54:00:aa:00:01") || !strings.Contains(scr, "UNKNOWN PXE CLIENTS  1") {
		t.Fatalf("after adoption:\n%s", scr)
	}
	hs.press("<esc>")
	if !strings.Contains(hs.screen(), "new12") {
		t.Errorf("adopted nodes not in the node list:\n%s", hs.screen())
	}
}

// TestAdoptByBMCCommand: `:adopt BMC...` asks first (a plain enter changes
// nothing), then adopts the machines behind the BMCs into the group (the
// biggest when :unknown picked none) and says which node each became with
// its NICs; a BMC that cannot be read says why; `:adopt` alone says how.
func TestAdoptByBMCCommand(t *testing.T) {
	hs := newHarness(t, 10, 120, 30)
	hs.press(":")
	hs.typeText("adopt 10.2.0.7:443 bmc-r1-08")
	hs.press("<enter>")
	if hs.m.dialog == nil || !strings.Contains(hs.screen(), "Adopt the 2 machines behind 2 BMCs into group compute?") ||
		!strings.Contains(hs.screen(), "bmc-r1-08") {
		t.Fatalf("no confirmation:\n%s", hs.screen())
	}
	hs.press("<wait>", "<enter>")
	if adopt := lastAdopt(hs); adopt != "" {
		t.Fatalf("adopted on a plain enter: %s", adopt)
	}
	hs.press(":")
	hs.typeText("adopt 10.2.0.7:443 bmc-r1-08")
	hs.press("<enter>", "<wait>", "y")
	if adopt := lastAdopt(hs); adopt != "Adopt bmcs=[10.2.0.7:443 bmc-r1-08] group=compute" {
		t.Fatalf("adopt call %q (calls %v)", adopt, hs.be.Calls())
	}
	if scr := hs.screen(); !strings.Contains(scr, "adopted BMC 10.2.0.7:443 → new11 (NICs 52:54:00:bb:00:01 52:54:00:bb:00:02), BMC bmc-r1-08 → new12") {
		t.Fatalf("after adoption:\n%s", scr)
	}
	hs.press(":")
	hs.typeText("adopt down")
	hs.press("<enter>", "<wait>", "y")
	if scr := hs.screen(); !strings.Contains(scr, "reading the NICs of down: BMC down:443: connection refused") {
		t.Fatalf("a BMC that cannot be read:\n%s", scr)
	}
	hs.press(":")
	hs.typeText("adopt")
	hs.press("<enter>")
	if hs.m.dialog != nil || !strings.Contains(hs.screen(), "usage: :adopt BMC[:PORT]...") {
		t.Fatalf(":adopt alone:\n%s", hs.screen())
	}
}

// lastAdopt is the fake backend's last Adopt call ("" when none).
func lastAdopt(hs *harness) string {
	var adopt string
	for _, c := range hs.be.Calls() {
		if strings.HasPrefix(c, "Adopt") {
			adopt = c
		}
	}
	return adopt
}
