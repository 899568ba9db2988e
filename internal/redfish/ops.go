package redfish

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	"github.com/netbootui/netbootui/internal/power"
)

// powerWord turns a Redfish PowerState into the seam's "on"/"off" (""
// when unknown). PoweringOn counts as on and PoweringOff as off: that is
// where the machine is going.
func powerWord(ps schemas.PowerState) string {
	switch ps {
	case schemas.OnPowerState, schemas.PoweringOnPowerState, schemas.PausedPowerState:
		return "on"
	case schemas.OffPowerState, schemas.PoweringOffPowerState:
		return "off"
	}
	return ""
}

// resetTypes returns the Reset types sys advertises
// (ResetType@Redfish.AllowableValues or its ActionInfo). A system that
// advertises none is taken to accept the common ones.
func resetTypes(sys *schemas.ComputerSystem) []schemas.ResetType {
	rt, err := sys.GetSupportedResetTypes()
	if err != nil || len(rt) == 0 {
		return []schemas.ResetType{schemas.OnResetType, schemas.ForceOffResetType, schemas.GracefulShutdownResetType, schemas.ForceRestartResetType}
	}
	return rt
}

// plan is the Reset types that carry out op on a system that advertises
// allowed, in order, with what they do for people. It is empty with an
// error when op cannot be done with the types the system offers.
func plan(op power.Op, allowed []schemas.ResetType, on bool) ([]schemas.ResetType, string, error) {
	has := func(r schemas.ResetType) bool { return slices.Contains(allowed, r) }
	first := func(rs ...schemas.ResetType) (schemas.ResetType, bool) {
		for _, r := range rs {
			if has(r) {
				return r, true
			}
		}
		return "", false
	}
	onType, haveOn := first(schemas.OnResetType, schemas.ForceOnResetType)
	switch op {
	case power.OpOn:
		if on {
			return nil, "already on", nil
		}
		if haveOn {
			return []schemas.ResetType{onType}, "power on (" + string(onType) + ")", nil
		}
	case power.OpOff:
		if !on {
			return nil, "already off", nil
		}
		if has(schemas.ForceOffResetType) {
			return []schemas.ResetType{schemas.ForceOffResetType}, "power off (ForceOff)", nil
		}
	case power.OpSoft:
		if !on {
			return nil, "already off", nil
		}
		if has(schemas.GracefulShutdownResetType) {
			return []schemas.ResetType{schemas.GracefulShutdownResetType}, "soft shutdown (GracefulShutdown)", nil
		}
	case power.OpCycle, power.OpReset:
		if !on && haveOn {
			return []schemas.ResetType{onType}, "power was off: power on (" + string(onType) + ")", nil
		}
		// A cycle is PowerCycle, else ForceOff then On (a real power
		// cycle), else ForceRestart; a reset is ForceRestart, else
		// PowerCycle, else ForceOff then On.
		offOn := has(schemas.ForceOffResetType) && haveOn
		preferred, other := schemas.PowerCycleResetType, schemas.ForceRestartResetType
		if op == power.OpReset {
			preferred, other = other, preferred
		}
		if has(preferred) {
			return []schemas.ResetType{preferred}, fmt.Sprintf("%s requested (%s)", opWord(op), preferred), nil
		}
		if op == power.OpCycle && offOn {
			return []schemas.ResetType{schemas.ForceOffResetType, onType}, fmt.Sprintf("power cycle requested (ForceOff, then %s: the system offers no PowerCycle)", onType), nil
		}
		if has(other) {
			return []schemas.ResetType{other}, fmt.Sprintf("%s requested (%s: the system offers no %s)", opWord(op), other, preferred), nil
		}
		if offOn {
			return []schemas.ResetType{schemas.ForceOffResetType, onType}, fmt.Sprintf("%s requested (ForceOff, then %s: the system offers no %s)", opWord(op), onType, preferred), nil
		}
	}
	return nil, "", &unsupported{fmt.Sprintf("the system offers no Reset type for %s (it allows %s)", op, joinTypes(allowed))}
}

func opWord(op power.Op) string {
	if op == power.OpCycle {
		return "power cycle"
	}
	return "hard reset"
}

func joinTypes(rs []schemas.ResetType) string {
	if len(rs) == 0 {
		return "none"
	}
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// Power runs a power operation (see power.Backend). Power changes are
// mapped to the Reset types the system advertises: cycle is PowerCycle,
// else ForceRestart, else ForceOff then On; a node that is off is powered
// on. An asynchronous answer (202 and a task monitor) is polled until the
// task ends, within the deadline.
func (c *Client) Power(ctx context.Context, pt power.Target, op power.Op) (power.Outcome, error) {
	t := fromTarget(pt)
	if !op.PowerOp() {
		return power.Outcome{}, power.NewError(t.addr(), power.ErrUnsupported, "%s is not a power operation", op)
	}
	var out power.Outcome
	err := c.do(ctx, t, func(api *gofish.APIClient, path string) error {
		sys, err := schemas.GetComputerSystem(api, path)
		if err != nil {
			return err
		}
		on := powerWord(sys.PowerState) == "on"
		if op == power.OpStatus {
			out = power.Outcome{Power: powerWord(sys.PowerState), Detail: "power " + string(sys.PowerState)}
			if out.Power == "" {
				return &refusal{fmt.Sprintf("the system's PowerState is %q", sys.PowerState)}
			}
			return nil
		}
		steps, detail, err := plan(op, resetTypes(sys), on)
		if err != nil {
			return err
		}
		for i, rt := range steps {
			if i > 0 {
				// ForceOff, then On: wait until the system reads off.
				if err := waitPower(ctx, api, path, "off"); err != nil {
					return err
				}
			}
			task, err := sys.Reset(rt)
			if err != nil && len(steps) == 1 && status(err) == http.StatusConflict {
				// iDRAC answers On when on (ForceOff when off) with 409: a
				// race with another caller. Done if the power reads as wanted.
				if now, rerr := schemas.GetComputerSystem(api, path); rerr == nil && powerWord(now.PowerState) == goal(op) {
					out.Detail = "already " + goal(op)
					out.Power = goal(op)
					return nil
				}
			}
			if err != nil {
				return err
			}
			if err := waitTask(ctx, api, task); err != nil {
				return err
			}
		}
		out.Detail = detail
		switch op {
		case power.OpOn, power.OpCycle, power.OpReset:
			out.Power = "on"
		case power.OpOff, power.OpSoft:
			if op == power.OpOff {
				out.Power = "off"
			}
		}
		return nil
	})
	if err != nil {
		return power.Outcome{}, err
	}
	return out, nil
}

// goal is the power state op leaves a system in ("" for reset and cycle:
// not a state to be in already).
func goal(op power.Op) string {
	switch op {
	case power.OpOn:
		return "on"
	case power.OpOff, power.OpSoft:
		return "off"
	}
	return ""
}

// waitPower polls the system until its power reads want, within ctx.
func waitPower(ctx context.Context, api *gofish.APIClient, path, want string) error {
	for {
		sys, err := schemas.GetComputerSystem(api, path)
		if err != nil {
			return err
		}
		if powerWord(sys.PowerState) == want {
			return nil
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return &taskTimeout{monitor: path + " PowerState", state: string(sys.PowerState)}
		}
	}
}

// pollEvery is the task monitor poll interval when the BMC names none, and
// the most a Retry-After is honoured within a call (the deadline bounds
// it anyway).
const pollEvery = 200 * time.Millisecond

// waitTask polls a task monitor (the Location of a 202 answer) until the
// task ends, within ctx: 202 means still running; any other success is the
// end, a Task with TaskState Exception, Killed or Cancelled a failure.
func waitTask(ctx context.Context, api *gofish.APIClient, task *schemas.TaskMonitorInfo) error {
	if task == nil || task.TaskMonitor == "" {
		return nil
	}
	monitor := task.TaskMonitor
	if u, err := url.Parse(monitor); err == nil && u.IsAbs() {
		monitor = u.RequestURI() // gofish puts the endpoint in front
	}
	state := "running"
	wait := time.Until(task.RetryAfter)
	for {
		if wait <= 0 || wait > time.Second {
			wait = pollEvery
		}
		if err := sleep(ctx, wait); err != nil {
			return &taskTimeout{monitor: task.TaskMonitor, state: state}
		}
		resp, err := api.Get(monitor)
		if err != nil {
			if ctx.Err() != nil {
				return &taskTimeout{monitor: task.TaskMonitor, state: state}
			}
			return err
		}
		var t struct {
			TaskState string
			Messages  []struct{ Message string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&t)
		resp.Body.Close()
		if t.TaskState != "" {
			state = t.TaskState
		}
		if resp.StatusCode != http.StatusAccepted {
			switch t.TaskState {
			case "Exception", "Killed", "Cancelled", "Interrupted":
				msg := t.TaskState
				for _, m := range t.Messages {
					msg += ": " + m.Message
				}
				return &refusal{"task " + task.TaskMonitor + " failed: " + msg}
			}
			return nil
		}
		wait = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
}

// bootTarget is the Redfish BootSourceOverrideTarget for a boot device.
func bootTarget(dev power.BootDevice) schemas.BootSource {
	if dev.Kind == power.BootHTTP {
		return schemas.UefiHTTPBootSource
	}
	return schemas.PxeBootSource
}

// BootOnce sets the next boot, once, to PXE (BootSourceOverrideMode UEFI or
// Legacy by the node's arch) or to UEFI HTTP boot from dev.URL (the node's
// boot URL when empty) where the system offers UefiHttp, then reads it back:
// a system that did not keep it is an ErrRefused error. With
// bmc.redfish.http_boot a PXE boot of a UEFI node is UEFI HTTP boot from
// the node's boot URL.
func (c *Client) BootOnce(ctx context.Context, pt power.Target, dev power.BootDevice) (power.Outcome, error) {
	t := fromTarget(pt)
	if dev.Kind == power.BootPXE && t.opts.HTTPBoot {
		if !dev.EFI {
			return power.Outcome{}, power.NewError(t.addr(), power.ErrUnsupported,
				"UEFI HTTP boot (bmc.redfish.http_boot) needs a UEFI node and node %s is not one (arch: uefi)", t.node)
		}
		dev = power.BootDevice{Kind: power.BootHTTP, EFI: true}
	}
	if dev.Kind == power.BootHTTP && dev.URL == "" {
		dev.URL = t.bootURL
	}
	if dev.Kind != power.BootPXE && dev.Kind != power.BootHTTP {
		return power.Outcome{}, power.NewError(t.addr(), power.ErrUnsupported, "boot device %q is not supported", dev.Kind)
	}
	if dev.Kind == power.BootHTTP && dev.URL == "" {
		return power.Outcome{}, power.NewError(t.addr(), power.ErrUnsupported, "HTTP boot needs a boot URL and node %s has none", t.node)
	}
	var out power.Outcome
	err := c.do(ctx, t, func(api *gofish.APIClient, path string) error {
		sys, err := schemas.GetComputerSystem(api, path)
		if err != nil {
			return err
		}
		want := bootTarget(dev)
		if allowed := sys.Boot.AllowableBootSourceOverrideTargetValues; len(allowed) > 0 && !slices.Contains(allowed, want) {
			return &unsupported{fmt.Sprintf("the system offers no boot override to %s (it allows %s)", want, joinSources(allowed))}
		}
		mode := schemas.LegacyBootSourceOverrideMode
		if dev.EFI || dev.Kind == power.BootHTTP {
			mode = schemas.UEFIBootSourceOverrideMode
		}
		boot := map[string]any{
			"BootSourceOverrideEnabled": schemas.OnceBootSourceOverrideEnabled,
			"BootSourceOverrideTarget":  want,
		}
		// Only where the system has the property: some BMCs refuse a PATCH
		// naming one they do not implement.
		setMode := sys.Boot.BootSourceOverrideMode != ""
		if setMode {
			boot["BootSourceOverrideMode"] = mode
		}
		if dev.Kind == power.BootHTTP {
			boot["HttpBootUri"] = dev.URL
		}
		resp, err := api.Patch(path, map[string]any{"Boot": boot})
		if err != nil {
			return err
		}
		task := schemas.ParseTaskMonitorInfo(api, resp)
		accepted := resp.StatusCode == http.StatusAccepted
		resp.Body.Close()
		if accepted {
			if err := waitTask(ctx, api, task); err != nil {
				return err
			}
		}
		got, err := schemas.GetComputerSystem(api, path)
		if err != nil {
			return err
		}
		b := got.Boot
		var bad []string
		if b.BootSourceOverrideTarget != want {
			bad = append(bad, fmt.Sprintf("target %q (want %s)", b.BootSourceOverrideTarget, want))
		}
		if b.BootSourceOverrideEnabled != schemas.OnceBootSourceOverrideEnabled {
			bad = append(bad, fmt.Sprintf("enabled %q (want Once)", b.BootSourceOverrideEnabled))
		}
		if setMode && b.BootSourceOverrideMode != mode {
			bad = append(bad, fmt.Sprintf("mode %q (want %s)", b.BootSourceOverrideMode, mode))
		}
		if dev.Kind == power.BootHTTP && b.HTTPBootURI != dev.URL {
			bad = append(bad, fmt.Sprintf("HttpBootUri %q (want %s)", b.HTTPBootURI, dev.URL))
		}
		if len(bad) > 0 {
			return &refusal{"boot override not kept: read back " + strings.Join(bad, ", ")}
		}
		out = power.Outcome{Power: powerWord(got.PowerState), Detail: bootWords(b)}
		return nil
	})
	if err != nil {
		return power.Outcome{}, err
	}
	return out, nil
}

func joinSources(bs []schemas.BootSource) string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = string(b)
	}
	return strings.Join(s, ", ")
}

// bootWords describes a Boot setting for people ("next boot Pxe, Once, UEFI").
func bootWords(b schemas.Boot) string {
	s := fmt.Sprintf("next boot %s, %s", orNone(string(b.BootSourceOverrideTarget)), orNone(string(b.BootSourceOverrideEnabled)))
	if b.BootSourceOverrideMode != "" {
		s += ", " + string(b.BootSourceOverrideMode)
	}
	if b.HTTPBootURI != "" {
		s += ", " + b.HTTPBootURI
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "None"
	}
	return s
}

// Facts reads the system's manufacturer, model, serial number, BIOS version,
// power state and boot override, and the MACs of its EthernetInterfaces.
// It fails only when the system cannot be read; the interfaces are
// optional (Facts.Unread["macs"]).
func (c *Client) Facts(ctx context.Context, pt power.Target) (power.Facts, error) {
	t := fromTarget(pt)
	var f power.Facts
	err := c.do(ctx, t, func(api *gofish.APIClient, path string) error {
		sys, err := schemas.GetComputerSystem(api, path)
		if err != nil {
			return err
		}
		f = power.Facts{
			Manufacturer: sys.Manufacturer,
			Model:        sys.Model,
			Serial:       sys.SerialNumber,
			Firmware:     sys.BiosVersion,
			Power:        powerWord(sys.PowerState),
			Boot:         bootWords(sys.Boot),
		}
		f.Device = strings.TrimSpace(fmt.Sprintf("Redfish system %s: %s %s, serial %s, BIOS %s", path, sys.Manufacturer, sys.Model, orNone(sys.SerialNumber), orNone(sys.BiosVersion)))
		nics, err := sys.EthernetInterfaces()
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			f.Unread = map[string]error{"macs": classify(err, t, ctx, c.opts.CallTimeout, "")}
			return nil
		}
		for _, n := range nics {
			mac := n.MACAddress
			if mac == "" {
				mac = n.PermanentMACAddress
			}
			if mac = strings.ToLower(mac); mac != "" && !slices.Contains(f.MACs, mac) {
				f.MACs = append(f.MACs, mac)
			}
		}
		slices.Sort(f.MACs)
		if len(f.MACs) > 0 {
			f.Device += ", NICs " + strings.Join(f.MACs, " ")
		}
		return nil
	})
	if err != nil {
		return power.Facts{}, err
	}
	return f, nil
}

// ConsoleAlternative names the way to the node's console that a Redfish BMC
// offers instead of a serial console of its own: its IPMI serial-over-LAN
// (power.ConsoleAlternative).
func (c *Client) ConsoleAlternative(pt power.Target) string {
	t := fromTarget(pt)
	if t.opts.IPMISOL {
		return fmt.Sprintf("this BMC also speaks IPMI (bmc.redfish.ipmi_sol): reach the console over IPMI serial-over-LAN with bmc.protocol: ipmi on %s", t.host)
	}
	return "Redfish offers none; a BMC that also speaks IPMI gives serial-over-LAN with bmc.protocol: ipmi"
}
