package ui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
)

// checkins returns n check-in events from seq on, one millisecond apart
// from at.
func checkins(seq uint64, at time.Time, n int) []apitype.Event {
	evs := make([]apitype.Event, n)
	for i := range evs {
		evs[i] = apitype.Event{Seq: seq + uint64(i), Time: at.Add(time.Duration(i) * time.Millisecond),
			Node: fmt.Sprintf("n%02d", i%3+1), Kind: apitype.KindCheckin, Proto: "http", Path: "/checkin", Routine: true}
	}
	return evs
}

// TestEventsRoutineBound: check-ins are bounded apart from the other
// kinds, so a flood of them (three times what the view keeps) does not push
// out the event that says a node turned dirty, which kind:info still shows;
// the oldest check-ins go instead.
func TestEventsRoutineBound(t *testing.T) {
	hs := newHarness(t, 3, 120, 30)
	hs.press(":", "e", "v", "<enter>")
	dirty := apitype.Event{Seq: 1, Time: epoch, Node: "n02", Kind: apitype.KindInfo, Proto: "checkin",
		Message: "turned dirty: overlay writes 2.0 KiB above threshold 1000 B"}
	hs.m.Update(eventsMsg{stream: hs.m.stream, evs: []apitype.Event{dirty}})
	for b := range 6 {
		hs.m.Update(eventsMsg{stream: hs.m.stream, evs: checkins(uint64(2+b*maxRoutine/2), epoch.Add(time.Second+time.Duration(b)*time.Hour), maxRoutine/2)})
	}
	if got := len(hs.m.events.all); got != maxRoutine+1 {
		t.Fatalf("the view keeps %d events, want %d check-ins and the info event", got, maxRoutine+1)
	}
	if first := hs.m.events.all[1]; first.Seq != uint64(2+2*maxRoutine) {
		t.Errorf("oldest check-in kept is seq %d, want %d", first.Seq, 2+2*maxRoutine)
	}
	hs.press("/")
	hs.typeText("kind:info")
	hs.press("<enter>")
	scr := hs.screen()
	if !strings.Contains(scr, "EVENTS  1 shown of 2001") || !strings.Contains(scr, "turned dirty: overlay writes") {
		t.Errorf("kind:info after the flood:\n%s", scr)
	}
	// esc clears the filter and stays; a second esc leaves the view
	hs.press("<esc>")
	if scr := hs.screen(); !strings.Contains(scr, "EVENTS  2001 shown of 2001") {
		t.Errorf("esc did not clear the filter:\n%s", scr)
	}
	hs.press("<esc>")
	if hs.m.view != viewNodes {
		t.Errorf("the second esc left view %v", hs.m.view)
	}
}

// TestEventsCursorStays: a cursor moved back from the newest event stays
// on its event, on the same screen row, while new events come in and the
// oldest go; enter then opens that event, not whichever took its index.
func TestEventsCursorStays(t *testing.T) {
	hs := newHarness(t, 3, 120, 30)
	hs.press(":", "e", "v", "<enter>")
	hs.m.Update(eventsMsg{stream: hs.m.stream, evs: checkins(1, epoch, maxRoutine)})
	hs.press("k", "k", "k")
	want := *hs.m.events.current()
	row := hs.m.events.cursor - hs.m.events.offset
	// a late event lands before the cursor's, and a batch pushes out the oldest
	late := apitype.Event{Seq: 1e6, Time: want.Time.Add(-time.Microsecond), Node: "n09", Kind: apitype.KindFail, Error: "late"}
	hs.m.Update(eventsMsg{stream: hs.m.stream, evs: append([]apitype.Event{late}, checkins(maxRoutine+1, epoch.Add(time.Hour), 300)...)})
	got := hs.m.events.current()
	if got == nil || got.Seq != want.Seq {
		t.Fatalf("cursor moved from seq %d to %+v", want.Seq, got)
	}
	if r := hs.m.events.cursor - hs.m.events.offset; r != row {
		t.Errorf("the cursor's event moved from row %d to %d", row, r)
	}
	hs.press("<enter>")
	if scr := hs.screen(); !strings.Contains(scr, fmt.Sprintf("seq        %d", want.Seq)) {
		t.Errorf("enter opened another event than the cursor's (seq %d):\n%s", want.Seq, scr)
	}
}

// TestEventsAuditPaths: a reboot-clean's audit entry in the events view
// says which path each node took and why.
func TestEventsAuditPaths(t *testing.T) {
	hs := newHarness(t, 3, 120, 30)
	hs.press(":", "e", "v", "<enter>")
	hs.m.events.addAudit([]apitype.AuditEntry{{Time: epoch, Who: "uid 0 (root)", Action: "reboot-clean", Target: "n01", Nodes: 1,
		Result: "1 ok, 0 failed", Paths: []string{"n01: kexec (agent polling)"}}})
	if scr := hs.screen(); !strings.Contains(scr, "reboot-clean n01 → 1 ok, 0 failed · n01: kexec (agent polling)") {
		t.Errorf("the audit line lacks the path:\n%s", scr)
	}
}
