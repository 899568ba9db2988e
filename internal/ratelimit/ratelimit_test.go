package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Unix(1e9, 0)} }
func allowN(l *Limiter, key string, n int) (ok int, skipped uint64) {
	for range n {
		if a, s := l.Allow(key); a {
			ok++
			skipped += s
		}
	}
	return
}

func TestPerKey(t *testing.T) {
	c := newClock()
	l := &Limiter{Burst: 3, Every: time.Second, Now: c.now}
	for _, tc := range []struct {
		key     string
		n       int
		advance time.Duration
		ok      int
		skipped uint64
	}{
		{"a", 10, 0, 3, 0},                     // the burst
		{"b", 2, 0, 2, 0},                      // another key has its own
		{"a", 5, time.Second, 1, 7},            // one refilled; it reports the 7 refused
		{"a", 1, 500 * time.Millisecond, 0, 0}, // half a token
		{"a", 1, 500 * time.Millisecond, 1, 5}, // a whole one; it reports the 4 + 1 refused
		{"a", 10, time.Hour, 3, 0},             // never more than the burst
	} {
		c.add(tc.advance)
		ok, skipped := allowN(l, tc.key, tc.n)
		if ok != tc.ok || skipped != tc.skipped {
			t.Errorf("%+v: ok %d, skipped %d", tc, ok, skipped)
		}
	}
}

func TestTotalAndKeyBound(t *testing.T) {
	c := newClock()
	l := &Limiter{Burst: 1, Every: time.Minute, TotalBurst: 10, TotalEvery: time.Second, MaxKeys: 100, Now: c.now}
	ok := 0
	for i := range 20000 { // 20,000 requests from as many addresses
		if a, _ := l.Allow(fmt.Sprint("10.0.", i/256, ".", i%256)); a {
			ok++
		}
	}
	if ok != 10 {
		t.Errorf("%d let through, want the total burst of 10", ok)
	}
	if len(l.keys) > 101 {
		t.Errorf("%d keys remembered, want at most 100 and the shared one", len(l.keys))
	}
	c.add(time.Second)
	if a, _ := l.Allow("fresh"); !a && len(l.keys) < 100 {
		t.Error("a new key after the total refilled was refused")
	}
}

func TestConcurrent(t *testing.T) {
	l := &Limiter{Burst: 50, Every: time.Hour}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, _ := allowN(l, "k", 100)
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total != 50 {
		t.Errorf("%d let through, want 50", total)
	}
}
