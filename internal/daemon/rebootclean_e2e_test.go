package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/demo/qemubmc"
	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
)

// e2eOverride is the node's iPXE entry: the rendered one plus the check-in
// agent's test hooks (netbootui.* words are refused in kernel_args): a
// check-in every 2 s and probe=present|absent for the marker file.
const e2eOverride = `#!ipxe
echo netbootui e2e: node {{.Name}} generation {{.Generation}}
kernel --name vmlinuz {{.KernelURL}} {{.Cmdline}} netbootui.checkin_interval=2 netbootui.probe=/netbootui-marker || goto failed
initrd --name initrd {{.InitrdURL}} || goto failed
boot || goto failed
:failed
sleep {{.RetrySeconds}}
chain --replace --autofree {{.ScriptURL}} || goto failed
`

// consoleFunc attaches to a node's serial console (daemon.Console, or a
// BMC's SOL directly): in goes to the node, its output to out, ready is
// called once it is active.
type consoleFunc func(ctx context.Context, in io.Reader, out io.Writer, ready func()) error

// consoleRun types cmd at the node's shell over SOL (attach) and returns
// the first match of re in what comes back.
func consoleRun(t *testing.T, attach consoleFunc, node, cmd string, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	var out lab.Buffer
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- attach(ctx, pr, &out, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("console %s: %v", node, err)
	}
	// Type the command again every few seconds until it answers: the
	// shell may still be starting, or the first bytes may meet a console
	// that is not connected yet.
	for {
		pw.Write([]byte("\r" + cmd + "\r"))
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) {
			if m := re.FindStringSubmatch(out.String()); m != nil {
				return m
			}
			select {
			case err := <-done:
				t.Fatalf("console %s ended: %v\n%s", node, err, out.String())
			case <-ctx.Done():
				t.Fatalf("console %s: no %v within %v; console said:\n%s", node, re, timeout, lab.Tail(out.String(), 30))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// TestRebootCleanEndToEnd is the headline action for real: ipmi_sim's
// chassis_control starts and stops a QEMU node (TCG) that PXE-boots the
// default-recipe generation from the daemon. Powered on over IPMI, it checks
// in; a marker file written through the serial console (SOL via ipmi_sim)
// makes its overlay dirty, which its check-in reports (probe=present).
// reboot-clean then sets PXE, cycles it over IPMI and follows the boot: the
// node comes back with its assigned generation, a small overlay, not
// dirty, probe=absent, and the marker is gone at the shell too; the daemon
// captured the boot's console output meanwhile.
func TestRebootCleanEndToEnd(t *testing.T) { rebootCleanE2E(t, false) }

// TestRebootCleanEndToEndRedfish is the same behind a (simulated) Redfish
// BMC: redfishsim's Reset and boot override run the same chassis program
// (qemubmc.Chassis), the daemon powers the node over Redfish (HTTPS, the
// BMC's CA from the inventory). Redfish has no serial console, so the
// marker is written through the same BMC's IPMI serial-over-LAN, as an
// admin would (the daemon's console error names it).
func TestRebootCleanEndToEndRedfish(t *testing.T) { rebootCleanE2E(t, true) }

func rebootCleanE2E(t *testing.T, viaRedfish bool) {
	lab.RequireTools(t, "qemu-system-x86_64", "ipmi_sim", "mksquashfs")
	t.Parallel()
	files := testImage(t)
	dir := t.TempDir()
	// The chassis script and QEMU's command line hold this path: keep it
	// short in /tmp.
	vmDir, err := os.MkdirTemp("", "nbe2e-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(vmDir)
	mac := lab.MAC(40)
	invPath := filepath.Join(dir, "nodes.yaml")
	var bmcLine func(port int) string
	writeInv := func(bmcPort int) {
		var ov strings.Builder
		for _, l := range strings.Split(strings.TrimRight(e2eOverride, "\n"), "\n") {
			ov.WriteString("        " + l + "\n")
		}
		inv := fmt.Sprintf(`settings:
  secrets: secrets.yaml
  overlay_dirty_bytes: 262144
images:
  live:
    kernel_args: "console=ttyS0 panic=-1"
nodes:
  - name: e2e
    image: live
    nics: [{mac: %q}]
    %s
    boot_override:
      ipxe: |
%s`, mac, bmcLine(bmcPort), ov.String())
		if err := os.WriteFile(invPath, []byte(inv), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bmcLine = func(port int) string {
		if viaRedfish {
			return fmt.Sprintf("bmc: {protocol: redfish, host: 127.0.0.1, port: %d, user: root, password: lab, redfish: {system: /redfish/v1/Systems/System.Embedded.1, ca: bmc-ca.pem, ipmi_sol: true}}", port)
		}
		return fmt.Sprintf("bmc: {host: 127.0.0.1, port: %d, user: admin, password: lab, cipher_suites: [3]}", port)
	}
	writeInv(623)
	os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("bmc_passwords:\n  lab: "+rebootPassword+"\n"), 0o600)
	env := daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{InventoryPath: invPath,
		StallTimeout: 2 * time.Minute, Power: power.Config{CallTimeout: 10 * time.Second}, Logger: testLogger(t)},
		Before: func(d *Daemon) error {
			_, port, _ := net.SplitHostPort(d.HTTPAddr().String())
			d.SetAdvertiseURL("http://10.0.2.2:" + port)
			return nil
		}})
	defer env.Stop()
	d, httpPort := env.D, env.HTTPPort()
	m, err := d.ImportImage(ImportRequest{Image: "live", Kernel: files["vmlinuz"], Initrd: files["initrd"], Rootfs: files["rootfs.squashfs"], Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	gen := m.ID

	// ipmi_sim's chassis_control starts and stops a TCG QEMU node that
	// network-boots from the daemon (qemubmc).
	sim, err := qemubmc.Start(qemubmc.Options{Dir: vmDir, Name: "e2e", MAC: mac, Password: rebootPassword,
		BootURL: "http://10.0.2.2:" + httpPort + "/boot/" + mac + ".ipxe"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop() // ipmi_sim, then QEMU by its pid file
	attach := func(ctx context.Context, in io.Reader, out io.Writer, ready func()) error {
		return d.Console(ctx, "e2e", "e2e-test", in, out, ready)
	}
	if viaRedfish {
		rf := startE2ERedfish(t, dir, sim)
		writeInv(rf.Port())
		attach = ipmiSOL(t, sim.Port())
	} else {
		writeInv(sim.Port())
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	chassisLog := sim.ChassisLog
	serial := func() string { l, _ := d.SOLLog("e2e", 40); return strings.Join(l.Lines, "\n") }

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// 1. Power on over IPMI: ipmi_sim runs chassis_control, which starts QEMU.
	res, err := d.Power(ctx, PowerRequest{Selection: "e2e", Op: "on"}, nil)
	if err != nil || len(res) != 1 || res[0].Error != "" {
		t.Fatalf("power on: %v %+v\nchassis:\n%s", err, res, chassisLog())
	}
	first := waitCheckin(t, d, "e2e", 150*time.Second, func(st bootstate.NodeState) bool {
		return st.Stage == bootstate.StageBooted && st.Generation == gen
	}, chassisLog)
	t.Logf("first boot checked in after %v (overlay %d bytes)", time.Since(start).Round(100*time.Millisecond), first.OverlayBytes)

	// 2. Dirty it through the serial console: 512 KiB marker in the overlay.
	consoleRun(t, attach, "e2e", `dd if=/dev/urandom of=/netbootui-marker bs=64k count=8 2>/dev/null; sync; echo MARK""ER=$(test -e /netbootui-marker && echo yes || echo no)`,
		regexp.MustCompile(`MARKER=(yes|no)`), 60*time.Second)
	dirty := waitCheckin(t, d, "e2e", 30*time.Second, func(st bootstate.NodeState) bool {
		return st.OverlayBytes >= 512<<10
	}, chassisLog)
	if v, _ := d.Node("e2e"); !v.Dirty {
		t.Fatalf("overlay %d bytes but the node is not dirty: %+v", dirty.OverlayBytes, v)
	}
	if got := lastProbe(d, "e2e"); got != "present" {
		t.Errorf("check-in probe = %q after writing the marker, want present", got)
	}
	bootID := lastCheckin(d, "e2e").Message
	t.Logf("dirty after %v: overlay %d bytes", time.Since(start).Round(100*time.Millisecond), dirty.OverlayBytes)

	// 3. reboot-clean.
	before, _ := d.SOLLog("e2e", 1)
	var steps []string
	rstart := time.Now()
	results, err := d.RebootClean(ctx, RebootRequest{Selection: "e2e", Timeout: 150 * time.Second, Who: "e2e-test"},
		func(p RebootProgress) { steps = append(steps, fmt.Sprintf("%s/%s", p.Step, p.Stage)) })
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || !results[0].OK || results[0].Generation != gen {
		t.Fatalf("reboot-clean: %+v\nsteps %v\nchassis:\n%s\nserial:\n%s", results, steps, chassisLog(), serial())
	}
	t.Logf("reboot-clean took %v; steps %v", time.Since(rstart).Round(100*time.Millisecond), steps)
	st, _ := d.NodeState("e2e")
	if ev := lastCheckin(d, "e2e"); st.Generation != gen || st.Stage != bootstate.StageBooted || ev.Message == bootID {
		t.Errorf("after reboot-clean: stage %s generation %s, check-in %q (before: %q)", st.Stage, st.Generation, ev.Message, bootID)
	}
	if st.OverlayBytes >= 262144 {
		t.Errorf("overlay %d bytes after reboot-clean", st.OverlayBytes)
	}
	if v, _ := d.Node("e2e"); v.Dirty {
		t.Errorf("node dirty after reboot-clean: %v", v.DirtyReasons)
	}
	if got := lastProbe(d, "e2e"); got != "absent" {
		t.Errorf("check-in probe = %q after reboot-clean, want absent", got)
	}
	cl := chassisLog()
	if !strings.Contains(cl, "set boot pxe") || !strings.Contains(cl, "set power 0") {
		t.Errorf("chassis_control did not see bootdev pxe and a power cycle:\n%s", cl)
	}
	// The boot's console was captured: the live init's lines are only
	// printed during a boot, and no console was attached then.
	after, _ := d.SOLLog("e2e", 1000)
	if viaRedfish {
		// No console to capture: the daemon says so and names IPMI SOL.
		err := d.Console(ctx, "e2e", "e2e-test", strings.NewReader(""), io.Discard, func() { t.Error("ready called") })
		if !errors.Is(err, power.ErrNoConsole) || !strings.Contains(err.Error(), "IPMI serial-over-LAN") {
			t.Errorf("console on a Redfish node: %v", err)
		}
	} else if after.Total <= before.Total || !strings.Contains(strings.Join(after.Lines, "\n"), "netbootui: rootfs up") {
		t.Errorf("boot console not captured during reboot-clean (%d bytes before, %d after):\n%s", before.Total, after.Total,
			strings.Join(after.Lines, "\n"))
	}
	// 4. The marker is gone at the shell too.
	if m := consoleRun(t, attach, "e2e", `echo MARK""ER=$(test -e /netbootui-marker && echo yes || echo no)`,
		regexp.MustCompile(`MARKER=(yes|no)`), 60*time.Second); m[1] != "no" {
		t.Errorf("marker still there after reboot-clean")
	}
	t.Logf("end to end in %v; console log:\n%s", time.Since(start).Round(100*time.Millisecond), serial())
}

// lastCheckin is the node's newest check-in event.
func lastCheckin(d *Daemon, node string) bootstate.Event {
	evs := d.History(node, 200)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == bootstate.KindCheckin {
			return evs[i]
		}
	}
	return bootstate.Event{}
}

// lastProbe is probe=VALUE of the node's newest check-in ("" when none).
func lastProbe(d *Daemon, node string) string {
	_, v, _ := strings.Cut(lastCheckin(d, node).Message, " probe=")
	return v
}

// waitCheckin polls the tracker until ok(state) after a check-in.
func waitCheckin(t *testing.T, d *Daemon, node string, timeout time.Duration, ok func(bootstate.NodeState) bool, chassis func() string) bootstate.NodeState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if st, found := d.NodeState(node); found && ok(st) {
			return st
		}
		time.Sleep(200 * time.Millisecond)
	}
	st, _ := d.NodeState(node)
	var evs []string
	for _, ev := range d.History(node, 30) {
		evs = append(evs, fmt.Sprintf("%s %s %s %s %s", ev.Kind, ev.Stage, ev.Path, ev.Message, ev.Error))
	}
	l, _ := d.SOLLog(node, 40)
	t.Fatalf("%s: condition not met in %v: %+v\nevents:\n%s\nchassis:\n%s\nconsole:\n%s", node, timeout, st,
		strings.Join(evs, "\n"), chassis(), strings.Join(l.Lines, "\n"))
	return st
}

// startE2ERedfish starts a simulated Redfish BMC (iDRAC shapes) whose
// system is sim's QEMU node, its CA in dir/bmc-ca.pem.
func startE2ERedfish(t *testing.T, dir string, sim *qemubmc.Node) *redfishsim.Sim {
	t.Helper()
	rf, err := redfishsim.Start(redfishsim.Options{Vendor: redfishsim.Dell, Password: rebootPassword, Machines: []redfishsim.Machine{sim.Chassis()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rf.Close() })
	if err := rf.CA().WriteFile(filepath.Join(dir, "bmc-ca.pem")); err != nil {
		t.Fatal(err)
	}
	return rf
}

// ipmiSOL attaches to the serial console of the ipmi_sim BMC on port
// directly (not through the daemon).
func ipmiSOL(t *testing.T, port int) consoleFunc {
	pool := ipmi.New(ipmi.Options{CallTimeout: 10 * time.Second})
	t.Cleanup(func() { _ = pool.Close() })
	tg := power.Target{Node: "e2e", Protocol: ipmi.Name, Host: "127.0.0.1", Port: port, User: "admin",
		Password: power.NewSecret(rebootPassword), Options: ipmi.BMCOptions{CipherSuites: []int{3}}}
	return func(ctx context.Context, in io.Reader, out io.Writer, ready func()) error {
		return pool.Console(ctx, tg, in, out, power.ConsoleOptions{OnActive: ready})
	}
}
