package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/power/powertest"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

// headAddr is where the persist test's guests reach the head: each VM's
// user-mode network forwards it (guestfwd) through socat bound to the VM's
// own loopback address, so the daemon and the NFS server see every node at
// a distinct address, as on a real network.
const headAddr = "10.0.2.100"

// persistOverride is a node's iPXE entry: the rendered one plus extra
// words (netbootui.* words are refused in kernel_args).
func persistOverride(extra string) string {
	return `#!ipxe
kernel --name vmlinuz {{.KernelURL}} {{.Cmdline}} ` + extra + ` || goto failed
initrd --name initrd {{.InitrdURL}} || goto failed
boot || goto failed
:failed
sleep {{.RetrySeconds}}
chain --replace --autofree {{.ScriptURL}} || goto failed
`
}

// persistInventory: three nfs nodes in a group that persists /var/log, at
// 127.0.0.10, .11 and .12 as the head sees them. argsA and argsB are words
// added to the first two nodes' command lines. q-a's power goes through the
// test backend (powertest: its machine is the QEMU VM, see vmMachine).
func persistInventory(dir, argsA, argsB string) string {
	return fmt.Sprintf(`settings:
  secrets: secrets.yaml
  nfs: {server: %s, port: 2049, export: /netbootui, dir: %s}
images:
  live-nfs:
    root: nfs
    kernel_args: "console=ttyS0 panic=-1"
groups:
  lab:
    image: live-nfs
    persist: [/var/log]
nodes:
  - {name: q-a, group: lab, ip: 127.0.0.10, boot_override: {ipxe: %q}, nics: [{mac: %q}],
     bmc: {protocol: simpower, host: lab, password: lab, simpower: {machine: q-a}}}
  - {name: q-b, group: lab, ip: 127.0.0.11, boot_override: {ipxe: %q}, nics: [{mac: %q}]}
  - {name: q-c, group: lab, ip: 127.0.0.12, nics: [{mac: %q}]}
`, headAddr, dir, persistOverride(argsA), lab.MAC(30), persistOverride(argsB), lab.MAC(31), lab.MAC(32))
}

// checkinWith waits for a check-in of node whose message holds want.
func checkinWith(t *testing.T, d *Daemon, vm *lab.VM, node, want string, timeout time.Duration) {
	t.Helper()
	checkinSince(t, d, vm, node, want, time.Time{}, timeout)
}

// checkinSince waits for a check-in of node, made after since, whose
// message holds want.
func checkinSince(t *testing.T, d *Daemon, vm *lab.VM, node, want string, since time.Time, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, ev := range d.History(node, 50) {
			if ev.Kind == bootstate.KindCheckin && strings.Contains(ev.Message, want) && !ev.Time.Before(since) {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	var evs []string
	for _, ev := range d.History(node, 30) {
		evs = append(evs, fmt.Sprintf("%s %s %s %s", ev.Kind, ev.Stage, ev.Message, ev.Error))
	}
	t.Fatalf("%s: no check-in with %q in %v\nevents:\n%s\nserial:\n%s", node, want, timeout, strings.Join(evs, "\n"), lab.Tail(vm.Serial(), 30))
}

// TestQEMUNFSPersist: a node's file under a persisted path (/var/log, in its
// own directory on the NFS server, made by the head) survives the daemon's
// reboot-clean while one elsewhere is gone; a node that tries to mount another node's
// directory is refused by the server (exports are per node address) and
// fails at the persist stage, naming the directory.
func TestQEMUNFSPersist(t *testing.T) {
	t.Parallel()
	lab.RequireTools(t, "qemu-system-x86_64", "ganesha.nfsd", "unsquashfs", "socat")
	files := testImage(t)
	dir := t.TempDir()
	nfsDir := filepath.Join(dir, "nfs")
	inv := filepath.Join(dir, "nodes.yaml")
	write := func(argsA, argsB string) {
		t.Helper()
		if err := os.WriteFile(inv, []byte(persistInventory(nfsDir, argsA, argsB)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// q-b names q-a's directory on its command line (after the rendered
	// one, so the init takes it): the server must refuse it.
	stealB := "netbootui.persist_nfs=" + headAddr + ":/netbootui/nodes/q-a:vers=4.1,port=2049"
	initrd := nfsInitrd(t, dir)
	var gen string
	cfg, bmcs := simpowerLabConfig(t)
	env := daemontest.Start(t, daemontest.Options{Dir: dir, Config: cfg,
		Secrets:   "bmc_passwords:\n  lab: " + rebootPassword + "\n",
		Inventory: persistInventory(nfsDir, "netbootui.test_write=/var/log/kept,/root/gone netbootui.probe=/var/log/kept,/root/gone", stealB),
		Before: func(d *Daemon) error {
			m, err := d.ImportImage(ImportRequest{Image: "live-nfs", Kernel: files["vmlinuz"], Initrd: initrd, Rootfs: files["rootfs.squashfs"], Publish: true})
			if err != nil {
				return err
			}
			gen = m.ID
			d.SetAdvertiseURL("http://" + headAddr)
			return nil
		}})
	d := env.D
	site := pxe.NFSSite(d.Inventory().Settings.NFS)
	// The head made each node's directory before any boot.
	for _, n := range []string{"q-a", "q-b", "q-c"} {
		if fi, err := os.Stat(filepath.Join(nfs.NodeDirPath(site, n), "var/log")); err != nil || !fi.IsDir() {
			t.Fatalf("%s: persistent directory not made: %v", n, err)
		}
	}
	httpPort := env.HTTPPort()

	exports := pxe.NFSExports(d.Inventory())
	if strings.Count(exports, "CLIENT { Clients = 127.0.0.1") != 3 {
		t.Fatalf("exports are not per node address:\n%s", exports)
	}
	// A site mistake: q-c's directory exported read-only.
	rwC := "CLIENT { Clients = 127.0.0.12; Access_Type = RW; }"
	if !strings.Contains(exports, rwC) {
		t.Fatalf("no read-write export for q-c:\n%s", exports)
	}
	exports = strings.Replace(exports, rwC, "CLIENT { Clients = 127.0.0.12; Access_Type = RO; }", 1)
	g := lab.StartGanesha(t, 0, exports)

	vmCtx, vmCancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer vmCancel()
	start := func(node, mac, src string) *lab.VM {
		// QEMU runs the command per connection; a script keeps commas
		// and blanks out of the option list.
		fwd := func(guestPort, hostPort int) string {
			script := filepath.Join(dir, fmt.Sprintf("fwd-%s-%d", node, guestPort))
			body := fmt.Sprintf("#!/bin/sh\nexec socat STDIO TCP:127.0.0.1:%d,bind=%s\n", hostPort, src)
			if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("guestfwd=tcp:%s:%d-cmd:%s", headAddr, guestPort, script)
		}
		var hp int
		fmt.Sscan(httpPort, &hp)
		return bootVM(vmCtx, t, node, mac, "http://"+headAddr, fwd(80, hp), fwd(2049, g.Port))
	}
	vmA := start("q-a", lab.MAC(30), "127.0.0.10")
	bmcs.Add("q-a", &vmMachine{vm: vmA})
	vmB := start("q-b", lab.MAC(31), "127.0.0.11")
	vmC := start("q-c", lab.MAC(32), "127.0.0.12")

	// Boot 1 of q-a: both files written, both seen.
	checkinWith(t, d, vmA, "q-a", "probe=present,present", 4*time.Minute)
	kept := filepath.Join(nfs.NodeDirPath(site, "q-a"), "var/log/kept")
	if fi, err := os.Stat(kept); err != nil || fi.Size() != 64<<10 {
		t.Fatalf("q-a's write under /var/log is not in its directory on the server: %v", err)
	}

	// q-b is refused q-a's directory and says so at the persist stage.
	st := waitFailed(t, d, vmB, "q-b", "stage persist", headAddr+":/netbootui/nodes/q-a")
	if _, err := os.Stat(filepath.Join(nfs.NodeDirPath(site, "q-a"), ".netbootui-rw")); err != nil {
		t.Errorf("q-a's own boot did not check its directory is writable: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(nfs.NodeDirPath(site, "q-a"), "var/log"))
	if len(ents) != 1 {
		t.Errorf("q-a's /var/log on the server holds %d entries, want only its own file", len(ents))
	}
	t.Logf("q-b reaching q-a's directory: %s", st.Error)
	// q-c's directory mounts but cannot be written: said at the persist
	// stage, not left to the first write of a log.
	st = waitFailed(t, d, vmC, "q-c", "stage persist", "not writable")
	t.Logf("q-c with a read-only export: %s", st.Error)

	// Boot 2 of q-a through the daemon's reboot-clean (PXE next, a power
	// cycle through its BMC, followed until it checks in clean), without
	// the write hook: the persisted file is there, the other is gone with
	// the old overlay.
	write("netbootui.probe=/var/log/kept,/root/gone", stealB)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer rcancel()
	res, err := d.RebootClean(rctx, RebootRequest{Selection: "q-a", Timeout: 4 * time.Minute, Who: "persist-test"}, nil)
	if err != nil || len(res) != 1 || !res[0].OK {
		t.Fatalf("reboot-clean q-a: %+v, %v\nserial:\n%s", res, err, lab.Tail(vmA.Serial(), 30))
	}
	if calls := strings.Join(bmcs.Calls(), " "); !strings.Contains(calls, "cycle") {
		t.Errorf("reboot-clean did not power cycle q-a through its BMC: %s", calls)
	}
	checkinWith(t, d, vmA, "q-a", "probe=present,absent", 2*time.Minute)
	for _, f := range []string{"root/gone", "var/log/kept"} {
		if _, err := os.Stat(filepath.Join(nfs.TreeDir(site, "live-nfs", gen), f)); err == nil {
			t.Errorf("a node wrote %s into the read-only tree", f)
		}
	}
}

// simpowerLabConfig is rootLabConfig with the test power backend
// registered (powertest: protocol simpower, password rebootPassword), whose
// machines a test adds (a QEMU VM: vmMachine).
func simpowerLabConfig(t *testing.T) (Config, *powertest.Lab) {
	t.Helper()
	bmcs := powertest.NewLab(rebootPassword)
	cfg := rootLabConfig(t)
	cfg.Backends = backends.Registry()
	if err := cfg.Backends.Register(bmcs.Protocol()); err != nil {
		t.Fatal(err)
	}
	return cfg, bmcs
}

// waitFailed waits until node is failed and checks its error holds each of
// wants.
func waitFailed(t *testing.T, d *Daemon, vm *lab.VM, node string, wants ...string) bootstate.NodeState {
	t.Helper()
	var st bootstate.NodeState
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if st, _ = d.NodeState(node); st.Stage == bootstate.StageFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not fail: %+v\nserial:\n%s", node, st, lab.Tail(vm.Serial(), 30))
		}
	}
	for _, w := range wants {
		if !strings.Contains(st.Error, w) {
			t.Fatalf("%s failed with %q, want %q in it\nserial:\n%s", node, st.Error, w, lab.Tail(vm.Serial(), 30))
		}
	}
	return st
}

// vmMachine is a QEMU VM as the test power backend's machine: its power is
// the QEMU process, a cycle or reset is the VM's reset button, and the
// next-boot PXE override is kept as set (the VM boots from its NIC's iPXE
// every time).
type vmMachine struct {
	vm       *lab.VM
	mu       sync.Mutex
	pxe, efi bool
}

func (m *vmMachine) PowerState() bool {
	select {
	case <-m.vm.Done():
		return false
	default:
		return true
	}
}

func (m *vmMachine) SetPower(on bool) error {
	if on == m.PowerState() {
		return nil
	}
	if on {
		return errors.New("a stopped VM cannot be powered on again")
	}
	return m.vm.Stop()
}

func (m *vmMachine) PowerCycle() error { return m.Reset() }

func (m *vmMachine) Reset() error {
	m.mu.Lock()
	m.pxe = false
	m.mu.Unlock()
	return m.vm.Reset()
}

func (m *vmMachine) SetNextBootPXE(efi bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pxe, m.efi = true, efi
	return nil
}

func (m *vmMachine) NextBootPXE() (pending, efi bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pxe, m.efi
}
