package fanout

import (
	"testing"
	"time"
)

// TestHub: subscribers get the values published after they started, in
// order; a full buffer drops (counted) and never blocks Publish; Close of a
// subscription or of the Hub closes C, and a later Subscribe comes back
// closed.
func TestHub(t *testing.T) {
	var h Hub[int]
	h.Publish(0) // nobody listens
	fast, slow := h.Subscribe(100), h.Subscribe(0)
	done := make(chan struct{})
	go func() {
		for i := 1; i <= 10; i++ {
			h.Publish(i)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that reads nothing")
	}
	for i := 1; i <= 10; i++ {
		if v := <-fast.C; v != i {
			t.Fatalf("fast got %d, want %d", v, i)
		}
	}
	if v := <-slow.C; v != 1 || slow.Dropped() != 9 || fast.Dropped() != 0 {
		t.Errorf("slow got %d, dropped %d (fast %d); want 1, 9, 0", v, slow.Dropped(), fast.Dropped())
	}
	slow.Close()
	slow.Close()
	if _, ok := <-slow.C; ok {
		t.Error("a closed subscription delivers")
	}
	h.Publish(11) // only fast
	if v := <-fast.C; v != 11 {
		t.Errorf("after slow closed, fast got %d", v)
	}
	h.Close()
	if _, ok := <-fast.C; ok {
		t.Error("Hub.Close left a subscription open")
	}
	fast.Close() // after Hub.Close: nothing to do
	if _, ok := <-h.Subscribe(1).C; ok {
		t.Error("a subscription to a closed Hub is open")
	}
}
