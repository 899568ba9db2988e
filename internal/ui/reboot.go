package ui

import (
	"context"
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// rebootBatch is the most progress lines one message carries.
const rebootBatch = 256

// rebootWarn explains what a reboot to clean state does, in its dialog.
const rebootWarn = "Each node boots its assigned generation: anything running stops\n" +
	"at once and its tmpfs overlay (all written since boot) is lost.\n" +
	"kexec: its agent loads the generation, no firmware POST.\n" +
	"power: PXE as next boot device and a BMC power cycle.\n" +
	"auto: kexec where the agent polls, else (or when it fails) power.\n" +
	"Running, ctrl+x cancels it (esc only hides it)."

// rebootPathKey cycles the reboot's path in its dialog.
const rebootPathKey = "v"

type (
	// rebootMsg carries progress lines of a running reboot, and its end.
	rebootMsg     = streamMsg[apitype.RebootProgress, rebootDoneMsg]
	rebootDoneMsg struct {
		results []apitype.RebootResult
		err     error
	}
	// rebootItem is what the running call hands the waiting command.
	rebootItem = streamItem[apitype.RebootProgress, rebootDoneMsg]
)

// askReboot is `R`: confirm, then reboot the marked nodes (else the cursor
// node) to a clean state.
func (m *Model) askReboot() tea.Cmd {
	if m.busy() {
		return nil
	}
	names := m.targets()
	if len(names) == 0 {
		m.setFlash("no node to act on", true)
		return nil
	}
	sel, err := selectionFor(names)
	if err != nil {
		m.setFlash(err.Error(), true)
		return nil
	}
	title := fmt.Sprintf("Reboot %s to a clean state?", plural(len(names), "node"))
	d := NewConfirm(m.c, title, sel+"\n\n"+rebootWarn, len(names))
	d.Choice = &Choice{Label: "path", Options: apitype.RebootVias, Key: rebootPathKey}
	m.dialog = d
	m.onYes = func() tea.Cmd { return m.startReboot(sel, names, d.Choice.Value()) }
	m.onNo = func() tea.Cmd {
		m.setFlash("reboot to clean state cancelled; nothing changed", false)
		return nil
	}
	return nil
}

// startReboot runs Backend.RebootCleanRequest by path via: one command
// makes the call (it blocks until every node is done) and feeds its
// progress into a channel, another hands the channel's lines to Update,
// the end last.
func (m *Model) startReboot(sel string, names []string, via string) tea.Cmd {
	m.actSeq++
	a := newAction(m.actSeq, actReboot, "reboot-clean", sel, names, m.nodeBMC, m.c.Now())
	a.via = via
	ctx, cancel := context.WithCancel(m.ctx)
	a.cancel = cancel
	m.act = a
	m.push(viewAction)
	ch := make(chan rebootItem, 1024)
	a.progress = ch
	be, id, root := m.be, a.id, m.ctx
	run := func() tea.Msg {
		defer close(ch)
		res, err := be.RebootCleanRequest(ctx, apitype.RebootRequest{Selection: sel, Via: via}, func(p apitype.RebootProgress) error {
			select {
			case ch <- rebootItem{p: p}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		select { // the waiter reads until the end unless the console quits
		case ch <- rebootItem{done: &rebootDoneMsg{results: res, err: err}}:
		case <-root.Done():
		}
		return nil
	}
	return tea.Batch(run, waitReboot(id, ch), m.startClock())
}

// waitReboot returns the next batch of progress lines: it blocks for one,
// then takes whatever else is queued, stopping at the end.
func waitReboot(id int, ch chan rebootItem) tea.Cmd {
	return waitStream(id, ch, rebootBatch, func() *rebootDoneMsg {
		return &rebootDoneMsg{err: fmt.Errorf("reboot-clean: the call ended without a result")}
	})
}

// rebootUpdate handles the reboot's messages.
func (m *Model) rebootUpdate(msg tea.Msg) (tea.Cmd, bool) {
	rm, ok := msg.(rebootMsg)
	if !ok {
		return nil, false
	}
	if m.act == nil || rm.id != m.act.id || !m.act.running {
		return nil, true
	}
	for _, p := range rm.progress {
		m.act.setProgress(p)
	}
	if rm.done == nil {
		return waitReboot(rm.id, m.act.progress), true
	}
	for _, r := range rm.done.results {
		m.act.setReboot(r)
	}
	return m.actionFinished(rm.done.err), true
}

// setProgress records one progress line.
func (a *action) setProgress(p apitype.RebootProgress) {
	r := a.row(p.Node)
	switch p.Step {
	case apitype.StepClean:
		r.done, r.failed, r.result = true, false, "clean"
		if p.Generation != "" {
			r.result += ": runs " + p.Generation
		}
		r.took = p.Time.Sub(a.started)
		if r.took < 0 {
			r.took = 0
		}
		return
	case apitype.StepFailed:
		r.done, r.failed, r.result = true, true, nodeError(p.Node, p.Message)
		return
	}
	parts := []string{string(p.Step)}
	if p.Stage != "" {
		parts = append(parts, string(p.Stage))
	}
	if p.Message != "" {
		parts = append(parts, p.Message)
	}
	r.state = strings.Join(parts, ": ")
}

// setReboot records a node's final result.
func (a *action) setReboot(res apitype.RebootResult) {
	r := a.row(res.Node)
	r.done, r.took, r.state = true, res.Duration, ""
	if res.Via != "" { // the path that ran, and why
		r.path = "by " + res.Via
		if res.Why != "" {
			r.path += ": " + res.Why
		}
	}
	if !res.OK {
		r.failed = true
		r.result = nodeError(res.Node, res.Error)
		if r.result == "" {
			r.result = "ended in step " + string(res.Step)
		}
		return
	}
	r.failed = false
	r.result = "clean"
	if res.Generation != "" {
		r.result += ": runs " + res.Generation
	}
}
