package daemon_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/image/liveinit"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

// debianRoot is one node of TestQEMUDebianRoots: the image it boots (the
// same Debian generation's kernel and root under each) and how.
type debianRoot struct {
	node, image, how string
	mac              string
	// bench: booted only by bench/roots (NETBOOTUI_ROOTS_BENCH=1)
	bench bool
}

// debianRoots are the nodes of TestQEMUDebianRoots. CI boots the dracut NFS
// node and the NBD node (two Debian boots under TCG); bench/roots/run.sh
// boots all four and compares their RAM.
var debianRoots = []debianRoot{
	{"d-dracut", "debian-roots", "nfs, dracut", lab.MAC(60), false},
	{"d-nfs", "deb-nfs", "nfs, built-in init", lab.MAC(61), true},
	{"d-nbd", "deb-nbd", "nbd, built-in init", lab.MAC(62), false},
	{"d-http", "deb-http", "http-live, built-in init", lab.MAC(63), true},
}

// debianRootsInventory: the site's nfs-ganesha and nbd-server on the host
// (10.0.2.2 from the guests), the Debian recipe's own image (nfs root,
// dracut initramfs) and three images of the same generation with the
// built-in initramfs (nfs, nbd, http-live), one node on each.
func debianRootsInventory(recipe, nfsDir string, nfsPort, nbdPort int, nodes []debianRoot) string {
	var b strings.Builder
	fmt.Fprintf(&b, `settings:
  nfs: {server: 10.0.2.2, port: %d, export: /netbootui, dir: %q}
  nbd: {server: 10.0.2.2, port: %d}
images:
  debian-roots: {recipe: %q, root: nfs, initramfs: dracut, kernel_args: "console=ttyS0 panic=-1"}
  deb-nfs: {root: nfs, kernel_args: "console=ttyS0 panic=-1"}
  deb-nbd: {root: nbd, kernel_args: "console=ttyS0 panic=-1"}
  deb-http: {kernel_args: "console=ttyS0 panic=-1"}
nodes:
`, nfsPort, nfsDir, nbdPort, recipe)
	for _, n := range nodes {
		fmt.Fprintf(&b, "  - {name: %s, image: %s, nics: [{mac: %q}]}\n", n.node, n.image, n.mac)
	}
	return b.String()
}

// TestQEMUDebianRoots builds one Debian recipe image for real
// (testdata/debian-roots: debootstrap of bookworm, the packages with the
// root's apt, the kernel from the root, the initramfs by the root's own
// dracut with its nfs module and netbootui's dracut module) and boots that
// generation on TCG QEMU nodes, one per way to its root:
//
//   - nfs, dracut: root=nfs:... rendered with dracut's words (the image's
//     initramfs: dracut); dracut's nfs module mounts the tree read-only,
//     netbootui's module lays the tmpfs overlay over it;
//   - nbd (Debian's nbd-server, nbd-client in the initramfs), and with
//     NETBOOTUI_ROOTS_BENCH=1 (bench/roots/run.sh) also nfs with the
//     built-in live init and http-live (the squashfs into RAM): the same
//     kernel and root with a built-in initramfs made from the generation's
//     own modules.
//
// Each node checks in with its generation; inside each guest a unit of the
// image prints the RAM in use once systemd has finished starting
// (MemTotal - MemAvailable), and the test prints the figures side by side.
// The NBD node must have read less than half the device; what each node
// writes must show in its overlay (systemd's writes at boot) and never
// reach the NFS tree. With the bench's http-live node, every network root
// must use less RAM than it by at least half the squashfs.
func TestQEMUDebianRoots(t *testing.T) {
	lab.RequireTools(t, "debootstrap", "chroot", "mksquashfs", "unsquashfs", "qemu-system-x86_64",
		"ganesha.nfsd", "nbd-server", "nbd-client", "ldd")
	if os.Geteuid() != 0 {
		lab.RequireTools(t, "root privileges (debootstrap and chroot need them)")
	}
	t.Parallel()
	modroot, err := lab.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	recipe, err := filepath.Abs(filepath.Join("testdata", "debian-roots"))
	if err != nil {
		t.Fatal(err)
	}
	bench := os.Getenv("NETBOOTUI_ROOTS_BENCH") == "1"
	var nodes []debianRoot
	for _, n := range debianRoots {
		if bench || !n.bench {
			nodes = append(nodes, n)
		}
	}
	dir := t.TempDir()
	nfsDir := filepath.Join(dir, "nfs")
	nfsPort, nbdPort := lab.FreePort(t), lab.FreePort(t)
	cfg := rootLabConfig(t)
	// A dracut boot under TCG on a loaded machine spends minutes between
	// its initrd and its check-in with nothing the daemon sees (an NFS root
	// fetches no rootfs): not a stall.
	cfg.StallTimeout = 20 * time.Minute
	env := daemontest.Start(t, daemontest.Options{Dir: dir, Inventory: debianRootsInventory(recipe, nfsDir, nfsPort, nbdPort, nodes),
		Config: cfg, Before: func(d *Daemon) error { natAdvertise(d); return nil }})
	d := env.D

	// The Debian image, built once (a developer's re-run takes the
	// debootstrap root from .cache/debootstrap; CI builds it from the
	// mirror).
	start := time.Now()
	bctx, bcancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer bcancel()
	b, err := image.NewBuilder(d.Images())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		tail []string
	)
	m, err := b.Build(bctx, recipe, image.BuildOptions{RootCache: filepath.Join(modroot, ".cache", "debootstrap"),
		Progress: func(p image.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if p.Line != "" {
				if tail = append(tail, p.Step+": "+p.Line); len(tail) > 40 {
					tail = tail[1:]
				}
			}
		}})
	if err != nil {
		mu.Lock()
		t.Fatalf("build debian-roots: %v\nlog ends:\n%s", err, strings.Join(tail, "\n"))
	}
	file := func(f string) string {
		p, err := d.Images().Path("debian-roots", m.ID, f)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	sq, err := os.Stat(file(image.FileRootfs))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built debian-roots %s in %v (squashfs %.1f MB)", m.ID, time.Since(start).Round(time.Second), float64(sq.Size())/1e6)
	if err := d.PublishImage("debian-roots", m.ID); err != nil {
		t.Fatal(err)
	}
	// The same kernel and root with a built-in initramfs: the generation's
	// own modules, nfsv4 and nbd among them, and the host's nbd-client.
	initrd := builtinInitrdOf(t, file(image.FileRootfs), filepath.Join(dir, "initrd-builtin"))
	gens := map[string]string{"debian-roots": m.ID}
	for _, n := range nodes {
		if n.image == "debian-roots" {
			continue
		}
		g, err := d.ImportImage(ImportRequest{Image: n.image, Kernel: file(image.FileKernel), Initrd: initrd, Rootfs: file(image.FileRootfs), Publish: true})
		if err != nil {
			t.Fatal(err)
		}
		gens[n.image] = g.ID
	}
	t.Logf("images ready after %v", time.Since(start).Round(time.Second))

	// systemd writes /etc/machine-id at the first boot: on the nodes'
	// overlays, never into the trees.
	machineIDs := map[string]string{}
	for img := range gens {
		if id, err := os.ReadFile(filepath.Join(nfs.TreeDir(pxe.NFSSite(d.Inventory().Settings.NFS), img, gens[img]), "etc", "machine-id")); err == nil {
			machineIDs[img] = string(id)
		}
	}
	if _, ok := machineIDs["debian-roots"]; !ok {
		t.Fatalf("publishing debian-roots made no NFS tree with /etc/machine-id")
	}

	// The site's servers, configured with what netbootui prints.
	lab.StartGanesha(t, nfsPort, pxe.NFSExports(d.Inventory()))
	conf, err := d.NBDServerConfig("127.0.0.1", nbdPort)
	if err != nil {
		t.Fatal(err)
	}
	srv := startNBDServer(t, dir, conf, nbdPort)
	t.Cleanup(srv.stop)

	vmCtx, vmCancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer vmCancel()
	base := "http://10.0.2.2:" + env.HTTPPort()
	vms := map[string]*lab.VM{}
	bootStart := time.Now()
	for _, n := range nodes {
		// One size for all: the comparison is of what each root costs. A
		// virtio RNG: without it systemd-random-seed waits up to minutes
		// for entropy under TCG.
		vm, err := lab.StartVM(vmCtx, lab.VMOptions{Name: n.node, MAC: n.mac, Dir: t.TempDir(), Memory: 1024,
			BootURL: base + "/boot/" + n.mac + ".ipxe", ExtraArgs: []string{"-device", "virtio-rng-pci"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { vm.Stop() })
		vms[n.node] = vm
	}

	// Every node booted with its generation and printed its memory line,
	// waited for together (a failure names every node still missing).
	type result struct {
		st     bootstate.NodeState
		booted time.Duration
		used   int
	}
	res := map[string]*result{}
	deadline := time.Now().Add(20 * time.Minute)
	for len(res) < len(nodes) && time.Now().Before(deadline) {
		for _, n := range nodes {
			if res[n.node] != nil {
				continue
			}
			st, ok := d.NodeState(n.node)
			if ok && st.Stage == bootstate.StageBooted && st.Generation == gens[n.image] && memRE.MatchString(vms[n.node].Serial()) {
				res[n.node] = &result{st: st, booted: time.Since(bootStart).Round(time.Second), used: usedKiB(t, vms[n.node])}
			}
		}
		time.Sleep(time.Second)
	}
	for _, n := range nodes {
		if res[n.node] == nil {
			st, _ := d.NodeState(n.node)
			t.Errorf("%s (%s) did not check in with %s and print its memory in 20m: %s %s\nserial:\n%s",
				n.node, n.how, gens[n.image], st.Stage, st.Error, lab.Tail(vms[n.node].Serial(), 40))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	var nbdRead, nbdSize int
	for _, n := range nodes {
		r, vm := res[n.node], vms[n.node]
		t.Logf("%s (%s) checked in with %s after %v, overlay %d bytes, RAM used %d KiB", n.node, n.how, gens[n.image], r.booted, r.st.OverlayBytes, r.used)
		// systemd writes at boot (machine-id, journal, units' state):
		// into the node's overlay.
		if r.st.OverlayBytes <= 0 {
			t.Errorf("%s (%s) reports %d overlay bytes: its writes went elsewhere", n.node, n.how, r.st.OverlayBytes)
		}
		for _, mk := range r.st.Timeline {
			if mk.Stage == bootstate.StageRootfs && n.image != "deb-http" {
				t.Errorf("%s (%s) fetched a rootfs over HTTP: %v", n.node, n.how, stagesOf(r.st))
			}
		}
		if n.image == "deb-nbd" {
			rd := nbdReadRE.FindStringSubmatch(vm.Serial())
			if rd == nil {
				t.Fatalf("d-nbd printed no nbd0 line:\n%s", lab.Tail(vm.Serial(), 30))
			}
			nbdRead, nbdSize = atoi(rd[1]), atoi(rd[2])
		}
	}
	dracut := vms["d-dracut"].Serial()
	if want := "netbootui: nfs root 10.0.2.2:/netbootui/images/debian-roots/" + m.ID + " read-only, tmpfs overlay"; !strings.Contains(dracut, want) {
		t.Errorf("the dracut node's console does not show %q:\n%s", want, lab.Tail(dracut, 40))
	}
	for img, before := range machineIDs {
		tree := nfs.TreeDir(pxe.NFSSite(d.Inventory().Settings.NFS), img, gens[img])
		if id, err := os.ReadFile(filepath.Join(tree, "etc", "machine-id")); err != nil || before != string(id) {
			t.Errorf("the NFS tree of %s: /etc/machine-id %q (%v), %q before the boot: a node wrote to the tree", img, id, err, before)
		}
	}
	if nbdRead > nbdSize/2 {
		t.Errorf("the NBD node read %d KiB of %d KiB: not on demand", nbdRead, nbdSize)
	}
	table := fmt.Sprintf("RAM used once systemd has started (MemTotal-MemAvailable, 1024 MiB nodes, Debian generation %s, squashfs %d KiB):", m.ID, sq.Size()/1024)
	for _, n := range nodes {
		table += fmt.Sprintf("\n  %-26s %7d KiB", n.how, res[n.node].used)
		if n.image == "deb-nbd" {
			table += fmt.Sprintf(" (read %d KiB of the device)", nbdRead)
		}
	}
	t.Log(table)
	if h := res["d-http"]; h != nil {
		for _, n := range nodes {
			if r := res[n.node]; n.image != "deb-http" && h.used-r.used < int(sq.Size()/1024/2) {
				t.Errorf("RAM used: %s %d KiB, http-live %d KiB: want at least half the %d KiB squashfs less", n.how, r.used, h.used, sq.Size()/1024)
			}
		}
	}
}

// builtinInitrdOf builds into dst a built-in initramfs for the kernel of a
// generation whose root is the squashfs sq: the kernel's modules come from
// the root (virtio, loop, squashfs, overlay, nfsv4, nbd), nbd-client from
// the host. Only modules.dep, modules.builtin and the modules the initramfs
// loads are unpacked (all of them are some 400 MB).
func builtinInitrdOf(t *testing.T, sq, dst string) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	unsquash := func(paths ...string) {
		t.Helper()
		args := append([]string{"-no-progress", "-quiet", "-f", "-d", tree, sq}, paths...)
		if out, err := exec.Command("unsquashfs", args...).CombinedOutput(); err != nil {
			t.Fatalf("unsquashfs %v: %v\n%s", paths, err, out)
		}
	}
	// bookworm's /lib is a link to usr/lib (merged /usr).
	unsquash("usr/lib/modules/*/modules.dep", "usr/lib/modules/*/modules.builtin")
	deps, _ := filepath.Glob(filepath.Join(tree, "usr", "lib", "modules", "*", "modules.dep"))
	if len(deps) != 1 {
		t.Fatalf("the root has %d kernels' modules (%v), want 1", len(deps), deps)
	}
	modDir := filepath.Dir(deps[0])
	modules := []string{"virtio_pci", "virtio_net", "e1000", "loop", "squashfs", "overlay", "nfsv4", "nbd"}
	files, err := liveinit.ResolveModules(modDir, modules)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(tree, modDir)
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.ToSlash(filepath.Join(rel, f)))
	}
	unsquash(paths...)
	nbdClient, err := exec.LookPath("nbd-client")
	if err != nil {
		t.Fatal(err)
	}
	if err := liveinit.BuildFile(dst, liveinit.Options{KernelModulesDir: modDir, Modules: modules, Programs: []string{nbdClient}}); err != nil {
		t.Fatal(err)
	}
	return dst
}
