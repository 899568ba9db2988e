package daemon_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image/liveinit"
	"github.com/netbootui/netbootui/internal/lab"
)

// diskInventory: one http-live node whose group keeps /var/log on the
// partition labelled NBUI-PERSIST of its own disk; its power goes through
// the test backend (its machine is the QEMU VM). extra are words added to
// its command line, pd is the group's persist_disk.
func diskInventory(extra, pd string) string {
	return fmt.Sprintf(`settings:
  secrets: secrets.yaml
images:
  live:
    kernel_args: "console=ttyS0 panic=-1"
groups:
  lab:
    image: live
    persist: [/var/log]
    persist_disk: %s
nodes:
  - {name: q-d, group: lab, boot_override: {ipxe: %q}, nics: [{mac: %q}],
     bmc: {protocol: simpower, host: lab, password: lab, simpower: {machine: q-d}}}
`, pd, persistOverride(extra), lab.MAC(40))
}

// debugfsCat returns what file holds in the ext4 image img, read with
// debugfs (no mount, no root); ok false when it is not there.
func debugfsCat(t *testing.T, img, file string) (string, bool) {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "stat "+file, img).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs stat %s: %v\n%s", file, err, out)
	}
	if strings.Contains(string(out), "File not found") {
		return "", false
	}
	return string(out), true
}

// TestQEMUPersistDisk: a RAM-root (http-live) node keeps /var/log on the
// partition labelled NBUI-PERSIST of its virtual disk (a raw image made
// here with mkfs.ext4 -L). A file written under /var/log is on the disk
// and survives the daemon's reboot-clean (PXE next and a power cycle
// through its BMC) while one written under /root is gone with the RAM
// overlay; an admin's wipe is applied at the next boot and clears it; the
// same node booted without its disk fails at stage persist, naming the
// label, instead of hanging or silently keeping the paths in RAM (with the
// group's missing: boot it boots without them and says so in its
// check-ins); with format: true it makes the filesystem on a blank disk and
// uses it.
func TestQEMUPersistDisk(t *testing.T) {
	t.Parallel()
	lab.RequireTools(t, "qemu-system-x86_64", "mkfs.ext4", "debugfs")
	files := testImage(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 16<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "NBUI-PERSIST", disk).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	_, modules := lab.Kernel(t)
	initrd := filepath.Join(dir, "initrd-disk")
	// ext4's soft dependency on crc32c is not followed: named here.
	if err := liveinit.BuildFile(initrd, liveinit.Options{KernelModulesDir: modules,
		Modules: []string{"virtio_pci", "virtio_net", "loop", "squashfs", "overlay", "virtio_blk", "crc32c_generic", "ext4"}}); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "nodes.yaml")
	cfg, bmcs := simpowerLabConfig(t)
	env := daemontest.Start(t, daemontest.Options{Dir: dir, Config: cfg,
		Secrets:   "bmc_passwords:\n  lab: " + rebootPassword + "\n",
		Inventory: diskInventory("netbootui.test_write=/var/log/kept,/root/gone netbootui.probe=/var/log/kept,/root/gone", "{}"),
		Before: func(d *Daemon) error {
			_, err := d.ImportImage(ImportRequest{Image: "live", Kernel: files["vmlinuz"], Initrd: initrd, Rootfs: files["rootfs.squashfs"], Publish: true})
			natAdvertise(d)
			return err
		}})
	d := env.D
	base := "http://10.0.2.2:" + env.HTTPPort()
	vmCtx, vmCancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer vmCancel()
	start := func(extra ...string) *lab.VM {
		vm, err := lab.StartVM(vmCtx, lab.VMOptions{Name: "q-d", MAC: lab.MAC(40), Dir: t.TempDir(),
			BootURL: base + "/boot/" + lab.MAC(40) + ".ipxe", ExtraArgs: extra})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { vm.Stop() })
		return vm
	}
	vm := start("-drive", "file="+disk+",if=virtio,format=raw")
	bmcs.Add("q-d", &vmMachine{vm: vm})

	// Boot 1: both files written, both seen; the kept one is on the disk
	// (the agent syncs the disk before each check-in), the other is not.
	checkinWith(t, d, vm, "q-d", "probe=present,present; persist: disk NBUI-PERSIST on /dev/vda", 4*time.Minute)
	if st, ok := debugfsCat(t, disk, "/var/log/kept"); !ok || !strings.Contains(st, "Size: 65536") {
		t.Fatalf("/var/log/kept is not on the disk with its 64 KiB:\n%s", st)
	}
	if _, ok := debugfsCat(t, disk, "/root/gone"); ok {
		t.Fatal("/root/gone reached the disk: only persisted paths belong there")
	}
	v, err := d.Persist("q-d")
	if err != nil || v.Disk == nil || !strings.HasPrefix(v.Disk.Reported, "disk NBUI-PERSIST on /dev/vda") || v.Disk.WipePending {
		t.Fatalf("persist view after boot 1: %+v, %v", v.Disk, err)
	}

	// Boot 2, through reboot-clean, without the write hook: the persisted
	// file is there, the other is gone with the RAM overlay.
	rebootClean := func(want string) {
		t.Helper()
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer rcancel()
		since := time.Now()
		res, err := d.RebootClean(rctx, RebootRequest{Selection: "q-d", Timeout: 4 * time.Minute, Who: "persist-disk-test"}, nil)
		if err != nil || len(res) != 1 || !res[0].OK {
			t.Fatalf("reboot-clean q-d: %+v, %v\nserial:\n%s", res, err, lab.Tail(vm.Serial(), 30))
		}
		checkinSince(t, d, vm, "q-d", want, since, 2*time.Minute)
	}
	reload := func(pd string) {
		t.Helper()
		if err := os.WriteFile(inv, []byte(diskInventory("netbootui.probe=/var/log/kept,/root/gone", pd)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := d.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	reload("{}")
	rebootClean("probe=present,absent; persist: disk NBUI-PERSIST on /dev/vda")
	if calls := strings.Join(bmcs.Calls(), " "); !strings.Contains(calls, "cycle") {
		t.Errorf("reboot-clean did not power cycle q-d through its BMC: %s", calls)
	}

	// A wipe: recorded, pending, applied by the node at its next boot.
	v, err = d.WipePersist(apitype.PersistWipeRequest{Node: "q-d", Who: "persist-disk-test"})
	if err != nil || v.Disk == nil || !v.Disk.WipePending {
		t.Fatalf("wipe: %+v, %v", v.Disk, err)
	}
	id := v.Disk.Wipe
	if _, ok := debugfsCat(t, disk, "/var/log/kept"); !ok {
		t.Fatal("the wipe removed the file before the node's next boot")
	}
	rebootClean("probe=absent,absent; persist: disk NBUI-PERSIST on /dev/vda, wipe " + id + " applied")
	if v, err = d.Persist("q-d"); err != nil || v.Disk.WipePending {
		t.Fatalf("persist view after the wipe's boot: %+v, %v", v.Disk, err)
	}
	if _, ok := debugfsCat(t, disk, "/var/log/kept"); ok {
		t.Fatal("/var/log/kept is still on the disk after the wipe's boot")
	}

	// The same node without its disk: a failure at stage persist.
	vm.Stop()
	vm = start()
	st := waitFailed(t, d, vm, "q-d", "stage persist", "no partition labelled NBUI-PERSIST")
	t.Logf("q-d without its disk: %s", st.Error)

	// With missing: boot it boots without persistence and says so in its
	// check-ins (the timeline), instead of failing.
	vm.Stop()
	reload("{missing: boot}")
	since := time.Now()
	vm = start()
	checkinSince(t, d, vm, "q-d", "persist: none: no partition labelled NBUI-PERSIST", since, 4*time.Minute)
	if st, _ := d.NodeState("q-d"); st.Stage != bootstate.StageBooted {
		t.Errorf("q-d with missing: boot and no disk is %s, want booted", st.Stage)
	}

	// With format: true (opt-in), a new blank disk is given the label and
	// used.
	vm.Stop()
	blank := filepath.Join(dir, "blank.img")
	if err := os.WriteFile(blank, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(blank, 16<<20); err != nil {
		t.Fatal(err)
	}
	reload("{format: true}")
	since = time.Now()
	vm = start("-drive", "file="+blank+",if=virtio,format=raw")
	checkinSince(t, d, vm, "q-d", "probe=absent,absent; persist: disk NBUI-PERSIST on /dev/vda (formatted at this boot)", since, 4*time.Minute)
	if out, err := exec.Command("debugfs", "-R", "stats", blank).CombinedOutput(); err != nil || !strings.Contains(string(out), "Filesystem volume name:   NBUI-PERSIST") {
		t.Fatalf("the blank disk was not formatted with the label: %v\n%s", err, out)
	}
	if _, ok := debugfsCat(t, blank, "/var/log"); !ok {
		t.Fatal("no /var/log on the formatted disk")
	}
}
