package audit

import "github.com/netbootui/netbootui/internal/fanout"

// Subscription is a live stream of the entries the Log records from its
// start on, in order. A subscriber that does not keep up loses entries
// rather than hold Record (and so the action being audited) up: Dropped
// counts them. C is closed by Close and by Log.Close.
type Subscription = fanout.Sub[Entry]

// Follow returns the newest n entries (every one kept when n <= 0), oldest
// first, and a subscription to every entry recorded after them, with a
// buffer of that many entries (64 if buffer < 1). Both are taken under one
// lock: no entry falls between them or comes twice. On a closed Log the
// subscription comes back already closed.
func (l *Log) Follow(n, buffer int) ([]Entry, *Subscription) {
	if buffer < 1 {
		buffer = 64
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recentLocked(n), l.subs.Subscribe(buffer)
}
