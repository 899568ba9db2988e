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

const (
	// buildLogKeep is how many build log lines the images view keeps.
	buildLogKeep = 500
	// buildBatch is the most progress lines one message carries.
	buildBatch = 256
	// buildTimeout bounds one build.
	buildTimeout = 30 * time.Minute
)

// imagesView lists images and their generations, as the daemon stores them,
// with the nodes assigned to and running each generation, and the build
// started with `b`.
type imagesView struct {
	c       *Common
	images  []apitype.ImageInfo
	err     error
	loading bool
	offset  int
	cursor  int // index into images
	build   *buildRun
}

// buildRun is the build under way (or the last one finished).
type buildRun struct {
	id      int
	image   string
	running bool
	step    string
	percent float64
	log     []string
	ch      chan buildItem
	cancel  context.CancelFunc
	result  string // the new generation
	// published says whether the generation was published: `b` builds,
	// then publishes only on an explicit yes (the CLI's --publish).
	published publishState
	err       string
	started   time.Time
	finished  time.Time
}

type (
	// buildItem is what the running build hands the waiting command.
	buildItem = streamItem[apitype.BuildProgress, buildDoneMsg]
	// buildMsg carries progress lines of a running build, and its end.
	buildMsg     = streamMsg[apitype.BuildProgress, buildDoneMsg]
	buildDoneMsg struct {
		gen *apitype.Manifest
		err error
	}
	// publishMsg answers the publication of a built generation.
	publishMsg struct {
		image, gen string
		follow     int // nodes following the image when asked
		err        error
	}
	// rollbackMsg answers an image rollback.
	rollbackMsg struct {
		image, current string
		err            error
	}
)

func (v *imagesView) set(msg imagesMsg) {
	v.images, v.err, v.loading = msg.images, msg.err, false
	v.cursor = min(v.cursor, max(0, len(v.images)-1))
}

// current returns the image under the cursor.
func (v *imagesView) current() *apitype.ImageInfo {
	if v.cursor < 0 || v.cursor >= len(v.images) {
		return nil
	}
	return &v.images[v.cursor]
}

// key moves the cursor between images and scrolls.
func (v *imagesView) key(msg tea.KeyPressMsg, k KeyMap, nodes []apitype.NodeView, rows int) {
	switch {
	case key.Matches(msg, k.Up):
		v.cursor = max(0, v.cursor-1)
	case key.Matches(msg, k.Down):
		v.cursor = min(max(0, len(v.images)-1), v.cursor+1)
	case key.Matches(msg, k.Top):
		v.cursor = 0
	case key.Matches(msg, k.Bottom):
		v.cursor = max(0, len(v.images)-1)
	default:
		v.offset = scrollKey(msg, k, v.offset, len(v.lines(nodes)), rows)
		return
	}
	// keep the cursor's image title on screen
	_, at := v.render(nodes)
	if at < v.offset {
		v.offset = at
	} else if at >= v.offset+rows-1 {
		v.offset = at - rows + 2
	}
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (v *imagesView) lines(nodes []apitype.NodeView) []string {
	out, _ := v.render(nodes)
	return out
}

// genCounts counts the nodes of image im assigned and running generation
// gen, from the node list.
func genCounts(nodes []apitype.NodeView, im, gen string) (assigned, running int) {
	for i := range nodes {
		n := &nodes[i]
		if n.Image != im {
			continue
		}
		if n.Assigned == gen {
			assigned++
		}
		if n.State.Generation == gen {
			running++
		}
	}
	return
}

// render returns the list's lines and the line of the cursor's image.
func (v *imagesView) render(nodes []apitype.NodeView) ([]string, int) {
	s := v.c.Styles
	switch {
	case v.loading:
		return []string{"loading…"}, 0
	case v.err != nil:
		return []string{s.Error.Render(v.err.Error())}, 0
	case len(v.images) == 0:
		return []string{"no images (`netbootui image import` or a recipe and `b`)"}, 0
	}
	now := v.c.Now()
	out := []string{s.Header.Render(fit(fmt.Sprintf("    %-22s %9s  %-6s %-12s %8s %7s", "GENERATION", "SIZE", "AGE", "SHA256", "ASSIGNED", "RUNNING"), v.c.Width))}
	at := 0
	for i, im := range v.images {
		assigned := 0
		for j := range nodes {
			if nodes[j].Image == im.Name {
				assigned++
			}
		}
		head := s.Title.Render(im.Name) + "  " + s.Dim.Render(fmt.Sprintf("%s · %d nodes", dash(im.Description), assigned))
		if i == v.cursor {
			at = len(out)
			head = s.Prompt.Render("> ") + head
		} else {
			head = "  " + head
		}
		out = append(out, head)
		if len(im.Generations) == 0 {
			out = append(out, s.Dim.Render("    no generations"))
		}
		for _, g := range newestFirst(im.Generations) {
			cur := "  "
			if g.ID == im.Current {
				cur = "* "
			}
			sha := "-"
			if f, ok := g.File("rootfs.squashfs"); ok && len(f.SHA256) >= 12 {
				sha = f.SHA256[:12]
			}
			a, r := genCounts(nodes, im.Name, g.ID)
			out = append(out, fmt.Sprintf("  %s%-22s %9s  %-6s %-12s %8d %7d", cur, truncate(g.ID, 22), humanSize(g.Size()),
				ago(now, g.Created), sha, a, r))
		}
	}
	return out, at
}

// newestFirst returns gens sorted newest first (the daemon sends them in
// that order; the views do not depend on it).
func newestFirst(gens []*apitype.Manifest) []*apitype.Manifest {
	out := slices.Clone(gens)
	slices.SortStableFunc(out, func(a, b *apitype.Manifest) int { return b.Created.Compare(a.Created) })
	return out
}

// buildLines renders the build panel in at most rows lines: a status line
// with a progress bar, then the newest log lines.
func (b *buildRun) lines(c *Common, rows int) []string {
	s := c.Styles
	var head string
	switch {
	case b.running:
		pct := max(0, min(100, b.percent))
		barW := 20
		full := int(pct / 100 * float64(barW))
		head = s.Warn.Render(fmt.Sprintf("build %s: %s %s %3.0f%%", b.image, dash(b.step),
			strings.Repeat("█", full)+strings.Repeat("░", barW-full), pct)) +
			s.Dim.Render(fmt.Sprintf("  %s · ctrl+x cancels", c.Now().Sub(b.started).Round(time.Second)))
	case b.err != "":
		head = s.Error.Render("build " + b.image + " failed: " + b.err)
	case b.step == apitype.BuildStepUnchanged:
		head = s.OK.Render(b.outcome())
	default:
		head = s.OK.Render(fmt.Sprintf("%s (took %s)", b.outcome(), b.finished.Sub(b.started).Round(100*time.Millisecond)))
	}
	out := []string{s.Header.Render(fit("BUILD LOG", c.Width)), head}
	n := max(0, rows-len(out))
	log := b.log
	if len(log) > n {
		log = log[len(log)-n:]
	}
	for _, l := range log {
		out = append(out, s.Dim.Render("  "+l))
	}
	return out
}

// outcome says how a successful build ended: a new generation, or none
// because the recipe's inputs are those of an existing one.
func (b *buildRun) outcome() string {
	if b.step == apitype.BuildStepUnchanged {
		return fmt.Sprintf("build %s: unchanged, nothing built: generation %s has the same inputs%s", b.image, b.result, b.publishState())
	}
	return fmt.Sprintf("build %s: generation %s built%s", b.image, b.result, b.publishState())
}

// publishState says what became of the built generation.
func (b *buildRun) publishState() string {
	switch b.published {
	case pubCurrent:
		return " (it is current)"
	case pubAsking:
		return ", not published: publish it?"
	case pubYes:
		return ", published"
	case pubNo:
		return ", not published (s stages it on chosen nodes; `netbootui image publish` publishes it)"
	}
	return ""
}

// Where a built generation's publication is.
type publishState int

const (
	pubUnknown publishState = iota
	pubCurrent              // it already is the image's current generation
	pubAsking               // the Confirm is open
	pubYes                  // published after the Confirm
	pubNo                   // left unpublished
)

// addProgress records one progress line.
func (b *buildRun) addProgress(p apitype.BuildProgress) {
	if p.Step != "" {
		b.step = p.Step
	}
	if p.Percent > 0 || p.Step != "" {
		b.percent = p.Percent
	}
	if p.Line != "" {
		b.log = append(b.log, p.Line)
		if len(b.log) > buildLogKeep {
			b.log = append([]string(nil), b.log[len(b.log)-buildLogKeep:]...)
		}
	}
}

// fetchImages asks the daemon for its images.
func (m *Model) fetchImages() tea.Cmd {
	be := m.be
	return m.ask(func(ctx context.Context) tea.Msg {
		im, err := be.Images(ctx)
		return imagesMsg{im, err}
	})
}

// imagesKey handles keys in the images view.
func (m *Model) imagesKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	switch {
	case key.Matches(msg, k.Back):
		m.back()
		return nil
	case key.Matches(msg, k.Build):
		return m.startBuild()
	case key.Matches(msg, k.ImageRollback):
		return m.askImageRollback()
	case key.Matches(msg, k.ImageShell):
		if im := m.images.current(); im != nil {
			return m.imageShell(im.Name)
		}
		return nil
	}
	m.images.key(msg, k, m.nodes.all, m.imageRows())
	return nil
}

// imageRows is how many rows the image list gets (the build panel takes
// the rest).
func (m *Model) imageRows() int {
	rows := max(1, m.c.Height-3)
	if m.images.build != nil {
		return max(3, rows-rows/2)
	}
	return rows
}

// startBuild is `b`: rebuild the image under the cursor, unpublished; the
// end asks whether to publish it (askPublish). One command makes the
// blocking call and writes progress into a channel, another hands it to
// Update in batches, the end last.
func (m *Model) startBuild() tea.Cmd {
	im := m.images.current()
	if im == nil {
		m.setFlash("no image to build", true)
		return nil
	}
	if b := m.images.build; b != nil && b.running {
		m.setFlash("a build of "+b.image+" is running: wait for it, or ctrl+x cancels it", true)
		return nil
	}
	m.buildSeq++
	ctx, cancel := context.WithTimeout(m.ctx, buildTimeout)
	ch := make(chan buildItem, 1024)
	b := &buildRun{id: m.buildSeq, image: im.Name, running: true, step: "starting", ch: ch, cancel: cancel, started: m.c.Now()}
	m.images.build = b
	be, name, root := m.be, im.Name, m.ctx
	run := func() tea.Msg {
		defer close(ch)
		defer cancel()
		gen, err := be.Build(ctx, apitype.BuildRequest{Image: name}, func(p apitype.BuildProgress) {
			select {
			case ch <- buildItem{p: p}:
			case <-ctx.Done():
			}
		})
		select {
		case ch <- buildItem{done: &buildDoneMsg{gen: gen, err: err}}:
		case <-root.Done():
		}
		return nil
	}
	return tea.Batch(run, waitBuild(b.id, ch), m.startClock())
}

// waitBuild returns the next batch of build progress.
func waitBuild(id int, ch chan buildItem) tea.Cmd {
	return waitStream(id, ch, buildBatch, func() *buildDoneMsg {
		return &buildDoneMsg{err: fmt.Errorf("build: the call ended without a result")}
	})
}

// cancelBuild is ctrl+x in the images view while a build runs.
func (m *Model) cancelBuild() bool {
	b := m.images.build
	if m.view != viewImages || b == nil || !b.running {
		return false
	}
	b.cancel()
	m.setFlash("build of "+b.image+": cancelling", true)
	return true
}

// imagesUpdate handles builds' and rollbacks' messages.
func (m *Model) imagesUpdate(msg tea.Msg) (tea.Cmd, bool) {
	switch msg := msg.(type) {
	case buildMsg:
		b := m.images.build
		if b == nil || msg.id != b.id || !b.running {
			return nil, true
		}
		for _, p := range msg.progress {
			b.addProgress(p)
		}
		if msg.done == nil {
			return waitBuild(msg.id, b.ch), true
		}
		b.running, b.finished = false, m.c.Now()
		if msg.done.err != nil {
			b.err = msg.done.err.Error()
			m.setFlash("build "+b.image+" failed: "+b.err, true)
			if !isAPIError(msg.done.err) && m.ctx.Err() == nil && !strings.Contains(b.err, context.Canceled.Error()) {
				return tea.Batch(m.disconnected(msg.done.err), m.fetchImages()), true
			}
			return m.fetchImages(), true
		}
		if msg.done.gen != nil {
			b.result = msg.done.gen.ID
		}
		b.percent = 100
		cmd := m.askPublish(b)
		m.setFlash(b.outcome(), false)
		return tea.Batch(cmd, m.fetchImages(), m.fetchNodes()), true
	case publishMsg:
		b := m.images.build
		if msg.err != nil {
			m.setFlash("publish "+msg.image+"@"+msg.gen+": "+msg.err.Error(), true)
			if b != nil && b.result == msg.gen {
				b.published = pubNo
			}
			if !isAPIError(msg.err) {
				return m.disconnected(msg.err), true
			}
			return nil, true
		}
		if b != nil && b.result == msg.gen {
			b.published = pubYes
		}
		m.setFlash(fmt.Sprintf("build %s: generation %s published: %s follow it from their next boot", msg.image, msg.gen,
			plural(msg.follow, "node")), false)
		return tea.Batch(m.fetchImages(), m.fetchNodes()), true
	case rollbackMsg:
		if msg.err != nil {
			m.setFlash("roll back "+msg.image+": "+msg.err.Error(), true)
			if !isAPIError(msg.err) {
				return m.disconnected(msg.err), true
			}
			return nil, true
		}
		m.setFlash("image "+msg.image+" rolled back: current generation is "+msg.current+" (nodes following it boot it next)", false)
		return tea.Batch(m.fetchImages(), m.fetchNodes()), true
	}
	return nil, false
}

// askPublish asks, after a build, whether to publish its generation
// (default No): publishing points every node that follows the image at an
// untested generation, which staging (`s`) rolls out in waves instead.
func (m *Model) askPublish(b *buildRun) tea.Cmd {
	im := m.imageNamed(b.image)
	if b.result == "" || im == nil {
		return nil
	}
	if im.Current == b.result {
		b.published = pubCurrent
		return nil
	}
	follow, running := 0, 0
	for i := range m.nodes.all {
		n := &m.nodes.all[i]
		if n.Image == b.image && !n.Pinned {
			follow++
			if n.State.Stage == apitype.StageBooted {
				running++
			}
		}
	}
	b.published = pubAsking
	body := fmt.Sprintf("generation %s is built, not published.\n\nPublishing makes it %s's current generation (now %s):\n%s that follow the image are assigned it at once\nand boot it at their next boot; the %d running turn dirty.\n\nNo keeps it unpublished: s stages it on chosen nodes in\nwaves, each checked before the next.",
		b.result, b.image, dash(im.Current), plural(follow, "node"), running)
	m.dialog = NewConfirm(m.c, "Publish "+b.image+"@"+b.result+"?", body, follow)
	name, gen := b.image, b.result
	m.onYes = func() tea.Cmd {
		be := m.be
		return m.ask(func(ctx context.Context) tea.Msg {
			return publishMsg{image: name, gen: gen, follow: follow, err: be.Publish(ctx, name, gen)}
		})
	}
	m.onNo = func() tea.Cmd {
		if b := m.images.build; b != nil && b.result == gen {
			b.published = pubNo
			m.setFlash(b.outcome(), false)
		}
		return nil
	}
	return nil
}

// imageNamed returns the image called name in the images view's list.
func (m *Model) imageNamed(name string) *apitype.ImageInfo {
	for i := range m.images.images {
		if m.images.images[i].Name == name {
			return &m.images.images[i]
		}
	}
	return nil
}

// askImageRollback is `r`: confirm, then make the image's previous
// generation current again.
func (m *Model) askImageRollback() tea.Cmd {
	im := m.images.current()
	if im == nil {
		m.setFlash("no image to roll back", true)
		return nil
	}
	// The daemon goes back one publish; without a republished older
	// generation that is the next older one.
	prev := ""
	gens := newestFirst(im.Generations)
	for i, g := range gens {
		if g.ID == im.Current && i+1 < len(gens) {
			prev = gens[i+1].ID
		}
	}
	if prev == "" {
		m.setFlash("image "+im.Name+" has no generation before "+dash(im.Current)+" to roll back to", true)
		return nil
	}
	a, _ := genCounts(m.nodes.all, im.Name, im.Current)
	body := fmt.Sprintf("current %s → %s\n\nNodes that follow the image's current generation (%s\nassigned %s now) boot %s at their next boot; nothing is\nrebooted now.",
		im.Current, prev, plural(a, "node"), im.Current, prev)
	m.dialog = NewConfirm(m.c, "Roll back image "+im.Name+"?", body, 0)
	name := im.Name
	m.onYes = func() tea.Cmd {
		be := m.be
		return m.ask(func(ctx context.Context) tea.Msg {
			cur, err := be.Rollback(ctx, name)
			return rollbackMsg{image: name, current: cur, err: err}
		})
	}
	m.onNo = func() tea.Cmd {
		m.setFlash("roll back of "+name+" cancelled; nothing changed", false)
		return nil
	}
	return nil
}

// imageShellDoneMsg says the image shell handed the terminal back.
type imageShellDoneMsg struct {
	image string
	err   error
}

// imageShell is `S` in :images: it hands the terminal to `netbootui image
// shell IMAGE` (the daemon runs the shell in a working copy; on exit the
// command shows the diff and asks to publish or discard), as `c` does for
// a serial console.
func (m *Model) imageShell(image string) tea.Cmd {
	if m.opts.ImageShell == nil {
		m.setFlash(noImageShell, false)
		return nil
	}
	return tea.ExecProcess(m.opts.ImageShell(image), func(err error) tea.Msg { return imageShellDoneMsg{image, err} })
}
