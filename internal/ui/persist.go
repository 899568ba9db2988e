package ui

import (
	"context"
	"fmt"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// persistView (:persist) shows what a node keeps across reboots: its
// group's persisted paths and what each holds in the node's directory on
// the head (Backend.Persist), or, for a node that keeps them on its own
// disk (persist_disk), the partition, what the node reports and the newest
// wipe. `W` wipes them after a confirmation that defaults to No
// (Backend.WipePersist: admin role, audited by the daemon; on a disk the
// node applies the wipe at its next boot).
// The node is the detail's, else the one under the cursor.
type persistView struct {
	node    string
	v       apitype.PersistView
	err     error
	loading bool
}

type (
	// persistMsg answers a read of a node's persisted paths.
	persistMsg struct {
		node string
		v    apitype.PersistView
		err  error
	}
	// persistWipeMsg answers a wipe.
	persistWipeMsg struct {
		node string
		v    apitype.PersistView
		err  error
	}
)

func (p *persistView) lines(c *Common) []string {
	s := c.Styles
	out := []string{s.Header.Render(fit("PERSISTED PATHS  "+p.node, c.Width))}
	switch {
	case p.loading && p.v.Node == "":
		return append(out, s.Dim.Render("loading…"))
	case p.err != nil:
		return append(out, s.Error.Render(p.err.Error()))
	case p.v.Note != "":
		return append(out, s.Dim.Render(p.node+" persists nothing: "+p.v.Note))
	}
	if d := p.v.Disk; d != nil {
		out = append(out, diskLines(d)...)
	} else {
		out = append(out, "mounted from "+p.v.Export)
	}
	out = append(out, "", s.Dim.Render(fmt.Sprintf("  %-40s  %8s  %10s", "PATH", "FILES", "SIZE")))
	for _, pp := range p.v.Paths {
		if pp.OnNode {
			out = append(out, fmt.Sprintf("  %-40s  %8s  %10s", pp.Path, "-", "on the node"))
			continue
		}
		if pp.Missing {
			out = append(out, fmt.Sprintf("  %-40s  %8s  %10s", pp.Path, "-", "not made yet"))
			continue
		}
		out = append(out, fmt.Sprintf("  %-40s  %8d  %10s", pp.Path, pp.Files, humanSize(pp.Bytes)))
	}
	return out
}

// diskLines describes a node's persist disk: the partition, what the node
// said in its newest check-in, the newest wipe.
func diskLines(d *apitype.PersistDisk) []string {
	how := "missing: " + d.Missing
	if d.Format {
		how += ", may format an empty disk"
	}
	out := []string{"on the node's own disk: the partition labelled " + d.Label + " (" + how + ")"}
	if d.Reported != "" {
		out = append(out, "node says: "+d.Reported+" ("+d.ReportedAt.Local().Format("15:04:05")+")")
	} else {
		out = append(out, "node says: nothing since the daemon started")
	}
	switch {
	case d.Wipe == "":
	case d.WipePending:
		out = append(out, "wipe "+d.Wipe+" by "+d.WipeBy+": pending, applied at the node's next boot")
	default:
		out = append(out, "wipe "+d.Wipe+" by "+d.WipeBy+": applied")
	}
	return out
}

// openPersist shows the persisted paths of the detail's node, else of the
// one under the cursor.
func (m *Model) openPersist() tea.Cmd {
	name := ""
	if m.view == viewDetail {
		name = m.detail.name
	} else if n := m.nodes.current(); n != nil {
		name = n.Name
	}
	if name == "" {
		m.setFlash("no node: open :persist on a node (its detail or the cursor's)", true)
		return nil
	}
	m.persist = persistView{node: name, loading: true}
	m.push(viewPersist)
	return m.fetchPersist()
}

func (m *Model) fetchPersist() tea.Cmd {
	be, name := m.be, m.persist.node
	return m.ask(func(ctx context.Context) tea.Msg {
		v, err := be.Persist(ctx, name)
		return persistMsg{name, v, err}
	})
}

func (m *Model) persistKey(msg tea.KeyPressMsg) tea.Cmd {
	switch k := m.c.Keys; {
	case key.Matches(msg, k.Back):
		m.back()
	case key.Matches(msg, k.PersistWipe):
		return m.askWipePersist()
	}
	return nil
}

// askWipePersist confirms the wipe of the view's node (default No).
func (m *Model) askWipePersist() tea.Cmd {
	p := &m.persist
	if p.v.Node == "" || p.v.Note != "" || len(p.v.Paths) == 0 {
		m.setFlash(p.node+" has no persisted paths to wipe", true)
		return nil
	}
	name := p.node
	var body string
	if d := p.v.Disk; d != nil {
		body = "At its next boot (reboot-clean it to apply now), " + name + " removes for good\nevery file under these paths on its disk (" + d.Label + "):\n"
		for _, pp := range p.v.Paths {
			body += "\n  " + pp.Path
		}
		body += "\n\nUntil then the files stay."
	} else {
		body = "Every file under these paths in " + name + "'s directory on the head\n(" + p.v.Export + ") is removed for good:\n"
		for _, pp := range p.v.Paths {
			body += fmt.Sprintf("\n  %s  (%s, %s)", pp.Path, plural(pp.Files, "file"), humanSize(pp.Bytes))
		}
		body += "\n\nThe directories stay; a running node sees its files go."
	}
	m.dialog = NewConfirm(m.c, "Wipe the persisted paths of "+name+"?", body, 0)
	m.onYes = func() tea.Cmd {
		be := m.be
		return m.ask(func(ctx context.Context) tea.Msg {
			v, err := be.WipePersist(ctx, name)
			return persistWipeMsg{name, v, err}
		})
	}
	m.onNo = func() tea.Cmd {
		m.setFlash("wipe cancelled; nothing changed", false)
		return nil
	}
	return nil
}

// persistUpdate takes the answers of a read or a wipe.
func (m *Model) persistUpdate(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case persistMsg:
		if msg.err != nil && !isAPIError(msg.err) {
			return m.disconnected(msg.err)
		}
		if msg.node == m.persist.node {
			m.persist.v, m.persist.err, m.persist.loading = msg.v, msg.err, false
		}
	case persistWipeMsg:
		if msg.err != nil {
			m.setFlash("wipe "+msg.node+": "+msg.err.Error(), true)
			return nil
		}
		if d := msg.v.Disk; d != nil {
			m.setFlash("wipe "+d.Wipe+" of "+msg.node+"'s disk recorded: applied at its next boot", false)
		} else {
			m.setFlash(fmt.Sprintf("wiped the persisted paths of %s: %d entries removed", msg.node, msg.v.Removed), false)
		}
		if msg.node == m.persist.node {
			m.persist.v, m.persist.err = msg.v, nil
		}
	}
	return nil
}
