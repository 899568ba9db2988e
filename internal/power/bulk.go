package power

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// BulkOptions shape one Bulk run. Zero values take the defaults.
type BulkOptions struct {
	// Concurrency bounds how many BMCs are in a call at once (default
	// DefaultConcurrency). A backend's reachability probes (Prober) wait
	// outside this bound: up to ProbeLimit targets are in flight at once.
	Concurrency int
	// ProbeLimit bounds the targets in flight, probing included (default
	// DefaultProbeLimit, never below Concurrency).
	ProbeLimit int
	// OnResult, when set, is called with each result as it finishes, from
	// the goroutine that produced it (calls may be concurrent).
	OnResult func(Result)
}

// Bulk runs op on every target and returns one result per target, in the
// order of targets. It is bounded (see BulkOptions), skips BMCs whose
// breaker is open (their result says so and when to retry), and stops
// starting targets when ctx ends: those get ctx.Err() as their error. An
// empty target list is an error (ErrEmptySelection), never "all".
func (s *Service) Bulk(ctx context.Context, targets []Target, op Op, opts BulkOptions) ([]Result, error) {
	if len(targets) == 0 {
		return nil, ErrEmptySelection
	}
	if !op.Valid() {
		return nil, fmt.Errorf("%w %q", ErrBadOp, string(op))
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	limit := opts.ProbeLimit
	if limit <= 0 {
		limit = DefaultProbeLimit
	}
	limit = max(limit, conc)
	slots := make(chan struct{}, conc)
	g := func(ctx context.Context) (func(), error) {
		select {
		case slots <- struct{}{}:
			return func() { <-slots }, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	results := make([]Result, len(targets))
	inflight := make(chan struct{}, limit)
	var wg sync.WaitGroup
	report := func(r Result) {
		if opts.OnResult != nil {
			opts.OnResult(r)
		}
	}
	for i, t := range targets {
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			for j := i; j < len(targets); j++ {
				tj, _ := s.reg.WithDefaults(targets[j])
				results[j] = Result{Node: tj.Node, Protocol: tj.Protocol, BMC: tj.Addr(), Op: op, Err: ctx.Err()}
				report(results[j])
			}
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			results[i] = s.do(ctx, t, op, g)
			report(results[i])
		}()
	}
	wg.Wait()
	return results, nil
}

// Poll starts a goroutine that reads the power status of targets() every
// interval, at most concurrency BMCs at once, and hands each result to
// onStatus. BMCs whose breaker is open are not asked; their result carries
// the ErrCircuitOpen error. A round that takes longer than every delays the
// next one (rounds never overlap). Poll returns at once; the poller stops
// when ctx ends or the Service is closed, and the returned channel is
// closed when it has stopped.
func (s *Service) Poll(ctx context.Context, targets func() []Target, every time.Duration, concurrency int, onStatus func(Result)) <-chan struct{} {
	stopped := make(chan struct{})
	if every <= 0 {
		every = time.Second
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		close(stopped)
		return stopped
	}
	s.wg.Add(1)
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer close(stopped)
		defer s.wg.Done()
		defer cancel()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if ts := targets(); len(ts) > 0 {
				_, err := s.Bulk(ctx, ts, OpStatus, BulkOptions{Concurrency: concurrency, OnResult: func(r Result) {
					if ctx.Err() != nil && errors.Is(r.Err, ctx.Err()) {
						return // not a status: the poller is stopping
					}
					onStatus(r)
				}})
				_ = err // only ErrEmptySelection, excluded above
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return stopped
}
