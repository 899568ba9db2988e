package bootstate

import "time"

// flushLoop writes batches to the store until Close.
func (t *Tracker) flushLoop() {
	defer close(t.done)
	tick := time.NewTicker(t.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		case <-t.kick:
		}
		if err := t.flush(); err != nil {
			t.log.Error("bootstate: persisting node states", "err", err)
		}
	}
}

// flush writes what changed since the last batch. The tracker lock is
// held only to take the batch, never during I/O.
func (t *Tracker) flush() error {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()

	t.mu.Lock()
	if len(t.pending) == 0 && len(t.dirty) == 0 && len(t.forgets) == 0 {
		t.mu.Unlock()
		return nil
	}
	b := &batch{seq: t.seq, events: t.pending, keepFrom: make(map[string]uint64)}
	t.pending = t.spare[:0]
	t.spare = nil
	for name := range t.forgets {
		b.forgets = append(b.forgets, name)
	}
	clear(t.forgets)
	for name := range t.dirty {
		if e, ok := t.nodes[name]; ok {
			b.states = append(b.states, e.st)
		}
	}
	clear(t.dirty)
	for i := range b.events {
		name := b.events[i].ev.Node
		if name == "" {
			continue
		}
		if _, done := b.keepFrom[name]; done {
			continue
		}
		if e, ok := t.nodes[name]; ok && e.hist.full() {
			b.keepFrom[name] = e.hist.oldestSeq()
		}
	}
	t.mu.Unlock()

	err := t.opts.Store.write(b)

	t.mu.Lock()
	if err != nil {
		defer t.mu.Unlock()
		t.lastErr = err
		// Try again with the next batch: the states are re-read then, the
		// events are put back in front if there is room, except those of
		// nodes forgotten while the write was under way.
		for i := range b.states {
			if _, ok := t.nodes[b.states[i].Node]; ok && !t.closed {
				t.dirty[b.states[i].Node] = struct{}{}
			}
		}
		if !t.closed && len(b.events)+len(t.pending) <= maxPending {
			kept := b.events[:0]
			for _, p := range b.events {
				if _, gone := t.forgets[p.ev.Node]; !gone || p.ev.Node == "" {
					kept = append(kept, p)
				}
			}
			t.pending = append(kept, t.pending...)
		} else {
			t.dropped += uint64(len(b.events))
		}
		for _, name := range b.forgets { // after the filter: these precede b.events
			t.forgets[name] = struct{}{}
		}
		return err
	}
	t.lastErr = nil
	clear(b.events)
	t.spare = b.events[:0]
	t.mu.Unlock()
	if t.opts.afterFlush != nil {
		t.opts.afterFlush(b.seq)
	}
	return nil
}
