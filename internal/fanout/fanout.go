// Package fanout hands the values a producer publishes to live subscribers
// without ever making the producer wait: each subscriber has a buffered
// channel, and a value that does not fit is dropped for that subscriber
// (counted in Dropped). The boot-event tracker and the audit log use it for
// their follow streams.
//
// Publish, Subscribe and Close are safe for concurrent use; a producer that
// needs a subscription to start exactly after some state (a history) calls
// Subscribe and Publish under its own lock.
package fanout

import (
	"sync"
	"sync/atomic"
)

// Hub is a set of subscriptions to values of type T. The zero value is
// ready to use.
type Hub[T any] struct {
	mu     sync.Mutex
	subs   []*Sub[T]
	closed bool
}

// Sub is one subscription: a stream of the values published after it
// started, in order, less those its buffer had no room for.
type Sub[T any] struct {
	// C delivers the values; it is closed by Close and by Hub.Close.
	C <-chan T

	c       chan T
	h       *Hub[T]
	closed  bool // under h.mu
	dropped atomic.Uint64
}

// Subscribe starts a subscription with a buffer of that many values (at
// least 1). On a closed Hub it comes back already closed.
func (h *Hub[T]) Subscribe(buffer int) *Sub[T] {
	c := make(chan T, max(buffer, 1))
	s := &Sub[T]{C: c, c: c, h: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(c)
		s.closed = true
		return s
	}
	h.subs = append(h.subs, s)
	return s
}

// Publish hands v to every subscription with room for it and counts a drop
// for the others. It never blocks on a subscriber.
func (h *Hub[T]) Publish(v T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.subs {
		select {
		case s.c <- v:
		default:
			s.dropped.Add(1)
		}
	}
}

// Close ends every subscription; later ones come back closed.
func (h *Hub[T]) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, s := range h.subs {
		s.closed = true
		close(s.c)
	}
	h.subs = nil
}

// Dropped returns how many values did not fit in the buffer.
func (s *Sub[T]) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes C. It may be called more than
// once.
func (s *Sub[T]) Close() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.c)
	subs := make([]*Sub[T], 0, len(h.subs))
	for _, o := range h.subs {
		if o != s {
			subs = append(subs, o)
		}
	}
	h.subs = subs
}
