package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// VMOptions describe one QEMU node. Either Kernel (direct boot, with Initrd
// and Append) or BootURL (network boot through QEMU's iPXE ROM) must be set.
type VMOptions struct {
	// Name labels the VM in QEMU and in errors ("node" when empty).
	Name string
	// MAC of the NIC (52:54:00:12:34:56 when empty; see MAC).
	MAC string
	// NIC is the QEMU device model: "virtio-net-pci" (default) or "e1000".
	NIC string
	// BootURL is handed out as the DHCP boot file by QEMU's user-mode
	// network; the VM boots from the network (-boot n). http://10.0.2.2:PORT/
	// reaches a server on the host's 127.0.0.1:PORT; tftp://127.0.0.2/file
	// reaches a host TFTP server bound to 127.0.0.2:69.
	BootURL string
	// Kernel, Initrd and Append boot a kernel directly (-kernel, -initrd,
	// -append). A reset boots the same kernel again.
	Kernel, Initrd, Append string
	// Memory in MiB (512 when 0).
	Memory int
	// Dir holds the serial log and QEMU's stderr (a new temporary directory,
	// removed by Stop, when empty; give t.TempDir() to keep logs per test).
	Dir string
	// SerialLog is the serial console's log file (Dir/serial.log when empty).
	SerialLog string
	// Netns and Tap put the NIC on a tap device (Netns.AddTap) instead of
	// user-mode networking, and run QEMU inside that namespace: the VM is on
	// the namespace's bridge and boots from whatever DHCP server answers
	// there (-boot n; BootURL is then not used).
	Netns, Tap string
	// NetdevOptions are appended to the user-mode -netdev option list, e.g.
	// "hostfwd=tcp:127.0.0.1:2222-:22".
	NetdevOptions []string
	// ExtraArgs are appended to QEMU's command line.
	ExtraArgs []string
	// QEMU is the emulator binary ("qemu-system-x86_64" when empty).
	QEMU string
}

// VM is a running QEMU process in its own process group. Its methods are safe
// for concurrent use, except that concurrent WaitSerial calls share one
// cursor.
type VM struct {
	opts    VMOptions
	cmd     *exec.Cmd
	qmpPath string
	tmpDir  string // removed by Stop
	done    chan struct{}
	waitErr error

	mu     sync.Mutex // serialises QMP use
	curMu  sync.Mutex
	cursor int64 // serial log offset WaitSerial searches from

	stopOnce sync.Once
	stopErr  error
}

// MAC returns a locally administered MAC address for test node i
// (52:54:00:6e:XX:YY), distinct for i in [0, 65535].
func MAC(i int) string {
	return fmt.Sprintf("52:54:00:6e:%02x:%02x", (i>>8)&0xff, i&0xff)
}

// StartVM starts QEMU (TCG, no display, user-mode networking) and returns
// once its QMP monitor answers. Cancelling ctx stops the VM, as Stop does.
func StartVM(ctx context.Context, opts VMOptions) (*VM, error) {
	if opts.Name == "" {
		opts.Name = "node"
	}
	if opts.MAC == "" {
		opts.MAC = "52:54:00:12:34:56"
	}
	if _, err := net.ParseMAC(opts.MAC); err != nil {
		return nil, fmt.Errorf("lab: VM %s: bad MAC: %w", opts.Name, err)
	}
	if opts.NIC == "" {
		opts.NIC = "virtio-net-pci"
	}
	if opts.Memory == 0 {
		opts.Memory = 512
	}
	if opts.QEMU == "" {
		opts.QEMU = "qemu-system-x86_64"
	}
	if (opts.Netns == "") != (opts.Tap == "") {
		return nil, fmt.Errorf("lab: VM %s: set both or neither of Netns and Tap", opts.Name)
	}
	if opts.Tap != "" && opts.BootURL != "" {
		return nil, fmt.Errorf("lab: VM %s: BootURL is for user-mode networking; on a tap the DHCP server gives the boot file", opts.Name)
	}
	if opts.Tap == "" && (opts.Kernel == "") == (opts.BootURL == "") {
		return nil, fmt.Errorf("lab: VM %s: set exactly one of Kernel (direct boot) and BootURL (network boot)", opts.Name)
	}
	for _, s := range append([]string{opts.BootURL, opts.MAC, opts.NIC, opts.Tap}, opts.NetdevOptions...) {
		if strings.ContainsAny(s, ", \n") {
			return nil, fmt.Errorf("lab: VM %s: %q cannot go into a QEMU option list", opts.Name, s)
		}
	}
	v := &VM{opts: opts, done: make(chan struct{})}
	var err error
	// Unix socket paths are short (108 bytes): keep the socket in /tmp.
	if v.tmpDir, err = os.MkdirTemp("", "nblab-"); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	v.qmpPath = filepath.Join(v.tmpDir, "qmp.sock")
	if v.opts.Dir == "" {
		v.opts.Dir = filepath.Join(v.tmpDir, "vm")
		if err := os.Mkdir(v.opts.Dir, 0o755); err != nil {
			os.RemoveAll(v.tmpDir)
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	if v.opts.SerialLog == "" {
		v.opts.SerialLog = filepath.Join(v.opts.Dir, "serial.log")
	}
	// QEMU appends to an existing file: start from an empty log.
	if err := os.WriteFile(v.opts.SerialLog, nil, 0o644); err != nil {
		os.RemoveAll(v.tmpDir)
		return nil, fmt.Errorf("lab: serial log: %w", err)
	}

	netdev := "user,id=n0"
	if opts.Tap != "" {
		netdev = "tap,id=n0,ifname=" + opts.Tap + ",script=no,downscript=no"
	}
	if opts.BootURL != "" {
		netdev += ",bootfile=" + opts.BootURL
	}
	for _, o := range opts.NetdevOptions {
		netdev += "," + o
	}
	args := []string{
		"-name", opts.Name,
		"-accel", "tcg",
		"-m", fmt.Sprint(opts.Memory),
		"-smp", "1",
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-serial", "file:" + v.opts.SerialLog,
		"-qmp", "unix:" + v.qmpPath + ",server=on,wait=off",
		"-netdev", netdev,
		"-device", opts.NIC + ",netdev=n0,mac=" + opts.MAC,
	}
	if opts.Kernel != "" {
		args = append(args, "-kernel", opts.Kernel)
		if opts.Initrd != "" {
			args = append(args, "-initrd", opts.Initrd)
		}
		if opts.Append != "" {
			args = append(args, "-append", opts.Append)
		}
	} else {
		args = append(args, "-boot", "n")
	}
	args = append(args, opts.ExtraArgs...)

	stderr, err := os.Create(filepath.Join(v.opts.Dir, "qemu.stderr"))
	if err != nil {
		os.RemoveAll(v.tmpDir)
		return nil, fmt.Errorf("lab: %w", err)
	}
	if opts.Netns != "" {
		args = append([]string{"netns", "exec", opts.Netns, opts.QEMU}, args...)
		v.cmd = exec.Command("ip", args...) // ip execs QEMU: same pid
	} else {
		v.cmd = exec.Command(opts.QEMU, args...)
	}
	v.cmd.Stdout = stderr
	v.cmd.Stderr = stderr
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := v.cmd.Start(); err != nil {
		stderr.Close()
		os.RemoveAll(v.tmpDir)
		return nil, fmt.Errorf("lab: VM %s: %w", opts.Name, err)
	}
	go func() {
		v.waitErr = v.cmd.Wait()
		stderr.Close()
		close(v.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			v.Stop()
		case <-v.done:
		}
	}()

	// Wait for the monitor: it proves QEMU accepted its command line.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("unix", v.qmpPath, time.Second)
		if err == nil {
			c.Close()
			return v, nil
		}
		select {
		case <-v.done:
			v.Stop()
			return nil, fmt.Errorf("lab: VM %s: qemu exited at start (%v): %s", opts.Name, v.waitErr, v.stderrText())
		case <-ctx.Done():
			v.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			v.Stop()
			return nil, fmt.Errorf("lab: VM %s: QMP monitor did not come up: %v", opts.Name, err)
		}
	}
}

// Pid returns the QEMU process id (also its process group id).
func (v *VM) Pid() int { return v.cmd.Process.Pid }

// SerialLog returns the path of the serial console log.
func (v *VM) SerialLog() string { return v.opts.SerialLog }

// Serial returns the serial console output so far.
func (v *VM) Serial() string {
	b, _ := os.ReadFile(v.opts.SerialLog)
	return string(b)
}

// Done is closed when the QEMU process has exited.
func (v *VM) Done() <-chan struct{} { return v.done }

// Stop ends QEMU (SIGTERM to its process group, SIGKILL after 5 s), waits for
// it and removes the VM's temporary files. It is safe to call more than once.
func (v *VM) Stop() error {
	v.stopOnce.Do(func() {
		pgid := v.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-v.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-v.done
		}
		// The QMP socket lives in tmpDir, and so does Dir when StartVM made it.
		v.stopErr = os.RemoveAll(v.tmpDir)
	})
	return v.stopErr
}

func (v *VM) stderrText() string {
	b, _ := os.ReadFile(filepath.Join(v.opts.Dir, "qemu.stderr"))
	return strings.TrimSpace(string(b))
}

// WaitSerial waits until a line of the serial log matches re and returns its
// submatches (index 0 is the whole match). The search starts after the line
// matched by the previous WaitSerial call, so successive calls see successive
// events. It fails when ctx ends or QEMU exits first, quoting the log's tail.
func (v *VM) WaitSerial(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	v.curMu.Lock()
	defer v.curMu.Unlock()
	pos := v.cursor
	var partial []byte
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		exited := false
		select {
		case <-v.done:
			exited = true
		default:
		}
		data, err := readFrom(v.opts.SerialLog, pos)
		if err != nil {
			return nil, fmt.Errorf("lab: VM %s: %w", v.opts.Name, err)
		}
		buf := append(partial, data...)
		pos += int64(len(data))
		for {
			nl := bytes.IndexByte(buf, '\n')
			if nl < 0 {
				break
			}
			line := strings.TrimRight(string(buf[:nl]), "\r")
			buf = buf[nl+1:]
			if m := re.FindStringSubmatch(line); m != nil {
				v.cursor = pos - int64(len(buf))
				return m, nil
			}
		}
		partial = append([]byte(nil), buf...)
		if exited {
			return nil, fmt.Errorf("lab: VM %s: qemu exited (%v) before the serial log matched %q; log ends:\n%s",
				v.opts.Name, v.waitErr, re, Tail(v.Serial(), 20))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lab: VM %s: waiting for %q: %w; log ends:\n%s",
				v.opts.Name, re, ctx.Err(), Tail(v.Serial(), 20))
		case <-tick.C:
		case <-v.done:
		}
	}
}

func readFrom(file string, off int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, err = b.ReadFrom(f)
	return b.Bytes(), err
}

// tail returns the last n lines of s.
// Tail returns the last n lines of s (for failure messages).
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Reset resets the VM like its reset button (QMP system_reset): the node
// reboots with the same boot settings.
func (v *VM) Reset() error {
	_, err := v.QMP("system_reset", nil)
	return err
}

// Monitor runs a human monitor command (e.g. "info status") and returns its
// output.
func (v *VM) Monitor(cmd string) (string, error) {
	ret, err := v.QMP("human-monitor-command", map[string]string{"command-line": cmd})
	if err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(ret, &s); err != nil {
		return "", fmt.Errorf("lab: VM %s: monitor %q: %w", v.opts.Name, cmd, err)
	}
	return s, nil
}

// QMP runs one QMP command with arguments (nil for none) and returns its
// "return" value. Each call opens its own monitor session.
func (v *VM) QMP(command string, args any) (json.RawMessage, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	select {
	case <-v.done:
		return nil, fmt.Errorf("lab: VM %s: qemu is not running", v.opts.Name)
	default:
	}
	conn, err := net.DialTimeout("unix", v.qmpPath, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("lab: VM %s: QMP: %w", v.opts.Name, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	dec := json.NewDecoder(bufio.NewReader(conn))
	var greeting map[string]json.RawMessage
	if err := dec.Decode(&greeting); err != nil {
		return nil, fmt.Errorf("lab: VM %s: QMP greeting: %w", v.opts.Name, err)
	}
	if _, ok := greeting["QMP"]; !ok {
		return nil, fmt.Errorf("lab: VM %s: QMP: unexpected greeting", v.opts.Name)
	}
	if _, err := qmpCall(conn, dec, "qmp_capabilities", nil); err != nil {
		return nil, fmt.Errorf("lab: VM %s: %w", v.opts.Name, err)
	}
	ret, err := qmpCall(conn, dec, command, args)
	if err != nil {
		return nil, fmt.Errorf("lab: VM %s: %w", v.opts.Name, err)
	}
	return ret, nil
}

func qmpCall(conn net.Conn, dec *json.Decoder, command string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", command, err)
	}
	for {
		var msg struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := dec.Decode(&msg); err != nil {
			return nil, fmt.Errorf("QMP %s: %w", command, err)
		}
		switch {
		case msg.Error != nil:
			return nil, fmt.Errorf("QMP %s: %s: %s", command, msg.Error.Class, msg.Error.Desc)
		case msg.Return != nil:
			return msg.Return, nil
		case msg.Event != "":
			continue // asynchronous events are not answers
		default:
			return nil, errors.New("QMP " + command + ": message without return, error or event")
		}
	}
}
