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
	"github.com/netbootui/netbootui/internal/hostlist"
)

// detailEvents is how many recent events of a node the detail view keeps.
const detailEvents = 50

const (
	// auditFetch is how many of the newest audit entries the detail view
	// reads to find the node's.
	auditFetch = 500
	// detailAudit is how many of them it shows.
	detailAudit = 10
	// detailConsole is how many captured console lines it shows.
	detailConsole = 15
)

// detailView shows one node: facts, the boot timeline, the rendered boot
// entry and its recent events.
type detailView struct {
	c       *Common
	name    string
	node    apitype.NodeView
	entry   string
	events  []apitype.Event
	loaded  bool
	offset  int
	entryOK bool
	audit   []apitype.AuditEntry // the node's, newest first
	auditNA string               // why there are none to show
	console []string             // the tail of its captured serial console
	bmc     *apitype.BMCFacts
	bmcErr  string // why the BMC facts could not be read
	// reboot is what the next boot changes (running -> assigned), when
	// the two differ; rebootErr why that is not known.
	reboot    *apitype.ImageDiff
	rebootErr string
}

type (
	detailNodeMsg struct {
		node apitype.NodeView
		err  error
	}
	// detailBMCMsg answers the BMC read started when the detail opens.
	detailBMCMsg struct {
		name  string
		facts apitype.BMCFacts
		err   error
	}
)

// fetchBMC reads the node's BMC facts (device ID, power) through the
// daemon; it may wait for a slow BMC, so it runs beside the detail's other
// reads.
func (m *Model) fetchBMC(name string) tea.Cmd {
	be := m.be
	return m.ask(func(ctx context.Context) tea.Msg {
		f, err := be.NodeBMC(ctx, name)
		return detailBMCMsg{name, f, err}
	})
}

// setBMC records the answer of fetchBMC.
func (d *detailView) setBMC(msg detailBMCMsg) {
	if msg.name != d.name {
		return
	}
	if msg.err != nil {
		d.bmc, d.bmcErr = nil, msg.err.Error()
		return
	}
	d.bmc, d.bmcErr = &msg.facts, ""
}

// bmcLines are the BMC facts rows of the Node section.
func (d *detailView) bmcLines(kv func(k, v string)) {
	s := d.c.Styles
	switch {
	case d.bmcErr != "":
		kv("bmc facts", s.Error.Render(d.bmcErr))
		return
	case d.bmc == nil:
		kv("bmc facts", s.Dim.Render("reading the BMC…"))
		return
	}
	f := d.bmc
	if f.Device != "" {
		kv("bmc device", f.Device)
	} else {
		kv("bmc device", "-"+errSuffix(s.Error.Render, f.DeviceError))
	}
	read := dash(f.Power) + errSuffix(s.Error.Render, f.PowerError)
	if !f.ReadAt.IsZero() {
		at := "at"
		if f.PowerError != "" {
			at = "tried at"
		}
		read += fmt.Sprintf(" %s %s (%s ago)", at, f.ReadAt.Format("15:04:05"), ago(d.c.Now(), f.ReadAt))
	}
	poll := "the daemon does not poll power"
	if f.PollEvery > 0 {
		poll = "polled every " + f.PollEvery.String()
	}
	kv("bmc power", read+s.Dim.Render(" · "+poll))
}

func (m *Model) openDetail(name string) tea.Cmd {
	m.detail = detailView{c: m.c, name: name}
	m.push(viewDetail)
	return tea.Batch(m.fetchDetail(name), m.fetchBMC(name))
}

// fetchDetail reads what the detail shows besides the BMC facts.
func (m *Model) fetchDetail(name string) tea.Cmd {
	be := m.be
	return m.ask(func(ctx context.Context) tea.Msg {
		n, err := be.Node(ctx, name)
		if err != nil {
			return detailMsg{name: name, err: err}
		}
		entry, eerr := be.BootEntry(ctx, name, "")
		if eerr != nil {
			if !isAPIError(eerr) {
				return detailMsg{name: name, err: eerr}
			}
			entry = "(no boot entry: " + eerr.Error() + ")"
		}
		var evs []apitype.Event
		err = be.Events(ctx, name, detailEvents, false, func(ev apitype.Event) error {
			evs = append(evs, ev)
			return nil
		})
		if err != nil {
			return detailMsg{name: name, err: err}
		}
		msg := detailMsg{name: name, node: n, entry: entry, events: evs}
		if a, b, ok := rebootChange(n); ok {
			d, derr := be.DiffImages(ctx, a, b)
			switch {
			case derr == nil:
				msg.reboot = d
			case isAPIError(derr):
				msg.rebootErr = derr.Error()
			default:
				return detailMsg{name: name, err: derr}
			}
		}
		all, aerr := be.Audit(ctx, auditFetch)
		switch {
		case aerr == nil:
			msg.audit = nodeAudit(all, n, detailAudit)
		case isAPIError(aerr):
			msg.auditNA = "audit log: " + aerr.Error()
		default:
			return detailMsg{name: name, err: aerr}
		}
		if l, lerr := be.SOLLog(ctx, name, detailConsole); lerr == nil {
			msg.console = l.Lines
		} else if !isAPIError(lerr) {
			return detailMsg{name: name, err: lerr}
		}
		return msg
	})
}

func (m *Model) fetchDetailNode(name string) tea.Cmd {
	be := m.be
	return m.ask(func(ctx context.Context) tea.Msg {
		n, err := be.Node(ctx, name)
		return detailNodeMsg{n, err}
	})
}

func (d *detailView) set(msg detailMsg) {
	if msg.name != d.name {
		return
	}
	d.node, d.entry, d.loaded = msg.node, msg.entry, true
	d.audit, d.auditNA = msg.audit, msg.auditNA
	d.console = msg.console
	d.reboot, d.rebootErr = msg.reboot, msg.rebootErr
	// keep live events that arrived while loading, without duplicates
	var last uint64
	if len(msg.events) > 0 {
		last = msg.events[len(msg.events)-1].Seq
	}
	evs := msg.events
	for _, ev := range d.events {
		if ev.Seq > last {
			evs = append(evs, ev)
		}
	}
	d.events = trimEvents(evs, detailEvents)
}

func trimEvents(evs []apitype.Event, n int) []apitype.Event {
	if len(evs) > n {
		evs = append([]apitype.Event(nil), evs[len(evs)-n:]...)
	}
	return evs
}

func (d *detailView) addEvents(evs []apitype.Event) {
	if d.name == "" {
		return
	}
	var last uint64
	if len(d.events) > 0 {
		last = d.events[len(d.events)-1].Seq
	}
	for _, ev := range evs {
		if ev.Node == d.name && ev.Seq > last {
			d.events = append(d.events, ev)
		}
	}
	d.events = trimEvents(d.events, detailEvents)
}

func (d *detailView) lines() []string {
	s := d.c.Styles
	if !d.loaded {
		return []string{s.Dim.Render("loading " + d.name + "…")}
	}
	n := d.node
	st := n.State
	var out []string
	kv := func(k, v string) { out = append(out, fmt.Sprintf("  %-14s %s", k, v)) }
	section := func(t string) { out = append(out, "", s.Title.Render(t)) }
	section("Node")
	kv("group", dash(n.Group))
	kv("mac / ip", dash(n.MAC)+"  "+dash(n.IP))
	kv("arch / loader", n.Arch+" / "+n.Loader)
	kv("image", dash(n.Image))
	assigned := dash(n.Assigned)
	if n.Pinned {
		assigned += " (pinned)"
	}
	if n.AssignError != "" {
		assigned += "  " + s.Error.Render(n.AssignError)
	}
	kv("assigned", assigned)
	running := dash(st.Generation)
	if drift(&n) {
		running = s.Drift.Render("!" + st.Generation + " (differs from assigned)")
	}
	kv("running", running)
	kv("on reboot", d.rebootLine())
	kv("power", dash(st.Power)+errSuffix(s.Error.Render, st.PowerError))
	kv("stage", stageCell(&n, 40)+errSuffix(s.Error.Render, st.Error))
	if n.Dirty {
		kv("dirty", s.Warn.Render(strings.Join(n.DirtyReasons, "; ")))
	} else {
		kv("dirty", "no")
	}
	kv("last check-in", ago(d.c.Now(), st.LastCheckin))
	kv("bmc", dash(n.BMC))
	d.bmcLines(kv)
	kv("kernel args", dash(n.KernelArgs))
	if n.Override {
		kv("boot entry", "from the node's boot override")
	}
	kv("defined at", dash(n.Defined))
	section("Boot timeline")
	if len(st.Timeline) == 0 {
		out = append(out, s.Dim.Render("  no boot seen"))
	}
	for i, mk := range st.Timeline {
		since := ""
		if i > 0 {
			since = "+" + mk.Time.Sub(st.Timeline[0].Time).Round(time.Millisecond).String()
		}
		line := fmt.Sprintf("  %-12s %s  %s", mk.Stage, mk.Time.Format("15:04:05.000"), since)
		if mk.Unproven {
			// Asked for by a request that only claimed the node (its
			// MAC): seen, not a stage the node is known to have reached.
			line = s.Dim.Render(strings.TrimRight(line, " ") + "  (unproven request)")
		}
		out = append(out, line)
	}
	section("Boot entry (" + n.Loader + ")")
	for _, l := range strings.Split(strings.TrimRight(d.entry, "\n"), "\n") {
		out = append(out, "  "+l)
	}
	section("Audit")
	if len(d.audit) == 0 {
		why := "no audited action on this node in the newest " + fmt.Sprint(auditFetch) + " entries"
		if d.auditNA != "" {
			why = d.auditNA
		}
		out = append(out, s.Dim.Render("  "+why))
	}
	for _, e := range d.audit {
		line := fmt.Sprintf("  %s %s: %s", e.Time.Format("01-02 15:04:05"), e.Who, e.Action)
		if e.Target != "" && e.Target != n.Name {
			line += " " + e.Target
		}
		res := e.Result
		if detail := nodeDetail(e, n.Name); detail != "" {
			res += " (" + detail + ")"
		}
		out = append(out, line+" → "+res)
	}
	section("Serial console (captured)")
	if len(d.console) == 0 {
		out = append(out, s.Dim.Render("  nothing captured (the daemon captures it during reboot-clean and while c is attached)"))
	}
	for _, l := range d.console {
		out = append(out, "  "+l)
	}
	section("Recent events")
	if len(d.events) == 0 {
		out = append(out, s.Dim.Render("  none"))
	}
	for i := len(d.events) - 1; i >= 0; i-- {
		out = append(out, "  "+formatEvent(d.events[i], false))
	}
	return out[1:]
}

// nodeAudit returns, newest first, the newest limit entries of all (oldest first) that are
// about node: its name or group as the target, a target host list that
// includes it, or a detail line about it.
func nodeAudit(all []apitype.AuditEntry, n apitype.NodeView, limit int) []apitype.AuditEntry {
	var out []apitype.AuditEntry
	for i := len(all) - 1; i >= 0 && len(out) < limit; i-- {
		if auditMentions(all[i], n) {
			out = append(out, all[i])
		}
	}
	return out
}

func auditMentions(e apitype.AuditEntry, n apitype.NodeView) bool {
	if nodeDetail(e, n.Name) != "" {
		return true
	}
	if strings.HasSuffix(e.Action, " "+n.Name) { // "edit node n01"
		return true
	}
	for _, t := range strings.Split(e.Target, ",") {
		t = strings.TrimSpace(t)
		if t == n.Name || (n.Group != "" && t == "@"+n.Group) {
			return true
		}
	}
	if hostlist.IsRange(e.Target) {
		if c, err := hostlist.Count(e.Target); err == nil && c <= 100000 {
			names, _ := hostlist.Expand(e.Target)
			return slices.Contains(names, n.Name)
		}
	}
	return false
}

// nodeDetail returns what an entry's details say about node.
func nodeDetail(e apitype.AuditEntry, node string) string {
	for _, d := range e.Details {
		if rest, ok := strings.CutPrefix(d, node+": "); ok {
			return nodeError(node, rest)
		}
	}
	return ""
}

func errSuffix(render func(...string) string, e string) string {
	if e == "" {
		return ""
	}
	return "  " + render(e)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (d *detailView) scroll(msg tea.KeyPressMsg, k KeyMap) {
	d.offset = scrollKey(msg, k, d.offset, len(d.lines()), d.c.Height-3)
}

// scrollKey moves a scroll offset by the movement keys.
func scrollKey(msg tea.KeyPressMsg, k KeyMap, off, total, page int) int {
	switch {
	case key.Matches(msg, k.Up):
		off--
	case key.Matches(msg, k.Down):
		off++
	case key.Matches(msg, k.PageUp):
		off -= page
	case key.Matches(msg, k.PageDown):
		off += page
	case key.Matches(msg, k.Top):
		off = 0
	case key.Matches(msg, k.Bottom):
		off = total
	}
	return min(max(0, off), max(0, total-page))
}

// formatEvent renders an event on one line.
func formatEvent(ev apitype.Event, withNode bool) string {
	var b strings.Builder
	b.WriteString(ev.Time.Format("15:04:05.000"))
	b.WriteByte(' ')
	if ev.Kind == kindAudit {
		if withNode {
			fmt.Fprintf(&b, "%-10s ", "-")
		}
		fmt.Fprintf(&b, "%-8s %s", ev.Kind, ev.Message)
		return b.String()
	}
	if withNode {
		node := ev.Node
		if node == "" {
			node = "-" // about no node (image, inventory)
			if ev.MAC != "" || ev.Remote != "" {
				node = "(unknown)" // from a client the inventory does not know
			}
		}
		fmt.Fprintf(&b, "%-10s ", node)
	}
	fmt.Fprintf(&b, "%-8s", ev.Kind)
	add := func(s string) {
		if s != "" {
			b.WriteByte(' ')
			b.WriteString(s)
		}
	}
	add(string(ev.Stage))
	add(ev.Proto)
	add(ev.Path)
	if ev.Total > 0 {
		add(fmt.Sprintf("%d/%d", ev.Bytes, ev.Total))
	}
	add(ev.Generation)
	add(ev.Power)
	add(ev.Message)
	if ev.Node == "" {
		add(ev.MAC)
		add(ev.Remote)
	}
	add(ev.Error)
	return b.String()
}

// rebootChange says which generations a node's next boot would move
// between ("IMAGE:RUNNING", "IMAGE:ASSIGNED"), when it runs one and is
// assigned another.
func rebootChange(n apitype.NodeView) (from, to string, ok bool) {
	run, next := n.State.Generation, n.Assigned
	if n.Image == "" || run == "" || next == "" || run == next {
		return "", "", false
	}
	return n.Image + ":" + run, n.Image + ":" + next, true
}

// rebootLine answers "would a reboot change this node?": no, or yes with
// what (the generations, the diff's summary, whether the kernel changes).
func (d *detailView) rebootLine() string {
	s := d.c.Styles
	n := d.node
	switch {
	case n.Assigned == "":
		return s.Dim.Render("no generation assigned: nothing to boot")
	case n.State.Generation == "":
		return "yes: boots " + n.Image + "@" + n.Assigned + s.Dim.Render(" (the generation it runs is not known)")
	case n.State.Generation == n.Assigned:
		return s.OK.Render("no change") + s.Dim.Render(": it runs "+n.Assigned+", which it is assigned")
	case d.rebootErr != "":
		return s.Warn.Render("yes: "+n.State.Generation+" → "+n.Assigned) + "  " + s.Error.Render(d.rebootErr)
	case d.reboot == nil:
		return s.Warn.Render("yes: "+n.State.Generation+" → "+n.Assigned) + s.Dim.Render("  (reading the diff…)")
	}
	return s.Warn.Render("yes: "+n.State.Generation+" → "+n.Assigned) + "  " + diffSummary(d.reboot)
}

// diffSummary is a diff's one line for the console: its summary (which
// names a changed kernel or initramfs) and which of the two stay the same.
func diffSummary(d *apitype.ImageDiff) string {
	var same []string
	if !d.KernelChanged() {
		same = append(same, "kernel")
	}
	if !d.InitrdChanged() {
		same = append(same, "initramfs")
	}
	if len(same) == 0 || d.Summary == "no change" {
		return d.Summary
	}
	return d.Summary + " (" + strings.Join(same, ", ") + " same)"
}
