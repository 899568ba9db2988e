package ui

import (
	"strconv"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// DialogGuard is how long a new dialog ignores keys: keys typed before it
// appeared (still in flight) must not answer it.
const DialogGuard = 150 * time.Millisecond

// TypeCountAbove is the number of nodes above which a dialog asks for the
// count to be typed instead of a yes.
const TypeCountAbove = 8

// Confirm is a yes/no dialog that defaults to No. For an action on more
// than TypeCountAbove nodes it asks the admin to type the count.
type Confirm struct {
	c      *Common
	Title  string
	Body   string
	Count  int // nodes the action touches; 0 when not about nodes
	opened time.Time
	yes    bool // the highlighted button
	typed  string
	offset int // first body line shown: a long body scrolls (j/k, pgup/pgdn)
	// Choice, when set, is a setting the answer carries (the reboot's
	// path): ChoiceKey cycles through its Options.
	Choice *Choice
}

// Choice is one setting of a Confirm: Options in turn, Options[At] chosen,
// the first by default.
type Choice struct {
	Label   string
	Options []string
	At      int
	Key     string // the key that picks the next option
}

// Value is the chosen option.
func (c *Choice) Value() string { return c.Options[c.At] }

// line renders the choice: the chosen option in brackets, so that it
// reads without colour too.
func (c *Choice) line(s *Styles) string {
	parts := make([]string, len(c.Options))
	for i, o := range c.Options {
		if i == c.At {
			parts[i] = s.ButtonActive.Render("[" + o + "]")
		} else {
			parts[i] = " " + o + " "
		}
	}
	return c.Label + ": " + strings.Join(parts, " ") + "   " + c.Key + ": change"
}

// NewConfirm opens a dialog now.
func NewConfirm(c *Common, title, body string, count int) *Confirm {
	return &Confirm{c: c, Title: title, Body: body, Count: count, opened: c.Now()}
}

// needsCount reports whether the dialog asks for the count to be typed.
func (d *Confirm) needsCount() bool { return d.Count > TypeCountAbove }

// Update handles a key. It reports whether the dialog is answered and the
// answer; anything but an explicit yes is a no.
func (d *Confirm) Update(msg tea.KeyPressMsg) (done, yes bool) {
	if d.c.Now().Sub(d.opened) < DialogGuard {
		return false, false
	}
	k := msg.String()
	if d.Choice != nil && k == d.Choice.Key {
		d.Choice.At = (d.Choice.At + 1) % len(d.Choice.Options)
		return false, false
	}
	switch k {
	case "esc", "q":
		return true, false
	case "j", "down":
		d.offset++
		return false, false
	case "k", "up":
		d.offset--
		return false, false
	case "pgdown", "ctrl+f", "space":
		d.offset += d.bodyRows() - 1
		return false, false
	case "pgup", "ctrl+b":
		d.offset -= d.bodyRows() - 1
		return false, false
	}
	if d.needsCount() {
		switch {
		case k == "enter":
			if d.typed == strconv.Itoa(d.Count) {
				return true, true
			}
			return true, false
		case k == "backspace":
			if d.typed != "" {
				d.typed = d.typed[:len(d.typed)-1]
			}
		case len(msg.Text) == 1 && msg.Text[0] >= '0' && msg.Text[0] <= '9' && len(d.typed) < 9:
			d.typed += msg.Text
		case k == "n":
			return true, false
		}
		return false, false
	}
	switch k {
	case "y", "Y":
		return true, true
	case "n", "N":
		return true, false
	case "left", "right", "tab", "h", "l", "shift+tab":
		d.yes = !d.yes
	case "enter":
		return true, d.yes
	}
	return false, false
}

// bodyRows is how many body lines the dialog shows at once.
func (d *Confirm) bodyRows() int {
	if d.Choice != nil {
		return max(3, d.c.Height-12) // the choice's line and a blank one
	}
	return max(3, d.c.Height-10)
}

// bodyLines is the body in lines of the box's width w: long lines (a
// kernel command line) wrap, continuations indented.
func (d *Confirm) bodyLines(w int) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(d.Body, "\n"), "\n") {
		for i, part := range strings.Split(lipgloss.Wrap(l, w-6, " "), "\n") {
			if i > 0 {
				part = "  " + part
			}
			lines = append(lines, part)
		}
	}
	return lines
}

// scrollNote says which body lines are shown and how to see the others.
func scrollNote(from, to, total int) string {
	return "lines " + strconv.Itoa(from) + "-" + strconv.Itoa(to) + " of " + strconv.Itoa(total) + " · j/k, pgup/pgdn scroll"
}

// View renders the dialog box.
func (d *Confirm) View() string {
	s := d.c.Styles
	w := min(max(40, d.c.Width-8), 100)
	var b strings.Builder
	b.WriteString(s.DialogTitle.Render(d.Title))
	b.WriteString("\n\n")
	maxBody := d.bodyRows()
	lines := d.bodyLines(w)
	if len(lines) > maxBody {
		// the body scrolls: a line says where and how
		d.offset = min(max(0, d.offset), len(lines)-(maxBody-1))
		end := d.offset + maxBody - 1
		more := s.Dim.Render(scrollNote(d.offset+1, end, len(lines)))
		lines = append(lines[d.offset:end:end], more)
	} else {
		d.offset = 0
	}
	for _, l := range lines {
		b.WriteString(fit(l, w-4))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	if d.Choice != nil {
		b.WriteString(d.Choice.line(s) + "\n\n")
	}
	if d.needsCount() {
		b.WriteString("This touches " + strconv.Itoa(d.Count) + " nodes. Type " + strconv.Itoa(d.Count) + " and enter to go ahead, esc to cancel: ")
		b.WriteString(s.Prompt.Render(d.typed + "_"))
	} else {
		no, yes := s.Button, s.Button
		if d.yes {
			yes = s.ButtonActive
		} else {
			no = s.ButtonActive
		}
		b.WriteString(lipgloss.JoinHorizontal(lipgloss.Top, no.Render("[ No ]"), "  ", yes.Render("[ Yes ]")))
		b.WriteString("   y/n, ←/→ and enter")
	}
	return s.Dialog.Width(w).Render(b.String())
}
