package ui

import (
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/apitype"
)

// persistCalls are the fake's WipePersist calls.
func wipeCalls(hs *harness) []string {
	var out []string
	for _, c := range hs.be.Calls() {
		if strings.HasPrefix(c, "WipePersist") {
			out = append(out, c)
		}
	}
	return out
}

// TestPersistView: :persist shows the cursor node's persisted paths (or,
// from a detail, the detail's node); W asks first (default No: a plain
// enter wipes nothing), y wipes and the view shows the emptied paths; a
// node that persists nothing says why; an operator's wipe shows the
// daemon's refusal.
func TestPersistView(t *testing.T) {
	hs := newHarness(t, 10, 120, 30)
	hs.be.persist = map[string]*apitype.PersistView{
		"n02": {Node: "n02", Export: "10.0.0.1:/netbootui/nodes/n02", Paths: []apitype.PersistPath{
			{Path: "/var/log", Files: 3, Bytes: 3 << 20}, {Path: "/var/lib/keys", Missing: true}}},
	}
	hs.press(":", "p", "e", "r", "s", "i", "s", "t", "<enter>")
	if scr := hs.screen(); !strings.Contains(scr, "PERSISTED PATHS  n01") || !strings.Contains(scr, "n01 persists nothing: its group persists no paths") {
		t.Fatalf(":persist on n01:\n%s", scr)
	}
	hs.press("W")
	if hs.m.dialog != nil || len(wipeCalls(hs)) != 0 {
		t.Fatalf("W on a node that persists nothing: dialog %v, calls %v", hs.m.dialog != nil, hs.be.Calls())
	}
	// From n02's detail.
	hs.press("<esc>", "j", "<enter>", ":", "p", "e", "r", "s", "i", "s", "t", "<enter>")
	scr := hs.screen()
	if !strings.Contains(scr, "PERSISTED PATHS  n02") || !strings.Contains(scr, "mounted from 10.0.0.1:/netbootui/nodes/n02") ||
		!strings.Contains(scr, "/var/log") || !strings.Contains(scr, "3.0MiB") || !strings.Contains(scr, "not made yet") {
		t.Fatalf(":persist from n02's detail:\n%s", scr)
	}
	hs.press("W")
	if hs.m.dialog == nil || !strings.Contains(hs.screen(), "Wipe the persisted paths of n02?") || !strings.Contains(hs.screen(), "/var/log  (3 files, 3.0MiB)") {
		t.Fatalf("no confirmation:\n%s", hs.screen())
	}
	hs.press("<wait>", "<enter>")
	if c := wipeCalls(hs); len(c) != 0 {
		t.Fatalf("wiped on a plain enter: %v", c)
	}
	// An operator is refused by the daemon; the refusal shows.
	hs.be.wipeRole = apitype.RoleOperator
	hs.press("W", "<wait>", "y")
	if scr := hs.screen(); !strings.Contains(scr, "needs the admin role") || !strings.Contains(scr, "3.0MiB") {
		t.Fatalf("operator's wipe:\n%s", scr)
	}
	hs.be.wipeRole = apitype.RoleAdmin
	hs.press("W", "<wait>", "y")
	if c := wipeCalls(hs); len(c) != 2 || c[1] != "WipePersist n02" {
		t.Fatalf("wipe calls %v", c)
	}
	scr = hs.screen()
	if !strings.Contains(scr, "wiped the persisted paths of n02: 3 entries removed") || strings.Contains(scr, "3.0MiB") {
		t.Fatalf("after the wipe:\n%s", scr)
	}
	hs.press("<esc>")
	if hs.m.view != viewDetail {
		t.Errorf("esc from :persist went to view %d, want the detail", hs.m.view)
	}
}

// TestPersistViewDisk: a node that keeps its persisted paths on its own
// disk shows the partition, what the node said and its paths as held on
// the node; W (confirmed) records a wipe the node applies at its next
// boot, shown pending.
func TestPersistViewDisk(t *testing.T) {
	hs := newHarness(t, 10, 120, 30)
	hs.be.persist = map[string]*apitype.PersistView{
		"n01": {Node: "n01", Paths: []apitype.PersistPath{{Path: "/var/log", OnNode: true}},
			Disk: &apitype.PersistDisk{Label: "NBUI-PERSIST", Missing: "boot", Reported: "disk NBUI-PERSIST on /dev/vda"}},
	}
	hs.press(":", "p", "e", "r", "s", "i", "s", "t", "<enter>")
	scr := hs.screen()
	for _, want := range []string{"PERSISTED PATHS  n01", "on the node's own disk: the partition labelled NBUI-PERSIST (missing: boot)",
		"node says: disk NBUI-PERSIST on /dev/vda", "on the node"} {
		if !strings.Contains(scr, want) {
			t.Fatalf("no %q in :persist of a disk-backed node:\n%s", want, scr)
		}
	}
	hs.press("W")
	if hs.m.dialog == nil || !strings.Contains(hs.screen(), "At its next boot (reboot-clean it to apply now), n01 removes for good") {
		t.Fatalf("no confirmation:\n%s", hs.screen())
	}
	hs.press("<wait>", "y")
	if c := wipeCalls(hs); len(c) != 1 || c[0] != "WipePersist n01" {
		t.Fatalf("wipe calls %v", c)
	}
	scr = hs.screen()
	if !strings.Contains(scr, "wipe 00112233445566ff of n01's disk recorded: applied at its next boot") ||
		!strings.Contains(scr, "wipe 00112233445566ff by tester: pending, applied at the node's next boot") {
		t.Fatalf("after the wipe:\n%s", scr)
	}
}
