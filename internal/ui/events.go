package ui

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// eventsView is the live event stream with the audit log merged in, in
// time order (an event the daemon sends again, after a reconnect, is shown
// once), filterable by substring and kind (kind:fetch,checkin), with a
// cursor whose event enter shows in full.
type eventsView struct {
	c      *Common
	all    []apitype.Event
	filter string
	parsed eventFilter // filter, parsed
	shown  []int
	offset int  // first line shown
	cursor int  // index into shown
	tail   bool // follow the newest events (the cursor on the last)
	inited bool
	// seen identifies the daemon's events kept in all (a restarted daemon
	// may count its sequence numbers again: the time tells them apart).
	seen map[eventKey]bool
	// open is the event shown in full (enter), nil when none.
	open *apitype.Event
	// seenAudit holds the audit entries merged in (see eventsaudit.go).
	seenAudit map[string]bool
}

// add merges the events the view has not seen yet, by time.
func (v *eventsView) add(evs []apitype.Event) {
	if !v.inited {
		v.tail, v.inited = true, true
	}
	if v.seen == nil {
		v.seen = map[eventKey]bool{}
	}
	pin := v.anchor()
	inOrder := true
	start := len(v.all)
	for _, ev := range evs {
		if ev.Seq != 0 {
			k := keyOf(ev)
			if v.seen[k] {
				continue // sent again (a reconnect's backlog)
			}
			v.seen[k] = true
		}
		if n := len(v.all); n > 0 && v.all[n-1].Time.After(ev.Time) {
			v.insert(ev)
			inOrder = false
			continue
		}
		v.all = append(v.all, ev)
	}
	if v.trim() {
		inOrder = false
	}
	if !inOrder {
		v.refilter()
		v.restore(pin)
		return
	}
	for i := start; i < len(v.all); i++ {
		if v.match(i) {
			v.shown = append(v.shown, i)
		}
	}
	v.follow()
}

// trim drops the oldest events past the view's bounds: maxRoutine check-ins
// and progress events, maxEvents of the other kinds. It reports whether it
// dropped any.
func (v *eventsView) trim() bool {
	routine := 0
	for i := range v.all {
		if v.all[i].Routine {
			routine++
		}
	}
	dropR, dropN := routine-maxRoutine, len(v.all)-routine-maxEvents
	if dropR <= 0 && dropN <= 0 {
		return false
	}
	kept := v.all[:0]
	for _, ev := range v.all {
		switch {
		case ev.Routine && dropR > 0:
			dropR--
		case !ev.Routine && dropN > 0:
			dropN--
		default:
			kept = append(kept, ev)
			continue
		}
		if ev.Seq != 0 {
			delete(v.seen, keyOf(ev))
		}
	}
	clear(v.all[len(kept):])
	v.all = kept
	return true
}

// anchor is the event under a scrolled-back cursor and the screen row it
// is on: while events come in and old ones go, the view keeps that event
// on that row (a view at the bottom follows the new events instead).
type anchor struct {
	ev  apitype.Event
	row int
	ok  bool
}

func (v *eventsView) anchor() anchor {
	if v.tail {
		return anchor{}
	}
	ev := v.current()
	if ev == nil {
		return anchor{}
	}
	return anchor{ev: *ev, row: v.cursor - v.offset, ok: true}
}

// restore puts the cursor back on a's event (or, when it is gone, on the
// oldest event shown after it) at a's row.
func (v *eventsView) restore(a anchor) {
	if !a.ok || v.tail || len(v.shown) == 0 {
		return
	}
	at := func(j int) *apitype.Event { return &v.all[v.shown[j]] }
	i := sort.Search(len(v.shown), func(j int) bool { return !at(j).Time.Before(a.ev.Time) })
	for j := i; j < len(v.shown) && at(j).Time.Equal(a.ev.Time); j++ {
		if e := at(j); e.Seq == a.ev.Seq && e.Kind == a.ev.Kind && e.Node == a.ev.Node && e.Message == a.ev.Message {
			i = j
			break
		}
	}
	v.cursor = min(i, len(v.shown)-1)
	v.offset = max(0, v.cursor-a.row)
}

// eventKey identifies an event of the daemon.
type eventKey struct {
	seq  uint64
	nano int64
}

func keyOf(ev apitype.Event) eventKey { return eventKey{ev.Seq, ev.Time.UnixNano()} }

// insert puts ev at its place by time (after events of the same time).
func (v *eventsView) insert(ev apitype.Event) {
	i := len(v.all)
	for i > 0 && v.all[i-1].Time.After(ev.Time) {
		i--
	}
	v.all = slices.Insert(v.all, i, ev)
}

// eventFilter is a parsed events filter: kind:K[,K] terms and substrings,
// all of which must match.
type eventFilter struct {
	kinds []apitype.Kind
	words []string
}

func parseEventFilter(text string) eventFilter {
	var f eventFilter
	for _, t := range strings.Fields(strings.ToLower(text)) {
		if ks, ok := strings.CutPrefix(t, "kind:"); ok {
			for _, k := range strings.Split(ks, ",") {
				if k != "" {
					f.kinds = append(f.kinds, apitype.Kind(k))
				}
			}
			continue
		}
		f.words = append(f.words, t)
	}
	return f
}

func (v *eventsView) match(i int) bool {
	if v.filter == "" {
		return true
	}
	f := v.parsed
	ev := v.all[i]
	if len(f.kinds) > 0 && !slices.Contains(f.kinds, ev.Kind) {
		return false
	}
	line := formatEvent(ev, true)
	for _, w := range f.words {
		if !containsFold(line, w) {
			return false
		}
	}
	return true
}

func (v *eventsView) setFilter(f string) {
	v.filter, v.parsed = f, parseEventFilter(f)
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
	v.cursor = min(v.cursor, max(0, len(v.shown)-1))
	v.follow()
}

func (v *eventsView) rows() int { return max(1, v.c.Height-4) }

func (v *eventsView) follow() {
	if v.tail {
		v.offset = max(0, len(v.shown)-v.rows())
		v.cursor = max(0, len(v.shown)-1)
	}
}

// scroll moves the cursor (j/k, pages, g/G), the view keeping it on
// screen; on the last event the view follows new ones again.
func (v *eventsView) scroll(msg tea.KeyPressMsg, k KeyMap) {
	n := len(v.shown)
	switch {
	case key.Matches(msg, k.Up):
		v.cursor--
	case key.Matches(msg, k.Down):
		v.cursor++
	case key.Matches(msg, k.PageUp):
		v.cursor -= v.rows()
	case key.Matches(msg, k.PageDown):
		v.cursor += v.rows()
	case key.Matches(msg, k.Top):
		v.cursor = 0
	case key.Matches(msg, k.Bottom):
		v.cursor = n - 1
	default:
		return
	}
	v.cursor = min(max(0, v.cursor), max(0, n-1))
	if v.cursor < v.offset {
		v.offset = v.cursor
	}
	if v.cursor >= v.offset+v.rows() {
		v.offset = v.cursor - v.rows() + 1
	}
	v.tail = v.cursor >= n-1
}

// current is the event under the cursor.
func (v *eventsView) current() *apitype.Event {
	if v.cursor < 0 || v.cursor >= len(v.shown) {
		return nil
	}
	return &v.all[v.shown[v.cursor]]
}

func (v *eventsView) lines() []string {
	end := min(len(v.shown), v.offset+v.rows())
	var out []string
	for j := min(v.offset, end); j < end; j++ {
		line := formatEvent(v.all[v.shown[j]], true)
		if j == v.cursor && !v.tail {
			line = v.c.Styles.Cursor.Render(fit(line, v.c.Width))
		}
		out = append(out, line)
	}
	if len(v.all) == 0 {
		out = append(out, v.c.Styles.Dim.Render("no events yet"))
	} else if len(v.shown) == 0 {
		out = append(out, v.c.Styles.Dim.Render("no event matches the filter"))
	}
	return out
}

// eventBox renders ev in full, one field a line, for the box enter opens.
func eventBox(c *Common, ev apitype.Event) string {
	s := c.Styles
	w := min(max(40, c.Width-8), 100)
	var lines []string
	field := func(name, value string) {
		if value != "" {
			lines = append(lines, fmt.Sprintf("%-10s %s", name, value))
		}
	}
	field("time", ev.Time.Format(time.RFC3339Nano))
	if ev.Seq != 0 {
		field("seq", fmt.Sprint(ev.Seq))
	}
	field("node", ev.Node)
	field("kind", string(ev.Kind))
	field("stage", string(ev.Stage))
	field("proto", ev.Proto)
	field("path", ev.Path)
	field("remote", ev.Remote)
	field("mac", ev.MAC)
	if ev.Total > 0 || ev.Bytes > 0 {
		field("bytes", fmt.Sprintf("%d of %d", ev.Bytes, ev.Total))
	}
	field("generation", ev.Generation)
	if ev.Uptime > 0 {
		field("uptime", ev.Uptime.String())
	}
	if ev.OverlayBytes > 0 {
		field("overlay", humanSize(ev.OverlayBytes))
	}
	field("power", ev.Power)
	field("error", ev.Error)
	field("message", ev.Message)
	var b strings.Builder
	b.WriteString(s.DialogTitle.Render("Event") + "\n\n")
	for _, l := range lines {
		name, value := l[:11], l[11:]
		for i, part := range wrapWords(value, w-17) {
			if i > 0 {
				name = strings.Repeat(" ", 11)
			}
			b.WriteString(name + part + "\n")
		}
	}
	b.WriteString("\n" + s.Dim.Render("any key closes"))
	return s.Dialog.Width(w).Render(b.String())
}
