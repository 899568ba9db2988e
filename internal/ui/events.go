package ui

import (
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// eventsView is the live event stream with the audit log merged in,
// newest at the bottom, filterable by substring.
type eventsView struct {
	c      *Common
	all    []apitype.Event
	filter string
	shown  []int
	offset int  // first line shown
	tail   bool // follow the newest events
	inited bool
	// seenAudit holds the audit entries merged in (see eventsaudit.go).
	seenAudit map[string]bool
}

func (v *eventsView) add(evs []apitype.Event) {
	if !v.inited {
		v.tail, v.inited = true, true
	}
	v.all = append(v.all, evs...)
	if over := len(v.all) - maxEvents; over > 0 {
		v.all = append(v.all[:0:0], v.all[over:]...)
		v.tail = true
		v.refilter()
		return
	}
	for i := len(v.all) - len(evs); i < len(v.all); i++ {
		if v.match(i) {
			v.shown = append(v.shown, i)
		}
	}
	v.follow()
}

func (v *eventsView) match(i int) bool {
	return v.filter == "" || containsFold(formatEvent(v.all[i], true), strings.ToLower(v.filter))
}

func (v *eventsView) setFilter(f string) {
	v.filter = f
	v.tail = true
	v.refilter()
}

// refilter recomputes the shown lines; a view scrolled back stays where it
// is, one at the bottom follows.
func (v *eventsView) refilter() {
	v.shown = v.shown[:0]
	for i := range v.all {
		if v.match(i) {
			v.shown = append(v.shown, i)
		}
	}
	v.offset = min(v.offset, max(0, len(v.shown)-v.rows()))
	v.follow()
}

func (v *eventsView) rows() int { return max(1, v.c.Height-4) }

func (v *eventsView) follow() {
	if v.tail {
		v.offset = max(0, len(v.shown)-v.rows())
	}
}

func (v *eventsView) scroll(msg tea.KeyPressMsg, k KeyMap) {
	v.offset = scrollKey(msg, k, v.offset, len(v.shown), v.rows())
	v.tail = v.offset >= len(v.shown)-v.rows()
}

func (v *eventsView) lines() []string {
	end := min(len(v.shown), v.offset+v.rows())
	var out []string
	for _, i := range v.shown[min(v.offset, end):end] {
		out = append(out, formatEvent(v.all[i], true))
	}
	if len(v.all) == 0 {
		out = append(out, v.c.Styles.Dim.Render("no events yet"))
	} else if len(v.shown) == 0 {
		out = append(out, v.c.Styles.Dim.Render("no event matches the filter"))
	}
	return out
}
