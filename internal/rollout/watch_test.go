package rollout

import (
	"path/filepath"
	"testing"
	"time"
)

// TestWatch: a watcher that reads nothing never holds the waves up (its
// signals coalesce into one); the one it then reads comes with the latest
// state; a stopped watch and a closed Manager close the channel.
func TestWatch(t *testing.T) {
	env := &scriptEnv{nodes: 6, fail: map[string]bool{}}
	m := newManager(t, env, filepath.Join(t.TempDir(), "rollouts.json"))
	slow, stopSlow := m.Watch()
	c, stop := m.Watch()
	r, err := m.Create("@g", "new", Options{Wave: WaveSize{Count: 1}}, "tester")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatal("no signal for the creation")
	}
	if _, err := m.Run(r.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	if r = wait(t, m, r.ID); r.State != StateCompleted { // six waves, nobody reading slow
		t.Fatalf("rollout %s with an unread watch", r.State)
	}
	if len(slow) != 1 {
		t.Fatalf("an unread watch holds %d signals, want 1 (coalesced)", len(slow))
	}
	<-slow
	if got, _ := m.Get(r.ID); got.State != StateCompleted {
		t.Errorf("state read after the signal: %s", got.State)
	}
	stopSlow()
	stopSlow() // twice is fine
	if _, ok := <-slow; ok {
		t.Error("a stopped watch is not closed")
	}
	m.Close()
	for range c { // drain what is pending: Close closes it
	}
	stop() // after Close: nothing to do
	w, _ := m.Watch()
	select {
	case _, ok := <-w:
		if ok {
			t.Error("a watch of a closed Manager signals")
		}
	default:
		t.Error("a watch of a closed Manager is open")
	}
}
