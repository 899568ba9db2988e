package ui

import (
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// startStream takes the commands that open a follow stream (its call and
// the wait for its first batch): it runs the call in the background, as the
// program would, and returns the wait. The test's end cancels the call.
func (hs *harness) startStream(cmd tea.Cmd) tea.Cmd {
	hs.t.Helper()
	if cmd == nil {
		hs.t.Fatal("no stream opened")
	}
	b, ok := cmd().(tea.BatchMsg)
	if !ok || len(b) != 2 {
		hs.t.Fatalf("want a stream's call and wait, got %#v", b)
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- b[0]() }()
	hs.t.Cleanup(func() {
		hs.m.Close()
		<-done
	})
	return b[1]
}

// next runs a stream's wait for its next batch, failing after 5 s.
func (hs *harness) next(wait tea.Cmd) tea.Msg {
	hs.t.Helper()
	if wait == nil {
		hs.t.Fatal("nothing waits for the stream")
	}
	c := make(chan tea.Msg, 1)
	go func() { c <- wait() }()
	select {
	case msg := <-c:
		return msg
	case <-time.After(5 * time.Second):
		hs.t.Fatal("the stream delivered nothing in 5s")
		return nil
	}
}

// TestFollowReconnects: a follow stream the daemon ended (it restarted) is
// a disconnection: the reconnect opens the audit and rollout streams again.
func TestFollowReconnects(t *testing.T) {
	hs := newHarness(t, 20, 120, 40)
	hs.press("<space>", "<space>", "<space>", "s", "<enter>", "<enter>", "<wait>", "y")
	hs.be.mu.Lock()
	hs.be.rollouts["r1"].State = apitype.RolloutHalted // waits for a resume: followed
	hs.be.mu.Unlock()
	hs.m.stage.ro.State = apitype.RolloutHalted
	hs.keys(":")
	hs.typeText("events")
	hs.keys("<enter>")
	hs.m.follows[followAudit].running, hs.m.follows[followStage].running = true, true // as open streams are
	hs.be.reset()
	_, tick := hs.m.Update(followEndMsg{kind: followAudit, seq: hs.m.follows[followAudit].seq, err: errDown})
	if tick == nil || hs.m.connErr == nil {
		t.Fatal("a stream the daemon ended schedules no reconnect")
	}
	hs.m.Update(followEndMsg{kind: followStage, seq: hs.m.follows[followStage].seq, err: errDown})
	hs.send(reconnectMsg{})
	calls := hs.be.Calls()
	for _, want := range []string{"FollowAudit 200", "FollowStage r1"} {
		if !slices.Contains(calls, want) {
			t.Errorf("after the reconnect: calls %q lack %q", calls, want)
		}
	}
}

// TestEventsOnceInTimeOrder: events sent again (a reconnect's backlog) are
// shown once and a late one takes its place by time; kind:K filters by
// kind; enter opens the cursor's event in full, any key closes it.
func TestEventsOnceInTimeOrder(t *testing.T) {
	hs := newHarness(t, 3, 120, 30)
	hs.press(":", "e", "v", "<enter>")
	at := func(s int) time.Time { return epoch.Add(time.Duration(s) * time.Second) }
	evs := []apitype.Event{
		{Seq: 1, Time: at(1), Node: "n01", Kind: apitype.KindFetch, Stage: apitype.StageKernel, Proto: "http", Path: "/g2/vmlinuz"},
		{Seq: 3, Time: at(3), Node: "n01", Kind: apitype.KindCheckin, Generation: "g2", Message: "first check-in"},
	}
	hs.m.Update(eventsMsg{stream: hs.m.stream, evs: evs}) // commands not run: the stream's wait would block
	// the stream again after a reconnect: its backlog (1, 3) and a late 2
	again := append(slices.Clone(evs), apitype.Event{Seq: 2, Time: at(2), Node: "n01", Kind: apitype.KindFetch, Stage: apitype.StageInitrd,
		Proto: "http", Path: "/g2/initrd", Error: strings.Repeat("a long error that the row cuts ", 6) + "END"})
	hs.m.Update(eventsMsg{stream: hs.m.stream, evs: again})
	scr := hs.screen()
	if strings.Count(scr, "/g2/vmlinuz") != 1 || strings.Count(scr, "first check-in") != 1 {
		t.Errorf("events sent again are shown twice:\n%s", scr)
	}
	if i, j, k := strings.Index(scr, "/g2/vmlinuz"), strings.Index(scr, "/g2/initrd"), strings.Index(scr, "first check-in"); !(i < j && j < k) {
		t.Errorf("events not in time order:\n%s", scr)
	}
	hs.press("/")
	hs.typeText("kind:checkin")
	hs.press("<enter>")
	if scr := hs.screen(); !strings.Contains(scr, "EVENTS  1 shown of 3") || !strings.Contains(scr, "first check-in") {
		t.Errorf("kind:checkin:\n%s", scr)
	}
	hs.press("<esc>", "k", "<enter>")
	scr = hs.screen()
	if !strings.Contains(scr, "Event") || !strings.Contains(scr, "END") || !strings.Contains(scr, "/g2/initrd") {
		t.Errorf("enter does not show the event in full:\n%s", scr)
	}
	hs.press("x")
	if strings.Contains(hs.screen(), "any key closes") {
		t.Error("a key did not close the event")
	}
}
