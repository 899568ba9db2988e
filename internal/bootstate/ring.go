package bootstate

import "sort"

// ring keeps the newest max events in sequence order. It grows on demand,
// so that a node with few events costs little.
type ring struct {
	buf   []Event
	start int // index of the oldest event once the ring is full
	max   int
}

func newRing(max int) ring { return ring{max: max} }

func (r *ring) len() int { return len(r.buf) }

// at returns the i-th event, oldest first.
func (r *ring) at(i int) *Event {
	return &r.buf[(r.start+i)%len(r.buf)]
}

// push appends ev, dropping the oldest event when the ring is full.
func (r *ring) push(ev *Event) {
	if len(r.buf) < r.max {
		r.buf = append(r.buf, *ev)
		return
	}
	r.buf[r.start] = *ev
	r.start = (r.start + 1) % r.max
}

// pushCoalesce is push, except that a Progress event that follows a
// Progress event of the same file replaces it. It returns the Seq of the
// replaced event, or 0.
func (r *ring) pushCoalesce(ev *Event) uint64 {
	if ev.Kind == KindProgress && len(r.buf) > 0 {
		last := r.at(len(r.buf) - 1)
		if last.Kind == KindProgress && last.Path == ev.Path {
			old := last.Seq
			*last = *ev
			return old
		}
	}
	r.push(ev)
	return 0
}

// oldestSeq is the Seq of the oldest event held, 0 if empty.
func (r *ring) oldestSeq() uint64 {
	if len(r.buf) == 0 {
		return 0
	}
	return r.at(0).Seq
}

// full reports whether the next push drops an event.
func (r *ring) full() bool { return len(r.buf) >= r.max }

// newest copies the newest n events (all if n <= 0), oldest first.
func (r *ring) newest(n int) []Event {
	l := len(r.buf)
	if n <= 0 || n > l {
		n = l
	}
	out := make([]Event, n)
	for i := range n {
		out[i] = *r.at(l - n + i)
	}
	return out
}

// since copies the events with a Seq above seq, oldest first.
func (r *ring) since(seq uint64) []Event {
	l := len(r.buf)
	i := sort.Search(l, func(i int) bool { return r.at(i).Seq > seq })
	if i == l {
		return nil
	}
	return r.newest(l - i)
}
