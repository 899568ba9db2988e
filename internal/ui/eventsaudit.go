package ui

import (
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// The events view shows the audit log beside the boot events: opening it
// follows the daemon's audit log (follow.go: the newest entries, then each
// as it is recorded), merged in by time. The stream stays open while the
// console runs, so the view is complete whenever it is shown again.

// kindAudit marks an audit entry in the events view; the daemon never sends
// it.
const kindAudit apitype.Kind = "audit"

// eventsAuditFetch is how many of the newest entries the stream starts
// with.
const eventsAuditFetch = 200

// openEvents shows the events view and follows the audit log.
func (m *Model) openEvents() tea.Cmd {
	m.push(viewEvents)
	return m.followAuditLog()
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
	pin := v.anchor()
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
		msg += " → " + e.Result
		if len(e.Paths) > 0 { // which path each node's reboot took, and why
			msg += " · " + strings.Join(e.Paths, "; ")
		}
		ev := apitype.Event{Time: e.Time.UTC(), Kind: kindAudit, Message: msg}
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
	v.trim()
	v.refilter()
	v.restore(pin)
}
