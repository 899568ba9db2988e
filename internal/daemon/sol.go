package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/netbootui/netbootui/internal/apitype"
	"io"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/consolehub"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/workflow"
)

// Serial consoles in the daemon: one hub per node (internal/consolehub,
// owned by the daemon) shares the node's session between reboot-clean's
// capture and the attached consoles, and keeps its console log. The
// sessions come from the power seam (power.Service.Console), so any
// backend with a serial console (IPMI SOL) serves them, and a node whose
// backend has none gets an error that says so.

// SOLTailLines is how many console lines a failed reboot-clean message
// carries.
const SOLTailLines = 15

// SOLLog is a node's captured console output (the API type).
type SOLLog = apitype.SOLLog

// consoleSession is the node's console session through the power seam.
func (d *Daemon) consoleSession(t power.Target) consolehub.Session {
	return func(ctx context.Context, in io.Reader, out io.Writer, onActive func()) error {
		return d.power.Console(ctx, t, in, out, power.ConsoleOptions{OnActive: onActive})
	}
}

// nodeTarget is a node's power target, from the inventory in force.
func (d *Daemon) nodeTarget(node string) (power.Target, error) {
	inv := d.Inventory()
	n := inv.Node(node)
	if n == nil {
		return power.Target{}, fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	secrets, err := d.secrets(inv)
	if err != nil {
		return power.Target{}, err
	}
	return n.BMCTarget(secrets)
}

// Console attaches to a node's serial-over-LAN console: input is sent to
// the node, its output written to out. It shares the session a reboot-clean
// capture may be running, and the output also goes to the node's console
// log. ready, if set, is called once the session is active (or already
// was); an error before that (unknown node, no BMC credentials, BMC
// unreachable or refusing SOL) is returned without calling it. Console
// returns nil when in reaches EOF (the client detached), ctx's error when
// ctx ends, or the session's error when it ended. who is the caller for the
// audit log, which gets one entry per attached session (when it ends) or
// refused attach.
func (d *Daemon) Console(ctx context.Context, node, who string, in io.Reader, out io.Writer, ready func()) (err error) {
	start := time.Now()
	defer func() {
		if errors.Is(err, ErrUnknownNode) {
			return
		}
		res := "ok, " + time.Since(start).Round(time.Second).String()
		if err != nil {
			res = err.Error()
		}
		d.auditRecord(audit.Entry{Who: who, Action: "console", Target: node, Nodes: 1, Result: res})
	}()
	t, err := d.nodeTarget(node)
	if err != nil {
		return err
	}
	return d.consoles.Attach(ctx, node, d.consoleSession(t), in, out, ready)
}

// SOLLog returns the last n lines (n <= 0: SOLTailLines) of a node's console
// log: what reboot-clean captured and consoles saw.
func (d *Daemon) SOLLog(node string, n int) (SOLLog, error) {
	if d.Inventory().Node(node) == nil {
		return SOLLog{}, fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	if n <= 0 {
		n = SOLTailLines
	}
	l := d.consoles.Log(node, n)
	return SOLLog{Node: node, Lines: l.Lines, Kept: l.Kept, Total: l.Total, Updated: l.Updated, Active: l.Active, Error: l.Error}, nil
}

// captureSOL starts capturing the console of every node with a power
// target whose backend has a serial console, for the length of a
// reboot-clean; the returned function stops it. A node whose console cannot
// start is only logged: capture never fails a run.
func (d *Daemon) captureSOL(targets map[string]power.Target) (stop func()) {
	sessions := map[string]consolehub.Session{}
	for node, t := range targets {
		if d.power.HasConsole(t) {
			sessions[node] = d.consoleSession(t)
		}
	}
	return d.consoles.Capture(sessions)
}

// solTail is the text a failure message gets: the node's last console lines.
func (d *Daemon) solTail(node string) string {
	l, err := d.SOLLog(node, SOLTailLines)
	if err != nil || len(l.Lines) == 0 {
		return ""
	}
	return "\nlast console lines:\n  " + strings.Join(l.Lines, "\n  ")
}

// solProgress wraps a reboot-clean progress callback so that a node's
// failure message carries its last console lines.
func (d *Daemon) solProgress(f func(RebootProgress)) func(RebootProgress) {
	if f == nil {
		return nil
	}
	return func(p RebootProgress) {
		if p.Step == workflow.StepFailed {
			p.Message += d.solTail(p.Node)
		}
		f(p)
	}
}

// solAnnotate appends the last console lines to failed results.
func (d *Daemon) solAnnotate(results []RebootResult) {
	for i := range results {
		if !results[i].OK {
			results[i].Error += d.solTail(results[i].Node)
		}
	}
}
