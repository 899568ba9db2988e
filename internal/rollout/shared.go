package rollout

import (
	"context"
	"errors"
	"fmt"

	"github.com/netbootui/netbootui/internal/state"
)

// errNotRunning stops a wave loop whose rollout another head halted or
// aborted.
var errNotRunning = errors.New("rollout is not running")

// OpenShared is Open for a state shared by several heads (internal/state/
// etcd): every head's Manager reads and writes the one document, but the
// waves run only on the head that leads (Lead, under an election). A
// rollout found running is not halted as Open does after a restart: it
// was running on another head, or its head died and the next leader takes
// it over. head names this head in events.
func OpenShared(docs state.Documents, env Env, head string) (*Manager, error) {
	m := &Manager{env: env, docs: docs, running: map[string]*runCtl{}, shared: true, head: head}
	f, rev, err := load(docs)
	if err != nil {
		return nil, err
	}
	m.rev, m.rollouts, m.next = rev, f.Rollouts, f.Next
	m.reindex()
	return m, nil
}

// launchLocked starts the wave loop of rollout id under ctx (mu held).
func (m *Manager) launchLocked(ctx context.Context, id string) {
	ctx, cancel := context.WithCancel(ctx)
	ctl := &runCtl{cancel: cancel, done: make(chan struct{})}
	m.running[id] = ctl
	m.wg.Add(1)
	go m.loop(ctx, id, ctl)
}

// freshLocked reads the document again when the state is shared (mu held).
func (m *Manager) freshLocked() error {
	if !m.shared {
		return nil
	}
	return m.syncLocked()
}

// syncLocked replaces the rollouts with the document's when another head
// changed it (mu held), and stops the local loops of rollouts that are no
// longer running (halted or aborted on another head).
func (m *Manager) syncLocked() error {
	f, rev, err := load(m.docs)
	if err != nil {
		return err
	}
	if rev == m.rev {
		return nil
	}
	m.rev, m.rollouts, m.next = rev, f.Rollouts, f.Next
	m.reindex()
	m.changed()
	for id, ctl := range m.running {
		if r, err := m.find(id); err != nil || r.State != StateRunning {
			ctl.cancel()
		}
	}
	return nil
}

// Sync reads the shared document again (the daemon calls it when its
// watch sees another head's change): the staged index, the loops of
// rollouts halted elsewhere and, on the leading head, the rollouts to run
// follow it.
func (m *Manager) Sync() error {
	m.mu.Lock()
	err := m.syncLocked()
	var notes []note
	if err == nil && m.leadCtx != nil && !m.closed {
		notes = m.takeOverLocked()
	}
	m.mu.Unlock()
	m.emit(notes)
	return err
}

// takeOverLocked starts the loop of every running rollout that has none
// here (mu held, this head leading): the wave its last head was in runs
// again, its nodes that had not checked in staged again.
func (m *Manager) takeOverLocked() []note {
	var notes []note
	for _, r := range m.rollouts {
		if r.State != StateRunning {
			continue
		}
		if _, ok := m.running[r.ID]; ok {
			continue
		}
		_, ns, err := m.update(r.ID, func(r *Rollout) ([]note, error) {
			if r.State != StateRunning {
				return nil, errNotRunning
			}
			interrupted := false
			for _, w := range r.Waves {
				if w.State == WaveRunning {
					w.State, interrupted = WavePending, true
				}
			}
			for _, n := range r.Nodes {
				if n.Status == NodeRebooting {
					n.Status, n.Error = NodeStaged, "interrupted: its head was lost"
				}
			}
			if !interrupted {
				return nil, nil
			}
			return []note{{msg: fmt.Sprintf("rollout %s: head %s takes over the wave in flight", r.ID, m.head),
				audit: "rollout takeover", who: "head " + m.head, r: r, result: "ok"}}, nil
		})
		if err != nil {
			if !errors.Is(err, errNotRunning) {
				notes = append(notes, note{msg: "rollout " + r.ID + ": taking over failed: " + err.Error()})
			}
			continue
		}
		notes = append(notes, ns...)
		m.launchLocked(m.leadCtx, r.ID)
	}
	return notes
}

// Lead runs the waves of every running rollout while ctx lasts (the
// daemon calls it while this head holds the rollouts' election), taking
// over those whose head was lost. When ctx ends the loops stop, leaving
// their rollouts running for the next leader.
func (m *Manager) Lead(ctx context.Context) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.leadCtx = ctx
	m.mu.Unlock()
	m.Sync()
	<-ctx.Done()
	m.mu.Lock()
	m.leadCtx = nil
	var ids []string
	for id := range m.running {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.stop(id)
	}
}
