package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/lab"
)

// TestQEMUNBDServerGone: the NBD server of a running node's root goes away.
// The node's agent, which reads a block of /dev/nbd0 past the page cache at
// each check-in, turns its check-ins into a failure at stage root naming the
// server; the node rebooted while the server is still down fails at stage
// rootfs naming it (no hang); once the server is back, the next reboot
// boots and checks in. The node checks in every 5 s (its iPXE entry adds
// netbootui.checkin_interval=5).
func TestQEMUNBDServerGone(t *testing.T) {
	t.Parallel()
	l := newNBDLab(t)
	inv := nbdImages(l.port, ``) + fmt.Sprintf(`nodes:
  - {name: q-nbdgone, image: live-nbd, boot_override: {ipxe: %q}, nics: [{mac: %q}]}
`, persistOverride("netbootui.checkin_interval=5"), lab.MAC(42))
	l.start(t, inv, map[string]string{"live-nbd": l.initrd}, l.files["rootfs.squashfs"])
	env, d, gens, port := l.env, l.env.D, l.gens, l.port
	target := fmt.Sprintf("10.0.2.2:%d/live-nbd.%s", port, gens["live-nbd"])

	vmCtx, vmCancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer vmCancel()
	vm := bootVM(vmCtx, t, "q-nbdgone", lab.MAC(42), "http://10.0.2.2:"+env.HTTPPort())
	waitBooted(t, d, vm, "q-nbdgone", gens["live-nbd"], 4*time.Minute)

	// The server goes away under the running node.
	l.srv.stop()
	st := waitFailed(t, d, vm, "q-nbdgone", "stage root:", "the NBD root "+target+" no longer answers")
	t.Logf("NBD server gone under a running node: %s", st.Error)

	// Rebooted while the server is down: the attach fails at stage rootfs.
	if err := vm.Reset(); err != nil {
		t.Fatal(err)
	}
	waitLeft(t, d, vm, "q-nbdgone", bootstate.StageFailed, 4*time.Minute)
	st = waitFailed(t, d, vm, "q-nbdgone", "stage rootfs:", "cannot attach the NBD root "+target)
	t.Logf("NBD server down at boot: %s", st.Error)
	if !strings.Contains(vm.Serial(), "netbootui: FAILED: cannot attach the NBD root "+target) {
		t.Errorf("the console does not say why the boot stopped:\n%s", lab.Tail(vm.Serial(), 20))
	}

	// The server is back: the next boot comes up.
	l.srv = startNBDServer(t, l.dir, l.conf, port)
	if err := vm.Reset(); err != nil {
		t.Fatal(err)
	}
	waitBooted(t, d, vm, "q-nbdgone", gens["live-nbd"], 4*time.Minute)
}

// waitLeft waits until node is no longer at stage (a reset node's new boot
// has begun).
func waitLeft(t *testing.T, d *Daemon, vm *lab.VM, node string, stage bootstate.Stage, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if st, ok := d.NodeState(node); ok && st.Stage != stage {
			return
		}
	}
	st, _ := d.NodeState(node)
	t.Fatalf("%s is still %s: %+v\nserial:\n%s", node, stage, st, lab.Tail(vm.Serial(), 30))
}
