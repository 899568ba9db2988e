package bootstate

import "sync/atomic"

// Subscription is a live stream of the events the Tracker records, in Seq
// order. A subscriber that does not keep up loses events rather than slow
// the Tracker down: Dropped counts them (a console shows "lagging" and may
// catch up with Tracker.Since).
type Subscription struct {
	// C delivers the events; it is closed by Close and by Tracker.Close.
	C <-chan Event

	c       chan Event
	t       *Tracker
	closed  bool // under t.mu
	dropped atomic.Uint64
}

// Subscribe starts a stream of every event recorded from now on, with a
// buffer of that many events (64 if buffer < 1). On a closed Tracker the
// subscription comes back already closed.
func (t *Tracker) Subscribe(buffer int) *Subscription {
	if buffer < 1 {
		buffer = defaultSubBuffer
	}
	c := make(chan Event, buffer)
	s := &Subscription{C: c, c: c, t: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		close(c)
		s.closed = true
		return s
	}
	t.subs = append(t.subs, s)
	return s
}

// Dropped returns how many events did not fit in the buffer.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes C. It may be called more than
// once.
func (s *Subscription) Close() {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.c)
	subs := make([]*Subscription, 0, len(t.subs))
	for _, o := range t.subs {
		if o != s {
			subs = append(subs, o)
		}
	}
	t.subs = subs
}
