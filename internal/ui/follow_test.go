package ui

import (
	"time"

	tea "charm.land/bubbletea/v2"
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
