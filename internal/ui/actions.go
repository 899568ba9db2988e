package ui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/hostlist"
)

const (
	// powerTimeout bounds one power action on a selection: the daemon
	// paces BMC sessions, so a large selection takes longer than one call.
	powerTimeout = 3 * time.Minute
)

// powerOp is one entry of the `p` menu.
type powerOp struct {
	op, key, label, warn string
}

// powerOps are the `p` menu's entries, in menu order.
var powerOps = []powerOp{
	{"on", "o", "on      power on", "The BMC powers them on; they boot from the network."},
	{"off", "f", "off     hard power off", "The BMC cuts power at once: anything running stops\nwithout a shutdown."},
	{"soft", "s", "soft    ACPI shutdown", "The BMC asks the OS to shut down; nodes that ignore\nit stay on."},
	{"cycle", "c", "cycle   power off, then on", "The BMC cuts power and restores it: anything running\nstops at once."},
	{"reset", "r", "reset   hard reset", "The BMC resets them at once: anything running stops\nwithout a shutdown."},
	{"status", "t", "status  read the power state", "Reads the power state; changes nothing."},
}

// powerMenu is the `p` menu: which operation to run on which nodes.
type powerMenu struct {
	c      *Common
	names  []string
	cursor int
}

// menuKey handles a key in the power menu. It returns the chosen operation,
// or done with no operation when the menu was closed.
func (p *powerMenu) menuKey(msg tea.KeyPressMsg, k KeyMap) (op *powerOp, done bool) {
	switch {
	case key.Matches(msg, k.Back), msg.String() == "q":
		return nil, true
	case key.Matches(msg, k.Up):
		p.cursor = (p.cursor + len(powerOps) - 1) % len(powerOps)
	case key.Matches(msg, k.Down):
		p.cursor = (p.cursor + 1) % len(powerOps)
	case key.Matches(msg, k.Enter):
		return &powerOps[p.cursor], true
	default:
		for i := range powerOps {
			if msg.Text == powerOps[i].key {
				return &powerOps[i], true
			}
		}
	}
	return nil, false
}

func (p *powerMenu) view() string {
	s := p.c.Styles
	var b strings.Builder
	b.WriteString(s.DialogTitle.Render("Power: " + plural(len(p.names), "node") + " " + truncate(hostlist.Compress(p.names), 40)))
	b.WriteString("\n\n")
	for i, o := range powerOps {
		line := fmt.Sprintf(" %s  %s ", o.key, o.label)
		line = fit(line, 36)
		if i == p.cursor {
			line = s.ButtonActive.UnsetPadding().Render(line)
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("\n" + s.Dim.Render("letter or j/k and enter, esc closes"))
	return s.Dialog.Render(b.String())
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// actionKind tells a power action from a reboot to clean state.
type actionKind int

const (
	actPower actionKind = iota
	actReboot
)

// actionRow is one node's line in the action view.
type actionRow struct {
	node   string
	bmc    string
	power  string
	state  string // progress text while running
	result string // outcome: "ok …" or the error
	failed bool
	done   bool
	took   time.Duration
	path   string // a reboot's path that ran and why ("by kexec: agent polling")
}

// action is the power action or reboot to clean state under way (or the
// last one finished); one runs at a time.
type action struct {
	id        int
	kind      actionKind
	op        string // power op, or "reboot-clean"
	via       string // the reboot's path asked for (apitype.RebootVias)
	selection string
	rows      []*actionRow
	byNode    map[string]*actionRow
	running   bool
	cancel    context.CancelFunc
	cancelled bool
	progress  chan rebootItem // a reboot's progress lines
	err       string          // the call itself failed
	started   time.Time
	finished  time.Time
	offset    int
}

func newAction(id int, kind actionKind, op, selection string, names []string, bmc func(string) string, now time.Time) *action {
	a := &action{id: id, kind: kind, op: op, selection: selection, byNode: map[string]*actionRow{}, running: true, started: now}
	for _, n := range names {
		r := &actionRow{node: n, state: "waiting", bmc: bmc(n)}
		a.rows = append(a.rows, r)
		a.byNode[n] = r
	}
	return a
}

// row returns the node's row, adding one for a node the daemon named that
// was not asked for (it never should).
func (a *action) row(node string) *actionRow {
	if r := a.byNode[node]; r != nil {
		return r
	}
	r := &actionRow{node: node}
	a.rows = append(a.rows, r)
	a.byNode[node] = r
	return r
}

// title names the action: "power cycle", "reboot to clean state".
func (a *action) title() string {
	if a.kind == actReboot {
		return "reboot to clean state"
	}
	return "power " + a.op
}

// counts returns how many nodes are done, ok and failed.
func (a *action) counts() (done, ok, failed int) {
	for _, r := range a.rows {
		if !r.done {
			continue
		}
		done++
		if r.failed {
			failed++
		} else {
			ok++
		}
	}
	return
}

// summary is the one-line outcome: "cycle: 5 ok, 1 failed — n07: BMC
// 10.2.0.17:623: no answer within 5s".
func (a *action) summary() string {
	done, ok, failed := a.counts()
	name := a.op
	if a.kind == actReboot {
		name = "reboot-clean"
	}
	if a.running {
		s := fmt.Sprintf("%s: %d/%d done", name, done, len(a.rows))
		if a.cancelled {
			return s + ", cancelling…"
		}
		return s + " · :action shows it · ctrl+x cancels"
	}
	s := fmt.Sprintf("%s: %d ok, %d failed", name, ok, failed)
	if notDone := len(a.rows) - done; notDone > 0 {
		s += fmt.Sprintf(", %d not done", notDone)
	}
	if a.cancelled {
		s += " (cancelled)"
	}
	if a.err != "" {
		return s + " — " + a.err
	}
	for _, r := range a.rows {
		if r.failed {
			s += " — " + r.node + ": " + r.result
			if failed > 1 {
				s += " (:action lists all)"
			}
			break
		}
	}
	return s
}

// failedAny reports whether the finished action went wrong anywhere.
func (a *action) failedAny() bool {
	_, ok, failed := a.counts()
	return failed > 0 || a.err != "" || a.cancelled || ok < len(a.rows)
}

// nodeError drops the "node NAME: " prefix the daemon puts on errors that
// the row already names.
func nodeError(node, err string) string {
	err = strings.TrimPrefix(err, "node "+node+": ")
	return strings.TrimPrefix(err, node+": ")
}

// setPower records one power result.
func (a *action) setPower(r apitype.PowerResult) {
	row := a.row(r.Node)
	row.done, row.power, row.took = true, r.Power, r.Duration
	if r.BMC != "" {
		row.bmc = r.BMC
	}
	row.state = ""
	if r.Error != "" {
		row.failed, row.result = true, nodeError(r.Node, r.Error)
		return
	}
	row.result = "ok"
	if r.Detail != "" {
		row.result += ": " + r.Detail
	}
}

// lines renders the action view.
// power is the power column's fallback: the node's state in the list.
func (a *action) lines(c *Common, power func(string) string) []string {
	s := c.Styles
	var out []string
	head := fmt.Sprintf("%s: %s (%s)", a.title(), a.selection, plural(len(a.rows), "node"))
	if a.via != "" {
		head += " · path " + a.via
	}
	out = append(out, s.Title.Render(head))
	if a.running {
		out = append(out, s.Warn.Render("  "+a.summary()))
	} else if a.failedAny() {
		out = append(out, s.Error.Render("  "+a.summary()))
	} else {
		out = append(out, s.OK.Render("  "+a.summary()))
	}
	if a.running {
		out = append(out, s.Dim.Render(fmt.Sprintf("  running for %s", c.Now().Sub(a.started).Round(time.Second))))
	} else {
		out = append(out, s.Dim.Render(fmt.Sprintf("  finished %s, took %s", a.finished.Format("15:04:05"), a.finished.Sub(a.started).Round(100*time.Millisecond))))
	}
	out = append(out, s.Header.Render(fit(fmt.Sprintf("  %-10s %-22s %-5s %s", "NODE", "BMC", "POWER", "RESULT"), c.Width)))
	for _, r := range a.rows {
		var res string
		p := r.power
		if p == "" {
			p = power(r.node)
		}
		prefix := fmt.Sprintf("  %-10s %-22s %-5s ", r.node, dash(r.bmc), dash(p))
		switch {
		case r.failed:
			// a failure is wrapped, never cut: it is what the admin acts on
			text := "FAILED: " + r.result
			if r.path != "" {
				text += " · " + r.path
			}
			out = append(out, wrapRow(prefix, text, s.Error, c.Width)...)
			continue
		case r.done && r.path != "":
			// the path a reboot took is wrapped, never cut, as a failure is
			text := r.result
			if r.took > 0 {
				text += " (" + r.took.Round(time.Millisecond).String() + ")"
			}
			out = append(out, wrapRow(prefix, text+" · "+r.path, s.OK, c.Width)...)
			continue
		case r.done:
			res = s.OK.Render(r.result)
			if r.took > 0 {
				res += s.Dim.Render(" (" + r.took.Round(time.Millisecond).String() + ")")
			}
		case a.running:
			res = s.Warn.Render(r.state)
		default:
			res = s.Dim.Render("not done")
		}
		out = append(out, prefix+res)
	}
	return out
}

// wrapRow renders prefix and text in lines of at most width cells: text is
// word-wrapped in the room the prefix leaves (at least 20 cells), each
// further line indented under the first, all of it in style.
func wrapRow(prefix, text string, style lipgloss.Style, width int) []string {
	var out []string
	indent := lipgloss.Width(prefix)
	if width-indent < 20 { // no room beside the prefix: the text goes under it
		out = append(out, prefix)
		prefix, indent = "    ", 4
	}
	for i, part := range wrapWords(text, max(1, width-indent)) {
		if i > 0 {
			prefix = strings.Repeat(" ", indent)
		}
		out = append(out, prefix+style.Render(part))
	}
	return out
}

// wrapWords breaks text into lines of at most w cells at spaces, breaking
// words longer than a line.
func wrapWords(text string, w int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		for lipgloss.Width(word) > w {
			r := []rune(word)
			if line != "" {
				lines, line = append(lines, line), ""
			}
			lines = append(lines, string(r[:w]))
			word = string(r[w:])
		}
		switch {
		case line == "":
			line = word
		case lipgloss.Width(line)+1+lipgloss.Width(word) <= w:
			line += " " + word
		default:
			lines, line = append(lines, line), word
		}
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// Messages of actions.
type (
	powerDoneMsg struct {
		id      int
		results []apitype.PowerResult
		err     error
	}
)

// targets returns the nodes an action applies to: the marked nodes, else
// the cursor's (in the detail view, the node shown).
func (m *Model) targets() []string {
	if m.view == viewDetail {
		if m.detail.name == "" {
			return nil
		}
		return []string{m.detail.name}
	}
	if names := m.nodes.marked(); len(names) > 0 {
		return names
	}
	if n := m.nodes.current(); n != nil {
		return []string{n.Name}
	}
	return nil
}

// selectionFor writes names as a host list, checking it names exactly them.
func selectionFor(names []string) (string, error) {
	sel := hostlist.Compress(names)
	got, err := hostlist.Expand(sel)
	if err != nil {
		return "", fmt.Errorf("selection %q: %w", sel, err)
	}
	a, b := slices.Clone(got), slices.Clone(names)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(slices.Compact(a), slices.Compact(b)) {
		return "", fmt.Errorf("selection %q does not name exactly the chosen nodes", sel)
	}
	return sel, nil
}

// busy refuses a second action while one runs.
func (m *Model) busy() bool {
	if m.act != nil && m.act.running {
		m.setFlash("a "+m.act.title()+" is running on "+m.act.selection+": wait for it, or ctrl+x cancels it", true)
		return true
	}
	return false
}

// openPowerMenu is `p`.
func (m *Model) openPowerMenu() tea.Cmd {
	if m.busy() {
		return nil
	}
	names := m.targets()
	if len(names) == 0 {
		m.setFlash("no node to act on", true)
		return nil
	}
	m.menu = &powerMenu{c: m.c, names: names, cursor: len(powerOps) - 1}
	return nil
}

// choosePower runs status at once and asks before anything else.
func (m *Model) choosePower(op *powerOp, names []string) tea.Cmd {
	sel, err := selectionFor(names)
	if err != nil {
		m.setFlash(err.Error(), true)
		return nil
	}
	if op.op == "status" {
		return m.startPower(op.op, sel, names)
	}
	title := fmt.Sprintf("Power %s %s?", op.op, plural(len(names), "node"))
	body := sel + "\n\n" + op.warn
	m.dialog = NewConfirm(m.c, title, body, len(names))
	m.onYes = func() tea.Cmd { return m.startPower(op.op, sel, names) }
	m.onNo = func() tea.Cmd {
		m.setFlash("power "+op.op+" cancelled; nothing changed", false)
		return nil
	}
	return nil
}

// startPower runs Backend.Power as a command and shows the action view.
func (m *Model) startPower(op, sel string, names []string) tea.Cmd {
	m.actSeq++
	a := newAction(m.actSeq, actPower, op, sel, names, m.nodeBMC, m.c.Now())
	for _, r := range a.rows {
		r.state = "asking the BMC…"
	}
	ctx, cancel := context.WithTimeout(m.ctx, powerTimeout)
	a.cancel = cancel
	m.act = a
	m.push(viewAction)
	be, id := m.be, a.id
	return tea.Batch(func() tea.Msg {
		defer cancel()
		res, err := be.Power(ctx, op, sel)
		return powerDoneMsg{id: id, results: res, err: err}
	}, m.startClock())
}

// actionFinished closes the running action and refreshes the node list.
func (m *Model) actionFinished(err error) tea.Cmd {
	a := m.act
	a.running = false
	a.finished = m.c.Now()
	if a.cancel != nil {
		a.cancel()
	}
	if err != nil {
		switch {
		case a.cancelled:
		case isAPIError(err):
			a.err = err.Error()
		default:
			a.err = err.Error()
			m.setFlash(a.summary(), true)
			return tea.Batch(m.disconnected(err), m.fetchNodes())
		}
	}
	m.setFlash(a.summary(), a.failedAny())
	cmds := []tea.Cmd{m.fetchNodes()}
	if m.detail.name != "" && slices.Contains(append(m.stack, m.view), viewDetail) {
		cmds = append(cmds, m.fetchDetailNode(m.detail.name))
	}
	return tea.Batch(cmds...)
}

// cancelAction is ctrl+x.
func (m *Model) cancelAction() {
	if m.act == nil || !m.act.running {
		m.setFlash("nothing to cancel", false)
		return
	}
	m.act.cancelled = true
	m.act.cancel()
	m.setFlash(m.act.title()+" of "+m.act.selection+": cancelling; nodes already done stay done", true)
}

// nodeBMC is a node's BMC address as the node list has it.
func (m *Model) nodeBMC(name string) string {
	if n := m.nodes.byName(name); n != nil {
		return n.BMC
	}
	return ""
}

// nodePower is a node's power state as the node list has it.
func (m *Model) nodePower(name string) string {
	if n := m.nodes.byName(name); n != nil {
		return n.State.Power
	}
	return ""
}

// actionKey handles keys in the action view.
func (m *Model) actionKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	if key.Matches(msg, k.Back) {
		m.back()
		if m.act != nil && m.act.running {
			m.setFlash(m.act.title()+" keeps running: :action shows it, ctrl+x cancels it", false)
		}
		return nil
	}
	if m.act != nil {
		m.act.offset = scrollKey(msg, k, m.act.offset, len(m.act.lines(m.c, m.nodePower)), m.c.Height-3)
	}
	return nil
}
