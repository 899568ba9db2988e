package daemon_test

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image/liveinit"
	"github.com/netbootui/netbootui/internal/lab"
)

// ballastRootfs returns a copy of the squashfs at src with mib MiB of
// random bytes added at /opt/ballast, a file no boot reads: an image big
// enough that holding it whole in RAM (http-live) shows against reading
// only what is used (nfs, nbd).
func ballastRootfs(t *testing.T, src string, mib int) string {
	t.Helper()
	lab.RequireTools(t, "unsquashfs", "mksquashfs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if out, err := exec.Command("unsquashfs", "-no-progress", "-quiet", "-d", tree, src).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	os.MkdirAll(filepath.Join(tree, "opt"), 0o755)
	b := make([]byte, mib<<20)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(tree, "opt", "ballast"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "rootfs.squashfs")
	if out, err := exec.Command("mksquashfs", tree, dst, "-all-root", "-noappend", "-quiet", "-no-progress", "-comp", "zstd").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return dst
}

// nfsInitrd builds the default recipe's built-in initramfs with the nfsv4
// module added (the default recipe leaves it out: each module costs RAM on
// every node) into dir and returns its path.
func nfsInitrd(t *testing.T, dir string) string {
	t.Helper()
	_, modules := lab.Kernel(t)
	initrd := filepath.Join(dir, "initrd-nfs")
	if err := liveinit.BuildFile(initrd, liveinit.Options{KernelModulesDir: modules,
		Modules: []string{"virtio_pci", "virtio_net", "e1000", "loop", "squashfs", "overlay", "nfsv4"}}); err != nil {
		t.Fatal(err)
	}
	return initrd
}

// natAdvertise is daemontest's Before hook of the QEMU root tests: nodes
// reach the daemon at http://10.0.2.2:PORT (the host's loopback as a QEMU
// user-mode guest sees it), PORT being the bound HTTP port.
func natAdvertise(d *Daemon) {
	_, port, _ := net.SplitHostPort(d.HTTPAddr().String())
	d.SetAdvertiseURL("http://10.0.2.2:" + port)
}

// publishAll imports and publishes, for each image of initrds, a generation
// of files' kernel, that image's initrd and rootfs, and returns each
// image's generation id.
func publishAll(d *Daemon, files map[string]string, initrds map[string]string, rootfs string) (map[string]string, error) {
	gens := map[string]string{}
	for img, initrd := range initrds {
		m, err := d.ImportImage(ImportRequest{Image: img, Kernel: files["vmlinuz"], Initrd: initrd, Rootfs: rootfs, Publish: true})
		if err != nil {
			return nil, err
		}
		gens[img] = m.ID
	}
	return gens, nil
}

// rootLabConfig is the daemon configuration of the QEMU root tests.
func rootLabConfig(t *testing.T) Config {
	return Config{StallTimeout: 5 * time.Minute, Logger: testLogger(t)}
}

// bootVM starts a QEMU node that boots its iPXE script from base
// (http://HOST[:PORT]) through QEMU's iPXE ROM; it is stopped when the test
// ends.
func bootVM(ctx context.Context, t *testing.T, node, mac, base string, netdev ...string) *lab.VM {
	t.Helper()
	vm, err := lab.StartVM(ctx, lab.VMOptions{Name: node, MAC: mac, Dir: t.TempDir(),
		BootURL: base + "/boot/" + mac + ".ipxe", NetdevOptions: netdev})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Stop() })
	return vm
}
