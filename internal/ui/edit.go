package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/hostlist"
)

// editSession is one `e` edit in progress: the file handed to $EDITOR and
// what the node looked like when it was written.
type editSession struct {
	node apitype.NodeView
	// group, when set, is the group being edited (E); node is then the
	// member whose entry the result is rendered for.
	group    *apitype.GroupView
	base     string // inventory revision read before editing
	entry    string // the node's (group's) entry revision read before editing
	path     string
	original string // the file as written
	edit     apitype.Edit
	// args is the kernel_args value the file was written with (the node's
	// own, or the group's): the line unchanged changes nothing.
	args string
	// refused is why the daemon refused the last attempt, which reopened
	// the editor with the admin's text ("" before any).
	refused string
	// recheck: the editor was reopened after a conflict; its text is
	// checked (and confirmed) again even if the admin saved it unchanged.
	recheck bool
}

type (
	editReadyMsg struct {
		s   *editSession
		err error
	}
	editorDoneMsg  struct{ err error }
	editCheckedMsg struct {
		edit apitype.Edit
		diff string // the changed keys and the rendered entry's diff
		err  error
	}
	editAppliedMsg struct {
		rev string
		err error
	}
)

// overrideMarker starts the boot-override section of an edit file.
const overrideMarker = "--- boot_override."

const (
	// editFileHelp heads every edit file.
	editFileHelp = "# Lines starting with '#' above the marker are comments. Nothing changes\n" +
		"# until you have seen the result and confirmed it.\n#\n"
)

// kernelArgsLine is the line the admin edits, with its value now.
func kernelArgsLine(v string) string { return "kernel_args: " + v + "\n#\n" }

// inheritedArgs are the kernel arguments node n gets from its group (its
// KernelArgs without its own at the end).
func inheritedArgs(n apitype.NodeView) string {
	return strings.TrimSpace(strings.TrimSuffix(n.KernelArgs, n.OwnKernelArgs))
}

// editFile renders the file the admin edits.
func editFile(n apitype.NodeView, base string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# netbootui: node %s (inventory revision %s, %s)\n", n.Name, base, dash(n.Defined))
	b.WriteString(editFileHelp)
	fmt.Fprintf(&b, "# Inherited from group %s (first on the command line; E edits them):\n#   %s\n", dash(n.Group), dash(inheritedArgs(n)))
	b.WriteString("# kernel_args below are the node's OWN arguments (after the group's): edit\n")
	b.WriteString("# the line; empty it or write '-' to remove them.\n" + kernelArgsLine(n.OwnKernelArgs))
	fmt.Fprintf(&b, "# Below the marker: a %s boot override that replaces the template for\n", n.Loader)
	b.WriteString("# this node. Leave it empty to keep the node's boot entry as it is")
	if n.Override {
		b.WriteString(" (the node\n# has an override now; the daemon API does not show its source)")
	}
	b.WriteString(".\n")
	b.WriteString(overrideMarker + n.Loader + "\n")
	return b.String()
}

// groupEditFile renders the file the admin edits for a group (E). The
// result is shown rendered for node n, a member of the group.
func groupEditFile(g apitype.GroupView, n apitype.NodeView, base string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# netbootui: group %s (inventory revision %s, %s)\n", g.Name, base, dash(g.Defined))
	fmt.Fprintf(&b, "# %s: %s. The result is shown rendered for %s.\n", plural(len(g.Nodes), "node"), compressNames(g.Nodes), n.Name)
	b.WriteString(editFileHelp)
	fmt.Fprintf(&b, "# The group's kernel arguments now (every node gets them, before its own):\n#   %s\n", dash(g.KernelArgs))
	b.WriteString("# kernel_args below are the GROUP's arguments: edit the line; empty it\n")
	b.WriteString("# or write '-' to remove them.\n" + kernelArgsLine(g.KernelArgs))
	fmt.Fprintf(&b, "# Below the marker: a %s boot override for every node of the group that\n", n.Loader)
	b.WriteString("# replaces the template (a node's own override still wins). Leave it empty\n# to keep the group's")
	if cur := groupOverride(g, n.Loader); cur != "" {
		b.WriteString("; its override now is:\n")
		for _, l := range strings.Split(strings.TrimRight(cur, "\n"), "\n") {
			b.WriteString("#   " + l + "\n")
		}
	} else {
		b.WriteString(" (it has none now).\n")
	}
	b.WriteString(overrideMarker + n.Loader + "\n")
	return b.String()
}

func groupOverride(g apitype.GroupView, format string) string {
	if format == "pxelinux" {
		return g.Pxelinux
	}
	return g.IPXE
}

// compressNames writes names as a host list.
func compressNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return hostlist.Compress(names)
}

// parsedEdit is what an edit file asks for.
type parsedEdit struct {
	kernelArgs *string // the kernel_args line's value; nil: no such line
	unsetArgs  bool    // the line says "-": remove
	format     string
	override   string
}

// parseEditFile reads an edited file. Errors name the line.
func parseEditFile(text string) (parsedEdit, error) {
	var p parsedEdit
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], "\r")
		t := strings.TrimSpace(l)
		switch {
		case t == "" || strings.HasPrefix(t, "#"):
			continue
		case strings.HasPrefix(t, overrideMarker):
			f := strings.TrimPrefix(t, overrideMarker)
			if f != "ipxe" && f != "pxelinux" {
				return p, fmt.Errorf("line %d: boot override format %q: want ipxe or pxelinux", i+1, f)
			}
			p.format = f
			p.override = strings.TrimSpace(strings.Join(lines[i+1:], "\n"))
			if p.override != "" {
				p.override += "\n"
			}
			return p, nil
		case strings.HasPrefix(t, "kernel_args:"):
			if p.kernelArgs != nil || p.unsetArgs {
				return p, fmt.Errorf("line %d: kernel_args given twice", i+1)
			}
			v := strings.TrimSpace(strings.TrimPrefix(t, "kernel_args:"))
			for j, r := range v {
				if r < ' ' || r == 0x7f {
					return p, fmt.Errorf("line %d:%d: control character in kernel_args", i+1, len("kernel_args: ")+j+1)
				}
			}
			if v == "-" {
				p.unsetArgs = true
			} else {
				p.kernelArgs = &v
			}
		default:
			return p, fmt.Errorf("line %d: %q: want kernel_args: or the %s line", i+1, truncate(t, 30), overrideMarker+"FORMAT")
		}
	}
	return p, errors.New("the " + overrideMarker + "FORMAT line is missing")
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func (m *Model) editorCommand(path string) *exec.Cmd {
	argv := m.opts.Editor
	if len(argv) == 0 {
		ed := os.Getenv("VISUAL")
		if ed == "" {
			ed = os.Getenv("EDITOR")
		}
		if ed == "" {
			ed = "vi"
		}
		argv = strings.Fields(ed)
	}
	return exec.Command(argv[0], append(argv[1:], path)...)
}

// startEdit reads the node (and, for a group edit, its group) and the
// revision, writes the edit file, then hands the terminal to the editor.
func (m *Model) startEdit(name string, group bool) tea.Cmd {
	if m.edit != nil {
		return nil
	}
	if m.opts.NoEdit != "" {
		m.setFlash(m.opts.NoEdit, false)
		return nil
	}
	be, dir := m.be, m.opts.TempDir
	return m.ask(func(ctx context.Context) tea.Msg {
		st, err := be.Status(ctx)
		if err != nil {
			return editReadyMsg{err: err}
		}
		n, err := be.Node(ctx, name)
		if err != nil {
			return editReadyMsg{err: err}
		}
		s := &editSession{node: n, base: st.Inventory.Revision}
		prefix := "netbootui-" + name
		if group {
			if n.Group == "" {
				return editReadyMsg{err: fmt.Errorf("node %s is in no group (e edits its own entry)", name)}
			}
			g, err := be.Group(ctx, n.Group)
			if err != nil {
				return editReadyMsg{err: err}
			}
			s.group, prefix = &g, "netbootui-group-"+g.Name
			s.original, s.args, s.entry = groupEditFile(g, n, s.base), g.KernelArgs, g.Revision
		} else {
			s.original, s.args, s.entry = editFile(n, s.base), n.OwnKernelArgs, n.Revision
		}
		f, err := os.CreateTemp(dir, prefix+"-*.txt")
		if err != nil {
			return editReadyMsg{err: err}
		}
		s.path = f.Name()
		_, err = f.WriteString(s.original)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(s.path)
			return editReadyMsg{err: err}
		}
		return editReadyMsg{s: s}
	})
}

// target names what the session edits, for messages.
func (s *editSession) target() string {
	if s.group != nil {
		return "group " + s.group.Name
	}
	return s.node.Name
}

// checkEdit reads the saved file, has the daemon validate the edit against
// a copy of the inventory and render the node's entry from it
// (PreviewEdit), and builds the diff: the changed keys, then every line of
// the rendered entry, marked where the edit changes it.
func checkEdit(ctx context.Context, be Backend, s *editSession) editCheckedMsg {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return editCheckedMsg{err: err}
	}
	if string(b) == s.original && !s.recheck {
		return editCheckedMsg{err: errNoChange}
	}
	p, err := parseEditFile(string(b))
	if err != nil {
		return editCheckedMsg{err: editFileError{fmt.Errorf("%s: %w", s.path, err)}}
	}
	// the entry's revision decides a conflict (another node edited
	// meanwhile is none); the file's is the fallback of an older daemon
	e := apitype.Edit{BaseRevision: s.base, BaseEntry: s.entry, Set: map[string]any{}}
	var diff strings.Builder
	whose, now := "node's own", s.node.OwnKernelArgs
	if s.group != nil {
		whose, now = "group "+s.group.Name+"'s", s.group.KernelArgs
	}
	switch {
	case p.unsetArgs || (p.kernelArgs != nil && *p.kernelArgs == "" && s.args != ""):
		e.Unset = append(e.Unset, "kernel_args")
		fmt.Fprintf(&diff, "- %s kernel_args removed (were: %s)\n", whose, dash(now))
	case p.kernelArgs != nil && *p.kernelArgs != s.args:
		e.Set["kernel_args"] = *p.kernelArgs
		fmt.Fprintf(&diff, "- %s kernel_args: %s\n+ %s kernel_args: %s\n", whose, dash(now), whose, *p.kernelArgs)
	}
	if s.group == nil {
		if in := inheritedArgs(s.node); in != "" {
			fmt.Fprintf(&diff, "  inherited from group %s (unchanged): %s\n", s.node.Group, in)
		}
	}
	if p.override != "" {
		e.Set["boot_override."+p.format] = p.override
	}
	if len(e.Set) == 0 {
		e.Set = nil
	}
	if e.Set == nil && len(e.Unset) == 0 {
		return editCheckedMsg{err: errNoChange}
	}
	current, err := be.BootEntry(ctx, s.node.Name, p.format)
	if err != nil && !isAPIError(err) {
		return editCheckedMsg{err: err}
	}
	pv := apitype.EditPreview{Node: s.node.Name, Format: p.format, Edit: e}
	if s.group != nil {
		pv.Group = s.group.Name
	}
	rendered, err := be.PreviewEdit(ctx, pv)
	if err != nil { // the daemon's refusal names the place; a lost daemon says so
		return editCheckedMsg{err: err}
	}
	diff.WriteString("\nRendered " + p.format + " entry of " + s.node.Name + " (- now, + after the edit):\n")
	diff.WriteString(lineDiff(current, rendered))
	return editCheckedMsg{edit: e, diff: diff.String()}
}

var errNoChange = errors.New("no change: nothing applied")

// editFileError is an edit file that does not parse.
type editFileError struct{ err error }

func (e editFileError) Error() string { return e.err.Error() }
func (e editFileError) Unwrap() error { return e.err }

// refusedMark starts the lines reopenEdit puts at the top of the file.
const refusedMark = "# !! "

// reopenEdit hands the admin's text back to the editor, headed by why the
// daemon refused it (a conflict: the inventory revision is read again, so
// saving applies the same text to the new one). Nothing typed is lost.
func (m *Model) reopenEdit(why string, conflict bool) tea.Cmd {
	m.setFlash(why+"; nothing changed — your text is back in the editor", true)
	old, be := *m.edit, m.be
	return m.ask(func(ctx context.Context) tea.Msg {
		s := old
		s.refused, s.edit = strings.TrimPrefix(strings.TrimPrefix(why, "edit refused: "), "edit failed: "), apitype.Edit{}
		s.recheck = conflict
		last := "fix it and save, or close the editor unchanged to drop the edit"
		b, err := os.ReadFile(s.path)
		if err != nil {
			return editReadyMsg{err: err}
		}
		note := "the daemon refused this edit: " + s.refused
		if conflict {
			st, err := be.Status(ctx)
			if err != nil {
				return editReadyMsg{err: err}
			}
			if n, err := be.Node(ctx, s.node.Name); err == nil {
				s.node = n
				if s.group == nil {
					s.entry = n.Revision
				}
			}
			if s.group != nil {
				if g, err := be.Group(ctx, s.group.Name); err == nil {
					s.group, s.entry = &g, g.Revision
				}
			}
			note = fmt.Sprintf("%s changed since you opened it (inventory revision %s, now %s): your text is kept", s.target(), short(s.base), short(st.Inventory.Revision))
			last = "close the editor to see it against the new revision and confirm it again"
			s.base = st.Inventory.Revision
		}
		var kept []string
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if !strings.HasPrefix(l, refusedMark) {
				kept = append(kept, l)
			}
		}
		var head strings.Builder
		for _, l := range strings.Split(wrapLine(note, 72), "\n") {
			head.WriteString(refusedMark + l + "\n")
		}
		head.WriteString(refusedMark + last + "\n")
		s.original = head.String() + strings.Join(kept, "")
		if err := os.WriteFile(s.path, []byte(s.original), 0o600); err != nil {
			return editReadyMsg{err: err}
		}
		return editReadyMsg{s: &s}
	})
}

// wrapLine word-wraps text at w columns.
func wrapLine(text string, w int) string { return strings.Join(wrapWords(text, w), "\n") }

// lineDiff is a minimal line diff of the rendered entries (an LCS table;
// boot entries are short).
func lineDiff(a, b string) string {
	x := strings.Split(strings.TrimRight(a, "\n"), "\n")
	y := strings.Split(strings.TrimRight(b, "\n"), "\n")
	if len(x)*len(y) > 250000 {
		return "(entries too long to diff)\n"
	}
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out.WriteString("  " + x[i] + "\n")
			i++
			j++
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			out.WriteString("- " + x[i] + "\n")
			i++
		default:
			out.WriteString("+ " + y[j] + "\n")
			j++
		}
	}
	return out.String()
}

// editUpdate handles the messages of the edit flow.
func (m *Model) editUpdate(msg tea.Msg) (tea.Cmd, bool) {
	switch msg := msg.(type) {
	case editReadyMsg:
		if msg.err != nil {
			if m.edit != nil { // reopening failed
				return m.endEdit("edit: "+msg.err.Error()+"; nothing changed", true), true
			}
			m.setFlash("edit: "+msg.err.Error(), true)
			return nil, true
		}
		m.edit = msg.s
		return tea.ExecProcess(m.editorCommand(msg.s.path), func(err error) tea.Msg { return editorDoneMsg{err} }), true
	case editorDoneMsg:
		if m.edit == nil {
			return nil, true
		}
		if msg.err != nil {
			return m.endEdit("editor: "+msg.err.Error()+"; nothing changed", true), true
		}
		s, be := m.edit, m.be
		return m.ask(func(ctx context.Context) tea.Msg { return checkEdit(ctx, be, s) }), true
	case editCheckedMsg:
		if m.edit == nil {
			return nil, true
		}
		if msg.err != nil {
			if errors.Is(msg.err, errNoChange) {
				if why := m.edit.refused; why != "" {
					return m.endEdit("edit refused: "+why+"; nothing changed (the editor closed without a change)", true), true
				}
				return m.endEdit(msg.err.Error(), false), true
			}
			if isAPIError(msg.err) || errors.As(msg.err, new(editFileError)) {
				return m.reopenEdit("edit refused: "+msg.err.Error(), false), true
			}
			return m.endEdit("edit refused: "+msg.err.Error()+"; nothing changed", true), true
		}
		m.edit.edit = msg.edit
		body := "Changes:\n" + msg.diff
		title, count := "Apply this edit to "+m.edit.node.Name+"?", 0
		if g := m.edit.group; g != nil {
			title, count = fmt.Sprintf("Apply this edit to group %s (%s, at their next boot)?", g.Name, plural(len(g.Nodes), "node")), len(g.Nodes)
		}
		m.dialog = NewConfirm(m.c, title, body, count)
		m.onYes = func() tea.Cmd {
			s, be := m.edit, m.be
			return m.ask(func(ctx context.Context) tea.Msg {
				var rev string
				var err error
				if s.group != nil {
					rev, err = be.EditGroup(ctx, s.group.Name, s.edit)
				} else {
					rev, err = be.EditNode(ctx, s.node.Name, s.edit)
				}
				return editAppliedMsg{rev, err}
			})
		}
		m.onNo = func() tea.Cmd { return m.endEdit("edit discarded; nothing changed", false) }
		return nil, true
	case editAppliedMsg:
		m.onYes, m.onNo = nil, nil
		if msg.err != nil {
			if m.edit != nil && isAPIError(msg.err) {
				return m.reopenEdit("edit failed: "+msg.err.Error(), errors.Is(msg.err, apiclient.ErrConflict)), true
			}
			return m.endEdit("edit failed: "+msg.err.Error()+"; nothing changed", true), true
		}
		name, what := "", ""
		if m.edit != nil {
			name, what = m.edit.node.Name, m.edit.target()
		}
		cmd := m.endEdit("applied to "+what+": inventory revision "+short(msg.rev), false)
		cmds := []tea.Cmd{cmd, m.fetchNodes(), m.fetchStatus()}
		if m.view == viewDetail && m.detail.name == name {
			cmds = append(cmds, m.openDetailRefresh(name))
		}
		return tea.Batch(cmds...), true
	}
	return nil, false
}

func (m *Model) openDetailRefresh(name string) tea.Cmd {
	return m.openDetail(name)
}

// endEdit shows the outcome and removes the edit file.
func (m *Model) endEdit(text string, isErr bool) tea.Cmd {
	m.setFlash(text, isErr)
	s := m.edit
	m.edit, m.onYes, m.onNo = nil, nil, nil
	if s == nil || s.path == "" {
		return nil
	}
	path := s.path
	return func() tea.Msg { os.Remove(path); return nil }
}
