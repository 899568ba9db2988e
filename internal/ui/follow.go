package ui

import (
	"context"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// The console follows the daemon's audit log (the events view) and the
// rollout it shows (the Stage view) through follow streams, the way it
// follows the boot events (model.go's startStream): one command runs the
// Backend's Follow call in its own goroutine into a channel, another waits
// for the channel's next batch, and Update only ever sees messages. A
// stream the daemon ended (it stopped or restarted) goes through
// disconnected: the reconnect opens it again. Nothing is polled.

// followKind names one of the console's follow streams.
type followKind int

const (
	followAudit followKind = iota // the audit log, for the events view
	followStage                   // the rollout of the Stage view
	followKinds
)

// followBatch is the most values one followMsg carries.
const followBatch = 256

type (
	// followMsg is a batch a follow stream delivered; closed: the stream's
	// channel closed and nothing more comes.
	followMsg[T any] struct {
		kind   followKind
		seq    int
		vals   []T
		closed bool
		ch     chan T
	}
	// followEndMsg says a follow stream's call returned: err nil when the
	// console ended it (or, with the test fake, it had nothing more).
	followEndMsg struct {
		kind followKind
		seq  int
		err  error
	}
)

// follower is the state of one follow stream: seq tells a live stream's
// messages from a replaced one's.
type follower struct {
	seq     int
	cancel  context.CancelFunc
	running bool   // the stream's call has not returned
	arg     string // what it follows (the rollout id)
}

// startFollow replaces the kind's stream with a new one running call.
func startFollow[T any](m *Model, kind followKind, arg string, call func(ctx context.Context, fn func(T) error) error) tea.Cmd {
	f := &m.follows[kind]
	if f.cancel != nil {
		f.cancel()
	}
	f.seq++
	f.running, f.arg = true, arg
	ctx, cancel := context.WithCancel(m.ctx)
	f.cancel = cancel
	seq, ch := f.seq, make(chan T, followBatch)
	run := func() tea.Msg {
		defer close(ch)
		err := call(ctx, func(v T) error {
			select {
			case ch <- v:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if ctx.Err() != nil {
			err = nil
		}
		return followEndMsg{kind, seq, err}
	}
	return tea.Batch(run, waitFollow(kind, seq, ch))
}

// waitFollow returns the stream's next batch.
func waitFollow[T any](kind followKind, seq int, ch chan T) tea.Cmd {
	return func() tea.Msg {
		vals, ok := nextBatch(ch, followBatch)
		return followMsg[T]{kind: kind, seq: seq, vals: vals, closed: !ok, ch: ch}
	}
}

// nextBatch blocks for one value of ch, then takes whatever else is
// already queued, up to max; ok is false when ch closed before any value.
func nextBatch[T any](ch chan T, max int) (vals []T, ok bool) {
	v, ok := <-ch
	if !ok {
		return nil, false
	}
	vals = []T{v}
	for len(vals) < max {
		select {
		case v, ok := <-ch:
			if !ok {
				return vals, true
			}
			vals = append(vals, v)
		default:
			return vals, true
		}
	}
	return vals, true
}

// live says whether msg is from the kind's current stream; it then returns
// the command that waits for the next batch.
func live[T any](m *Model, msg followMsg[T]) (bool, tea.Cmd) {
	if msg.seq != m.follows[msg.kind].seq || msg.closed {
		return false, nil
	}
	return true, waitFollow(msg.kind, msg.seq, msg.ch)
}

// stopFollow ends the kind's stream.
func (m *Model) stopFollow(kind followKind) {
	f := &m.follows[kind]
	if f.cancel != nil {
		f.cancel()
	}
	f.seq++
	f.running, f.cancel = false, nil
}

// followAuditLog follows the audit log for the events view, unless it is
// followed already.
func (m *Model) followAuditLog() tea.Cmd {
	if m.follows[followAudit].running {
		return nil
	}
	be := m.be
	return startFollow(m, followAudit, "", func(ctx context.Context, fn func(apitype.AuditEntry) error) error {
		return be.FollowAudit(ctx, eventsAuditFetch, fn)
	})
}

// followRollout follows rollout ro ("" the newest active one) for the
// Stage view, unless it is followed already or final (it changes no more).
func (m *Model) followRollout(ro *apitype.Rollout) tea.Cmd {
	id := ""
	if ro != nil {
		if ro.State.Final() {
			m.stopFollow(followStage)
			return nil
		}
		id = ro.ID
	}
	if f := m.follows[followStage]; f.running && f.arg == id && id != "" {
		return nil
	}
	be := m.be
	return startFollow(m, followStage, id, func(ctx context.Context, fn func(*apitype.Rollout) error) error {
		return be.FollowStage(ctx, id, fn)
	})
}

// followUpdate handles the follow streams' messages.
func (m *Model) followUpdate(msg tea.Msg) (tea.Cmd, bool) {
	switch msg := msg.(type) {
	case followMsg[apitype.AuditEntry]:
		ok, next := live(m, msg)
		if ok {
			m.events.addAudit(msg.vals)
		}
		return next, true
	case followMsg[*apitype.Rollout]:
		ok, next := live(m, msg)
		if !ok || m.stage == nil || m.stage.step != stageRollout {
			return next, true
		}
		// the latest state is what counts: changes coalesce
		ro := msg.vals[len(msg.vals)-1]
		if m.stage.ro != nil && m.stage.ro.ID != ro.ID && m.follows[followStage].arg != "" {
			return next, true
		}
		m.follows[followStage].arg = ro.ID // "" (the newest active) is this one
		cmd, _ := m.stageUpdate(stageMsg{ro: ro})
		if ro.State.Final() { // it changes no more
			m.stopFollow(followStage)
			next = nil
		}
		return tea.Batch(next, cmd), true
	case followEndMsg:
		f := &m.follows[msg.kind]
		if msg.seq != f.seq {
			return nil, true
		}
		f.running = false
		if msg.err == nil || m.ctx.Err() != nil {
			return nil, true
		}
		if isAPIError(msg.err) {
			if msg.kind == followStage {
				cmd, _ := m.stageUpdate(stageMsg{err: msg.err})
				return cmd, true
			}
			return nil, true
		}
		return m.disconnected(msg.err), true
	}
	return nil, false
}

// refollow opens again, after a reconnect, the follow streams the console
// had open when the daemon went away.
func (m *Model) refollow() tea.Cmd {
	var cmds []tea.Cmd
	if f := m.follows[followAudit]; f.seq > 0 && !f.running && m.view == viewEvents {
		cmds = append(cmds, m.followAuditLog())
	}
	if s := m.stage; s != nil && s.step == stageRollout && s.ro != nil && !m.follows[followStage].running {
		cmds = append(cmds, m.followRollout(s.ro))
	}
	return tea.Batch(cmds...)
}
