package ui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// unknownView (:unknown) lists the PXE clients that asked for a boot with a
// MAC the inventory lacks, in the order they first asked. `a` adopts the
// marked entries (or the one under the cursor) into the target group, which
// `t` changes, after a confirmation that defaults to No.
type unknownView struct {
	list    []apitype.UnknownNode
	err     error
	loading bool
	cursor  int
	marked  map[string]bool
	group   string // the group adopted nodes join
}

type (
	// unknownMsg answers a read of the unknown clients.
	unknownMsg struct {
		list []apitype.UnknownNode
		err  error
	}
	// adoptMsg answers an adoption.
	adoptMsg struct {
		res apitype.AdoptResult
		err error
	}
)

func (v *unknownView) set(msg unknownMsg) {
	v.list, v.err, v.loading = msg.list, msg.err, false
	v.cursor = min(v.cursor, max(0, len(v.list)-1))
	for mac := range v.marked {
		if !slices.ContainsFunc(v.list, func(u apitype.UnknownNode) bool { return u.MAC == mac }) {
			delete(v.marked, mac)
		}
	}
}

// chosen returns the MACs to adopt: the marked ones in the list's order
// (first asked first), else the one under the cursor.
func (v *unknownView) chosen() []string {
	var out []string
	for _, u := range v.list {
		if v.marked[u.MAC] {
			out = append(out, u.MAC)
		}
	}
	if len(out) == 0 && v.cursor < len(v.list) {
		out = append(out, v.list[v.cursor].MAC)
	}
	return out
}

// groups are the groups of the console's nodes, the biggest first.
func groupsBySize(nodes []apitype.NodeView) []string {
	count := map[string]int{}
	for _, n := range nodes {
		if n.Group != "" {
			count[n.Group]++
		}
	}
	var out []string
	for g := range count {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b string) int {
		if count[a] != count[b] {
			return count[b] - count[a]
		}
		return strings.Compare(a, b)
	})
	return out
}

func (v *unknownView) lines(c *Common, now time.Time) []string {
	s := c.Styles
	group := v.group
	if group == "" {
		group = "-"
	}
	out := []string{s.Header.Render(fit(fmt.Sprintf("UNKNOWN PXE CLIENTS  %d  (adopt into group %s)", len(v.list), group), c.Width))}
	switch {
	case v.loading && len(v.list) == 0:
		return append(out, s.Dim.Render("loading…"))
	case v.err != nil:
		return append(out, s.Error.Render(v.err.Error()))
	case len(v.list) == 0:
		return append(out, s.Dim.Render("no PXE client outside the inventory has asked for a boot"))
	}
	out = append(out, s.Dim.Render(fmt.Sprintf("  %-17s  %-12s  %-21s  %-10s  %-10s  %s", "MAC", "ARCH", "ADDRESS", "FIRST", "LAST", "REQUESTS")))
	for i, u := range v.list {
		mark := " "
		if v.marked[u.MAC] {
			mark = "*"
		}
		line := fmt.Sprintf("%s %-17s  %-12s  %-21s  %-10s  %-10s  %d", mark, u.MAC, dash(u.Arch), dash(u.Address),
			ago(now, u.FirstSeen), ago(now, u.LastSeen), u.Requests)
		if i == v.cursor {
			line = s.Cursor.Render(fit(line, c.Width))
		}
		out = append(out, line)
	}
	return out
}

func (m *Model) openUnknown() tea.Cmd {
	m.push(viewUnknown)
	m.unknown.loading = true
	if m.unknown.group == "" {
		if gs := groupsBySize(m.nodes.all); len(gs) > 0 {
			m.unknown.group = gs[0]
		}
	}
	return m.fetchUnknown()
}

func (m *Model) fetchUnknown() tea.Cmd {
	be := m.be
	return m.ask(func(ctx context.Context) tea.Msg {
		list, err := be.Unknown(ctx)
		return unknownMsg{list, err}
	})
}

func (m *Model) unknownKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	v := &m.unknown
	switch {
	case key.Matches(msg, k.Back):
		m.back()
	case key.Matches(msg, k.Up):
		v.cursor = max(0, v.cursor-1)
	case key.Matches(msg, k.Down):
		v.cursor = min(max(0, len(v.list)-1), v.cursor+1)
	case key.Matches(msg, k.Mark):
		if v.cursor < len(v.list) {
			if v.marked == nil {
				v.marked = map[string]bool{}
			}
			mac := v.list[v.cursor].MAC
			v.marked[mac] = !v.marked[mac]
			if !v.marked[mac] {
				delete(v.marked, mac)
			}
			v.cursor = min(max(0, len(v.list)-1), v.cursor+1)
		}
	case key.Matches(msg, k.AdoptGroup):
		gs := groupsBySize(m.nodes.all)
		if len(gs) > 0 {
			i := slices.Index(gs, v.group)
			v.group = gs[(i+1)%len(gs)]
		}
	case key.Matches(msg, k.Adopt):
		return m.askAdopt()
	}
	return nil
}

// askAdopt confirms the adoption of the chosen clients (default No).
func (m *Model) askAdopt() tea.Cmd {
	v := &m.unknown
	macs := v.chosen()
	if len(macs) == 0 {
		m.setFlash("no unknown client to adopt", true)
		return nil
	}
	if v.group == "" {
		m.setFlash("no group to adopt into: the inventory has no group with nodes", true)
		return nil
	}
	group := v.group
	body := fmt.Sprintf("%s\n\nIn the order they first asked, each becomes a node of %s named\nafter its nodes' pattern, and boots its image on its next retry.",
		strings.Join(macs, "\n"), group)
	m.confirmAdopt(fmt.Sprintf("Adopt %s into group %s?", plural(len(macs), "machine"), group), body, apitype.AdoptRequest{MACs: macs, Group: group})
	return nil
}

// confirmAdopt opens the confirmation of an adoption (default No); yes
// sends req.
func (m *Model) confirmAdopt(title, body string, req apitype.AdoptRequest) {
	m.dialog = NewConfirm(m.c, title, body, 0)
	m.onYes = func() tea.Cmd {
		be := m.be
		return m.ask(func(ctx context.Context) tea.Msg {
			res, err := be.Adopt(ctx, req)
			return adoptMsg{res, err}
		})
	}
	m.onNo = func() tea.Cmd {
		m.setFlash("adoption cancelled; nothing changed", false)
		return nil
	}
}

// askAdoptBMC confirms the adoption of the machines behind bmcs (typed as
// `:adopt BMC[:PORT]...`, default No) into the unknown view's group (the
// biggest group when it has none yet): the daemon reads each machine's NIC
// MACs from its BMC with the group's bmc settings.
func (m *Model) askAdoptBMC(bmcs []string) tea.Cmd {
	if len(bmcs) == 0 {
		m.setFlash("usage: :adopt BMC[:PORT]... adopts the machines behind these BMCs (Redfish tells their NIC MACs)", true)
		return nil
	}
	group := m.unknown.group
	if group == "" {
		if gs := groupsBySize(m.nodes.all); len(gs) > 0 {
			group = gs[0]
		}
	}
	if group == "" {
		m.setFlash("no group to adopt into: the inventory has no group with nodes", true)
		return nil
	}
	body := fmt.Sprintf("%s\n\nThe daemon reads each machine's NIC MACs from its BMC (group %s's bmc\nsettings) and adds it as a node of %s with those NICs and that BMC,\nnamed after its nodes' pattern. Nothing is written unless every BMC answers.",
		strings.Join(bmcs, "\n"), group, group)
	m.confirmAdopt(fmt.Sprintf("Adopt the %s behind %s into group %s?", plural(len(bmcs), "machine"), plural(len(bmcs), "BMC"), group),
		body, apitype.AdoptRequest{BMCs: bmcs, Group: group})
	return nil
}

// adopted reports an adoption and refreshes what it changed.
func (m *Model) adopted(msg adoptMsg) tea.Cmd {
	if msg.err != nil {
		m.setFlash("adopt: "+msg.err.Error(), true)
		return m.fetchUnknown()
	}
	var names []string
	for _, a := range msg.res.Nodes {
		if a.BMC != "" {
			names = append(names, "BMC "+a.BMC+" → "+a.Name+" (NICs "+strings.Join(a.NICs, " ")+")")
			continue
		}
		names = append(names, a.MAC+" → "+a.Name)
	}
	m.setFlash("adopted "+strings.Join(names, ", "), false)
	m.unknown.marked = nil
	return tea.Batch(m.fetchUnknown(), m.fetchNodes(), m.fetchStatus())
}
