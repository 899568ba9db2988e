// Package qemubmc runs a QEMU node (TCG) behind an ipmi_sim BMC of its own:
// the BMC's chassis_control program is a small shell script whose "power" is
// the QEMU process. Power on starts QEMU with -daemonize -pidfile, network
// booting (QEMU's iPXE ROM) from a DHCP boot file URL, its serial console a
// TCP line that the harness relays to ipmi_sim's serial-over-LAN, so that the
// BMC's console survives QEMU restarting at every power cycle; power
// off, soft shutdown and reset stop it by its pid file; "chassis bootdev" is
// recorded. `netbootui demo --lab` and the daemon's end-to-end test use it.
//
// Killing ipmi_sim leaves a daemonized QEMU running, so Node.Stop stops
// ipmi_sim first and then QEMU by its pid file, and finally any process
// still running from the node's folder (Procs).
package qemubmc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netbootui/netbootui/internal/ipmi/ipmisim"
)

// Options describe one node and its BMC.
type Options struct {
	// Dir holds the chassis program, QEMU's pid file and logs, and the
	// BMC's configuration (required; created when missing).
	Dir string
	// Name labels the QEMU process ("node" when empty).
	Name string
	// MAC of the node's virtio NIC (required).
	MAC string
	// BootURL is the DHCP boot file QEMU's user-mode network hands out,
	// e.g. http://10.0.2.2:PORT/boot/MAC.ipxe (10.0.2.2 is the host's
	// loopback as the guest sees it). Required.
	BootURL string
	// User and Password of the BMC's admin user (ipmisim's defaults when
	// empty). The BMC takes cipher suite 3.
	User, Password string
	// Memory of the VM in MiB (512 when 0).
	Memory int
	// SOLPort is the serial console's TCP port on 127.0.0.1 that ipmi_sim
	// connects to (0 picks a free one).
	SOLPort int
	// SerialPort is the TCP port on 127.0.0.1 QEMU's serial port connects
	// to (as a client that reconnects): the relay's other side. Start sets
	// it; WriteChassisControl needs it.
	SerialPort int
	// QEMU is the emulator ("qemu-system-x86_64" when empty).
	QEMU string
	// FirmwareConsole sends the firmware's screen to the serial port too
	// (SeaBIOS's serial console, fw_cfg etc/sercon-port): the BIOS's and
	// iPXE's banners show in the captured console, as a firmware POST does
	// on a real server's serial-over-LAN.
	FirmwareConsole bool
	// BootMenu makes SeaBIOS wait at its boot menu prompt this long on
	// every power-on (-boot menu=on,splash-time): a simulated long POST.
	// At most 65 s.
	BootMenu time.Duration
}

// Node is a running BMC whose chassis is a QEMU node (off until powered on
// over IPMI).
type Node struct {
	opts   Options
	sim    *ipmisim.Sim
	relay  *serialRelay
	cancel context.CancelFunc
}

// PidFile returns where QEMU writes its pid while powered on.
func (o Options) PidFile() string { return filepath.Join(o.Dir, "qemu.pid") }

func (o *Options) check() error {
	if o.Dir == "" {
		return errors.New("qemubmc: Options.Dir is required")
	}
	if o.Name == "" {
		o.Name = "node"
	}
	if o.Memory == 0 {
		o.Memory = 512
	}
	if o.QEMU == "" {
		o.QEMU = "qemu-system-x86_64"
	}
	if _, err := net.ParseMAC(o.MAC); err != nil {
		return fmt.Errorf("qemubmc: node %s: MAC %q: %w", o.Name, o.MAC, err)
	}
	u, err := url.Parse(o.BootURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "tftp") || u.Host == "" {
		return fmt.Errorf("qemubmc: node %s: boot URL %q: want http://HOST:PORT/PATH or tftp://HOST/PATH", o.Name, o.BootURL)
	}
	// Everything goes into a shell script between single quotes or into a
	// QEMU option list.
	for _, s := range []string{o.Dir, o.Name, o.BootURL, o.QEMU} {
		if strings.ContainsAny(s, "'\n,\\\"$` ") {
			return fmt.Errorf("qemubmc: node %s: %q holds a quote, comma, space, $ or newline", o.Name, s)
		}
	}
	if o.BootMenu < 0 || o.BootMenu > 65*time.Second {
		return fmt.Errorf("qemubmc: node %s: boot menu %v: want 0 to 65s", o.Name, o.BootMenu)
	}
	if o.Memory < 64 || o.Memory > 65536 {
		return fmt.Errorf("qemubmc: node %s: memory %d MiB: want 64..65536", o.Name, o.Memory)
	}
	return nil
}

// WriteChassisControl writes the chassis_control program for ipmi_sim to
// path (mode 0755, temp file and rename). ipmi_sim calls it as
// `PROG get power boot` and `PROG set power 1|0`, `set reset 1`,
// `set shutdown 1`, `set boot DEV`. Every call is logged in Dir/chassis.log,
// QEMU's output in Dir/qemu.log.
func WriteChassisControl(path string, o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	if o.SerialPort <= 0 || o.SerialPort > 65535 {
		return fmt.Errorf("qemubmc: node %s: serial port %d: want 1..65535", o.Name, o.SerialPort)
	}
	boot, fw := "n", ""
	if o.BootMenu > 0 {
		boot += ",menu=on,splash-time=" + strconv.FormatInt(o.BootMenu.Milliseconds(), 10)
	}
	if o.FirmwareConsole {
		// SeaBIOS reads the port as a little-endian integer: COM1, 0x3f8.
		port := filepath.Join(o.Dir, "sercon-port")
		if err := os.WriteFile(port, []byte{0xf8, 0x03}, 0o644); err != nil {
			return fmt.Errorf("qemubmc: %w", err)
		}
		fw = "-fw_cfg name=etc/sercon-port,file=" + port
	}
	script := strings.NewReplacer("@DIR@", o.Dir, "@NAME@", o.Name, "@QEMU@", o.QEMU, "@MEM@", strconv.Itoa(o.Memory),
		"@SERIALPORT@", strconv.Itoa(o.SerialPort), "@MAC@", o.MAC, "@URL@", o.BootURL, "@BOOT@", boot, "@FW@", fw).Replace(chassisScript)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("qemubmc: %w", err)
	}
	if _, err := f.WriteString(script); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("qemubmc: %w", err)
	}
	return nil
}

// chassisScript: "power" is the QEMU process named by the pid file.
const chassisScript = `#!/bin/sh
# chassis_control for ipmi_sim, written by netbootui's qemubmc package.
dir='@DIR@'
pidf="$dir/qemu.pid"
echo "$*" >> "$dir/chassis.log"
running() { [ -s "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }
start() {
	running && return 0
	rm -f "$pidf"
	'@QEMU@' -name '@NAME@' -accel tcg -m @MEM@ -smp 1 -nodefaults -no-user-config -display none \
		-chardev socket,id=ser0,host=127.0.0.1,port=@SERIALPORT@,reconnect=1,logfile="$dir/serial.log",logappend=on -serial chardev:ser0 \
		-netdev user,id=n0,bootfile='@URL@' -device virtio-net-pci,netdev=n0,mac=@MAC@ -boot @BOOT@ @FW@ \
		-daemonize -pidfile "$pidf" >> "$dir/qemu.log" 2>&1
}
stop() {
	running || { rm -f "$pidf"; return 0; }
	pid=$(cat "$pidf")
	kill "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	kill -9 "$pid" 2>/dev/null
	rm -f "$pidf"
}
cmd=$1
shift
case "$cmd" in
get)
	for w in "$@"; do
		case "$w" in
		power) if running; then echo power:1; else echo power:0; fi ;;
		boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)" ;;
		esac
	done
	;;
set)
	while [ $# -ge 2 ]; do
		case "$1" in
		power) if [ "$2" = 1 ]; then start; else stop; fi ;;
		reset) stop; start ;;
		shutdown) stop ;;
		boot) echo "$2" > "$dir/boot" ;;
		esac
		shift 2
	done
	;;
esac
`

// Start writes the chassis program into o.Dir and starts the node's
// ipmi_sim on a free UDP port of 127.0.0.1. The VM stays off until the BMC
// powers it on.
func Start(o Options) (*Node, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("qemubmc: %w", err)
	}
	relay, err := startRelay(o.SOLPort)
	if err != nil {
		return nil, fmt.Errorf("qemubmc: node %s: %w", o.Name, err)
	}
	o.SOLPort, o.SerialPort = relay.solPort(), relay.serialPort()
	prog := filepath.Join(o.Dir, "chassis_control")
	if err := WriteChassisControl(prog, o); err != nil {
		relay.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	sim, err := ipmisim.Start(ctx, ipmisim.Options{Dir: filepath.Join(o.Dir, "bmc"), User: o.User, Password: o.Password,
		ChassisControl: prog, SOLPort: o.SOLPort})
	if err != nil {
		cancel()
		relay.Close()
		return nil, fmt.Errorf("qemubmc: node %s: %w", o.Name, err)
	}
	return &Node{opts: o, sim: sim, relay: relay, cancel: cancel}, nil
}

// Options returns the node's options as Start completed them (SOLPort and
// SerialPort set): change a field and WriteChassisControl them to change
// the node's "hardware" for its next power on.
func (n *Node) Options() Options { return n.opts }

// Addr returns the BMC's address, 127.0.0.1:PORT (UDP).
func (n *Node) Addr() string { return n.sim.Addr() }

// Port returns the BMC's UDP port.
func (n *Node) Port() int { return n.sim.Port() }

// SOLPort returns the serial console's TCP port.
func (n *Node) SOLPort() int { return n.opts.SOLPort }

// Dir returns the node's folder.
func (n *Node) Dir() string { return n.opts.Dir }

// BMCPid returns ipmi_sim's process id.
func (n *Node) BMCPid() int { return n.sim.Pid() }

// QEMUPid returns the running QEMU's process id, or 0 when it is off.
func (n *Node) QEMUPid() int {
	pid := readPid(n.opts.PidFile())
	if pid > 1 && syscall.Kill(pid, 0) == nil {
		return pid
	}
	return 0
}

// SerialLog returns everything the node wrote to its serial port since
// its first power on, across power cycles and kexecs (QEMU's own log of the
// serial chardev, Dir/serial.log): unlike a console session or a capture
// through the BMC, it misses nothing while nobody is connected.
func (n *Node) SerialLog() string {
	b, _ := os.ReadFile(filepath.Join(n.opts.Dir, "serial.log"))
	return string(b)
}

// ChassisLog returns every call ipmi_sim made to the chassis program.
func (n *Node) ChassisLog() string {
	b, _ := os.ReadFile(filepath.Join(n.opts.Dir, "chassis.log"))
	return string(b)
}

// Stop kills ipmi_sim (and a chassis program it runs), then QEMU by its pid
// file (SIGTERM, SIGKILL after 3 s), then any process left whose command
// line names the node's folder or whose working folder is in it. It does
// not remove the folder. It is safe to call more than once.
func (n *Node) Stop() error {
	n.cancel()
	n.sim.Stop()
	defer n.relay.Close()
	var errs []error
	if pid := readPid(n.opts.PidFile()); pid > 1 {
		if err := stopPid(pid); err != nil {
			errs = append(errs, err)
		}
	}
	for _, pid := range Procs(n.opts.Dir) {
		if err := stopPid(pid); err != nil {
			errs = append(errs, err)
		}
	}
	if left := Procs(n.opts.Dir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("qemubmc: node %s: processes %v still run from %s", n.opts.Name, left, n.opts.Dir))
	}
	return errors.Join(errs...)
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// stopPid sends SIGTERM, waits up to 3 s for the process to go, then
// SIGKILLs it and waits up to 2 s more. A process that is not our child
// cannot be reaped: "gone" is kill(pid, 0) failing or a zombie state.
func stopPid(pid int) error {
	if pid <= 1 || pid == os.Getpid() {
		return nil
	}
	if syscall.Kill(pid, syscall.SIGTERM) != nil {
		return nil
	}
	for _, wait := range []time.Duration{3 * time.Second, 2 * time.Second} {
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			if !alive(pid) {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if alive(pid) {
		return fmt.Errorf("qemubmc: process %d does not die", pid)
	}
	return nil
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// state is the field after the ")" closing the command name.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

// Procs lists the live processes (other than this one) whose command line
// holds dir or whose working folder is dir or inside it: the QEMU and
// ipmi_sim processes a node in dir started. dir must be absolute.
func Procs(dir string) []int {
	dir = filepath.Clean(dir)
	if !filepath.IsAbs(dir) || dir == "/" {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		match := false
		if cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(cmd, []byte(dir)) {
			match = true
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) {
			match = true
		}
		if match && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}
