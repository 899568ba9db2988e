package ui

import (
	"fmt"
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// View renders the whole screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "netbootui"
	return v
}

// Render returns the screen as text with styles; exactly Height lines of at
// most Width cells.
func (m *Model) Render() string {
	if m.quitting {
		return ""
	}
	c := m.c
	var b strings.Builder
	b.WriteString(m.titleLine())
	b.WriteByte('\n')
	bodyRows := max(1, c.Height-3)
	switch m.view {
	case viewNodes:
		if m.loading && len(m.nodes.all) == 0 {
			writeLines(&b, []string{c.Styles.Dim.Render("loading nodes…")}, 0, bodyRows, c.Width)
		} else {
			m.nodes.render(&b)
		}
	case viewDetail:
		m.detail.offset = min(m.detail.offset, max(0, len(m.detail.lines())-bodyRows))
		writeLines(&b, m.detail.lines(), m.detail.offset, bodyRows, c.Width)
	case viewEvents:
		hdr := c.Styles.Header.Render(fit(fmt.Sprintf("EVENTS  %d shown of %d", len(m.events.shown), len(m.events.all)), c.Width))
		b.WriteString(hdr + "\n")
		writeLines(&b, m.events.lines(), 0, bodyRows-1, c.Width)
	case viewImages:
		rows := m.imageRows()
		lines := m.images.lines(m.nodes.all)
		m.images.offset = min(m.images.offset, max(0, len(lines)-rows))
		writeLines(&b, lines, m.images.offset, rows, c.Width)
		if bl := m.images.build; bl != nil && bodyRows > rows {
			writeLines(&b, bl.lines(c, bodyRows-rows), 0, bodyRows-rows, c.Width)
		}
	case viewUnknown:
		writeLines(&b, m.unknown.lines(c, c.Now()), 0, bodyRows, c.Width)
	case viewPersist:
		writeLines(&b, m.persist.lines(c), 0, bodyRows, c.Width)
	case viewStage:
		lines := m.stageLines()
		if m.stage != nil {
			m.stage.offset = min(m.stage.offset, max(0, len(lines)-bodyRows))
			writeLines(&b, lines, m.stage.offset, bodyRows, c.Width)
		} else {
			writeLines(&b, lines, 0, bodyRows, c.Width)
		}
	case viewHelp:
		lines := m.help.lines()
		m.help.offset = min(m.help.offset, max(0, len(lines)-bodyRows))
		writeLines(&b, lines, m.help.offset, bodyRows, c.Width)
	case viewAction:
		if m.act != nil {
			lines := m.act.lines(c, m.nodePower)
			m.act.offset = min(m.act.offset, max(0, len(lines)-bodyRows))
			writeLines(&b, lines, m.act.offset, bodyRows, c.Width)
		} else {
			writeLines(&b, nil, 0, bodyRows, c.Width)
		}
	}
	b.WriteString(m.inputLine())
	b.WriteByte('\n')
	b.WriteString(m.keyLine())
	screen := m.wrapFlash(b.String())
	if m.menu != nil {
		screen = overlay(screen, m.menu.view(), c.Width, c.Height)
	}
	if m.view == viewEvents && m.events.open != nil {
		screen = overlay(screen, eventBox(c, *m.events.open), c.Width, c.Height)
	}
	if m.dialog != nil {
		screen = overlay(screen, m.dialog.View(), c.Width, c.Height)
	}
	return screen
}

// maxFlashRows bounds the lines a flash wider than the screen takes.
const maxFlashRows = 4

// wrapFlash shows a flash wider than the screen on up to maxFlashRows
// lines, the first ones over the bottom of the body, instead of cutting it
// at the screen's edge: its end is often what matters (why a serial console
// cannot open, and what to use instead). screen is the rendered screen,
// its input line the last but one.
func (m *Model) wrapFlash(screen string) string {
	if m.flash == "" || m.input != inputNone || lipgloss.Width(m.flash) <= m.c.Width {
		return screen
	}
	st := m.c.Styles.Warn
	if m.flashError {
		st = m.c.Styles.Error
	}
	parts := strings.Split(lipgloss.Wrap(m.flash, m.c.Width, " "), "\n")
	if len(parts) > maxFlashRows {
		parts = parts[:maxFlashRows]
		last := parts[maxFlashRows-1]
		parts[maxFlashRows-1] = ansi.Truncate(last, m.c.Width-1, "") + "…"
	}
	rows := strings.Split(screen, "\n")
	in := len(rows) - 2      // the input line
	if in-len(parts)+1 < 1 { // the title line stays
		return screen
	}
	for i, p := range parts {
		rows[in-len(parts)+1+i] = cut(st.Render(p), m.c.Width)
	}
	return strings.Join(rows, "\n")
}

// writeLines writes rows lines of lines starting at off, padded with empty
// lines, each cut to width.
func writeLines(b *strings.Builder, lines []string, off, rows, width int) {
	for r := 0; r < rows; r++ {
		if i := off + r; i >= 0 && i < len(lines) {
			b.WriteString(cut(lines[i], width))
		}
		b.WriteByte('\n')
	}
}

// cut truncates a styled line to width cells.
func cut(s string, width int) string {
	if lipgloss.Width(s) <= width {
		return s
	}
	return lipgloss.NewStyle().MaxWidth(width).Render(s)
}

var viewNames = map[viewID]string{viewNodes: "nodes", viewDetail: "node", viewEvents: "events", viewImages: "images", viewHelp: "help", viewAction: "action", viewStage: "stage", viewUnknown: "unknown", viewPersist: "persist"}

func (m *Model) titleLine() string {
	s := m.c.Styles
	t := &m.nodes
	left := s.Title.Render("netbootui") + " " + viewNames[m.view]
	if m.view == viewDetail {
		left += " " + m.detail.name
	}
	info := fmt.Sprintf(" · %d nodes", len(t.all))
	if !t.filter.Empty() {
		info += fmt.Sprintf(" · %d shown", len(t.shown))
	}
	info += fmt.Sprintf(" · %d marked", t.markedCount())
	if t.sort != sortInventory {
		dir := "↑"
		if t.reverse {
			dir = "↓"
		}
		info += " · sort " + sortNames[t.sort] + dir
	}
	var right string
	switch {
	case m.connErr != nil:
		right = s.Error.Render("disconnected, retrying")
	case m.haveSt && m.status.Inventory.ReloadErr != "":
		right = s.Warn.Render("inventory reload failed")
	case m.haveSt:
		right = s.OK.Render("rev " + short(m.status.Inventory.Revision))
	}
	right = m.headTitle() + right
	line := left + info
	gap := m.c.Width - lipgloss.Width(line) - lipgloss.Width(right)
	if gap < 1 {
		return cut(line+" "+right, m.c.Width)
	}
	return line + strings.Repeat(" ", gap) + right
}

func short(rev string) string {
	if len(rev) > 8 {
		return rev[:8]
	}
	return rev
}

func (m *Model) inputLine() string {
	s := m.c.Styles
	switch m.input {
	case inputFilter:
		line := s.Prompt.Render("/") + m.inputText + "_"
		if m.inputErr != "" {
			line += "  " + s.Error.Render(m.inputErr)
		}
		return cut(line, m.c.Width)
	case inputCommand:
		line := s.Prompt.Render(":") + m.inputText + "_"
		if c := completeCommand(m.inputText); m.inputText != "" && len(c) > 0 {
			line += "  " + s.Dim.Render(strings.Join(c, " "))
		}
		return cut(line, m.c.Width)
	}
	if m.flash != "" {
		if m.flashError {
			return cut(s.Error.Render(m.flash), m.c.Width)
		}
		return cut(s.Warn.Render(m.flash), m.c.Width)
	}
	if m.connErr != nil {
		return cut(s.Error.Render("disconnected, retrying: "+m.connErr.Error()), m.c.Width)
	}
	if m.act != nil && m.act.running && m.view != viewAction {
		return cut(s.Warn.Render(m.act.summary()), m.c.Width)
	}
	if m.view == viewNodes && !m.nodes.filter.Empty() {
		return cut(s.Dim.Render("filter: "+m.nodes.filter.Text+"  (esc clears)"), m.c.Width)
	}
	if m.view == viewEvents && m.events.filter != "" {
		return cut(s.Dim.Render("filter: "+m.events.filter+"  (esc clears)"), m.c.Width)
	}
	if m.act != nil && m.view != viewAction {
		return cut(s.Dim.Render("last action: "+m.act.summary()), m.c.Width)
	}
	return ""
}

func (m *Model) keyLine() string {
	var hints []string
	switch m.view {
	case viewNodes:
		hints = []string{"?:help", "/:filter", "space:mark", "enter:detail", "e:edit", "p:power", "R:reboot", "q:quit", "s:stage"}
	case viewDetail:
		hints = []string{"esc:back", "j/k:scroll", "e:edit", "E:group", "p:power", "R:reboot", "c:console", "?:help"}
	case viewAction:
		hints = []string{"esc:back", "j/k:scroll", "?:help", "ctrl+c:quit"}
		if m.act != nil && m.act.running {
			hints = []string{"esc:back (keeps running)", "ctrl+x:cancel", "j/k:scroll", "?:help"}
		}
	case viewEvents:
		hints = []string{"esc:back", "/:filter (kind:K)", "j/k:move", "enter:open", "G:follow", "ctrl+c:quit"}
	case viewImages:
		hints = []string{"esc:back", "j/k:image", "b:build", "r:roll back", "ctrl+r:refresh"}
		if m.images.build != nil && m.images.build.running {
			hints = append(hints, "ctrl+x:cancel build")
		}
	case viewStage:
		hints = m.stageHints()
	case viewUnknown:
		hints = []string{"esc:back", "j/k:move", "space:mark", "a:adopt", "t:group", "ctrl+r:refresh"}
	case viewPersist:
		hints = []string{"esc:back", "W:wipe", "ctrl+r:refresh"}
	default:
		hints = []string{"esc:back", "j/k:scroll", "ctrl+c:quit"}
	}
	// keys this console refuses (the SSH console: no editor, no serial
	// console) are not offered
	hints = slices.DeleteFunc(hints, func(h string) bool {
		switch h {
		case "e:edit", "E:group":
			return m.opts.NoEdit != ""
		case "c:console":
			return m.opts.SerialConsole == nil
		}
		return false
	})
	// whole hints only: those that do not fit are left off
	line := ""
	for _, h := range hints {
		next := h
		if line != "" {
			next = line + "  " + h
		}
		if lipgloss.Width(next) > m.c.Width {
			break
		}
		line = next
	}
	return m.c.Styles.Dim.Render(line)
}

// overlay centres box over screen.
func overlay(screen, box string, width, height int) string {
	lines := strings.Split(screen, "\n")
	bl := strings.Split(box, "\n")
	bw := lipgloss.Width(box)
	top := max(0, (height-len(bl))/2)
	left := max(0, (width-bw)/2)
	for i, l := range bl {
		if top+i >= len(lines) {
			break
		}
		lines[top+i] = strings.Repeat(" ", left) + l
	}
	return strings.Join(lines, "\n")
}
