package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/lab/kexeclab"
	"github.com/netbootui/netbootui/internal/lab/labbuild"
	"github.com/netbootui/netbootui/internal/power"
)

// TestRebootCleanKexecQEMU is reboot-clean by kexec for real: a TCG QEMU
// node (SeaBIOS and iPXE printing to its serial console too) boots the
// default recipe with the node agent in its initramfs, over PXE, powered on
// through its ipmi_sim BMC. Dirtied through the console, it is cleaned by
// kexec (the default path, its agent polling): the timeline shows the kexec
// stage, it checks in with the assigned generation, its overlay is back
// under the threshold, the marker is gone, and the console the daemon
// captured shows the new kernel booting without a firmware banner. With
// its agent killed, the same reboot-clean power-cycles it (the console then
// shows SeaBIOS). Last, with the generation's kernel on the head no longer
// matching its manifest, the agent refuses it (sha256) and the daemon falls
// back to the power cycle.
func TestRebootCleanKexecQEMU(t *testing.T) {
	lab.RequireTools(t, "qemu-system-x86_64", "ipmi_sim", "mksquashfs")
	t.Parallel()
	files := labbuild.AgentGeneration(t)
	dir := t.TempDir()
	vmDir, err := os.MkdirTemp("", "nbkx-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(vmDir)
	mac := lab.MAC(46)
	inv, err := kexeclab.WriteInventory(dir, mac, 623)
	if err != nil {
		t.Fatal(err)
	}
	// Bounds for a TCG guest on a loaded 2-core machine (the product's
	// 2 min stall and 3 min kexec bounds are for real hardware): see the
	// reboot-clean below. They cost nothing when the node is fast.
	env := daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{InventoryPath: inv, StallTimeout: 10 * time.Minute,
		Power: power.Config{CallTimeout: 10 * time.Second}, Logger: testLogger(t)}})
	defer env.Stop()
	d := env.D
	l, err := kexeclab.Start(d, kexeclab.Options{Dir: dir, VMDir: vmDir, MAC: mac, Files: files, FirmwareConsole: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, l.Diagnostics())
		}
	}
	start := time.Now()
	step("power on", l.PowerOn(ctx))
	_, err = l.Booted(ctx, true)
	step("first boot", err)
	t.Logf("booted with the agent polling after %v", time.Since(start).Round(100*time.Millisecond))

	// 1. Dirty, then reboot-clean (auto): kexec.
	step("dirty", l.Dirty(ctx))
	mark, err := l.Mark(ctx, "kexec")
	step("mark", err)
	rstart := time.Now()
	var steps []string
	// KexecTimeout: the kexec'd boot (kernel, init, DHCP, root, check-in)
	// needs 11-17 s of the node's CPU under TCG, which a 2-core machine at
	// load 15-34 handed out over 20 s to 2 min; at a CI replica's load of
	// up to 50 (4% of a core each) that is 4-7 min, past the default 3 min:
	// the daemon fell back to power before the new kernel had fetched its
	// root (the one CI failure). Starving the node's QEMU (renice 19) gives the same
	// "no check-in within ...: in stage initrd" with the kernel still
	// printing its early boot; a hang would show in the serial log below.
	res, err := d.RebootClean(ctx, RebootRequest{Selection: kexeclab.Node, Timeout: 10 * time.Minute, KexecTimeout: 10 * time.Minute,
		Who: "kexec-test"}, func(p RebootProgress) { steps = append(steps, string(p.Step)+"/"+string(p.Stage)) })
	step("reboot-clean", err)
	// The node's serial port from the kexec on, as QEMU logged it (the
	// new kernel's early output included: earlyprintk on its command line).
	serial := l.SerialAfter(mark)
	if r := res[0]; !r.OK || r.Via != "kexec" || r.Why != "agent polling" || r.Generation != l.Gen {
		t.Fatalf("reboot-clean by kexec: %+v\nsteps %v\n%s\nserial port from the kexec on:\n%s", r, steps, l.Diagnostics(),
			lab.Tail(serial, 600))
	}
	t.Logf("clean by kexec in %v; steps %v", time.Since(rstart).Round(100*time.Millisecond), steps)
	t.Logf("serial port from the kexec on (last 600 lines):\n%s", lab.Tail(serial, 600))
	// The old kernel went through its reboot path (devices shut down,
	// then this line), and the new one printed from its first line on.
	if !strings.Contains(serial, "kexec_core: Starting new kernel") || !strings.Contains(serial, "Linux version") {
		t.Errorf("the serial log after the kexec lacks the old kernel's last line or the new one's first:\n%s", lab.Tail(serial, 60))
	}
	st, _ := d.NodeState(kexeclab.Node)
	if got := stagesSince(st); len(got) == 0 || got[0] != bootstate.StageKexec || got[len(got)-1] != bootstate.StageBooted ||
		!slices.Contains(got, bootstate.StageRootfs) {
		t.Errorf("timeline after the kexec: %v", got)
	}
	if st.Generation != l.Gen || st.OverlayBytes >= kexeclab.OverlayDirtyBytes {
		t.Errorf("after the kexec: generation %s, overlay %d bytes", st.Generation, st.OverlayBytes)
	}
	if v, _ := d.Node(kexeclab.Node); v.Dirty {
		t.Errorf("dirty after the kexec: %v", v.DirtyReasons)
	}
	console := l.ConsoleAfter(mark)
	if !strings.Contains(console, "Linux version") || !strings.Contains(console, "netbootui: rootfs up") {
		t.Errorf("the console after the kexec does not show the new kernel's boot:\n%s", lab.Tail(console, 40))
	}
	for _, banner := range []string{"SeaBIOS", "iPXE"} {
		if strings.Contains(console, banner) {
			t.Errorf("firmware banner %q in the console after the kexec:\n%s", banner, lab.Tail(console, 60))
		}
	}
	loaded := ""
	for _, ev := range d.History(kexeclab.Node, 300) {
		if ev.Kind == bootstate.KindPower && ev.Message == bootstate.ActionCycle && ev.Time.After(rstart) {
			t.Errorf("power cycle during the kexec reboot-clean: %+v", ev)
		}
		if ev.Time.After(rstart) && strings.Contains(ev.Message, "verified and loaded") {
			loaded = ev.Message
		}
	}
	// The built-in initramfs has no kexec-tools: u-root's kexec_file_load.
	if !strings.Contains(loaded, "loaded with kexec_file_load (u-root)") {
		t.Errorf("the agent's load event %q does not name kexec_file_load", loaded)
	}
	marker, err := l.Marker(ctx)
	step("marker", err)
	if marker {
		t.Error("the marker survived the kexec")
	}

	// 2. The agent stopped: the same request power-cycles it.
	_, err = l.Booted(ctx, true)
	step("agent back after the kexec", err)
	step("stop the agent", l.StopAgent(ctx))
	step("dirty", l.Dirty(ctx))
	mark, err = l.Mark(ctx, "power")
	step("mark", err)
	rstart = time.Now()
	res, err = d.RebootClean(ctx, RebootRequest{Selection: kexeclab.Node, Timeout: 10 * time.Minute, Who: "kexec-test"}, nil)
	step("reboot-clean", err)
	if r := res[0]; !r.OK || r.Via != "power" || r.Why != "agent not polling" {
		t.Fatalf("reboot-clean with the agent stopped: %+v\n%s", r, l.Diagnostics())
	}
	t.Logf("clean by power in %v", time.Since(rstart).Round(100*time.Millisecond))
	if console := l.ConsoleAfter(mark); !strings.Contains(console, "SeaBIOS") {
		t.Errorf("no firmware banner in the console of the power cycle (the capture would miss one after a kexec too):\n%s",
			lab.Tail(console, 40))
	}
	if v, _ := d.Node(kexeclab.Node); v.Dirty {
		t.Errorf("dirty after the power cycle: %v", v.DirtyReasons)
	}

	// 3. A kernel that does not match the manifest: refused, power instead.
	// The last byte is in the kernel's appended signature, which a BIOS
	// boot does not read: the power cycle still boots it.
	_, err = l.Booted(ctx, true)
	step("agent back after the power cycle", err)
	kernels, _ := filepath.Glob(filepath.Join(env.DataDir, "images", "live", "generations", l.Gen, image.FileKernel))
	if len(kernels) != 1 {
		t.Fatalf("kernel of %s: %v", l.Gen, kernels)
	}
	os.Chmod(kernels[0], 0o644)
	b, err := os.ReadFile(kernels[0])
	step("read the kernel", err)
	b[len(b)-1] ^= 0xff
	step("corrupt the kernel", os.WriteFile(kernels[0], b, 0o644))
	rstart = time.Now()
	res, err = d.RebootClean(ctx, RebootRequest{Selection: kexeclab.Node, Timeout: 10 * time.Minute, Who: "kexec-test"}, nil)
	step("reboot-clean", err)
	if r := res[0]; !r.OK || r.Via != "power" || !strings.Contains(r.Why, "sha256") || !strings.HasSuffix(r.Why, "fell back to power") {
		t.Fatalf("reboot-clean with a corrupted kernel: %+v\n%s", r, l.Diagnostics())
	}
	t.Logf("corrupted kernel refused, clean by power in %v: %s", time.Since(rstart).Round(100*time.Millisecond), res[0].Why)
	var paths []string
	for _, e := range d.Audit(20) {
		if e.Action == "reboot-clean" {
			paths = append(paths, e.Paths...)
		}
	}
	if len(paths) != 3 || paths[0] != "kx: kexec (agent polling)" || paths[1] != "kx: power (agent not polling)" ||
		!strings.Contains(paths[2], "sha256") {
		t.Errorf("audit paths %q", paths)
	}
	t.Logf("end to end in %v", time.Since(start).Round(100*time.Millisecond))
}
