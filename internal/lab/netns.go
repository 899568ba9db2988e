package lab

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Addresses of the bridge in every Netns: the boot server's side of the
// test's L2 segment.
const (
	NetnsBridge     = "br0"
	NetnsBridgeIPv4 = "10.99.0.1"
	NetnsPrefixV4   = 24
	NetnsBridgeIPv6 = "fd99::1"
	NetnsPrefixV6   = 64
)

// Netns is a network namespace the test made for itself: loopback up and a
// bridge br0 with NetnsBridgeIPv4/24 and NetnsBridgeIPv6/64, to which taps
// for QEMU nodes are added. Nothing in it reaches the host's networks. The
// test's cleanup kills every process still in the namespace and removes it.
type Netns struct {
	name string
}

var netnsSeq atomic.Int64

// NewNetns creates the namespace. It needs root and the ip tool: without
// them the test is skipped (failed with NETBOOTUI_REQUIRE_TOOLS=1).
func NewNetns(tb testing.TB) *Netns {
	tb.Helper()
	RequireTools(tb, "ip")
	if os.Geteuid() != 0 {
		Missing(tb, "network namespaces need root")
	}
	n := &Netns{name: fmt.Sprintf("nbt%d-%d", os.Getpid(), netnsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		tb.Fatalf("lab: ip netns add %s: %v: %s", n.name, err, out)
	}
	tb.Cleanup(n.remove)
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", NetnsBridge, "type", "bridge"},
		// No STP delay: a port forwards as soon as it is up.
		{"link", "set", NetnsBridge, "type", "bridge", "forward_delay", "0"},
		{"addr", "add", NetnsBridgeIPv4 + "/" + strconv.Itoa(NetnsPrefixV4), "dev", NetnsBridge},
		{"addr", "add", NetnsBridgeIPv6 + "/" + strconv.Itoa(NetnsPrefixV6), "dev", NetnsBridge, "nodad"},
		{"link", "set", NetnsBridge, "up"},
	} {
		n.IP(tb, args...)
	}
	return n
}

// Name is the namespace's name (as `ip netns` lists it).
func (n *Netns) Name() string { return n.name }

// IP runs `ip -n NAME args...` and fails the test on error.
func (n *Netns) IP(tb testing.TB, args ...string) {
	tb.Helper()
	full := append([]string{"-n", n.name}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		tb.Fatalf("lab: ip %s: %v: %s", strings.Join(full, " "), err, out)
	}
}

// AddTap creates a tap device enslaved to the bridge and up, for a QEMU node
// (VMOptions.Netns and Tap).
func (n *Netns) AddTap(tb testing.TB, name string) {
	tb.Helper()
	n.IP(tb, "tuntap", "add", "dev", name, "mode", "tap")
	n.IP(tb, "link", "set", name, "master", NetnsBridge)
	n.IP(tb, "link", "set", name, "up")
}

// Command returns a command that runs inside the namespace
// (`ip netns exec NAME prog args...`; ip execs prog, so the process and its
// pid are prog's own).
func (n *Netns) Command(prog string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, prog}, args...)...)
}

// Do runs f on an OS thread that is inside the namespace: sockets f opens
// belong to the namespace for their whole life, whichever goroutine uses
// them afterwards. Goroutines f starts do not run inside it.
func (n *Netns) Do(f func() error) error {
	target, err := os.Open("/var/run/netns/" + n.name)
	if err != nil {
		return fmt.Errorf("lab: netns %s: %w", n.name, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: own netns: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: setns %s: %w", n.name, err)
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays in the test namespace: keep it locked so that
		// it ends with this goroutine instead of running others.
		return fmt.Errorf("lab: setns back from %s: %w", n.name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// remove kills what still runs in the namespace and deletes it.
func (n *Netns) remove() {
	for round := 0; round < 50; round++ {
		out, _ := exec.Command("ip", "netns", "pids", n.name).Output()
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	exec.Command("ip", "netns", "del", n.name).Run()
}
