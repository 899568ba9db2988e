package image_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/lab/labbuild"
)

// requireDebianBuild skips (fails under NETBOOTUI_REQUIRE_TOOLS=1) when a
// real Debian image cannot be built and booted here: debootstrap, chroot,
// mksquashfs and QEMU, and root (debootstrap and chroot need it).
func requireDebianBuild(t *testing.T) {
	t.Helper()
	lab.RequireTools(t, "debootstrap", "chroot", "mksquashfs", "qemu-system-x86_64")
	if os.Geteuid() != 0 {
		lab.RequireTools(t, "root privileges (debootstrap and chroot need them)")
	}
}

// debianRecipes are the documented Debian recipes and the kernel arguments
// their inventory image needs (beyond what the daemon renders).
var debianRecipes = []struct {
	recipe, args string
	// ready is on the console when the root's systemd started the agent
	// (the unit's Description, in "Started ..." with colours): without
	// it, the agent did not run under the root's systemd.
	ready string
	// kexec: once booted, the node is rebooted clean by kexec with the
	// root's kexec-tools (one recipe is enough to prove that path: each
	// kexec is another minute of TCG).
	kexec bool
}{
	{"debian-dracut", "rd.live.image rd.neednet=1 ip=dhcp rd.live.overlay.overlayfs=1", "netbootui check-in agent", false},
	{"debian-builtin", "", "netbootui check-in agent", true},
}

// TestDebianRecipesBootInQEMU builds each documented Debian recipe for real
// (debootstrap of bookworm from the Debian mirror, the packages with the
// root's own apt, the kernel from the root's /boot, the initramfs made by
// the root's own dracut with dmsquash-live and livenet, or the built-in
// live init), through the daemon's build queue, then network-boots it in
// QEMU from the daemon (iPXE, kernel and initrd over HTTP, root=live:http://
// fetched by the initramfs) until systemd in the Debian root starts the
// check-in agent and the node checks in with the generation just built.
// Each recipe gets variants for the node and its group (withVariants): the
// initramfs (built-in init or netbootui's dracut module) must stack them,
// node over group, and leave the overlay without their bytes.
func TestDebianRecipesBootInQEMU(t *testing.T) {
	requireDebianBuild(t)
	t.Parallel()
	modroot, err := lab.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// A developer's re-run skips debootstrap and apt (CI's checkout starts
	// without .cache, so CI builds from the mirror every time).
	cache := filepath.Join(modroot, ".cache", "debootstrap")
	agent := labbuild.NodeAgent(t)
	for i, tc := range debianRecipes {
		t.Run(tc.recipe, func(t *testing.T) {
			recipe := withVariants(t, filepath.Join(modroot, "assets", "recipes", "examples", tc.recipe))
			b := bootRecipe(t, recipe, tc.recipe, tc.args, "", lab.MAC(40+i), cache, agent, tc.ready,
				"netbootui: variants node-deb1 group-lab", "netbootui-variant-check: variant=node deb1 group-only=lab")
			if b.overlay >= variantBlob {
				t.Errorf("deb1 reported %d overlay bytes, at least its %d-byte variant file: the variant went into the tmpfs", b.overlay, variantBlob)
			}
			if tc.kexec {
				kexecWithTools(t, b, tc.ready)
			}
		})
	}
}

// kexecWithTools reboots the booted Debian node clean by kexec
// (reboot-clean --via kexec): its node agent, started by the root's
// check-in unit, verifies the signed instruction and kexecs with the
// root's kexec-tools (the recipes install it), which the daemon's event of
// the load names. The new kernel's boot follows on the console, the node
// checks in with the generation again, its timeline starting at the kexec
// stage, and the root's systemd starts the agent again (ready).
func kexecWithTools(t *testing.T, b booted, ready string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !b.d.AgentAlive("deb1") {
		if time.Now().After(deadline) {
			t.Fatalf("deb1's node agent does not poll\nserial ends:\n%s", lastLines(b.vm.Serial(), 60))
		}
		time.Sleep(time.Second)
	}
	from := len(b.vm.Serial())
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := b.d.RebootClean(ctx, daemon.RebootRequest{Selection: "deb1", Via: "kexec", Timeout: 5 * time.Minute, Who: "test"}, nil)
	after := b.vm.Serial()[from:]
	if err != nil || len(res) != 1 || !res[0].OK || res[0].Via != "kexec" || res[0].Generation != b.gen {
		var evs []string
		for _, ev := range b.d.History("deb1", 40) {
			evs = append(evs, fmt.Sprintf("%s %s %s %s %s %s", ev.Time.Format("15:04:05.000"), ev.Kind, ev.Stage, ev.Path, ev.Message, ev.Error))
		}
		t.Fatalf("reboot-clean by kexec: %v %+v\nevents:\n%s\nserial ends:\n%s", err, res, strings.Join(evs, "\n"), lastLines(b.vm.Serial(), 80))
	}
	t.Logf("deb1 clean by kexec with kexec-tools in %v", time.Since(start).Round(time.Second))
	var loaded string
	for _, ev := range b.d.History("deb1", 100) {
		if ev.Kind == bootstate.KindInfo && strings.Contains(ev.Message, "verified and loaded") {
			loaded = ev.Message
		}
	}
	if !strings.Contains(loaded, "loaded with kexec-tools (/") {
		t.Errorf("the agent did not load with kexec-tools: %q", loaded)
	}
	st, _ := b.d.NodeState("deb1")
	if len(st.Timeline) == 0 || st.Timeline[0].Stage != bootstate.StageKexec || st.Generation != b.gen {
		t.Errorf("after the kexec: generation %s, timeline %+v", st.Generation, st.Timeline)
	}
	deadline = time.Now().Add(time.Minute)
	for !strings.Contains(b.vm.Serial()[from:], ready) && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	after = b.vm.Serial()[from:]
	if !strings.Contains(after, "Linux version") || !strings.Contains(after, ready) {
		t.Errorf("the console after the kexec does not show the new kernel and %q:\n%s", ready, lastLines(after, 60))
	}
}

// variantBlob is the size of a file in the test node's variant: were the
// variant copied into the node's tmpfs overlay instead of stacked under
// it, the overlay would report at least this much.
const variantBlob = 16 << 20

// withVariants copies a recipe's image.yaml into a fresh folder and gives
// it variants for the test's node (deb1) and group (lab): both carry
// /etc/netbootui-variant (the node's must win); the group's alone carries
// /etc/netbootui-group-only and a systemd unit, enabled by its link, that
// prints both on the console; the node's carries a variantBlob-byte file.
func withVariants(t *testing.T, recipe string) string {
	t.Helper()
	dir := t.TempDir()
	y, err := os.ReadFile(filepath.Join(recipe, "image.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"image.yaml": string(y),
		"overlay.d/group-lab/etc/netbootui-variant":    "group lab\n",
		"overlay.d/group-lab/etc/netbootui-group-only": "lab\n",
		"overlay.d/node-deb1/etc/netbootui-variant":    "node deb1\n",
		"overlay.d/group-lab/etc/systemd/system/netbootui-variant-check.service": `[Unit]
Description=netbootui variant check
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "netbootui-variant-check: variant=$(cat /etc/netbootui-variant) group-only=$(cat /etc/netbootui-group-only)" >/dev/console'
[Install]
WantedBy=multi-user.target
`,
	}
	for rel, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := filepath.Join(dir, "overlay.d/group-lab/etc/systemd/system/multi-user.target.wants/netbootui-variant-check.service")
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/systemd/system/netbootui-variant-check.service", want); err != nil {
		t.Fatal(err)
	}
	// Zeros: the squashfs compresses them to nothing, a tmpfs would not.
	if err := os.WriteFile(filepath.Join(dir, "overlay.d/node-deb1/etc/netbootui-blob"), make([]byte, variantBlob), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// booted is a recipe's generation booted by bootRecipe.
type booted struct {
	d       *daemon.Daemon
	vm      *lab.VM // stopped when the test ends
	gen     string
	overlay int64 // the overlay bytes of the node's check-in
}

// bootRecipe builds the recipe (with the node agent at agent, "" for
// none) into the store of a fresh daemon, publishes it there and boots a
// node from it, until it checks in and its console showed every line of
// console. nodeKeys are more inventory keys of the node (indented under
// it).
func bootRecipe(t *testing.T, recipe, name, args, nodeKeys, mac, cache, agent string, console ...string) booted {
	dir := t.TempDir()
	inv := filepath.Join(dir, "nodes.yaml")
	kargs := strings.TrimSpace("console=ttyS0 panic=-1 " + args)
	// A Debian root's systemd writes about 8 MiB to the overlay as it
	// boots: a reboot-clean (kexecWithTools) counts that as clean.
	if err := os.WriteFile(inv, []byte(fmt.Sprintf(`settings:
  overlay_dirty_bytes: 67108864
images:
  %s:
    recipe: %s
    kernel_args: %q
groups:
  lab:
    image: %s
nodes:
  - name: deb1
    group: lab
    nics: [{mac: %q}]
%s`, name, recipe, kargs, name, mac, nodeKeys)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := daemontest.Start(t, daemontest.Options{Dir: dir, Config: daemon.Config{InventoryPath: inv, StallTimeout: 5 * time.Minute},
		Before: func(d *daemon.Daemon) error {
			// The guest reaches the host's loopback at 10.0.2.2 (QEMU user-mode networking).
			_, port, _ := net.SplitHostPort(d.HTTPAddr().String())
			d.SetAdvertiseURL("http://10.0.2.2:" + port)
			return nil
		}})
	d, port := env.D, env.HTTPPort()
	ctx := context.Background()

	bctx, bcancel := context.WithTimeout(ctx, 8*time.Minute)
	defer bcancel()
	var (
		mu    sync.Mutex
		tail  []string
		steps = map[string]time.Time{}
	)
	start := time.Now()
	b, err := image.NewBuilder(d.Images())
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Build(bctx, recipe, image.BuildOptions{RootCache: cache, Agent: agent, Progress: func(p image.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := steps[p.Step]; !ok {
			steps[p.Step] = time.Now()
		}
		if p.Line != "" {
			tail = append(tail, p.Step+": "+p.Line)
			if len(tail) > 40 {
				tail = tail[1:]
			}
		}
	}})
	if err != nil {
		mu.Lock()
		t.Fatalf("build %s: %v\nlog ends:\n%s", name, err, strings.Join(tail, "\n"))
	}
	mu.Lock()
	var times []string
	prev, prevStep := start, ""
	for _, s := range []string{image.StepHash, image.StepRootfs, image.StepOverlay, image.StepAgent, image.StepKernel,
		image.StepInitramfs, image.StepSquashfs, image.StepChecksums} {
		if at, ok := steps[s]; ok {
			if prevStep != "" {
				times = append(times, fmt.Sprintf("%s %.0fs", prevStep, at.Sub(prev).Seconds()))
			}
			prev, prevStep = at, s
		}
	}
	mu.Unlock()
	var sizes []string
	for _, f := range image.BootFiles {
		fi, ok := m.File(f)
		if !ok {
			t.Fatalf("generation %s has no %s", m.ID, f)
		}
		sizes = append(sizes, fmt.Sprintf("%s %.1f MB", f, float64(fi.Size)/1e6))
	}
	t.Logf("built %s generation %s in %.0fs (%s); %s", name, m.ID, m.BuildSeconds, strings.Join(times, ", "), strings.Join(sizes, ", "))
	if err := d.Images().Verify(name, m.ID); err != nil {
		t.Fatalf("verify %s: %v", m.ID, err)
	}
	// Provenance of a Debian build: the suite and mirror, and the package
	// versions read from the built root's dpkg database.
	if p := m.Provenance; p == nil || p.Debootstrap == nil || p.Debootstrap.Suite != "bookworm" || p.Debootstrap.Mirror == "" ||
		p.Packages["systemd"] == "" || p.Packages["linux-image-amd64"] == "" || p.RecipeHash == "" || p.Builder == "" {
		t.Fatalf("provenance of %s: %+v", name, m.Provenance)
	} else {
		t.Logf("%s: %d packages, suite %s from %s", name, len(p.Packages), p.Debootstrap.Suite, p.Debootstrap.Mirror)
	}
	if err := d.PublishImage(name, m.ID); err != nil {
		t.Fatal(err)
	}

	// The VM lives until the test ends (a caller may go on with it), at
	// most 20 minutes.
	vctx, vcancel := context.WithTimeout(ctx, 20*time.Minute)
	t.Cleanup(vcancel)
	bootStart := time.Now()
	vm, err := lab.StartVM(vctx, lab.VMOptions{Name: name, MAC: mac, Dir: t.TempDir(), Memory: 1536,
		BootURL: "http://10.0.2.2:" + port + "/boot/" + mac + ".ipxe"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Stop() })
	var overlay int64
	// A dracut boot took over 3 min to reach systemd at load 20-25 here
	// (a 56 MB initramfs, then the 170 MB root, under TCG): 4 min was
	// too tight on a loaded 2-core machine.
	deadline := time.Now().Add(8 * time.Minute)
	for {
		st, ok := d.NodeState("deb1")
		if ok && st.Stage == bootstate.StageBooted && st.Generation == m.ID {
			t.Logf("deb1 booted %s and checked in with generation %s after %v (overlay %d bytes)",
				name, m.ID, time.Since(bootStart).Round(time.Second), st.OverlayBytes)
			overlay = st.OverlayBytes
			break
		}
		if time.Now().After(deadline) {
			var evs []string
			for _, ev := range d.History("deb1", 30) {
				evs = append(evs, fmt.Sprintf("%s %s %s %s", ev.Kind, ev.Stage, ev.Path, ev.Error))
			}
			t.Fatalf("deb1 did not check in with %s: %+v\nevents:\n%s\nserial ends:\n%s", m.ID, st,
				strings.Join(evs, "\n"), lastLines(vm.Serial(), 60))
		}
		time.Sleep(time.Second)
	}
	// The root's systemd starts the units of multi-user.target in any
	// order: a line may come after the check-in.
	deadline = time.Now().Add(time.Minute)
	for _, want := range console {
		for !strings.Contains(vm.Serial(), want) && time.Now().Before(deadline) {
			time.Sleep(time.Second)
		}
		if !strings.Contains(vm.Serial(), want) {
			t.Errorf("the console never showed %q\nserial ends:\n%s", want, lastLines(vm.Serial(), 60))
		}
	}
	return booted{d: d, vm: vm, gen: m.ID, overlay: overlay}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestDebianCloudInitNoCloud builds a Debian root with cloud-init and boots
// it with the built-in live init: the init fetches the node's NoCloud seed
// from the daemon with the node's token, cloud-init sets the hostname the
// node's user_data names and runs its command, which prints the hostname on
// the console.
func TestDebianCloudInitNoCloud(t *testing.T) {
	requireDebianBuild(t)
	t.Parallel()
	modroot, err := lab.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	y, err := os.ReadFile(filepath.Join(modroot, "assets", "recipes", "examples", "debian-builtin", "image.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(string(y), "packages: [linux-image-amd64, systemd-sysv, curl, kexec-tools]", "packages: [linux-image-amd64, systemd-sysv, curl, kexec-tools, cloud-init]", 1)
	yaml = strings.Replace(yaml, "name: debian-builtin", "name: debian-cloudinit", 1)
	if !strings.Contains(yaml, "cloud-init]") {
		t.Fatal("the debian-builtin recipe changed: cannot add cloud-init to it")
	}
	os.WriteFile(filepath.Join(dir, "image.yaml"), []byte(yaml), 0o644)
	userData := `    user_data: |
      #cloud-config
      hostname: {{.Node}}-ci
      runcmd:
        - [sh, -c, 'echo "netbootui-cloudinit: hostname=$(hostname) node={{.Node}}" > /dev/console']
`
	bootRecipe(t, dir, "debian-cloudinit", "", userData, lab.MAC(45), filepath.Join(modroot, ".cache", "debootstrap"), "",
		"netbootui: cloud-init seed in place", "netbootui-cloudinit: hostname=deb1-ci node=deb1")
}
