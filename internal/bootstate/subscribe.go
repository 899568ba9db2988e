package bootstate

import "github.com/netbootui/netbootui/internal/fanout"

// Subscription is a live stream of the events the Tracker records, in Seq
// order. A subscriber that does not keep up loses events rather than slow
// the Tracker down: Dropped counts them (a console shows "lagging" and may
// catch up with Tracker.Since). C is closed by Close and by Tracker.Close.
type Subscription = fanout.Sub[Event]

// Subscribe starts a stream of every event recorded from now on, with a
// buffer of that many events (64 if buffer < 1). On a closed Tracker the
// subscription comes back already closed.
func (t *Tracker) Subscribe(buffer int) *Subscription {
	if buffer < 1 {
		buffer = defaultSubBuffer
	}
	t.mu.Lock() // under the lock Apply records with: no event is half seen
	defer t.mu.Unlock()
	return t.subs.Subscribe(buffer)
}
