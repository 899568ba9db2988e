package ui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/hostlist"
)

// stageStep is where the Stage flow is.
type stageStep int

const (
	stagePick    stageStep = iota // choose a generation
	stagePreview                  // who changes; the wave size is typed here
	stageRollout                  // the live rollout
)

// stageFlow is the Stage view: `s` on the marked nodes (else the cursor
// node) picks a generation of their image, previews the change, asks the
// wave size and, confirmed, stages and runs the rollout, then follows it.
type stageFlow struct {
	step      stageStep
	names     []string
	selection string
	image     string
	gens      []*apitype.Manifest // newest first
	current   string              // the image's current generation
	cursor    int
	gen       string // the chosen generation id
	preview   *apitype.Rollout
	diffs     []stageDiff // what the chosen generation changes, per generation the nodes have now
	diffsErr  string
	wave      string // typed wave size
	waveErr   string
	ro        *apitype.Rollout
	loaded    bool // the image's generations arrived
	fetching  bool // a Stage call (ctrl+r) is under way
	offset    int
}

// Messages of the Stage view.
type (
	stageImagesMsg struct {
		images []apitype.ImageInfo
		err    error
	}
	stagePreviewMsg struct {
		ro  *apitype.Rollout
		err error
	}
	// stageDiffMsg answers the diffs asked for when the preview came.
	stageDiffMsg struct {
		gen   string
		diffs []stageDiff
		err   error
	}
	// stageMsg carries the rollout after a create, an action, a read or
	// a change the rollout's follow stream delivered.
	stageMsg struct {
		ro     *apitype.Rollout
		err    error
		action string // "" a read or a change
	}
)

// rolloutActive says whether a wave may move without an admin.
func rolloutActive(ro *apitype.Rollout) bool {
	return ro != nil && (ro.State == apitype.RolloutRunning || ro.State == apitype.RolloutStaged)
}

// openStage is `s`.
func (m *Model) openStage() tea.Cmd {
	names := m.targets()
	if len(names) == 0 {
		m.setFlash("no node to stage", true)
		return nil
	}
	images := map[string]bool{}
	for _, n := range names {
		nv := m.nodes.byName(n)
		if nv == nil || nv.Image == "" {
			m.setFlash("stage: node "+n+" has no image in the inventory", true)
			return nil
		}
		images[nv.Image] = true
	}
	if len(images) > 1 {
		var list []string
		for im := range images {
			list = append(list, im)
		}
		slices.Sort(list)
		m.setFlash("stage: the nodes use different images ("+strings.Join(list, ", ")+"): mark nodes of one image", true)
		return nil
	}
	sel, err := selectionFor(names)
	if err != nil {
		m.setFlash(err.Error(), true)
		return nil
	}
	var im string
	for k := range images {
		im = k
	}
	m.stopFollow(followStage)
	m.stage = &stageFlow{step: stagePick, names: names, selection: sel, image: im, wave: "2"}
	m.push(viewStage)
	be := m.be
	return m.ask(func(ctx context.Context) tea.Msg {
		ims, err := be.Images(ctx)
		return stageImagesMsg{ims, err}
	})
}

// stageRequest is what the flow asks the daemon for.
func (f *stageFlow) request() apitype.StageRequest {
	return apitype.StageRequest{Selection: f.selection, Generation: f.image + "@" + f.gen, Wave: f.wave}
}

// stageKey handles keys in the Stage view.
func (m *Model) stageKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	f := m.stage
	if f == nil {
		if key.Matches(msg, k.Back) {
			m.back()
		}
		return nil
	}
	switch f.step {
	case stagePick:
		switch {
		case key.Matches(msg, k.Back):
			m.back()
		case key.Matches(msg, k.Up):
			f.cursor = max(0, f.cursor-1)
		case key.Matches(msg, k.Down):
			f.cursor = min(max(0, len(f.gens)-1), f.cursor+1)
		case key.Matches(msg, k.Enter):
			if f.cursor >= len(f.gens) {
				return nil
			}
			f.gen = f.gens[f.cursor].ID
			return m.stagePreview()
		}
	case stagePreview:
		switch msg.String() {
		case "esc":
			f.step, f.preview = stagePick, nil
		case "backspace":
			if f.wave != "" {
				f.wave = f.wave[:len(f.wave)-1]
			}
		case "enter":
			return m.askStage()
		default:
			if t := msg.Text; len(t) == 1 && (t[0] >= '0' && t[0] <= '9' || t[0] == '%') && len(f.wave) < 4 {
				f.wave += t
			} else {
				f.offset = scrollKey(msg, k, f.offset, len(m.stageLines()), m.c.Height-3)
			}
		}
		f.waveErr = ""
	case stageRollout:
		switch {
		case key.Matches(msg, k.Back):
			m.back()
		case key.Matches(msg, k.StageHalt):
			m.askStageAction("halt", "Halt the rollout?", "The wave in flight finishes its nodes' reboots; no further wave starts.\nu resumes it.")
		case key.Matches(msg, k.StageResume):
			m.askStageAction("resume", "Resume the rollout?", "The next waves reboot their nodes to a clean state.")
		case key.Matches(msg, k.StageAbort):
			m.askStageAction("abort", "Abort the rollout?", "No further wave runs; nodes not rebooted yet go back to their\nprevious generation. Nodes already done keep the new one until\npromote or roll back.")
		case key.Matches(msg, k.StagePromote):
			m.askStageAction("promote", "Promote "+f.roLabel()+"?", "The generation becomes the default in the inventory (comments kept):\n"+m.promoteReach())
		case key.Matches(msg, k.StageRollback):
			m.askStageAction("rollback", "Roll back the rollout?", "Every node of the rollout gets its previous assignment back; their\nnext boot uses it (nothing is rebooted now).")
		case key.Matches(msg, k.Refresh):
			return m.pollStage()
		default:
			f.offset = scrollKey(msg, k, f.offset, len(m.stageLines()), m.c.Height-3)
		}
	}
	return nil
}

func (f *stageFlow) roLabel() string {
	if f.ro == nil {
		return "the rollout"
	}
	return f.ro.Image + "@" + f.ro.Generation
}

// stagePreview asks the daemon what staging would change.
func (m *Model) stagePreview() tea.Cmd {
	be, req := m.be, m.stage.request()
	if _, err := apitype.ParseWaveSize(req.Wave); err != nil {
		req.Wave = ""
	}
	return m.ask(func(ctx context.Context) tea.Msg {
		ro, err := be.StagePreview(ctx, req)
		return stagePreviewMsg{ro, err}
	})
}

// askStage confirms the staging with the typed wave size.
func (m *Model) askStage() tea.Cmd {
	f := m.stage
	if f.preview == nil {
		return nil
	}
	ws, err := apitype.ParseWaveSize(f.wave)
	if err != nil {
		f.waveErr = err.Error()
		return nil
	}
	n := len(f.preview.Nodes)
	if n == 0 {
		m.setFlash("stage: every selected node already has "+f.gen+"; nothing to do", true)
		return nil
	}
	size := ws.Of(n)
	waves := (n + size - 1) / size
	title := fmt.Sprintf("Stage %s@%s on %s?", f.image, f.gen, plural(n, "node"))
	body := fmt.Sprintf("%s\n\n%s\n\n%s of up to %d; each node is rebooted to a clean state and\nmust check in with %s; a failed node halts the rollout and goes\nback to its previous generation.", hostlist.Compress(previewNames(f.preview)), strings.Join(f.diffLines(), "\n"), plural(waves, "wave"), size, f.gen)
	m.dialog = NewConfirm(m.c, title, body, n)
	req := f.request()
	m.onYes = func() tea.Cmd {
		be := m.be
		return m.ask(func(ctx context.Context) tea.Msg {
			ro, err := be.StageCreate(ctx, req)
			if err != nil {
				return stageMsg{err: err, action: "stage"}
			}
			run, err := be.StageAction(ctx, ro.ID, "run")
			if err != nil {
				return stageMsg{ro: ro, err: err, action: "run"}
			}
			return stageMsg{ro: run, action: "run"}
		})
	}
	m.onNo = func() tea.Cmd {
		m.setFlash("staging cancelled; nothing changed", false)
		return nil
	}
	return nil
}

func previewNames(ro *apitype.Rollout) []string {
	out := make([]string, 0, len(ro.Nodes))
	for _, n := range ro.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// askStageAction confirms one action on the rollout.
func (m *Model) askStageAction(action, title, body string) {
	f := m.stage
	if f.ro == nil {
		return
	}
	if why := refusal(f.ro, action); why != "" {
		m.setFlash(why, true)
		return
	}
	id := f.ro.ID
	m.dialog = NewConfirm(m.c, title, "rollout "+id+": "+f.roLabel()+" on "+f.ro.Selection+"\n\n"+body, 0)
	m.onYes = func() tea.Cmd {
		be := m.be
		return m.ask(func(ctx context.Context) tea.Msg {
			ro, err := be.StageAction(ctx, id, action)
			return stageMsg{ro: ro, err: err, action: action}
		})
	}
	m.onNo = func() tea.Cmd {
		m.setFlash(action+" cancelled; nothing changed", false)
		return nil
	}
}

// refusal says why action does nothing on rollout ro: a promoted or
// rolled-back rollout is over and every action on it is refused ("" when
// the daemon decides).
func refusal(ro *apitype.Rollout, action string) string {
	if ro.State != apitype.RolloutPromoted && ro.State != apitype.RolloutRolledBack {
		return ""
	}
	return fmt.Sprintf("%s: nothing to do: rollout %s is %s, which is final (%s); s stages the generation again",
		action, ro.ID, ro.State, dash(ro.Reason))
}

// promoteReach says how many nodes promoting the shown rollout reaches:
// the daemon writes image@generation on the groups of the rollout's nodes,
// so every node of those groups that follows its group's image gets it,
// not only the rollout's.
func (m *Model) promoteReach() string {
	ro := m.stage.ro
	in := map[string]bool{}
	groups := map[string]bool{}
	for _, n := range ro.Nodes {
		in[n.Name] = true
		if n.Group != "" {
			groups[n.Group] = true
		}
	}
	reach, more, running := len(ro.Nodes), 0, 0
	var names []string
	for g := range groups {
		names = append(names, g)
	}
	slices.Sort(names)
	for i := range m.nodes.all {
		n := &m.nodes.all[i]
		if in[n.Name] || !groups[n.Group] || n.Image != ro.Image || n.Pinned {
			continue
		}
		reach++
		more++
		if n.State.Stage == apitype.StageBooted && n.State.Generation != ro.Generation {
			running++
		}
	}
	return fmt.Sprintf("it reaches %s: the rollout's %d and %d more of group %s that did\nnot take part (they boot it at their next boot; %d running turn dirty).",
		plural(reach, "node"), len(ro.Nodes), more, strings.Join(names, ", "), running)
}

// pollStage reads the rollout now (ctrl+r; the view follows the rollout's
// changes without it).
func (m *Model) pollStage() tea.Cmd {
	f := m.stage
	if f == nil || f.ro == nil || f.fetching {
		return nil
	}
	f.fetching = true
	be, id := m.be, f.ro.ID
	return m.ask(func(ctx context.Context) tea.Msg {
		ro, err := be.Stage(ctx, id)
		return stageMsg{ro: ro, err: err}
	})
}

// openLatestStage is `:stage`: the rollout this console follows, else the
// daemon's newest active one.
func (m *Model) openLatestStage() tea.Cmd {
	if m.stage != nil && m.stage.step == stageRollout && m.stage.ro != nil {
		m.push(viewStage)
		if m.stage.ro.State.Final() {
			return m.pollStage()
		}
		return m.followRollout(m.stage.ro)
	}
	m.stage = &stageFlow{step: stageRollout}
	m.push(viewStage)
	return m.followRollout(nil)
}

// stageUpdate handles the Stage view's messages.
func (m *Model) stageUpdate(msg tea.Msg) (tea.Cmd, bool) {
	f := m.stage
	switch msg := msg.(type) {
	case stageImagesMsg:
		if f == nil || f.step != stagePick {
			return nil, true
		}
		if msg.err != nil {
			m.setFlash("stage: "+msg.err.Error(), true)
			if !isAPIError(msg.err) {
				return m.disconnected(msg.err), true
			}
			return nil, true
		}
		for _, im := range msg.images {
			if im.Name != f.image {
				continue
			}
			f.current = im.Current
			f.loaded = true
			f.gens = newestFirst(im.Generations)
		}
		return nil, true
	case stagePreviewMsg:
		if f == nil || f.step == stageRollout {
			return nil, true
		}
		if msg.err != nil {
			m.setFlash("stage preview: "+msg.err.Error(), true)
			if !isAPIError(msg.err) {
				return m.disconnected(msg.err), true
			}
			return nil, true
		}
		f.step, f.preview, f.offset = stagePreview, msg.ro, 0
		f.diffs, f.diffsErr = nil, ""
		return m.stageDiffs(), true
	case stageDiffMsg:
		if f == nil || msg.gen != f.gen {
			return nil, true
		}
		if msg.err != nil {
			f.diffsErr = msg.err.Error()
			if !isAPIError(msg.err) {
				return m.disconnected(msg.err), true
			}
			return nil, true
		}
		f.diffs = msg.diffs
		return nil, true
	case stageMsg:
		if f == nil {
			return nil, true
		}
		if msg.action == "" {
			f.fetching = false
		}
		if msg.err != nil {
			what := "rollout"
			if msg.action != "" {
				what = msg.action
			}
			m.setFlash(what+": "+msg.err.Error(), true)
			var follow tea.Cmd
			if msg.ro != nil && msg.ro.ID != "" { // staged, but run failed
				f.step, f.ro = stageRollout, msg.ro
				follow = m.followRollout(msg.ro)
			}
			if !isAPIError(msg.err) {
				return tea.Batch(follow, m.disconnected(msg.err)), true
			}
			return follow, true
		}
		prev := f.ro
		f.step, f.ro = stageRollout, msg.ro
		switch {
		case msg.action != "":
			m.setFlash(fmt.Sprintf("%s: rollout %s is %s", msg.action, msg.ro.ID, msg.ro.State), false)
		case prev != nil && prev.ID == msg.ro.ID && prev.State != msg.ro.State:
			text := fmt.Sprintf("rollout %s is %s", msg.ro.ID, msg.ro.State)
			if msg.ro.Reason != "" {
				text += ": " + msg.ro.Reason
			}
			m.setFlash(text, msg.ro.State == apitype.RolloutHalted)
		}
		var cmds []tea.Cmd
		if msg.action != "" { // from here on the rollout's changes are streamed
			cmds = append(cmds, m.followRollout(msg.ro))
		}
		if msg.action != "" || !rolloutActive(msg.ro) {
			cmds = append(cmds, m.fetchNodes())
		}
		return tea.Batch(cmds...), true
	}
	return nil, false
}

// stageLines renders the Stage view.
func (m *Model) stageLines() []string {
	f := m.stage
	s := m.c.Styles
	if f == nil {
		return nil
	}
	switch f.step {
	case stagePick:
		out := []string{s.Title.Render(fmt.Sprintf("Stage %s on %s (%s)", f.image, f.selection, plural(len(f.names), "node"))),
			s.Dim.Render("choose a generation: j/k, enter; esc back"), ""}
		if len(f.gens) == 0 {
			if f.loaded {
				return append(out, s.Error.Render("image "+f.image+" has no generations: build or import one first"))
			}
			return append(out, "loading generations…")
		}
		now := m.c.Now()
		for i, g := range f.gens {
			cur := "  "
			if g.ID == f.current {
				cur = "* "
			}
			a, r := genCounts(m.nodes.all, f.image, g.ID)
			line := fmt.Sprintf(" %s%-22s %9s  %-6s  %d assigned, %d running", cur, truncate(g.ID, 22), humanSize(g.Size()), ago(now, g.Created), a, r)
			if i == f.cursor {
				line = s.ButtonActive.UnsetPadding().Render(fit(line, min(m.c.Width, 78)))
			}
			out = append(out, line)
		}
		return out
	case stagePreview:
		p := f.preview
		out := []string{s.Title.Render(fmt.Sprintf("Stage %s@%s on %s", f.image, f.gen, f.selection))}
		out = append(out, fmt.Sprintf("%s change, %d already have it", plural(len(p.Nodes), "node"), len(p.Unchanged)))
		waveLine := s.Prompt.Render("wave size: ") + f.wave + "_" + s.Dim.Render("  (N or N%; enter asks to go ahead, esc back)")
		if f.waveErr != "" {
			waveLine += "  " + s.Error.Render(f.waveErr)
		}
		out = append(out, waveLine)
		for _, l := range f.diffLines() {
			out = append(out, "  "+l)
		}
		out = append(out, s.Header.Render(fit(fmt.Sprintf("  %-10s %-10s %-22s %s", "NODE", "GROUP", "NOW", "NEXT BOOT"), m.c.Width)))
		for _, n := range p.Nodes {
			out = append(out, fmt.Sprintf("  %-10s %-10s %-22s → %s", n.Name, dash(n.Group), truncate(dash(n.Previous), 22), f.gen))
		}
		if len(p.Unchanged) > 0 {
			out = append(out, s.Dim.Render("  unchanged: "+hostlist.Compress(p.Unchanged)))
		}
		return out
	}
	return m.rolloutLines()
}

// rolloutLines renders the live rollout.
func (m *Model) rolloutLines() []string {
	s := m.c.Styles
	ro := m.stage.ro
	if ro == nil {
		return []string{"loading the rollout…"}
	}
	state := string(ro.State)
	switch ro.State {
	case apitype.RolloutRunning, apitype.RolloutStaged:
		state = s.Warn.Render(state)
	case apitype.RolloutHalted, apitype.RolloutAborted, apitype.RolloutRolledBack:
		state = s.Error.Render(state)
	default:
		state = s.OK.Render(state)
	}
	out := []string{s.Title.Render(fmt.Sprintf("rollout %s: %s@%s on %s", ro.ID, ro.Image, ro.Generation, ro.Selection)) + "  " + state}
	c := ro.Counts()
	sum := fmt.Sprintf("  %d done, %d rebooting, %d staged, %d reverted, %d restored · waves of %s",
		c[apitype.NodeDone], c[apitype.NodeRebooting], c[apitype.NodeStaged], c[apitype.NodeReverted], c[apitype.NodeRestored], ro.Wave.String())
	out = append(out, sum)
	if ro.Reason != "" {
		out = append(out, s.Warn.Render("  "+ro.Reason))
	}
	if ro.Promoted != "" {
		out = append(out, s.OK.Render("  promoted: "+ro.Promoted))
	}
	out = append(out, s.Header.Render(fit(fmt.Sprintf("  %-5s %-16s %-8s %s", "WAVE", "NODES", "STATE", "PROGRESS"), m.c.Width)))
	for _, w := range ro.Waves {
		n := max(1, len(w.Nodes))
		barW := 10
		full := min(barW, (w.OK+w.Failed)*barW/n)
		bar := strings.Repeat("█", full) + strings.Repeat("░", barW-full)
		ws := string(w.State)
		switch w.State {
		case apitype.WavePassed:
			ws = s.OK.Render(fmt.Sprintf("%-8s", ws))
		case apitype.WaveFailed:
			ws = s.Error.Render(fmt.Sprintf("%-8s", ws))
		case apitype.WaveRunning:
			ws = s.Warn.Render(fmt.Sprintf("%-8s", ws))
		default:
			ws = s.Dim.Render(fmt.Sprintf("%-8s", ws))
		}
		out = append(out, fmt.Sprintf("  %-5d %-16s %s %s %d ok, %d failed", w.Index+1, truncate(hostlist.Compress(w.Nodes), 16), ws, bar, w.OK, w.Failed))
	}
	out = append(out, s.Header.Render(fit(fmt.Sprintf("  %-10s %-4s %-10s %-12s %s", "NODE", "WAVE", "STATUS", "PREVIOUS", "ERROR"), m.c.Width)))
	for _, n := range ro.Nodes {
		st := fmt.Sprintf("%-10s", n.Status)
		switch n.Status {
		case apitype.NodeDone:
			st = s.OK.Render(st)
		case apitype.NodeReverted:
			st = s.Error.Render(st)
		case apitype.NodeRebooting:
			st = s.Warn.Render(st)
		}
		prefix := fmt.Sprintf("  %-10s %-4d %s %-12s ", n.Name, n.Wave+1, st, truncate(dash(n.Previous), 12))
		if e := nodeError(n.Name, n.Error); e != "" {
			out = append(out, wrapRow(prefix, e, lipgloss.NewStyle(), m.c.Width)...)
		} else {
			out = append(out, prefix)
		}
	}
	return out
}

// stageHints are the Stage view's key hints.
func (m *Model) stageHints() []string {
	f := m.stage
	if f == nil {
		return []string{"esc:back"}
	}
	switch f.step {
	case stagePick:
		return []string{"j/k:move", "enter:preview", "esc:back"}
	case stagePreview:
		return []string{"0-9/%:wave size", "enter:stage", "esc:generations"}
	}
	return []string{"h:halt", "u:resume", "x:abort", "P:promote", "B:roll back", "ctrl+r:refresh", "esc:back"}
}

// stageDiff is what the staged generation changes for the nodes that now
// have From ("IMAGE:GEN").
type stageDiff struct {
	From  string
	Nodes int
	Diff  *apitype.ImageDiff
}

// maxStageDiffs bounds the diffs the preview asks for (one per distinct
// generation the nodes have now).
const maxStageDiffs = 4

// stageDiffs asks the daemon what the chosen generation changes from each
// generation the previewed nodes have now.
func (m *Model) stageDiffs() tea.Cmd {
	f := m.stage
	if f == nil || f.preview == nil {
		return nil
	}
	count := map[string]int{}
	var from []string
	for _, n := range f.preview.Nodes {
		if n.Previous == "" || n.Image == "" {
			continue
		}
		k := n.Image + ":" + n.Previous
		if count[k] == 0 {
			from = append(from, k)
		}
		count[k]++
	}
	if len(from) > maxStageDiffs {
		from = from[:maxStageDiffs]
	}
	be, to, gen := m.be, f.image+":"+f.gen, f.gen
	return m.ask(func(ctx context.Context) tea.Msg {
		out := []stageDiff{}
		for _, a := range from {
			d, err := be.DiffImages(ctx, a, to)
			if err != nil {
				return stageDiffMsg{gen: gen, err: err}
			}
			out = append(out, stageDiff{From: a, Nodes: count[a], Diff: d})
		}
		return stageDiffMsg{gen: gen, diffs: out}
	})
}

// diffLines say what staging changes: per generation the nodes have now,
// the diff's summary and whether the kernel and initramfs change.
func (f *stageFlow) diffLines() []string {
	switch {
	case f.diffsErr != "":
		return []string{"what changes: " + f.diffsErr}
	case f.diffs == nil:
		return []string{"what changes: reading the diff…"}
	case len(f.diffs) == 0:
		return []string{"what changes: the nodes have no generation to compare with"}
	}
	var out []string
	for _, d := range f.diffs {
		from := strings.TrimPrefix(d.From, f.image+":") // another image's generation keeps its name
		out = append(out, fmt.Sprintf("from %s (%s): %s", from, plural(d.Nodes, "node"), diffSummary(d.Diff)))
	}
	return out
}
