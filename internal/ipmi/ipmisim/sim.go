// Package ipmisim runs OpenIPMI's ipmi_sim as a BMC on 127.0.0.1 for tests,
// the demo and the lab: it writes a generated lan.conf and bmc.emu into a
// folder, starts `ipmi_sim -c lan.conf -f bmc.emu -s STATEDIR -n`, and waits
// until the BMC answers an RMCP presence ping.
//
// Unless told otherwise, the BMC's chassis is a small shell program
// (WriteChassisControl) that keeps the power and next-boot device in a state
// file, so that power on/off/cycle and "chassis bootdev pxe" change state
// that ipmitool, go-ipmi and ReadState all see.
package ipmisim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netbootui/netbootui/internal/ipmi"
)

// Options configure one simulated BMC.
type Options struct {
	Dir      string // folder for lan.conf, bmc.emu, the state dir and the chassis state (required)
	Port     int    // UDP port on 127.0.0.1; 0 picks a free one
	User     string // default "admin"
	Password string // default "secret"
	// ChassisControl is the chassis_control program ipmi_sim runs for power
	// and boot device. "" installs the built-in recorder (see
	// WriteChassisControl) as Dir/chassis_control with Dir/chassis.state.
	ChassisControl string
	// SOLPort, when not 0, routes serial-over-LAN to tcp 127.0.0.1:SOLPort.
	SOLPort int
}

// Sim is a running ipmi_sim.
type Sim struct {
	opts  Options
	port  int
	state string
	cmd   *exec.Cmd
	done  chan struct{}
	log   *bytes.Buffer
	mu    sync.Mutex
	once  sync.Once
	werr  error
}

// Start writes the configuration and starts ipmi_sim; it returns when the
// BMC answers on 127.0.0.1:Port. ctx bounds the start and the process: when
// ctx ends, ipmi_sim is killed.
func Start(ctx context.Context, opts Options) (*Sim, error) {
	if opts.Dir == "" {
		return nil, errors.New("ipmisim: Options.Dir is required")
	}
	if opts.User == "" {
		opts.User = "admin"
	}
	if opts.Password == "" {
		opts.Password = "secret"
	}
	for _, s := range []string{opts.User, opts.Password, opts.ChassisControl} {
		if strings.ContainsAny(s, "\"\n\\") {
			return nil, fmt.Errorf("ipmisim: %q: quotes, backslashes and newlines cannot be written into lan.conf", s)
		}
	}
	if _, err := exec.LookPath("ipmi_sim"); err != nil {
		return nil, fmt.Errorf("ipmisim: %w (apt-get install openipmi)", err)
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "state"), 0o755); err != nil {
		return nil, fmt.Errorf("ipmisim: %w", err)
	}
	s := &Sim{opts: opts}
	if opts.ChassisControl == "" {
		s.state = filepath.Join(opts.Dir, "chassis.state")
		prog := filepath.Join(opts.Dir, "chassis_control")
		if err := WriteChassisControl(prog, s.state); err != nil {
			return nil, err
		}
		s.opts.ChassisControl = prog
	}
	tries := 1
	if opts.Port == 0 {
		tries = 5 // a picked port may be taken before ipmi_sim binds it
	}
	var err error
	for i := 0; i < tries; i++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		if err = s.start(ctx, port); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func freePort() (int, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("ipmisim: picking a port: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func (s *Sim) start(ctx context.Context, port int) error {
	dir := s.opts.Dir
	conf := lanConf(s.opts, port)
	if err := os.WriteFile(filepath.Join(dir, "lan.conf"), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("ipmisim: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bmc.emu"), []byte(emu), 0o644); err != nil {
		return fmt.Errorf("ipmisim: %w", err)
	}
	cmd := exec.Command("ipmi_sim", "-c", "lan.conf", "-f", "bmc.emu", "-s", "state", "-n")
	cmd.Dir = dir
	cmd.Stdin = nil
	s.log = &bytes.Buffer{}
	cmd.Stdout = &lockedWriter{w: s.log, mu: &s.mu}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("ipmisim: starting ipmi_sim: %w", err)
	}
	s.cmd, s.port, s.done, s.once = cmd, port, make(chan struct{}), sync.Once{}
	go func() {
		s.werr = cmd.Wait()
		close(s.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Stop()
		case <-s.done:
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := ipmi.Ping(pctx, s.Addr())
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("ipmisim: ipmi_sim on port %d exited: %v: %s", port, s.werr, s.Log())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = s.Stop()
			return fmt.Errorf("ipmisim: ipmi_sim on port %d does not answer: %s", port, s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockedWriter serializes writes from the process's output pipes.
type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() > 64<<10 {
		return len(p), nil // bounded
	}
	return l.w.Write(p)
}

// Log returns what ipmi_sim printed (bounded to 64 KiB).
func (s *Sim) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Addr returns "127.0.0.1:PORT".
func (s *Sim) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the UDP port the BMC listens on.
func (s *Sim) Port() int { return s.port }

// Pid returns ipmi_sim's process id.
func (s *Sim) Pid() int { return s.cmd.Process.Pid }

// StatePath returns the built-in chassis program's state file ("" when
// Options.ChassisControl named another program).
func (s *Sim) StatePath() string { return s.state }

// State reads the built-in chassis program's state file.
func (s *Sim) State() (State, error) {
	if s.state == "" {
		return State{}, errors.New("ipmisim: no built-in chassis state (Options.ChassisControl was set)")
	}
	return ReadState(s.state)
}

// Done is closed when ipmi_sim has exited.
func (s *Sim) Done() <-chan struct{} { return s.done }

// Stop kills ipmi_sim (SIGKILL, as a crash would) and waits for it. It is
// safe to call more than once.
func (s *Sim) Stop() error {
	s.once.Do(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Process.Kill()
	})
	<-s.done
	return nil
}

func lanConf(o Options, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# generated by netbootui ipmisim\nname \"bmc%d\"\n", port)
	b.WriteString("set_working_mc 0x20\n  startlan 1\n")
	fmt.Fprintf(&b, "    addr 127.0.0.1 %d\n", port)
	b.WriteString("    priv_limit admin\n")
	for _, level := range []string{"callback", "user", "operator", "admin"} {
		fmt.Fprintf(&b, "    allowed_auths_%s none md2 md5 straight\n", level)
	}
	fmt.Fprintf(&b, "    guid %032x\n", port)
	b.WriteString("  endlan\n")
	fmt.Fprintf(&b, "  chassis_control \"%s\"\n", o.ChassisControl)
	if o.SOLPort != 0 {
		fmt.Fprintf(&b, "  sol \"tcp:127.0.0.1:%d\" 115200\n", o.SOLPort)
	}
	fmt.Fprintf(&b, "  user 2 true \"%s\" \"%s\" admin 10 none md2 md5 straight\n", o.User, o.Password)
	return b.String()
}

// emu declares the one management controller, the BMC at 0x20: device id 0,
// revision 3, firmware 9.08, manufacturer 0x1291 (4753), product 0x0f02.
const emu = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
mc_enable 0x20
`

// State is the chassis as the built-in chassis program records it.
type State struct {
	Power bool   // on
	Boot  string // next boot device as ipmi_sim names it: "default", "pxe", ...
}

// ReadState reads a state file written by the built-in chassis program.
func ReadState(path string) (State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return State{}, fmt.Errorf("ipmisim: %w", err)
	}
	return ParseState(path, b)
}

// ParseState parses the state file format: lines "power=0|1" and
// "boot=WORD". Errors name path:line.
func ParseState(path string, b []byte) (State, error) {
	st := State{Boot: "default"}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return State{}, fmt.Errorf("%s:%d: want key=value, got %q", path, n, line)
		}
		switch k {
		case "power":
			switch v {
			case "0":
				st.Power = false
			case "1":
				st.Power = true
			default:
				return State{}, fmt.Errorf("%s:%d: power must be 0 or 1, got %q", path, n, v)
			}
		case "boot":
			if v == "" || strings.ContainsAny(v, " \t") {
				return State{}, fmt.Errorf("%s:%d: bad boot device %q", path, n, v)
			}
			st.Boot = v
		default:
			return State{}, fmt.Errorf("%s:%d: unknown key %q", path, n, k)
		}
	}
	if err := sc.Err(); err != nil {
		return State{}, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// WriteChassisControl writes the built-in chassis_control program to path
// (mode 0755). ipmi_sim runs it as `PROG get power boot` (it answers
// "power:0|1" and "boot:DEV" lines) and `PROG set power 1|0`, `set reset 1`,
// `set boot DEV`, `set shutdown 1`; it keeps the state in stateFile, writing
// it to a temp file and renaming. A reset counts in "resets" lines of
// stateFile+".log", as every call does.
func WriteChassisControl(path, stateFile string) error {
	if strings.ContainsAny(stateFile, "'\n") {
		return fmt.Errorf("ipmisim: state file path %q has a quote or newline", stateFile)
	}
	script := strings.ReplaceAll(chassisScript, "@STATE@", stateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return fmt.Errorf("ipmisim: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ipmisim: %w", err)
	}
	return nil
}

const chassisScript = `#!/bin/sh
# chassis_control for ipmi_sim, written by netbootui's ipmisim package.
st='@STATE@'
power=0
boot=default
if [ -f "$st" ]; then
	while IFS='=' read -r k v; do
		case "$k" in
		power) power=$v ;;
		boot) boot=$v ;;
		esac
	done < "$st"
fi
echo "$*" >> "$st.log"
cmd=$1
shift
case "$cmd" in
get)
	for w in "$@"; do
		case "$w" in
		power) echo "power:$power" ;;
		boot) echo "boot:$boot" ;;
		esac
	done
	;;
set)
	while [ $# -ge 2 ]; do
		case "$1" in
		power) power=$2 ;;
		boot) boot=$2 ;;
		shutdown) [ "$2" = 1 ] && power=0 ;;
		esac
		shift 2
	done
	printf 'power=%s\nboot=%s\n' "$power" "$boot" > "$st.tmp" && mv "$st.tmp" "$st"
	;;
esac
`
