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
	b := &Batch{Seq: t.seq, Events: t.pending, KeepFrom: make(map[string]uint64)}
	t.pending = t.spare[:0]
	t.spare = nil
	for name := range t.forgets {
		b.Forgets = append(b.Forgets, name)
	}
	clear(t.forgets)
	for name := range t.dirty {
		if e, ok := t.nodes[name]; ok {
			b.States = append(b.States, e.st)
		}
	}
	clear(t.dirty)
	for i := range b.Events {
		name := b.Events[i].Event.Node
		if name == "" {
			continue
		}
		if _, done := b.KeepFrom[name]; done {
			continue
		}
		if e, ok := t.nodes[name]; ok && e.hist.full() {
			b.KeepFrom[name] = e.hist.oldestSeq()
		}
	}
	t.mu.Unlock()

	err := t.opts.Store.Write(b)

	t.mu.Lock()
	if err != nil {
		defer t.mu.Unlock()
		t.lastErr = err
		// Try again with the next batch: the states are re-read then, the
		// events are put back in front if there is room, except those of
		// nodes forgotten while the write was under way.
		for i := range b.States {
			if _, ok := t.nodes[b.States[i].Node]; ok && !t.closed {
				t.dirty[b.States[i].Node] = struct{}{}
			}
		}
		if !t.closed && len(b.Events)+len(t.pending) <= maxPending {
			kept := b.Events[:0]
			for _, p := range b.Events {
				if _, gone := t.forgets[p.Event.Node]; !gone || p.Event.Node == "" {
					kept = append(kept, p)
				}
			}
			t.pending = append(kept, t.pending...)
		} else {
			t.dropped += uint64(len(b.Events))
		}
		for _, name := range b.Forgets { // after the filter: these precede b.Events
			t.forgets[name] = struct{}{}
		}
		return err
	}
	t.lastErr = nil
	clear(b.Events)
	t.spare = b.Events[:0]
	t.mu.Unlock()
	if t.opts.afterFlush != nil {
		t.opts.afterFlush(b.Seq)
	}
	return nil
}

// Flush writes what is pending to the store now, so that a reader of the
// store (a backup) sees every event applied before the call.
func (t *Tracker) Flush() error {
	if t.opts.Store == nil {
		return nil
	}
	return t.flush()
}
