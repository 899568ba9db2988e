package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/pxe"
)

// PowerRequest is one power operation on a selection (the API type; Who is set by
// the API server).
type PowerRequest = apitype.PowerRequest

// PowerResult is the outcome of a power operation for one node (the API type).
type PowerResult = apitype.PowerResult

// targets turns inventory nodes into power targets. Nodes that cannot be
// reached (no BMC, no password) get a failed result instead.
func (d *Daemon) targets(nodes []*inventory.Node, op string) ([]power.Target, []PowerResult) {
	inv := d.Inventory()
	secrets, err := d.secrets(inv)
	var out []power.Target
	var failed []PowerResult
	for _, n := range nodes {
		if err != nil {
			failed = append(failed, PowerResult{Node: n.Name, Op: op, Error: err.Error()})
			continue
		}
		t, terr := n.BMCTarget(secrets)
		if terr != nil {
			failed = append(failed, PowerResult{Node: n.Name, Op: op, Error: terr.Error()})
			continue
		}
		t.BootURL = d.httpBootURL(t)
		out = append(out, t)
	}
	return out, failed
}

// httpBootURL is what a UEFI node's firmware fetches when its BMC sets UEFI
// HTTP boot (Redfish bmc.redfish.http_boot): the daemon's iPXE for UEFI,
// which then asks for the node's script, as a UEFI HTTP client the
// proxyDHCP answers is sent ("" for a BIOS node or without an HTTP server).
func (d *Daemon) httpBootURL(t power.Target) string {
	base := d.BootURL()
	if !t.EFI || base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/loaders/" + pxe.BootloaderIPXEEFI
}

// secrets loads the inventory's secrets file (nil when it names none; the
// environment can still supply passwords).
func (d *Daemon) secrets(inv *inventory.Inventory) (*inventory.Secrets, error) {
	p := inv.SecretsPath()
	if p == "" {
		return nil, nil
	}
	return inventory.LoadSecrets(p)
}

// Power runs one power operation over a selection with bounded concurrency,
// records each outcome as a boot event and the whole action in the audit log.
// onResult, if set, sees each node's result as it completes.
func (d *Daemon) Power(ctx context.Context, req PowerRequest, onResult func(PowerResult)) ([]PowerResult, error) {
	op, err := power.ParseOp(req.Op)
	if err != nil {
		return nil, err
	}
	nodes, err := d.Inventory().Select(req.Selection)
	if err != nil {
		return nil, err
	}
	targets, results := d.targets(nodes, string(op))
	protocol := map[string]string{}
	for _, n := range nodes {
		protocol[n.Name] = n.BMC.Protocol
	}
	for _, r := range results {
		d.powerEvent(op, protocol[r.Node], r)
		if onResult != nil {
			onResult(r)
		}
	}
	if len(targets) > 0 {
		_, err := d.power.Bulk(ctx, targets, op, power.BulkOptions{OnResult: func(r power.Result) {
			pr := powerResult(r)
			d.powerEvent(op, r.Protocol, pr)
			d.resultMu.Lock()
			results = append(results, pr)
			d.resultMu.Unlock()
			if onResult != nil {
				onResult(pr)
			}
		}})
		if err != nil && !errors.Is(err, context.Canceled) {
			return results, err
		}
	}
	failed := 0
	var details []string
	for _, r := range results {
		if r.Error != "" {
			failed++
			details = append(details, r.Node+": "+r.Error)
		}
	}
	res := fmt.Sprintf("%d ok, %d failed", len(results)-failed, failed)
	if ctx.Err() != nil {
		res += " (cancelled)"
	}
	d.auditRecord(audit.Entry{Who: req.Who, Action: "power " + string(op), Target: req.Selection, Nodes: len(nodes),
		Result: res, Details: details})
	return results, nil
}

// powerResult is the API's view of a seam result.
func powerResult(r power.Result) PowerResult {
	pr := PowerResult{Node: r.Node, BMC: r.BMC, Op: string(r.Op), Power: r.Power, Detail: r.Detail, Duration: r.Duration}
	if r.Err != nil {
		pr.Error = r.Err.Error()
	}
	return pr
}

// powerEvent feeds a power result to the boot-state tracker: an action moves
// the node (powering-on, off), a status read is an observation. proto is the
// node's BMC protocol ("ipmi").
func (d *Daemon) powerEvent(op power.Op, proto string, r PowerResult) {
	ev := bootstate.Event{Node: r.Node, Kind: bootstate.KindPower, Proto: proto, Power: r.Power, Error: r.Error}
	switch {
	case op.Changes():
		ev.Message = string(op)
	case op == power.OpStatus:
	default: // boot device, flags, device id: history only
		ev.Kind, ev.Message = bootstate.KindInfo, string(op)+": "+r.Detail
		if r.Error != "" {
			ev.Message = string(op) + " failed"
		}
	}
	d.tracker.Apply(ev)
}

// pollTargets is what the power poller asks each round: every node with a
// BMC and a password.
func (d *Daemon) pollTargets() []power.Target {
	inv := d.Inventory()
	var nodes []*inventory.Node
	for _, n := range inv.Nodes {
		if n.BMC.Host != "" {
			nodes = append(nodes, n)
		}
	}
	nodes = d.myShard(nodes)
	t, _ := d.targets(nodes, string(power.OpStatus))
	return t
}

// onPoll records one polled power status as an observation.
func (d *Daemon) onPoll(r power.Result) {
	if errors.Is(r.Err, power.ErrCircuitOpen) {
		return // the breaker's own error was recorded when it opened
	}
	ev := bootstate.Event{Node: r.Node, Kind: bootstate.KindPower, Proto: r.Protocol, Power: r.Power}
	if r.Err != nil {
		ev.Error = r.Err.Error()
	}
	d.tracker.Apply(ev)
}

func (d *Daemon) auditRecord(e audit.Entry) {
	if e.Who == "" {
		e.Who = "daemon"
	}
	if err := d.audit.Record(e); err != nil {
		d.log.Error("audit log", "err", err)
	}
}

// Audit returns the newest n audit entries.
func (d *Daemon) Audit(n int) []audit.Entry { return d.audit.Recent(n) }
