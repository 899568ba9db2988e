package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/workflow"
)

// RebootRequest is a reboot-clean request (the API type; Who is set by the API
// server).
type RebootRequest = apitype.RebootRequest

// RebootProgress is one change of a node's reboot-clean step or boot stage.
type RebootProgress = workflow.Progress

// RebootResult is how reboot-clean ended for one node.
type RebootResult = workflow.Result

// RebootClean reboots a selection to a clean state (see
// workflow.RebootClean): each node gets the render check, then, by the
// path req.Via picks (auto: kexec when the node's agent polls, power when
// it does not or the kexec fails), a kexec instruction to its agent, or
// PXE as next boot device and a power cycle through its BMC; the run
// follows its boot
// until it checks in with its assigned generation and is not dirty. onProgress,
// if set, sees every step and stage change (serialized). The whole run is one
// audit entry. An error means the run did not start (bad selection, bad
// timeout); node failures are in the results.
func (d *Daemon) RebootClean(ctx context.Context, req RebootRequest, onProgress func(RebootProgress)) ([]RebootResult, error) {
	return d.rebootClean(ctx, req, onProgress, 0)
}

// rebootClean is RebootClean that waits up to claimWait for a node another
// head holds (several heads: a dead head's claims lapse with its lease).
func (d *Daemon) rebootClean(ctx context.Context, req RebootRequest, onProgress func(RebootProgress), claimWait time.Duration) ([]RebootResult, error) {
	if req.Timeout < 0 || req.KexecTimeout < 0 {
		return nil, fmt.Errorf("reboot-clean: timeout %v is negative", min(req.Timeout, req.KexecTimeout))
	}
	via, err := rebootVia(req.Via)
	if err != nil {
		return nil, err
	}
	inv := d.Inventory()
	nodes, err := inv.Select(req.Selection)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: %q", workflow.ErrNoNodes, req.Selection)
	}
	env := &rebootEnv{d: d, inv: inv, targets: map[string]power.Target{}, errs: map[string]error{}}
	secrets, serr := d.secrets(inv)
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
		if serr != nil {
			env.errs[n.Name] = serr
			continue
		}
		if t, err := n.BMCTarget(secrets); err != nil {
			env.errs[n.Name] = err
		} else {
			env.targets[n.Name] = t
		}
	}
	release, held, err := d.claimNodes(ctx, "reboot-clean", names, claimWait)
	if err != nil {
		return nil, err
	}
	defer release()
	for n, err := range held { // each runs on another head: it fails here
		env.errs[n] = err
		delete(env.targets, n)
	}
	stopSOL := d.captureSOL(env.targets) // console logs for failure messages (sol.go)
	results := workflow.RebootClean(ctx, env, d.tracker, names, workflow.Options{
		Timeout:          req.Timeout,
		Via:              via,
		KexecTimeout:     req.KexecTimeout,
		OverlayThreshold: inv.Settings.OverlayDirtyBytes,
		OnProgress:       d.solProgress(onProgress),
	})
	stopSOL()
	d.solAnnotate(results)
	res := workflow.Summary(results)
	if ctx.Err() != nil {
		res += " (cancelled)"
	}
	var details []string
	for _, r := range results {
		if !r.OK {
			details = append(details, r.Error)
		}
	}
	d.auditRecord(audit.Entry{Who: req.Who, Action: "reboot-clean", Target: req.Selection, Nodes: len(nodes),
		Result: res, Details: details, Paths: rebootPaths(results)})
	return results, nil
}

// AgentAlive reports whether the node's agent is polling the boot server
// (a kexec reboot-clean can reach it).
func (d *Daemon) AgentAlive(node string) bool { return d.boot.AgentAlive(node) }

// rebootVia checks a reboot-clean path ("" is auto).
func rebootVia(via string) (string, error) {
	switch via {
	case "", apitype.ViaAuto:
		return workflow.ViaAuto, nil
	case apitype.ViaKexec, apitype.ViaPower:
		return via, nil
	}
	return "", fmt.Errorf("reboot-clean: via %q: want %s", via, strings.Join(apitype.RebootVias, ", "))
}

// rebootPaths is the audit's word on each node's path: "n07: kexec (agent
// polling)", "n08: power (kexec refused ...: fell back to power)".
func rebootPaths(results []RebootResult) []string {
	var out []string
	for _, r := range results {
		if r.Via != "" {
			out = append(out, r.Node+": "+r.Via+" ("+r.Why+")")
		}
	}
	return out
}

// rebootEnv is workflow.Env on the daemon: the inventory as it was when the
// run started, the boot server's assignment and renderer, the power seam.
type rebootEnv struct {
	d       *Daemon
	inv     *inventory.Inventory
	targets map[string]power.Target
	errs    map[string]error // why a node has no target
}

// Prepare is the render check: an assigned generation and a boot entry
// that renders.
func (e *rebootEnv) Prepare(name string) (string, error) {
	n := e.inv.Node(name)
	if n == nil {
		return "", fmt.Errorf("node %s: not in the inventory", name)
	}
	_, gen, err := e.d.boot.Assignment(n)
	if errors.Is(err, image.ErrNotFound) && strings.Contains(err.Error(), "no published generation") {
		return "", fmt.Errorf("node %s: image %s has no published generation", name, n.Image)
	}
	if err != nil {
		return "", err
	}
	if _, err := e.d.boot.Entry(e.inv, n, string(n.Loader), e.d.baseURL()); err != nil {
		return "", fmt.Errorf("node %s: boot entry does not render: %w", name, err)
	}
	return gen, nil
}

func (e *rebootEnv) do(ctx context.Context, name string, op power.Op) error {
	t, ok := e.targets[name]
	if !ok {
		err := e.errs[name]
		proto := ""
		if n := e.inv.Node(name); n != nil {
			proto = n.BMC.Protocol
		}
		e.d.powerEvent(op, proto, PowerResult{Node: name, Op: string(op), Error: err.Error()})
		return err
	}
	r := e.d.power.Do(ctx, t, op)
	e.d.powerEvent(op, r.Protocol, powerResult(r))
	return r.Err
}

// BootdevPXE sets the next boot to PXE (EFI for UEFI nodes), verified.
func (e *rebootEnv) BootdevPXE(ctx context.Context, name string) error {
	return e.do(ctx, name, power.OpBootdevPXE)
}

// Cycle power-cycles the node; the tracker sees the action.
func (e *rebootEnv) Cycle(ctx context.Context, name string) error {
	return e.do(ctx, name, power.OpCycle)
}

// AgentAlive reports whether the node's agent is polling the boot server.
func (e *rebootEnv) AgentAlive(name string) bool { return e.d.boot.AgentAlive(name) }

// Kexec hands the node's agent its signed kexec instruction (pxe.Boot.SendKexec).
func (e *rebootEnv) Kexec(ctx context.Context, name string) error {
	_, err := e.d.boot.SendKexec(ctx, name)
	return err
}
