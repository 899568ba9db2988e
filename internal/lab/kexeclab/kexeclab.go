// Package kexeclab runs one TCG QEMU node behind an ipmi_sim BMC (package
// qemubmc) that network-boots, from a daemon on loopback, a generation
// whose initramfs carries the node agent, and drives what reboot-clean by
// kexec is tested and measured with: booting it, dirtying its overlay and
// stopping its agent through the serial console, reading the console a
// reboot-clean captured. The kexec end-to-end test (internal/daemon) and
// bench/kexec use it. Test support: the product never imports it.
package kexeclab

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/demo/qemubmc"
	"github.com/netbootui/netbootui/internal/lab"
)

// Node is the lab node's name.
const Node = "kx"

// password is the BMC's (the lab's own loopback BMC).
const password = "Kx3c-lab-bmc"

// OverlayDirtyBytes is the inventory's overlay_dirty_bytes: Dirty writes
// twice as much.
const OverlayDirtyBytes = 256 << 10

// WriteInventory writes dir/nodes.yaml and dir/secrets.yaml for the node
// with MAC mac and its BMC on bmcPort (any port before the BMC runs).
// Its first boot checks in every 2 s (an iPXE override); a boot by kexec
// gets the daemon's command line (every 30 s, and at once at start).
func WriteInventory(dir, mac string, bmcPort int) (string, error) {
	inv := fmt.Sprintf(`settings:
  secrets: secrets.yaml
  overlay_dirty_bytes: %d
images:
  live:
    kernel_args: "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1"
nodes:
  - name: %s
    image: live
    nics: [{mac: %q}]
    bmc: {host: 127.0.0.1, port: %d, user: admin, password: lab, cipher_suites: [3]}
    boot_override:
      ipxe: |
        #!ipxe
        kernel --name vmlinuz {{.KernelURL}} {{.Cmdline}} netbootui.checkin_interval=2 || goto failed
        initrd --name initrd {{.InitrdURL}} || goto failed
        boot || goto failed
        :failed
        sleep {{.RetrySeconds}}
        chain --replace --autofree {{.ScriptURL}} || goto failed
`, OverlayDirtyBytes, Node, mac, bmcPort)
	p := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(p, []byte(inv), 0o644); err != nil {
		return "", err
	}
	return p, os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("bmc_passwords:\n  lab: "+password+"\n"), 0o600)
}

// Options describe the lab's node.
type Options struct {
	// Dir is the daemon's folder (its inventory, WriteInventory's).
	Dir string
	// VMDir is the node's folder (short and plain: it goes into a shell
	// script and QEMU's command line).
	VMDir string
	MAC   string
	// Files are the generation's boot files (labbuild.AgentGeneration).
	Files map[string]string
	// Memory in MiB (default 512: the old system holds the new kernel and
	// initrd while it loads them).
	Memory          int
	FirmwareConsole bool          // qemubmc.Options.FirmwareConsole
	BootMenu        time.Duration // qemubmc.Options.BootMenu
}

// Lab is the running node and the daemon it boots from.
type Lab struct {
	D   *daemon.Daemon
	Gen string
	VM  *qemubmc.Node
	inv string
	dir string
	mac string
}

// Start imports the generation into d (published), points d's advertised
// URL at the guests' view of loopback (10.0.2.2), starts the node's BMC
// (the VM stays off) and the inventory at it.
func Start(d *daemon.Daemon, o Options) (*Lab, error) {
	m, err := d.ImportImage(daemon.ImportRequest{Image: "live", Kernel: o.Files["vmlinuz"], Initrd: o.Files["initrd"],
		Rootfs: o.Files["rootfs.squashfs"], Publish: true})
	if err != nil {
		return nil, err
	}
	_, port, err := net.SplitHostPort(d.HTTPAddr().String())
	if err != nil {
		return nil, err
	}
	d.SetAdvertiseURL("http://10.0.2.2:" + port)
	vm, err := qemubmc.Start(qemubmc.Options{Dir: o.VMDir, Name: Node, MAC: o.MAC, Password: password, Memory: o.Memory,
		BootURL: "http://10.0.2.2:" + port + "/boot/" + o.MAC + ".ipxe", FirmwareConsole: o.FirmwareConsole, BootMenu: o.BootMenu})
	if err != nil {
		return nil, err
	}
	l := &Lab{D: d, Gen: m.ID, VM: vm, dir: o.Dir, mac: o.MAC}
	if _, err := WriteInventory(o.Dir, o.MAC, vm.Port()); err != nil {
		vm.Stop()
		return nil, err
	}
	if err := d.Reload(); err != nil {
		vm.Stop()
		return nil, err
	}
	return l, nil
}

// Close stops the BMC and the VM.
func (l *Lab) Close() error { return l.VM.Stop() }

// PowerOn powers the node on over IPMI.
func (l *Lab) PowerOn(ctx context.Context) error {
	res, err := l.D.Power(ctx, daemon.PowerRequest{Selection: Node, Op: "on"}, nil)
	if err == nil && (len(res) != 1 || res[0].Error != "") {
		err = fmt.Errorf("power on: %+v", res)
	}
	return err
}

// WaitFor polls the node's state every 100 ms until ok says yes or ctx
// ends; the error then says what was awaited and where the node is.
func (l *Lab) WaitFor(ctx context.Context, what string, ok func(bootstate.NodeState) bool) (bootstate.NodeState, error) {
	for {
		st, _ := l.D.NodeState(Node)
		if ok(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("%s: not within the time given: stage %s, generation %s, overlay %d, agent polling %v\n%s",
				what, st.Stage, st.Generation, st.OverlayBytes, l.D.AgentAlive(Node), l.Diagnostics())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Booted waits until the node checked in with the lab's generation and,
// when agent is true, its agent polls.
func (l *Lab) Booted(ctx context.Context, agent bool) (bootstate.NodeState, error) {
	return l.WaitFor(ctx, "booted with the agent polling", func(st bootstate.NodeState) bool {
		return st.Stage == bootstate.StageBooted && st.Generation == l.Gen && (!agent || l.D.AgentAlive(Node))
	})
}

// Shell types cmd at the node's shell over its serial console (through the
// daemon's console) until re matches what comes back, and returns the
// match. The shell may still be starting: cmd is typed again every 4 s.
func (l *Lab) Shell(ctx context.Context, cmd string, re *regexp.Regexp) ([]string, error) {
	pr, pw := io.Pipe()
	defer pw.Close()
	var out lab.Buffer
	ready := make(chan struct{})
	done := make(chan error, 1)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { done <- l.D.Console(cctx, Node, "kexeclab", pr, &out, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		return nil, fmt.Errorf("console: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		go pw.Write([]byte("\r" + cmd + "\r"))
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) {
			if m := re.FindStringSubmatch(out.String()); m != nil {
				return m, nil
			}
			select {
			case err := <-done:
				return nil, fmt.Errorf("console ended: %v\n%s", err, lab.Tail(out.String(), 30))
			case <-ctx.Done():
				return nil, fmt.Errorf("console: no %v: %w; it said:\n%s", re, ctx.Err(), lab.Tail(out.String(), 30))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// markerRE matches Dirty's and Marker's answers.
var markerRE = regexp.MustCompile(`MARKER=(yes|no)`)

// Dirty writes 512 KiB to /netbootui-marker in the overlay, checks in at
// once (netbootui-checkin --once) and waits until the daemon sees the node
// dirty.
func (l *Lab) Dirty(ctx context.Context) error {
	if _, err := l.Shell(ctx, `dd if=/dev/urandom of=/netbootui-marker bs=64k count=8 2>/dev/null; sync; `+
		`/usr/sbin/netbootui-checkin --once; echo MARK""ER=$(test -e /netbootui-marker && echo yes || echo no)`, markerRE); err != nil {
		return err
	}
	_, err := l.WaitFor(ctx, "dirty", func(st bootstate.NodeState) bool { return st.OverlayBytes >= 2*OverlayDirtyBytes })
	return err
}

// Marker reports whether /netbootui-marker exists on the node.
func (l *Lab) Marker(ctx context.Context) (bool, error) {
	m, err := l.Shell(ctx, `echo MARK""ER=$(test -e /netbootui-marker && echo yes || echo no)`, markerRE)
	if err != nil {
		return false, err
	}
	return m[1] == "yes", nil
}

// StopAgent kills the node agent through the console and waits until the
// daemon no longer counts it alive.
func (l *Lab) StopAgent(ctx context.Context) error {
	if _, err := l.Shell(ctx, `kill $(cat /run/netbootui/agent.pid); sleep 1; echo AGENT""=$(pidof netbootui-agent || echo gone)`,
		regexp.MustCompile(`AGENT=gone`)); err != nil {
		return err
	}
	for l.D.AgentAlive(Node) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the agent still counts as alive: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// Mark prints a unique line on the node's console (through the shell) and
// returns it: ConsoleAfter(mark) is what the console showed after it.
func (l *Lab) Mark(ctx context.Context, name string) (string, error) {
	mark := fmt.Sprintf("KXMARK-%s-%d", name, time.Now().UnixNano())
	_, err := l.Shell(ctx, "echo "+mark[:6]+`""`+mark[6:]+"=done", regexp.MustCompile(regexp.QuoteMeta(mark)+"=done"))
	return mark, err
}

// ConsoleAfter returns what the daemon's capture of the node's console
// holds after the last line holding mark.
func (l *Lab) ConsoleAfter(mark string) string {
	log, _ := l.D.SOLLog(Node, 100000)
	text := strings.Join(log.Lines, "\n")
	if i := strings.LastIndex(text, mark); i >= 0 {
		return text[i+len(mark):]
	}
	return ""
}

// SerialAfter returns what the node wrote to its serial port after the
// last line holding mark, from QEMU's own log of the port (qemubmc's
// SerialLog): it holds what a console capture through the BMC can miss,
// e.g. a kexec'd kernel's early output.
func (l *Lab) SerialAfter(mark string) string {
	text := l.VM.SerialLog()
	if i := strings.LastIndex(text, mark); i >= 0 {
		return text[i+len(mark):]
	}
	return ""
}

// Diagnostics is the node's recent events, console and serial port, for a
// failure.
func (l *Lab) Diagnostics() string {
	var b strings.Builder
	for _, ev := range l.D.History(Node, 30) {
		fmt.Fprintf(&b, "%s %s %s %s %s %s\n", ev.Time.Format("15:04:05.000"), ev.Kind, ev.Stage, ev.Path, ev.Message, ev.Error)
	}
	log, _ := l.D.SOLLog(Node, 60)
	b.WriteString("console:\n" + strings.Join(log.Lines, "\n") + "\nchassis:\n" + l.VM.ChassisLog())
	b.WriteString("\nserial port (QEMU's log, last 150 lines):\n" + lab.Tail(l.VM.SerialLog(), 150))
	return b.String()
}
