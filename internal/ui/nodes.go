package ui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/hostlist"
)

type sortKey int

const (
	sortInventory sortKey = iota
	sortName
	sortGroup
	sortStage
	sortDrift
	sortCheckin
)

var sortNames = [...]string{"inventory", "name", "group", "stage", "drift", "check-in"}

// nodeTable is the nodes view: every node, filtered, sorted, with marks
// that survive filtering and a cursor that follows its node.
type nodeTable struct {
	c       *Common
	all     []apitype.NodeView
	shown   []int // indexes into all, in display order
	marks   map[string]bool
	filter  Filter
	sort    sortKey
	reverse bool
	cursor  int // index into shown
	offset  int // first shown row on screen
}

func newNodeTable(c *Common) nodeTable {
	return nodeTable{c: c, marks: map[string]bool{}}
}

// setNodes replaces the node list, keeping the cursor on the same node.
func (t *nodeTable) setNodes(nodes []apitype.NodeView) {
	cur := ""
	if n := t.current(); n != nil {
		cur = n.Name
	}
	t.all = nodes
	t.refilter()
	t.follow(cur)
}

func (t *nodeTable) current() *apitype.NodeView {
	if t.cursor < 0 || t.cursor >= len(t.shown) {
		return nil
	}
	return &t.all[t.shown[t.cursor]]
}

func (t *nodeTable) follow(name string) {
	if name != "" {
		for i, j := range t.shown {
			if t.all[j].Name == name {
				t.cursor = i
				break
			}
		}
	}
	t.clamp()
}

func (t *nodeTable) setFilter(f Filter) {
	cur := ""
	if n := t.current(); n != nil {
		cur = n.Name
	}
	t.filter = f
	t.refilter()
	t.follow(cur)
}

func (t *nodeTable) setSort(k sortKey) {
	if t.sort == k {
		t.reverse = !t.reverse
	} else {
		t.sort, t.reverse = k, false
	}
	t.resort()
}

func (t *nodeTable) resort() {
	cur := ""
	if n := t.current(); n != nil {
		cur = n.Name
	}
	t.sortShown()
	t.follow(cur)
}

func (t *nodeTable) refilter() {
	t.shown = t.shown[:0]
	for i := range t.all {
		if t.filter.Match(&t.all[i], t.marks[t.all[i].Name]) {
			t.shown = append(t.shown, i)
		}
	}
	t.sortShown()
	t.clamp()
}

func stageRank(s apitype.Stage) int {
	switch s {
	case apitype.StageFailed:
		return 0
	case apitype.StageStalled:
		return 1
	case apitype.StagePoweringOn, apitype.StageKexec, apitype.StageDHCP, apitype.StageNBP, apitype.StageConfig, apitype.StageKernel,
		apitype.StageInitrd, apitype.StageRootfs:
		return 2
	case apitype.StageBooted:
		return 4
	case apitype.StageOff:
		return 5
	}
	return 6
}

func (t *nodeTable) sortShown() {
	all := t.all
	var f func(a, b int) int
	switch t.sort {
	case sortInventory:
		f = func(a, b int) int { return cmp.Compare(a, b) }
	case sortName:
		f = func(a, b int) int { return hostlist.Compare(all[a].Name, all[b].Name) }
	case sortGroup:
		f = func(a, b int) int { return cmp.Compare(all[a].Group, all[b].Group) }
	case sortStage:
		f = func(a, b int) int { return cmp.Compare(stageRank(all[a].State.Stage), stageRank(all[b].State.Stage)) }
	case sortDrift:
		rank := func(n *apitype.NodeView) int {
			switch {
			case drift(n):
				return 0
			case n.Dirty:
				return 1
			}
			return 2
		}
		f = func(a, b int) int { return cmp.Compare(rank(&all[a]), rank(&all[b])) }
	case sortCheckin:
		f = func(a, b int) int { return all[b].State.LastCheckin.Compare(all[a].State.LastCheckin) }
	}
	rev := t.reverse
	slices.SortStableFunc(t.shown, func(a, b int) int {
		r := f(a, b)
		if r == 0 && t.sort != sortInventory {
			r = cmp.Compare(a, b) // ties in inventory order
			return r
		}
		if rev {
			return -r
		}
		return r
	})
}

// pageRows is how many node rows fit on the screen: everything but the
// title, the header, the cursor node's line under the list, the input line
// and the key line.
func (t *nodeTable) pageRows() int { return max(1, t.c.Height-5) }

func (t *nodeTable) move(d int) {
	t.cursor += d
	t.clamp()
}

func (t *nodeTable) clamp() {
	if t.cursor >= len(t.shown) {
		t.cursor = len(t.shown) - 1
	}
	if t.cursor < 0 {
		t.cursor = 0
	}
	rows := t.pageRows()
	if t.offset > t.cursor {
		t.offset = t.cursor
	}
	if t.cursor >= t.offset+rows {
		t.offset = t.cursor - rows + 1
	}
	if t.offset > max(0, len(t.shown)-rows) {
		t.offset = max(0, len(t.shown)-rows)
	}
	if t.offset < 0 {
		t.offset = 0
	}
}

func (t *nodeTable) toggleMark() {
	n := t.current()
	if n == nil {
		return
	}
	if t.marks[n.Name] {
		delete(t.marks, n.Name)
	} else {
		t.marks[n.Name] = true
	}
	t.move(1)
}

func (t *nodeTable) markShown() {
	for _, i := range t.shown {
		t.marks[t.all[i].Name] = true
	}
}

// byName returns the named node, nil when the list lacks it.
func (t *nodeTable) byName(name string) *apitype.NodeView {
	for i := range t.all {
		if t.all[i].Name == name {
			return &t.all[i]
		}
	}
	return nil
}

// markedCount counts marks of nodes that still exist.
func (t *nodeTable) markedCount() int { return len(t.marks) }

// Marked returns the marked node names in inventory order.
func (t *nodeTable) marked() []string {
	var out []string
	for _, n := range t.all {
		if t.marks[n.Name] {
			out = append(out, n.Name)
		}
	}
	return out
}

// column is one column of the nodes table.
type column struct {
	title    string
	width    int
	prio     int // lower survives narrower terminals
	flexible bool
	cell     func(t *nodeTable, n *apitype.NodeView, w int) (string, lipgloss.Style)
}

// wideFrom is the terminal width from which the node list uses its wide
// columns; below it titles are abbreviated and columns narrower, so that
// at 80 columns GROUP and ASSIGNED stay.
const wideFrom = 110

func (t *nodeTable) columns() []column {
	s := t.c.Styles
	plain := lipgloss.NewStyle()
	nameW := 4
	for _, i := range t.visibleRange() {
		nameW = max(nameW, len(t.all[i].Name))
	}
	nameW = min(nameW, 20)
	narrow := t.c.Width < wideFrom
	w := func(wide, nar int) int {
		if narrow {
			return nar
		}
		return wide
	}
	title := func(wide, nar string) string {
		if narrow {
			return nar
		}
		return wide
	}
	return []column{
		{title: "NAME", width: nameW, prio: 0, cell: func(_ *nodeTable, n *apitype.NodeView, _ int) (string, lipgloss.Style) {
			return n.Name, plain
		}},
		{title: "GROUP", width: w(8, 7), prio: 3, cell: func(_ *nodeTable, n *apitype.NodeView, _ int) (string, lipgloss.Style) {
			return n.Group, plain
		}},
		{title: title("POWER", "PWR"), width: w(5, 3), prio: 2, cell: func(_ *nodeTable, n *apitype.NodeView, _ int) (string, lipgloss.Style) {
			p := n.State.Power
			if p == "unknown" || p == "" {
				return "?", s.Dim
			}
			return p, plain
		}},
		{title: "STAGE", width: w(17, 12), prio: 0, cell: func(_ *nodeTable, n *apitype.NodeView, w int) (string, lipgloss.Style) {
			return stageCell(n, w), s.Stage(string(n.State.Stage))
		}},
		{title: "ASSIGNED", width: w(20, 14), prio: 3, cell: func(_ *nodeTable, n *apitype.NodeView, w int) (string, lipgloss.Style) {
			if n.Assigned == "" {
				return "-", s.Dim
			}
			return genLabel(n.Image, n.Assigned, w), plain
		}},
		{title: "RUNNING", width: w(21, 14), prio: 1, cell: func(_ *nodeTable, n *apitype.NodeView, w int) (string, lipgloss.Style) {
			g := n.State.Generation
			if g == "" {
				return "-", s.Dim
			}
			if drift(n) {
				return "!" + genLabel(n.Image, g, w-1), s.Drift
			}
			return genLabel(n.Image, g, w), plain
		}},
		{title: "DIRTY", width: 5, prio: 1, cell: func(_ *nodeTable, n *apitype.NodeView, _ int) (string, lipgloss.Style) {
			if n.Dirty {
				return "dirty", s.Warn
			}
			return "", plain
		}},
		{title: title("CHECK-IN", "SEEN"), width: w(8, 4), prio: 2, cell: func(t *nodeTable, n *apitype.NodeView, _ int) (string, lipgloss.Style) {
			return ago(t.c.Now(), n.State.LastCheckin), plain
		}},
		{title: "ERROR", width: 5, prio: 4, flexible: true, cell: func(_ *nodeTable, n *apitype.NodeView, _ int) (string, lipgloss.Style) {
			return nodeErr(n), s.Error
		}},
	}
}

// nodeErr is what the ERROR column (and the line under the list) says
// about a node.
func nodeErr(n *apitype.NodeView) string {
	e := n.State.Error
	if e == "" {
		e = n.State.PowerError
	}
	if e == "" {
		e = n.AssignError
	}
	return e
}

// genLabel writes a generation as image@generation in w cells, shortening
// the generation (never the image) when it does not fit.
func genLabel(image, gen string, w int) string {
	if image == "" {
		if len(gen) <= w {
			return gen
		}
		return truncate(gen, w-1)
	}
	l := image + "@" + gen
	if len(l) <= w {
		return l
	}
	if room := w - len(image) - 1; room >= 5 {
		return image + "@" + truncate(gen, room-1)
	}
	return truncate(l, w-1)
}

// layout picks the columns that fit width, dropping the highest priority
// numbers first, and gives the flexible column what is left.
func layout(cols []column, width int) []column {
	avail := width - 2 // mark and space
	for p := 4; p >= 0; p-- {
		need := 0
		for _, c := range cols {
			if c.prio <= p {
				need += c.width + 1
			}
		}
		if need <= avail || p == 0 {
			var out []column
			for _, c := range cols {
				if c.prio <= p {
					out = append(out, c)
				}
			}
			if extra := avail - need; extra > 0 {
				for i := range out {
					if out[i].flexible {
						out[i].width += extra
					}
				}
			}
			return out
		}
	}
	return nil
}

func stageCell(n *apitype.NodeView, w int) string {
	st := n.State
	name := string(st.Stage)
	if name == "" {
		name = "unknown"
	}
	if st.Stage != apitype.StageRootfs || st.Total <= 0 {
		return name
	}
	pct := float64(st.Bytes) / float64(st.Total)
	pct = min(max(pct, 0), 1)
	label := fmt.Sprintf(" %3d%%", int(pct*100))
	barW := w - len(name) - 1 - len(label)
	if barW < 3 {
		return name + label
	}
	full := int(pct * float64(barW))
	return name + " " + strings.Repeat("█", full) + strings.Repeat("░", barW-full) + label
}

// ago renders how long before now t was: "12s", "5m", "3h", "2d"; "-" for
// never.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func (t *nodeTable) visibleRange() []int {
	end := min(len(t.shown), t.offset+t.pageRows())
	if t.offset >= end {
		return nil
	}
	return t.shown[t.offset:end]
}

// fit pads or truncates s to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	sw := lipgloss.Width(s)
	if sw == w {
		return s
	}
	if sw < w {
		return s + strings.Repeat(" ", w-sw)
	}
	r := []rune(s)
	for len(r) > 0 && lipgloss.Width(string(r))+1 > w {
		r = r[:len(r)-1]
	}
	out := string(r) + "…"
	return out + strings.Repeat(" ", max(0, w-lipgloss.Width(out)))
}

// render draws the header and the visible rows only.
func (t *nodeTable) render(b *strings.Builder) {
	s := t.c.Styles
	cols := layout(t.columns(), t.c.Width)
	var hdr strings.Builder
	hdr.WriteString("  ")
	for i, c := range cols {
		if i > 0 {
			hdr.WriteByte(' ')
		}
		title := c.title
		if sortTitle(t.sort) == c.title {
			if t.reverse {
				title += "↓"
			} else {
				title += "↑"
			}
		}
		hdr.WriteString(fit(title, c.width))
	}
	b.WriteString(s.Header.Render(fit(hdr.String(), t.c.Width)))
	b.WriteByte('\n')
	rows := t.pageRows()
	vis := t.visibleRange()
	for r := 0; r < rows; r++ {
		if r >= len(vis) {
			if r == 0 && len(t.all) > 0 {
				b.WriteString(s.Dim.Render("  no node matches the filter"))
			}
			b.WriteByte('\n')
			continue
		}
		n := &t.all[vis[r]]
		cursor := t.offset+r == t.cursor
		var line strings.Builder
		if t.marks[n.Name] && cursor {
			line.WriteString("* ")
		} else if t.marks[n.Name] {
			line.WriteString(s.Marked.Render("*") + " ")
		} else {
			line.WriteString("  ")
		}
		for i, c := range cols {
			if i > 0 {
				line.WriteByte(' ')
			}
			text, st := c.cell(t, n, c.width)
			text = fit(text, c.width)
			if cursor {
				line.WriteString(text)
			} else {
				line.WriteString(st.Render(text))
			}
		}
		if cursor {
			b.WriteString(s.Cursor.Render(line.String()))
		} else {
			b.WriteString(line.String())
		}
		b.WriteByte('\n')
	}
	b.WriteString(t.cursorLine())
	b.WriteByte('\n')
}

// cursorLine is the line under the list: the cursor node's error in full
// (the ERROR column cuts it or is left off on narrow terminals), else its
// dirty reasons.
func (t *nodeTable) cursorLine() string {
	s := t.c.Styles
	n := t.current()
	if n == nil {
		return ""
	}
	text, st := nodeErr(n), s.Error
	if text == "" && n.Dirty {
		text, st = "dirty: "+strings.Join(n.DirtyReasons, "; "), s.Warn
	}
	if text == "" {
		return ""
	}
	line := n.Name + ": " + text
	if lipgloss.Width(line) > t.c.Width {
		line = fit(line, t.c.Width-len(" (enter: detail)")) + " (enter: detail)"
	}
	return st.Render(line)
}

func sortTitle(k sortKey) string {
	switch k {
	case sortName:
		return "NAME"
	case sortGroup:
		return "GROUP"
	case sortStage:
		return "STAGE"
	case sortDrift:
		return "RUNNING"
	case sortCheckin:
		return "CHECK-IN"
	}
	return ""
}
