package daemon_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/lab/labbuild"
)

// testImage is a generation of the default recipe for each test's daemon
// to import (built once per test binary).
func testImage(t *testing.T) map[string]string {
	t.Helper()
	lab.RequireTools(t, "qemu-system-x86_64")
	return labbuild.DefaultGeneration(t)
}

// qemuInventory is one node on each loader, booting image "live".
func qemuInventory(ipxeMAC, pxeMAC string) string {
	return fmt.Sprintf(`images:
  live:
    kernel_args: "console=ttyS0 panic=-1"
groups:
  lab:
    image: live
nodes:
  - name: q-ipxe
    group: lab
    nics: [{mac: %q}]
  - name: q-pxe
    group: lab
    loader: pxelinux
    nics: [{mac: %q}]
`, ipxeMAC, pxeMAC)
}

func startLabDaemon(t *testing.T, tftpListen string) (*Daemon, string, string) {
	t.Helper()
	files := testImage(t)
	dir := t.TempDir()
	inv := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(inv, []byte(qemuInventory(lab.MAC(10), lab.MAC(11))), 0o644)
	var gen, port string
	d := daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{InventoryPath: inv,
		TFTPListen: tftpListen, StallTimeout: 2 * time.Minute, Logger: testLogger(t)},
		Before: func(d *Daemon) error {
			m, err := d.ImportImage(ImportRequest{Image: "live", Kernel: files["vmlinuz"], Initrd: files["initrd"], Rootfs: files["rootfs.squashfs"], Publish: true})
			if err != nil {
				return err
			}
			gen = m.ID
			_, port, _ = net.SplitHostPort(d.HTTPAddr().String())
			// The guest reaches the host's loopback at 10.0.2.2 (QEMU user-mode networking).
			d.SetAdvertiseURL("http://10.0.2.2:" + port)
			return nil
		}}).D
	return d, gen, port
}

// waitBooted polls the tracker until node checks in with gen.
func waitBooted(t *testing.T, d *Daemon, vm *lab.VM, node, gen string, timeout time.Duration) bootstate.NodeState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if st, ok := d.NodeState(node); ok && st.Stage == bootstate.StageBooted && st.Generation == gen {
			return st
		}
		time.Sleep(250 * time.Millisecond)
	}
	st, _ := d.NodeState(node)
	var evs []string
	for _, ev := range d.History(node, 30) {
		evs = append(evs, fmt.Sprintf("%s %s %s %s", ev.Kind, ev.Stage, ev.Path, ev.Error))
	}
	t.Fatalf("%s did not boot in %v: %+v\nevents:\n%s\nserial:\n%s", node, timeout, st, strings.Join(evs, "\n"), lab.Tail(vm.Serial(), 30))
	return st
}

// bootIPXENode boots q-ipxe from QEMU's iPXE ROM through the daemon's HTTP
// server on port (as 10.0.2.2) and waits until it checks in with gen.
func bootIPXENode(t *testing.T, d *Daemon, port, gen string) bootstate.NodeState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	vm, err := lab.StartVM(ctx, lab.VMOptions{Name: "q-ipxe", MAC: lab.MAC(10), Dir: t.TempDir(),
		BootURL: "http://10.0.2.2:" + port + "/boot/" + lab.MAC(10) + ".ipxe"})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	st := waitBooted(t, d, vm, "q-ipxe", gen, 150*time.Second)
	t.Logf("q-ipxe booted and checked in after %v", time.Since(start).Round(100*time.Millisecond))
	return st
}

func stagesOf(st bootstate.NodeState) []bootstate.Stage {
	var out []bootstate.Stage
	for _, m := range st.Timeline {
		out = append(out, m.Stage)
	}
	return out
}

// TestQEMUBootThroughIPXE boots a QEMU node from QEMU's own iPXE ROM through
// the daemon's rendered script: kernel and initrd over HTTP, then the live
// init fetches the squashfs root and the node checks in with its token.
func TestQEMUBootThroughIPXE(t *testing.T) {
	t.Parallel()
	d, gen, port := startLabDaemon(t, "")
	st := bootIPXENode(t, d, port, gen)
	want := []bootstate.Stage{bootstate.StageConfig, bootstate.StageKernel, bootstate.StageInitrd, bootstate.StageRootfs, bootstate.StageBooted}
	if fmt.Sprint(stagesOf(st)) != fmt.Sprint(want) {
		t.Fatalf("stages %v, want %v", stagesOf(st), want)
	}
	if st.Total == 0 || st.Bytes != st.Total {
		t.Errorf("rootfs progress %d/%d", st.Bytes, st.Total)
	}
	if v, _ := d.Node("q-ipxe"); v.Dirty {
		t.Errorf("freshly booted node is dirty: %v", v.DirtyReasons)
	}
}

// TestQEMUBootThroughPxelinux boots a QEMU node through pxelinux over the
// daemon's TFTP server on 127.0.0.2:69: pxelinux.0, ldlinux.c32, the rendered
// pxelinux.cfg/01-<mac>, kernel and initrd over TFTP, the root over HTTP.
func TestQEMUBootThroughPxelinux(t *testing.T) {
	t.Parallel()
	if ln, err := net.ListenPacket("udp", "127.0.0.2:69"); err != nil {
		lab.Missing(t, "cannot bind 127.0.0.2:69 for the pxelinux boot test (needs root and a free port): %v", err)
	} else {
		ln.Close()
	}
	d, gen, _ := startLabDaemon(t, "127.0.0.2:69")
	if d.Loaders().Aliases["pxelinux.0"] == "" || d.Loaders().Aliases["ldlinux.c32"] == "" {
		lab.RequireTools(t, "pxelinux.0 and ldlinux.c32 (packages pxelinux, syslinux-common)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	vm, err := lab.StartVM(ctx, lab.VMOptions{Name: "q-pxe", MAC: lab.MAC(11), Dir: t.TempDir(),
		BootURL: "tftp://127.0.0.2/pxelinux.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	st := waitBooted(t, d, vm, "q-pxe", gen, 170*time.Second)
	t.Logf("q-pxe booted and checked in after %v", time.Since(start).Round(100*time.Millisecond))
	want := []bootstate.Stage{bootstate.StageNBP, bootstate.StageConfig, bootstate.StageKernel, bootstate.StageInitrd, bootstate.StageRootfs, bootstate.StageBooted}
	if fmt.Sprint(stagesOf(st)) != fmt.Sprint(want) {
		t.Fatalf("stages %v, want %v", stagesOf(st), want)
	}
}

// testLogger logs to the test's log when NETBOOTUI_TEST_LOG=1, else nowhere.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("NETBOOTUI_TEST_LOG") != "1" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
