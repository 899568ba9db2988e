package rollout

// Watch returns a channel that receives a signal after every change of any
// rollout (created, a wave or node moved, halted, promoted, ...), and a
// function that ends the watch. The channel holds one signal: changes
// that come while one is pending coalesce into it, so a slow watcher
// never holds the Manager up and reads the latest state (Get) when it
// gets to it. The channel is closed when the watch ends or the Manager is
// closed.
func (m *Manager) Watch() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		close(c)
		return c, func() {}
	}
	if m.watchers == nil {
		m.watchers = map[chan struct{}]struct{}{}
	}
	m.watchers[c] = struct{}{}
	return c, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.watchers[c]; ok {
			delete(m.watchers, c)
			close(c)
		}
	}
}

// changed signals every watcher; the caller holds mu.
func (m *Manager) changed() {
	for c := range m.watchers {
		select {
		case c <- struct{}{}:
		default: // one is pending: it covers this change too
		}
	}
}

// closeWatchers ends every watch; the caller holds mu.
func (m *Manager) closeWatchers() {
	for c := range m.watchers {
		delete(m.watchers, c)
		close(c)
	}
}
