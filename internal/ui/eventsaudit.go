package ui

import (
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// The events view shows the audit log beside the boot events: the daemon's
// API has no audit stream, so while the view is open it reads the newest
// entries every auditPollEvery and merges the new ones in by time.

// kindAudit marks an audit entry in the events view; the daemon never sends
// it.
const kindAudit apitype.Kind = "audit"

const (
	// auditPollEvery is how often the open events view reads the audit log.
	auditPollEvery = 2 * time.Second
	// eventsAuditFetch is how many of the newest entries each read asks for.
	eventsAuditFetch = 200
)

type (
	eventsAuditMsg struct {
		seq     int
		entries []apitype.AuditEntry
		err     error
	}
	eventsAuditTickMsg struct{ seq int }
)

// openEvents shows the events view and starts reading the audit log.
func (m *Model) openEvents() tea.Cmd {
	m.push(viewEvents)
	m.auditSeq++
	return m.fetchEventsAudit(m.auditSeq)
}

func (m *Model) fetchEventsAudit(seq int) tea.Cmd {
	be := m.be
	ctx, cancel := m.call()
	return func() tea.Msg {
		defer cancel()
		e, err := be.Audit(ctx, eventsAuditFetch)
		return eventsAuditMsg{seq, e, err}
	}
}

// eventsAuditUpdate handles the audit reads of the events view: merge, then
// read again after auditPollEvery while the view is open (a newer openEvents
// drops older ticks).
func (m *Model) eventsAuditUpdate(msg tea.Msg) (tea.Cmd, bool) {
	switch msg := msg.(type) {
	case eventsAuditMsg:
		if msg.seq != m.auditSeq {
			return nil, true
		}
		if msg.err != nil && !isAPIError(msg.err) {
			return m.disconnected(msg.err), true
		}
		m.events.addAudit(msg.entries)
		every := m.opts.AuditPoll
		if every == 0 {
			every = auditPollEvery
		}
		if m.view != viewEvents || every < 0 {
			return nil, true
		}
		seq := msg.seq
		return tea.Tick(every, func(time.Time) tea.Msg { return eventsAuditTickMsg{seq} }), true
	case eventsAuditTickMsg:
		if msg.seq != m.auditSeq || m.view != viewEvents {
			return nil, true
		}
		return m.fetchEventsAudit(msg.seq), true
	}
	return nil, false
}

// auditKey identifies an audit entry across reads.
func auditKey(e apitype.AuditEntry) string {
	return fmt.Sprint(e.Time.UnixNano(), "\x00", e.Who, "\x00", e.Action, "\x00", e.Target, "\x00", e.Result)
}

// addAudit merges the entries the view has not seen, by time.
func (v *eventsView) addAudit(entries []apitype.AuditEntry) {
	if v.seenAudit == nil {
		v.seenAudit = map[string]bool{}
	}
	added := false
	for _, e := range entries {
		k := auditKey(e)
		if v.seenAudit[k] {
			continue
		}
		v.seenAudit[k] = true
		msg := e.Who + ": " + e.Action
		if e.Target != "" {
			msg += " " + e.Target
		}
		ev := apitype.Event{Time: e.Time.UTC(), Kind: kindAudit, Message: msg + " → " + e.Result}
		i := len(v.all)
		for i > 0 && v.all[i-1].Time.After(ev.Time) {
			i--
		}
		v.all = append(v.all, apitype.Event{})
		copy(v.all[i+1:], v.all[i:])
		v.all[i] = ev
		added = true
	}
	if !added {
		return
	}
	if over := len(v.all) - maxEvents; over > 0 {
		v.all = append(v.all[:0:0], v.all[over:]...)
	}
	v.refilter()
}
