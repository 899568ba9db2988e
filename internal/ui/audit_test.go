package ui

import (
	"image/color"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/netbootui/netbootui/internal/apitype"
)

// TestColumnsDropByPriority: the node list keeps NAME and STAGE at any
// width, shortens its columns below 110 and drops the others by priority
// as the terminal narrows further.
func TestColumnsDropByPriority(t *testing.T) {
	cases := []struct {
		width int
		want  string
	}{
		{140, "NAME GROUP POWER STAGE ASSIGNED RUNNING DIRTY CHECK-IN ERROR"},
		// at 80 columns titles shorten and GROUP and ASSIGNED stay; the
		// cursor node's error is shown in full under the list
		{80, "NAME GROUP PWR STAGE ASSIGNED RUNNING DIRTY SEEN ERROR"},
		{70, "NAME PWR STAGE RUNNING DIRTY SEEN"},
		{60, "NAME PWR STAGE RUNNING DIRTY SEEN"},
		{45, "NAME STAGE RUNNING DIRTY"},
		{30, "NAME STAGE"},
	}
	for _, c := range cases {
		hs := newHarness(t, 20, c.width, 24)
		lines := strings.Split(hs.screen(), "\n")
		if got := strings.Join(strings.Fields(lines[1]), " "); got != c.want {
			t.Errorf("width %d: header %q, want %q", c.width, got, c.want)
		}
		checkSize(t, hs.screen(), c.width, 24)
	}
}

// TestLightAndDarkStyles: the terminal's background colour picks the
// palette (the console starts dark and follows what the terminal reports).
func TestLightAndDarkStyles(t *testing.T) {
	hs := newHarness(t, 5, 80, 24)
	title := func() string { return strings.Split(hs.m.Render(), "\n")[0] }
	if dark := title(); !strings.Contains(dark, "38;5;39") {
		t.Errorf("dark title has no colour 39: %q", dark)
	}
	hs.send(tea.BackgroundColorMsg{Color: color.White})
	if light := title(); !strings.Contains(light, "38;5;25") || strings.Contains(light, "38;5;39") {
		t.Errorf("light title should use colour 25: %q", light)
	}
	hs.send(tea.BackgroundColorMsg{Color: color.Black})
	if dark := title(); !strings.Contains(dark, "38;5;39") {
		t.Errorf("back on dark, no colour 39: %q", dark)
	}
}

// TestHelpListsEveryBinding: every binding of the key map is in a help
// section, so `?` shows every key.
func TestHelpListsEveryBinding(t *testing.T) {
	k := DefaultKeyMap()
	listed := map[string]bool{}
	for _, g := range k.Groups() {
		for _, b := range g.Bindings {
			listed[b.Help().Key+" "+b.Help().Desc] = true
		}
	}
	v := reflect.ValueOf(k)
	for i := 0; i < v.NumField(); i++ {
		b, ok := v.Field(i).Interface().(key.Binding)
		if !ok {
			continue
		}
		if !listed[b.Help().Key+" "+b.Help().Desc] {
			t.Errorf("binding %s (%q) is not in the help", v.Type().Field(i).Name, b.Help().Key)
		}
	}
	hs := newHarness(t, 5, 120, 60)
	hs.keys("?")
	for _, want := range []string{"E            edit the node's group", "e            edit the node's own"} {
		if !strings.Contains(hs.screen(), want) {
			t.Errorf("help lacks %q:\n%s", want, hs.screen())
		}
	}
}

// TestBMCFactsReadByACommand: opening the detail makes no call in Update;
// the BMC read is a command of its own, and its answer fills the rows
// (a BMC that does not answer shows its error, never a password).
func TestBMCFactsReadByACommand(t *testing.T) {
	hs := newHarness(t, 20, 120, 40)
	hs.be.reset()
	_, cmd := hs.m.Update(keyMsg("<enter>"))
	if calls := hs.be.Calls(); len(calls) != 0 {
		t.Fatalf("Update made calls itself: %q", calls)
	}
	if !strings.Contains(hs.screen(), "loading n01") {
		t.Errorf("no loading line:\n%s", hs.screen())
	}
	hs.run(cmd)
	scr := hs.screen()
	for _, want := range []string{"bmc            10.2.0.1:623", "bmc device     device 32 rev 1, firmware 1.00, IPMI 2.0, manufacturer 4753, product 3",
		"bmc power      on at 11:59:58 (2s ago) · polled every 30s"} {
		if !strings.Contains(scr, want) {
			t.Errorf("detail lacks %q:\n%s", want, scr)
		}
	}
	hs.be.powerFail = map[string]string{"n02": "BMC 10.2.0.2:623: no answer within 5s"}
	hs.keys("<esc>", "j", "<enter>")
	scr = hs.screen()
	checkGolden(t, "detail-bmc-failed-120x40", scr)
	if !strings.Contains(scr, "bmc device     -  BMC 10.2.0.2:623: no answer within 5s") {
		t.Errorf("BMC error not shown:\n%s", scr)
	}
	if strings.Contains(strings.ToLower(scr), "password") {
		t.Errorf("the detail mentions a password:\n%s", scr)
	}
	// a reply for a node no longer shown is dropped
	hs.send(detailBMCMsg{name: "n01"})
	if !strings.Contains(hs.screen(), "no answer within 5s") {
		t.Errorf("a stale BMC reply replaced n02's:\n%s", hs.screen())
	}
}

// TestBuildUnchanged: a rebuild of unchanged inputs says that nothing was
// built and which generation has them.
func TestBuildUnchanged(t *testing.T) {
	hs := newHarness(t, 20, 100, 30)
	hs.keys(":")
	hs.typeText("images")
	hs.keys("<enter>")
	hs.m.Update(keyMsg("b")) // the call is not run: progress is fed below
	hs.now = hs.now.Add(time.Second)
	hs.m.Update(buildMsg{id: hs.m.images.build.id, progress: []apitype.BuildProgress{
		{Image: "compute", Step: apitype.BuildStepHash},
		{Image: "compute", Line: "source hash 5e1f"},
		{Image: "compute", Step: apitype.BuildStepUnchanged},
		{Image: "compute", Line: "unchanged: current generation g2 was built from the same inputs"},
	}, done: &buildDoneMsg{gen: &apitype.Manifest{Image: "compute", ID: "g2"}}})
	scr := ansi.Strip(hs.m.Render())
	for _, want := range []string{"build compute: unchanged, nothing built: generation g2 has the same inputs (it is current)",
		"unchanged: current generation g2 was built from the same inputs"} {
		if !strings.Contains(scr, want) {
			t.Errorf("screen lacks %q:\n%s", want, scr)
		}
	}
	if strings.Contains(scr, "published") {
		t.Errorf("an unchanged build claims a publish:\n%s", scr)
	}
}

// TestLiveUpdatesCoalesce: a burst of event batches makes no call in
// Update and schedules one node-list refresh, which then shows the new
// state; the events view has every event.
func TestLiveUpdatesCoalesce(t *testing.T) {
	hs := newHarness(t, 20, 80, 24)
	hs.be.reset()
	for i := range 10 {
		ev := apitype.Event{Seq: uint64(100 + i), Time: epoch, Node: "n01", Kind: apitype.KindFetch, Stage: apitype.StageKernel, Proto: "http", Path: "/g2/vmlinuz"}
		hs.m.Update(eventsMsg{stream: hs.m.stream, evs: []apitype.Event{ev}}) // commands not run: the stream's wait would block
	}
	if calls := hs.be.Calls(); len(calls) != 0 {
		t.Fatalf("Update made calls: %q", calls)
	}
	if !hs.m.tickSet {
		t.Fatal("no refresh scheduled")
	}
	hs.be.mu.Lock()
	hs.be.nodes[0].State.Stage = apitype.StageKernel
	hs.be.mu.Unlock()
	hs.send(refreshTickMsg{})
	if calls := hs.be.Calls(); !slices.Equal(calls, []string{"Nodes"}) {
		t.Errorf("10 event batches made calls %q, want one Nodes", calls)
	}
	if !regexp.MustCompile(`(?m)^  n01 .*kernel`).MatchString(hs.screen()) {
		t.Errorf("n01's new stage not shown:\n%s", hs.screen())
	}
	if len(hs.m.events.all) < 10 {
		t.Errorf("events view has %d events, want the 10", len(hs.m.events.all))
	}
}

// TestEventsViewMergesAudit: the events view merges the audit log in by
// time, follows it while open (an entry recorded later appears once, with
// no read and no tick: the only command scheduled is the wait for the
// stream), its filter applies to both, and leaving it reads nothing.
func TestEventsViewMergesAudit(t *testing.T) {
	hs := newHarness(t, 5, 120, 30)
	hs.be.audit = []apitype.AuditEntry{{Time: epoch.Add(-time.Minute), Who: "uid 0 (root)", Action: "power cycle", Target: "n[01-03]", Result: "3 ok, 0 failed"}}
	hs.be.auditFeed = make(chan apitype.AuditEntry, 4)
	hs.m.events.add([]apitype.Event{
		{Seq: 1, Time: epoch.Add(-2 * time.Minute), Node: "n01", Kind: apitype.KindFetch, Stage: "kernel", Proto: "http", Path: "/g2/vmlinuz"},
		{Seq: 2, Time: epoch.Add(-30 * time.Second), Node: "n01", Kind: apitype.KindCheckin, Generation: "g2"},
	})
	hs.be.reset()
	hs.keys(":")
	hs.typeText("events")
	_, cmd := hs.m.Update(keyMsg("<enter>"))
	if calls := hs.be.Calls(); len(calls) != 0 {
		t.Fatalf("Update made calls: %q", calls)
	}
	wait := hs.startStream(cmd)
	_, wait = hs.m.Update(hs.next(wait))
	if !regexp.MustCompile(`(?s)n01 +fetch .*\n.*audit +uid 0 \(root\): power cycle n\[01-03\] → 3 ok, 0 failed\n.*n01 +checkin`).MatchString(hs.screen()) {
		t.Errorf("audit entry not merged in by time:\n%s", hs.screen())
	}
	// an entry recorded after the stream opened appears, the old one once
	hs.be.auditFeed <- apitype.AuditEntry{Time: epoch, Who: "uid 1000 (ada)", Action: "edit group gpu", Target: "kernel_args", Result: "ok: revision 1a2b"}
	msg := hs.next(wait)
	if _, ok := msg.(followMsg[apitype.AuditEntry]); !ok {
		t.Fatalf("the command after a streamed batch gave %T, want only the stream's next batch (no tick, no read)", msg)
	}
	_, wait = hs.m.Update(msg)
	scr := hs.screen()
	if strings.Count(scr, "power cycle") != 1 || !strings.Contains(scr, "audit    uid 1000 (ada): edit group gpu kernel_args → ok: revision 1a2b") {
		t.Errorf("streamed entry not merged once:\n%s", scr)
	}
	if calls := hs.be.Calls(); !slices.Equal(calls, []string{"FollowAudit 200"}) {
		t.Errorf("calls %q, want the one follow stream", calls)
	}
	hs.keys("/")
	hs.typeText("gpu")
	if scr := hs.screen(); !strings.Contains(scr, "EVENTS  1 shown of 4") || !strings.Contains(scr, "edit group gpu") {
		t.Errorf("filter does not apply to audit entries:\n%s", scr)
	}
	hs.keys("<enter>", "<esc>", "<esc>") // clear the filter, leave the view
	hs.be.reset()
	hs.be.auditFeed <- apitype.AuditEntry{Time: epoch.Add(time.Second), Who: "uid 0 (root)", Action: "power off", Target: "n04", Result: "1 ok, 0 failed"}
	hs.m.Update(hs.next(wait))
	if calls := hs.be.Calls(); len(calls) != 0 {
		t.Errorf("the audit log is read after leaving the view: %q", calls)
	}
	hs.keys(":")
	hs.typeText("events")
	if _, cmd := hs.m.Update(keyMsg("<enter>")); cmd != nil || !strings.Contains(hs.screen(), "power off n04") {
		t.Errorf("reopened view: a second stream (%v) or the entry streamed meanwhile missing:\n%s", cmd != nil, hs.screen())
	}
}
