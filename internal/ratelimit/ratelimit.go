// Package ratelimit decides whether one more of a repeated thing (the log
// line and the event of a denied request) is let through, per key, and
// counts what it held back, so that the next one let through can say how
// many were not. It never blocks and holds a bounded number of keys.
package ratelimit

import (
	"sync"
	"time"
)

// Defaults of Limiter.
const (
	DefaultBurst   = 5
	DefaultEvery   = 10 * time.Second
	DefaultMaxKeys = 4096
)

// Limiter lets through, per key, Burst at once and then one per Every; and,
// over all keys together, TotalBurst at once and one per TotalEvery (when
// TotalBurst is set). The zero value uses the defaults and no total limit.
// It is safe for concurrent use; set the fields before the first Allow.
type Limiter struct {
	Burst int           // per key, at once (default DefaultBurst)
	Every time.Duration // per key, one more per Every (default DefaultEvery)
	// TotalBurst and TotalEvery bound all keys together (0: no bound).
	TotalBurst int
	TotalEvery time.Duration
	// MaxKeys bounds the keys remembered (default DefaultMaxKeys): when it is
	// reached, the keys that have refilled are forgotten (at most once per
	// Every), and new keys that still find no room share one more bucket.
	MaxKeys int
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	mu    sync.Mutex
	keys  map[string]*bucket
	total bucket
	swept time.Time // last forgetFull
}

// bucket is a token bucket with a count of what it refused.
type bucket struct {
	tokens  float64
	last    time.Time
	skipped uint64
}

const overflowKey = "\x00overflow"

// Allow reports whether one more event for key may go through. When it may,
// skipped is the number refused for key since the last one let through.
func (l *Limiter) Allow(key string) (ok bool, skipped uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	t := now()
	burst, every := l.Burst, l.Every
	if burst <= 0 {
		burst = DefaultBurst
	}
	if every <= 0 {
		every = DefaultEvery
	}
	if l.keys == nil {
		l.keys = map[string]*bucket{}
	}
	b := l.keys[key]
	if b == nil {
		maxKeys := l.MaxKeys
		if maxKeys <= 0 {
			maxKeys = DefaultMaxKeys
		}
		if len(l.keys) >= maxKeys && t.Sub(l.swept) >= every {
			l.swept = t
			l.forgetFull(t, float64(burst), every)
		}
		if len(l.keys) >= maxKeys {
			key = overflowKey
			b = l.keys[key]
		}
		if b == nil {
			b = &bucket{tokens: float64(burst), last: t}
			l.keys[key] = b
		}
	}
	b.refill(t, float64(burst), every)
	if b.tokens < 1 {
		b.skipped++
		return false, 0
	}
	if l.TotalBurst > 0 {
		te := l.TotalEvery
		if te <= 0 {
			te = every
		}
		if l.total.last.IsZero() {
			l.total = bucket{tokens: float64(l.TotalBurst), last: t}
		}
		l.total.refill(t, float64(l.TotalBurst), te)
		if l.total.tokens < 1 {
			b.skipped++
			return false, 0
		}
		l.total.tokens--
	}
	b.tokens--
	skipped, b.skipped = b.skipped, 0
	return true, skipped
}

func (b *bucket) refill(t time.Time, burst float64, every time.Duration) {
	if el := t.Sub(b.last); el > 0 {
		b.tokens = min(burst, b.tokens+float64(el)/float64(every))
		b.last = t
	}
}

// forgetFull drops the keys whose buckets are full again and that refused
// nothing since they last let something through: they would behave as new.
func (l *Limiter) forgetFull(t time.Time, burst float64, every time.Duration) {
	for k, b := range l.keys {
		b.refill(t, burst, every)
		if b.tokens >= burst && b.skipped == 0 {
			delete(l.keys, k)
		}
	}
}
