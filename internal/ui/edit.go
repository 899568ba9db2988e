package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/daemon"
)

// editSession is one `e` edit in progress: the file handed to $EDITOR and
// what the node looked like when it was written.
type editSession struct {
	node     daemon.NodeView
	base     string // inventory revision read before editing
	path     string
	original string // the file as written
	edit     daemon.Edit
}

type (
	editReadyMsg struct {
		s   *editSession
		err error
	}
	editorDoneMsg  struct{ err error }
	editCheckedMsg struct {
		edit     daemon.Edit
		diff     string
		rendered string
		err      error
	}
	editAppliedMsg struct {
		rev string
		err error
	}
)

// overrideMarker starts the boot-override section of an edit file.
const overrideMarker = "--- boot_override."

// editFile renders the file the admin edits.
func editFile(n daemon.NodeView, base string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# netbootui: node %s (inventory revision %s, %s)\n", n.Name, base, dash(n.Defined))
	b.WriteString("# Lines starting with '#' above the marker are comments. Nothing changes\n")
	b.WriteString("# until you have seen the result and confirmed it.\n#\n")
	fmt.Fprintf(&b, "# Kernel arguments in force now (the group's, then the node's own):\n#   %s\n", dash(n.KernelArgs))
	b.WriteString("# kernel_args sets the node's OWN arguments (appended after the group's);\n")
	b.WriteString("# leave it empty to keep them, write '-' to remove them.\n")
	b.WriteString("kernel_args: \n#\n")
	fmt.Fprintf(&b, "# Below the marker: a %s boot override that replaces the template for\n", n.Loader)
	b.WriteString("# this node. Leave it empty to keep the node's boot entry as it is")
	if n.Override {
		b.WriteString(" (the node\n# has an override now; the daemon API does not show its source)")
	}
	b.WriteString(".\n")
	b.WriteString(overrideMarker + n.Loader + "\n")
	return b.String()
}

// parsedEdit is what an edit file asks for.
type parsedEdit struct {
	kernelArgs *string // nil: unchanged; "" with unset: remove
	unsetArgs  bool
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
			switch v {
			case "":
			case "-":
				p.unsetArgs = true
			default:
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

// startEdit reads the node and the revision, writes the edit file, then
// hands the terminal to the editor.
func (m *Model) startEdit(name string) tea.Cmd {
	if m.edit != nil {
		return nil
	}
	if m.opts.NoEdit != "" {
		m.setFlash(m.opts.NoEdit, false)
		return nil
	}
	be, dir := m.be, m.opts.TempDir
	ctx, cancel := m.call()
	return func() tea.Msg {
		defer cancel()
		st, err := be.Status(ctx)
		if err != nil {
			return editReadyMsg{err: err}
		}
		n, err := be.Node(ctx, name)
		if err != nil {
			return editReadyMsg{err: err}
		}
		s := &editSession{node: n, base: st.Inventory.Revision}
		s.original = editFile(n, s.base)
		f, err := os.CreateTemp(dir, "netbootui-"+name+"-*.txt")
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
	}
}

// checkEdit reads the saved file, validates an override through Preview,
// and builds the diff and the rendered result.
func checkEdit(ctx context.Context, be Backend, s *editSession) editCheckedMsg {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return editCheckedMsg{err: err}
	}
	if string(b) == s.original {
		return editCheckedMsg{err: errNoChange}
	}
	p, err := parseEditFile(string(b))
	if err != nil {
		return editCheckedMsg{err: fmt.Errorf("%s: %w", s.path, err)}
	}
	e := daemon.Edit{BaseRevision: s.base, Set: map[string]any{}}
	var diff strings.Builder
	switch {
	case p.unsetArgs:
		e.Unset = append(e.Unset, "kernel_args")
		fmt.Fprintf(&diff, "- kernel_args (node's own) removed\n")
	case p.kernelArgs != nil:
		e.Set["kernel_args"] = *p.kernelArgs
		fmt.Fprintf(&diff, "  kernel_args in force: %s\n+ node's own kernel_args: %s\n", dash(s.node.KernelArgs), *p.kernelArgs)
	}
	var rendered string
	current, err := be.BootEntry(ctx, s.node.Name, p.format)
	if err != nil && !isAPIError(err) {
		return editCheckedMsg{err: err}
	}
	if p.override != "" {
		rendered, err = be.Preview(ctx, daemon.Preview{Node: s.node.Name, Format: p.format, Override: p.override})
		if err != nil {
			return editCheckedMsg{err: fmt.Errorf("boot override refused: %w", err)}
		}
		e.Set["boot_override."+p.format] = p.override
		diff.WriteString(lineDiff(current, rendered))
	} else if len(e.Set) > 0 || len(e.Unset) > 0 {
		rendered = current
	}
	if len(e.Set) == 0 {
		e.Set = nil
	}
	if e.Set == nil && len(e.Unset) == 0 {
		return editCheckedMsg{err: errNoChange}
	}
	if p.override == "" {
		rendered = "(the entry is rendered from the template with the new kernel arguments once applied; now:)\n" + rendered
	}
	return editCheckedMsg{edit: e, diff: diff.String(), rendered: rendered}
}

var errNoChange = errors.New("no change: nothing applied")

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
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			out.WriteString("+ " + y[j] + "\n")
			j++
		default:
			out.WriteString("- " + x[i] + "\n")
			i++
		}
	}
	return out.String()
}

// editUpdate handles the messages of the edit flow.
func (m *Model) editUpdate(msg tea.Msg) (tea.Cmd, bool) {
	switch msg := msg.(type) {
	case editReadyMsg:
		if msg.err != nil {
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
		ctx, cancel := m.call()
		return func() tea.Msg { defer cancel(); return checkEdit(ctx, be, s) }, true
	case editCheckedMsg:
		if m.edit == nil {
			return nil, true
		}
		if msg.err != nil {
			if errors.Is(msg.err, errNoChange) {
				return m.endEdit(msg.err.Error(), false), true
			}
			return m.endEdit("edit refused: "+msg.err.Error()+"; nothing changed", true), true
		}
		m.edit.edit = msg.edit
		body := "Changes:\n" + msg.diff + "\nRendered " + m.edit.node.Loader + " entry:\n" + msg.rendered
		m.dialog = NewConfirm(m.c, "Apply this edit to "+m.edit.node.Name+"?", body, 0)
		m.onYes = func() tea.Cmd {
			s, be := m.edit, m.be
			ctx, cancel := m.call()
			return func() tea.Msg {
				defer cancel()
				rev, err := be.EditNode(ctx, s.node.Name, s.edit)
				return editAppliedMsg{rev, err}
			}
		}
		m.onNo = func() tea.Cmd { return m.endEdit("edit discarded; nothing changed", false) }
		return nil, true
	case editAppliedMsg:
		m.onYes, m.onNo = nil, nil
		if msg.err != nil {
			return m.endEdit("edit failed: "+msg.err.Error()+"; nothing changed", true), true
		}
		name := ""
		if m.edit != nil {
			name = m.edit.node.Name
		}
		cmd := m.endEdit("applied to "+name+": inventory revision "+msg.rev, false)
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
