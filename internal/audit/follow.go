package audit

import "sync/atomic"

// Subscription is a live stream of the entries the Log records from its
// start on, in order. A subscriber that does not keep up loses entries
// rather than hold Record (and so the action being audited) up: Dropped
// counts them.
type Subscription struct {
	// C delivers the entries; it is closed by Close and by Log.Close.
	C <-chan Entry

	c       chan Entry
	l       *Log
	closed  bool // under l.mu
	dropped atomic.Uint64
}

// Follow returns the newest n entries (every one kept when n <= 0), oldest
// first, and a subscription to every entry recorded after them, with a
// buffer of that many entries (64 if buffer < 1). Both are taken under one
// lock: no entry falls between them or comes twice. On a closed Log the
// subscription comes back already closed.
func (l *Log) Follow(n, buffer int) ([]Entry, *Subscription) {
	if buffer < 1 {
		buffer = 64
	}
	c := make(chan Entry, buffer)
	s := &Subscription{C: c, c: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	hist := l.recentLocked(n)
	if l.closed {
		close(c)
		s.closed = true
		return hist, s
	}
	l.subs = append(l.subs, s)
	return hist, s
}

// publish hands e to every subscriber that has room; the caller holds mu.
func (l *Log) publish(e Entry) {
	for _, s := range l.subs {
		select {
		case s.c <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

// closeSubs ends every subscription; the caller holds mu.
func (l *Log) closeSubs() {
	for _, s := range l.subs {
		s.closed = true
		close(s.c)
	}
	l.subs = nil
}

// Dropped returns how many entries did not fit in the buffer.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes C. It may be called more than
// once.
func (s *Subscription) Close() {
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.c)
	subs := make([]*Subscription, 0, len(l.subs))
	for _, o := range l.subs {
		if o != s {
			subs = append(subs, o)
		}
	}
	l.subs = subs
}
