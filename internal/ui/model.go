package ui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// Views of the console.
type viewID int

const (
	viewNodes viewID = iota
	viewDetail
	viewEvents
	viewImages
	viewHelp
	viewAction
	viewStage
	viewUnknown
	viewPersist
)

// inputMode says what the bottom line is being typed into.
type inputMode int

const (
	inputNone inputMode = iota
	inputFilter
	inputCommand
)

const (
	// refreshEvery is the shortest time between two node-list refreshes
	// caused by events: at most 10 per second, however busy the cluster.
	refreshEvery = 100 * time.Millisecond
	// maxEvents is how many events the events view keeps of the kinds
	// that are not routine; maxRoutine how many check-ins and progress
	// events (apitype.Kind.Routine) besides, so that a busy cluster's
	// check-ins do not push a failure or a node that turned dirty out of
	// the view within seconds.
	maxEvents  = 2000
	maxRoutine = 2000
	// eventBatch is the most events one message carries.
	eventBatch = 1024
	// callTimeout bounds every API call.
	callTimeout = 10 * time.Second
	// maxBackoff is the longest wait between reconnect attempts.
	maxBackoff = 5 * time.Second
	// noSOL is what `c` says when the console cannot hand the terminal over.
	noSOL = "serial console: `netbootui console NODE` in a shell (~. detaches)"
	// noImageShell is what `S` says when the console cannot hand the
	// terminal over.
	noImageShell = "image shell: `netbootui image shell IMAGE` in a shell (admins only)"
)

// Messages. Every one that answers an API call carries its error.
type (
	nodesMsg struct {
		nodes []apitype.NodeView
		err   error
	}
	statusMsg struct {
		st  apitype.Status
		err error
	}
	eventsMsg struct {
		stream int
		evs    []apitype.Event
		closed bool
	}
	streamEndMsg struct {
		stream int
		err    error
	}
	refreshTickMsg struct{}
	// clockMsg redraws the screen while something runs (startClock).
	clockMsg     struct{}
	reconnectMsg struct{}
	detailMsg    struct {
		name    string
		node    apitype.NodeView
		entry   string
		events  []apitype.Event
		audit   []apitype.AuditEntry
		auditNA string
		console []string // the tail of the node's captured serial console
		// reboot is what the node's next boot changes (running ->
		// assigned generation), when they differ; rebootErr why not known.
		reboot    *apitype.ImageDiff
		rebootErr string
		err       error
	}
	imagesMsg struct {
		images []apitype.ImageInfo
		err    error
	}
	flashMsg struct{ text string }
)

// Model is the console's root model. Create it with New and run it with
// tea.NewProgram; it is used through its pointer.
type Model struct {
	c    *Common
	be   Backend
	opts Options

	ctx    context.Context
	cancel context.CancelFunc

	view  viewID
	stack []viewID

	nodes    nodeTable
	detail   detailView
	events   eventsView
	images   imagesView
	unknown  unknownView
	persist  persistView
	help     helpView
	dialog   *Confirm
	onYes    func() tea.Cmd
	onNo     func() tea.Cmd
	edit     *editSession
	menu     *powerMenu
	act      *action // the running or last power action / reboot
	actSeq   int
	stage    *stageFlow // the Stage view's flow or rollout
	buildSeq int
	follows  [followKinds]follower // the audit and rollout follow streams (follow.go)
	status   apitype.Status
	haveSt   bool
	head     string // the head the console is on (several heads; cluster.go)
	loading  bool

	input     inputMode
	inputText string
	inputErr  string

	flash      string
	flashError bool

	// connection
	connErr   error
	backoff   time.Duration
	stream    int
	evCh      chan apitype.Event
	inflight  bool // a Nodes call is under way
	pending   bool // events arrived that the node list has not caught up with
	tickSet   bool // a refreshTickMsg is scheduled
	lastFetch time.Time
	quitting  bool
	clockSet  bool // a clockMsg is scheduled
}

// New returns a console talking to be.
func New(be Backend, opts Options) *Model {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClockEvery <= 0 {
		opts.ClockEvery = time.Second
	}
	c := &Common{Width: 80, Height: 24, Styles: NewStyles(opts.Dark), Keys: DefaultKeyMap(), Now: opts.Now}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Model{c: c, be: be, opts: opts, ctx: ctx, cancel: cancel, loading: true}
	m.nodes = newNodeTable(c)
	m.detail.c, m.events.c, m.images.c, m.help.c = c, c, c, c
	return m
}

// Close cancels every call and the event stream. Quitting does it too;
// callers should still defer it.
func (m *Model) Close() { m.cancel() }

// Init starts the first fetches and the event stream.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{tea.RequestBackgroundColor, m.fetchNodes(), m.fetchStatus()}
	if !m.opts.NoStream {
		cmds = append(cmds, m.startStream())
	}
	return tea.Batch(cmds...)
}

func (m *Model) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.ctx, callTimeout)
}

// ask returns a command that runs f with a context bounded by the
// console's call timeout: every daemon call of the console goes through a
// command, never through Update itself.
func (m *Model) ask(f func(ctx context.Context) tea.Msg) tea.Cmd {
	ctx, cancel := m.call()
	return func() tea.Msg {
		defer cancel()
		return f(ctx)
	}
}

func (m *Model) fetchNodes() tea.Cmd {
	m.inflight = true
	m.pending = false
	m.lastFetch = m.c.Now()
	be := m.be
	return m.ask(func(ctx context.Context) tea.Msg {
		n, err := be.Nodes(ctx)
		return nodesMsg{n, err}
	})
}

func (m *Model) fetchStatus() tea.Cmd {
	be := m.be
	return m.ask(func(ctx context.Context) tea.Msg {
		st, err := be.Status(ctx)
		return statusMsg{st, err}
	})
}

// startStream opens a new event stream: one command runs Backend.Events
// (blocking, in its own goroutine) into a channel, another waits for the
// channel's next batch.
func (m *Model) startStream() tea.Cmd {
	m.stream++
	id := m.stream
	ch := make(chan apitype.Event, 4096)
	m.evCh = ch
	be, ctx := m.be, m.ctx
	run := func() tea.Msg {
		defer close(ch)
		// the newest events of every kind, and the rarer kinds further
		// back: on a busy cluster the newest are all check-ins
		err := be.EventsBacklog(ctx, "", maxEvents/4, maxEvents/2, true, func(ev apitype.Event) error {
			select {
			case ch <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err == nil && ctx.Err() == nil {
			err = errors.New("event stream ended")
		}
		return streamEndMsg{id, err}
	}
	return tea.Batch(run, waitEvents(id, ch))
}

// waitEvents returns the next batch of events: it blocks for one, then
// takes whatever else is already queued.
func waitEvents(id int, ch chan apitype.Event) tea.Cmd {
	return func() tea.Msg {
		ev, ok := <-ch
		if !ok {
			return eventsMsg{stream: id, closed: true}
		}
		evs := []apitype.Event{ev}
		for len(evs) < eventBatch {
			select {
			case ev, ok := <-ch:
				if !ok {
					return eventsMsg{stream: id, evs: evs}
				}
				evs = append(evs, ev)
				continue
			default:
			}
			break
		}
		return eventsMsg{stream: id, evs: evs}
	}
}

func (m *Model) setFlash(text string, isErr bool) {
	m.flash, m.flashError = text, isErr
}

// disconnected records a failed call and schedules a reconnect.
func (m *Model) disconnected(err error) tea.Cmd {
	if m.ctx.Err() != nil {
		return nil
	}
	first := m.connErr == nil
	m.connErr = err
	if !first {
		return nil // a reconnect is already scheduled
	}
	if m.backoff == 0 {
		m.backoff = 250 * time.Millisecond
	}
	d := m.backoff
	m.backoff = min(2*m.backoff, maxBackoff)
	return tea.Tick(d, func(time.Time) tea.Msg { return reconnectMsg{} })
}

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.c.Width, m.c.Height = msg.Width, msg.Height
		m.nodes.clamp()
		return m, nil
	case imageShellDoneMsg:
		if msg.err != nil {
			m.setFlash("image shell of "+msg.image+": "+msg.err.Error(), true)
		} else {
			m.setFlash("image shell of "+msg.image+" ended", false)
		}
		return m, m.fetchImages()
	case solDoneMsg:
		if msg.err != nil {
			m.setFlash("serial console of "+msg.node+": "+msg.err.Error(), true)
		} else {
			m.setFlash("serial console of "+msg.node+" detached", false)
		}
		return m, nil
	case tea.BackgroundColorMsg:
		m.c.Styles = NewStyles(msg.IsDark())
		return m, nil
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case nodesMsg:
		m.inflight = false
		if msg.err != nil {
			return m, m.disconnected(msg.err)
		}
		m.loading = false
		m.nodes.setNodes(msg.nodes)
		if m.pending {
			return m, m.scheduleRefresh()
		}
		return m, nil
	case statusMsg:
		if msg.err != nil {
			return m, m.disconnected(msg.err)
		}
		m.status, m.haveSt = msg.st, true
		m.noteHead(msg.st)
		return m, nil
	case eventsMsg:
		if msg.stream != m.stream || msg.closed {
			return m, nil
		}
		if m.connErr != nil {
			m.connErr, m.backoff = nil, 0
		}
		m.events.add(msg.evs)
		m.detail.addEvents(msg.evs)
		cmds := []tea.Cmd{waitEvents(msg.stream, m.evCh), m.scheduleRefresh()}
		if inventoryChanged(msg.evs) { // a promote, a CLI edit: the header's rev follows
			cmds = append(cmds, m.fetchStatus())
		}
		if m.view == viewUnknown && slices.ContainsFunc(msg.evs, func(ev apitype.Event) bool { return ev.Kind == apitype.KindUnknown }) {
			// a machine switched on asks: :unknown lists it as it does
			cmds = append(cmds, m.fetchUnknown())
		}
		return m, tea.Batch(cmds...)
	case streamEndMsg:
		if msg.stream != m.stream || m.ctx.Err() != nil {
			return m, nil
		}
		return m, m.disconnected(msg.err)
	case reconnectMsg:
		m.connErr = nil
		cmds := []tea.Cmd{m.fetchNodes(), m.fetchStatus(), m.refollow()}
		if !m.opts.NoStream {
			cmds = append(cmds, m.startStream())
		}
		return m, tea.Batch(cmds...)
	case clockMsg:
		m.clockSet = false
		return m, m.startClock()
	case refreshTickMsg:
		m.tickSet = false
		if m.inflight {
			m.pending = true
			return m, nil
		}
		cmds := []tea.Cmd{m.fetchNodes()}
		if m.view == viewDetail && m.detail.name != "" {
			cmds = append(cmds, m.fetchDetailNode(m.detail.name))
		}
		return m, tea.Batch(cmds...)
	case detailMsg:
		if msg.err != nil {
			if isAPIError(msg.err) {
				m.setFlash(msg.err.Error(), true)
				return m, nil
			}
			return m, m.disconnected(msg.err)
		}
		m.detail.set(msg)
		return m, nil
	case detailBMCMsg:
		if msg.err != nil && !isAPIError(msg.err) && m.ctx.Err() == nil {
			m.detail.setBMC(msg)
			return m, m.disconnected(msg.err)
		}
		m.detail.setBMC(msg)
		return m, nil
	case detailNodeMsg:
		if msg.err == nil && msg.node.Name == m.detail.name {
			m.detail.node = msg.node
		}
		return m, nil
	case unknownMsg:
		if msg.err != nil && !isAPIError(msg.err) {
			return m, m.disconnected(msg.err)
		}
		m.unknown.set(msg)
		return m, nil
	case adoptMsg:
		return m, m.adopted(msg)
	case persistMsg, persistWipeMsg:
		return m, m.persistUpdate(msg)
	case imagesMsg:
		if msg.err != nil && !isAPIError(msg.err) {
			return m, m.disconnected(msg.err)
		}
		m.images.set(msg)
		return m, nil
	case flashMsg:
		m.setFlash(msg.text, false)
		return m, nil
	case powerDoneMsg:
		if m.act == nil || msg.id != m.act.id {
			return m, nil
		}
		for _, r := range msg.results {
			m.act.setPower(r)
		}
		return m, m.actionFinished(msg.err)
	}
	if cmd, ok := m.followUpdate(msg); ok {
		return m, cmd
	}
	if cmd, ok := m.imagesUpdate(msg); ok {
		return m, cmd
	}
	if cmd, ok := m.stageUpdate(msg); ok {
		return m, cmd
	}
	if cmd, ok := m.rebootUpdate(msg); ok {
		return m, cmd
	}
	if cmd, ok := m.editUpdate(msg); ok {
		return m, cmd
	}
	return m, nil
}

// inventoryChanged reports whether evs say the daemon loaded another
// inventory revision (or failed to).
func inventoryChanged(evs []apitype.Event) bool {
	for i := range evs {
		if evs[i].Node == "" && evs[i].Proto == "inventory" {
			return true
		}
	}
	return false
}

// startClock schedules a redraw after ClockEvery while an action or a
// build runs (their elapsed time would freeze between progress messages
// otherwise); nothing when none runs or one is scheduled.
func (m *Model) startClock() tea.Cmd {
	running := (m.act != nil && m.act.running) || (m.images.build != nil && m.images.build.running)
	if m.clockSet || !running {
		return nil
	}
	m.clockSet = true
	return tea.Tick(m.opts.ClockEvery, func(time.Time) tea.Msg { return clockMsg{} })
}

// isAPIError tells an answer from the daemon (a refusal) from a failure to
// reach it.
func isAPIError(err error) bool {
	var ae *apitype.Error
	return errors.As(err, &ae) || errors.Is(err, apiclient.ErrConflict)
}

// scheduleRefresh arranges one node-list refresh at most refreshEvery after
// the previous one.
func (m *Model) scheduleRefresh() tea.Cmd {
	m.pending = true
	if m.tickSet || m.inflight {
		return nil
	}
	m.tickSet = true
	wait := refreshEvery - m.c.Now().Sub(m.lastFetch)
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	return tea.Tick(wait, func(time.Time) tea.Msg { return refreshTickMsg{} })
}

func (m *Model) push(v viewID) {
	if m.view == v {
		return
	}
	m.stack = append(m.stack, m.view)
	m.view = v
}

func (m *Model) back() {
	if len(m.stack) == 0 {
		m.view = viewNodes
		return
	}
	m.view = m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
}

func (m *Model) quit() tea.Cmd {
	m.quitting = true
	m.cancel()
	return tea.Quit
}

func (m *Model) key(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	if key.Matches(msg, k.ForceQuit) {
		return m.quit()
	}
	if m.dialog != nil {
		done, yes := m.dialog.Update(msg)
		if !done {
			return nil
		}
		m.dialog = nil
		if yes && m.onYes != nil {
			return m.onYes()
		}
		if !yes && m.onNo != nil {
			return m.onNo()
		}
		return nil
	}
	if m.menu != nil {
		op, done := m.menu.menuKey(msg, k)
		if !done {
			return nil
		}
		names := m.menu.names
		m.menu = nil
		if op == nil {
			return nil
		}
		return m.choosePower(op, names)
	}
	if key.Matches(msg, k.CancelAction) {
		if m.cancelBuild() {
			return nil
		}
		m.cancelAction()
		return nil
	}
	if m.input != inputNone {
		return m.inputKey(msg)
	}
	m.flash = ""
	switch {
	case key.Matches(msg, k.Help):
		if m.view == viewHelp {
			m.back()
		} else {
			m.push(viewHelp)
		}
		return nil
	case key.Matches(msg, k.Command):
		m.input, m.inputText, m.inputErr = inputCommand, "", ""
		return nil
	case key.Matches(msg, k.Refresh):
		if m.view == viewStage {
			return tea.Batch(m.fetchNodes(), m.fetchStatus(), m.pollStage())
		}
		if m.view == viewImages {
			return tea.Batch(m.fetchNodes(), m.fetchStatus(), m.fetchImages())
		}
		if m.view == viewUnknown {
			return tea.Batch(m.fetchNodes(), m.fetchStatus(), m.fetchUnknown())
		}
		if m.view == viewPersist {
			return tea.Batch(m.fetchNodes(), m.fetchStatus(), m.fetchPersist())
		}
		return tea.Batch(m.fetchNodes(), m.fetchStatus())
	case key.Matches(msg, k.Quit):
		if m.view == viewNodes {
			return m.quit()
		}
		m.back()
		return nil
	}
	switch m.view {
	case viewNodes:
		return m.nodesKey(msg)
	case viewDetail:
		if key.Matches(msg, k.Back) {
			m.back()
			return nil
		}
		if key.Matches(msg, k.Edit) {
			return m.startEdit(m.detail.name, false)
		}
		if key.Matches(msg, k.EditGroup) {
			return m.startEdit(m.detail.name, true)
		}
		if key.Matches(msg, k.SerialConsole) {
			return m.serialConsole(m.detail.name)
		}
		if key.Matches(msg, k.Power) {
			return m.openPowerMenu()
		}
		if key.Matches(msg, k.RebootClean) {
			return m.askReboot()
		}
		if key.Matches(msg, k.Stage) {
			return m.openStage()
		}
		m.detail.scroll(msg, k)
	case viewAction:
		return m.actionKey(msg)
	case viewEvents:
		if m.events.open != nil { // the event shown in full: any key closes it
			m.events.open = nil
			return nil
		}
		if key.Matches(msg, k.Enter) {
			if ev := m.events.current(); ev != nil {
				e := *ev
				m.events.open = &e
			}
			return nil
		}
		if key.Matches(msg, k.Filter) {
			m.input, m.inputText, m.inputErr = inputFilter, m.events.filter, ""
			return nil
		}
		if key.Matches(msg, k.Back) {
			if m.events.filter != "" {
				m.events.setFilter("")
				return nil
			}
			m.back()
			return nil
		}
		m.events.scroll(msg, k)
	case viewImages:
		return m.imagesKey(msg)
	case viewUnknown:
		return m.unknownKey(msg)
	case viewPersist:
		return m.persistKey(msg)
	case viewStage:
		return m.stageKey(msg)
	case viewHelp:
		if key.Matches(msg, k.Back) {
			m.back()
			return nil
		}
		m.help.offset = scrollKey(msg, k, m.help.offset, len(m.help.lines()), m.c.Height-3)
	}
	return nil
}

func (m *Model) nodesKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	t := &m.nodes
	switch {
	case key.Matches(msg, k.Up):
		t.move(-1)
	case key.Matches(msg, k.Down):
		t.move(1)
	case key.Matches(msg, k.PageUp):
		t.move(-t.pageRows())
	case key.Matches(msg, k.PageDown):
		t.move(t.pageRows())
	case key.Matches(msg, k.Top):
		t.move(-len(t.shown))
	case key.Matches(msg, k.Bottom):
		t.move(len(t.shown))
	case key.Matches(msg, k.Mark):
		t.toggleMark()
	case key.Matches(msg, k.MarkAll):
		t.markShown()
	case key.Matches(msg, k.ClearMarks):
		t.marks = map[string]bool{}
		t.refilter()
	case key.Matches(msg, k.Filter):
		m.input, m.inputText, m.inputErr = inputFilter, t.filter.Text, ""
	case key.Matches(msg, k.Back):
		if !t.filter.Empty() {
			t.setFilter(Filter{})
		}
	case key.Matches(msg, k.SortName):
		t.setSort(sortName)
	case key.Matches(msg, k.SortGroup):
		t.setSort(sortGroup)
	case key.Matches(msg, k.SortStage):
		t.setSort(sortStage)
	case key.Matches(msg, k.SortGen):
		t.setSort(sortDrift)
	case key.Matches(msg, k.SortCheckin):
		t.setSort(sortCheckin)
	case key.Matches(msg, k.Reverse):
		t.reverse = !t.reverse
		t.resort()
	case key.Matches(msg, k.Enter):
		if n := t.current(); n != nil {
			return m.openDetail(n.Name)
		}
	case key.Matches(msg, k.Edit):
		if n := t.current(); n != nil {
			return m.startEdit(n.Name, false)
		}
	case key.Matches(msg, k.EditGroup):
		if n := t.current(); n != nil {
			return m.startEdit(n.Name, true)
		}
	case key.Matches(msg, k.RebootClean):
		return m.askReboot()
	case key.Matches(msg, k.Power):
		return m.openPowerMenu()
	case key.Matches(msg, k.SerialConsole):
		if n := t.current(); n != nil {
			return m.serialConsole(n.Name)
		}
	case key.Matches(msg, k.Stage):
		return m.openStage()
	}
	return nil
}

// commands are what `:` accepts, in completion order.
var commands = []string{"nodes", "events", "images", "stage", "unknown", "adopt", "persist", "action", "help", "quit", "q"}

// completeCommand returns the commands starting with prefix.
func completeCommand(prefix string) []string {
	var out []string
	for _, c := range commands {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (m *Model) inputKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "esc":
		if m.input == inputFilter && m.view == viewNodes {
			m.nodes.setFilter(Filter{})
		}
		if m.input == inputFilter && m.view == viewEvents {
			m.events.setFilter("")
		}
		m.input, m.inputErr = inputNone, ""
		return nil
	case "enter":
		mode := m.input
		text := strings.TrimSpace(m.inputText)
		if mode == inputCommand {
			m.input = inputNone
			return m.runCommand(text)
		}
		if m.inputErr != "" {
			return nil // keep typing: the filter does not parse
		}
		m.input = inputNone
		return nil
	case "tab":
		if m.input == inputCommand {
			c := completeCommand(m.inputText)
			if len(c) > 0 {
				m.inputText = commonPrefix(c)
			}
		}
		return nil
	case "backspace", "ctrl+h":
		if r := []rune(m.inputText); len(r) > 0 {
			m.inputText = string(r[:len(r)-1])
		} else if m.input == inputCommand {
			m.input = inputNone
			return nil
		}
	case "ctrl+u":
		m.inputText = ""
	case "space":
		m.inputText += " "
	default:
		if msg.Text == "" {
			return nil
		}
		m.inputText += msg.Text
	}
	if m.input == inputFilter {
		m.applyFilterText()
	}
	return nil
}

func commonPrefix(ss []string) string {
	p := ss[0]
	for _, s := range ss[1:] {
		for !strings.HasPrefix(s, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

func (m *Model) applyFilterText() {
	if m.view == viewEvents {
		m.events.setFilter(m.inputText)
		return
	}
	f, err := ParseFilter(m.inputText)
	if err != nil {
		m.inputErr = err.Error()
		return
	}
	m.inputErr = ""
	m.nodes.setFilter(f)
}

func (m *Model) runCommand(text string) tea.Cmd {
	if verb, args, _ := strings.Cut(text, " "); verb == "adopt" {
		return m.askAdoptBMC(strings.Fields(args))
	}
	switch text {
	case "":
		return nil
	case "q", "quit", "q!":
		return m.quit()
	case "nodes", "node", "no":
		m.stack, m.view = nil, viewNodes
		return nil
	case "events", "ev":
		return m.openEvents()
	case "images", "img":
		m.push(viewImages)
		m.images.loading = true
		return m.fetchImages()
	case "stage", "st":
		return m.openLatestStage()
	case "unknown", "unk":
		return m.openUnknown()
	case "persist":
		return m.openPersist()
	case "help":
		m.push(viewHelp)
		return nil
	case "action", "act":
		if m.act == nil {
			m.setFlash("no power action or reboot has run in this console yet", false)
			return nil
		}
		m.push(viewAction)
		return nil
	}
	if c := completeCommand(text); len(c) == 1 {
		return m.runCommand(c[0])
	}
	m.setFlash(fmt.Sprintf("unknown command %q (try :nodes :events :images :stage :unknown :adopt :persist :action :help :q)", text), true)
	return nil
}

// solDoneMsg says the serial console handed the terminal back.
type solDoneMsg struct {
	node string
	err  error
}

// serialConsole hands the terminal to the node's serial console; it comes
// back when the user detaches.
func (m *Model) serialConsole(node string) tea.Cmd {
	if m.opts.SerialConsole == nil {
		m.setFlash(noSOL, false)
		return nil
	}
	cmd := m.opts.SerialConsole(node)
	why := &lastLine{}
	if cmd.Stderr == nil { // the terminal, and the last line for the flash
		cmd.Stderr = io.MultiWriter(os.Stderr, why)
	}
	return tea.ExecProcess(cmd, func(err error) tea.Msg {
		if err != nil && why.String() != "" {
			err = fmt.Errorf("%w: %s", err, strings.TrimPrefix(why.String(), "netbootui: "))
		}
		return solDoneMsg{node, err}
	})
}

// lastLine keeps the last non-empty line written to it: why a command the
// console handed the terminal to failed, which the console's screen would
// hide as soon as it comes back.
type lastLine struct {
	mu   sync.Mutex
	buf  []byte
	line string
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexAny(l.buf, "\r\n")
		if i < 0 {
			break
		}
		if t := strings.TrimSpace(string(l.buf[:i])); t != "" {
			l.line = t
		}
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 4096 {
		l.buf = l.buf[len(l.buf)-4096:]
	}
	return len(p), nil
}

func (l *lastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := strings.TrimSpace(string(l.buf)); t != "" {
		return t
	}
	return l.line
}
