package liveinit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
)

// bootModules are what a virtio-net QEMU node needs from Debian's kernel to
// run a live root.
var bootModules = []string{"virtio_pci", "virtio_net", "e1000", "loop", "squashfs", "overlay"}

// checkinRecorder is a minimal check-in endpoint for these tests (the
// daemon has the real one): it records every form and answers 200 for the
// right token, 403 otherwise.
type checkinRecorder struct {
	token string
	forms chan url.Values
}

func (c *checkinRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f := r.PostForm
	f.Set("_content_type", r.Header.Get("Content-Type"))
	select {
	case c.forms <- f:
	default: // a test that stopped listening must not block the server
	}
	if f.Get("token") != c.token {
		http.Error(w, "bad token", http.StatusForbidden)
		return
	}
	fmt.Fprintln(w, "ok")
}

// next returns the next check-in, or fails the test after d.
func (c *checkinRecorder) next(t *testing.T, d time.Duration, vm *lab.VM) url.Values {
	t.Helper()
	select {
	case f := <-c.forms:
		return f
	case <-time.After(d):
		t.Fatalf("no check-in within %v; serial log ends:\n%s", d, tailLines(vm.Serial(), 40))
		return nil
	}
}

func tailLines(s string, n int) string {
	re := regexp.MustCompile("\n")
	idx := re.FindAllStringIndex(s, -1)
	if len(idx) <= n {
		return s
	}
	return s[idx[len(idx)-n-1][1]:]
}

// serve starts an HTTP server on 127.0.0.1:0 with h and returns the address
// the guest uses for it (10.0.2.2:PORT through user-mode networking).
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "10.0.2.2:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// bootArtifacts builds the initramfs from the fetched kernel's modules and a
// squashfs of rootDir, returning the initrd path and the squashfs path.
func bootArtifacts(t *testing.T, dir, modules string, rootfs func(string) error) (initrd, squash string) {
	t.Helper()
	initrd = filepath.Join(dir, "initrd")
	if err := BuildFile(initrd, Options{KernelModulesDir: modules, Modules: bootModules}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if err := rootfs(root); err != nil {
		t.Fatal(err)
	}
	squash = filepath.Join(dir, "rootfs.squashfs")
	if err := MakeSquashfs(root, squash); err != nil {
		t.Fatal(err)
	}
	return initrd, squash
}

// TestQEMULiveBoot boots a real node under TCG: the initramfs fetches the
// squashfs over HTTP, mounts it under a tmpfs overlay, switches root, and the
// rootfs's agent checks in. A file written into the overlay is gone after a
// reset: the node is stateless.
func TestQEMULiveBoot(t *testing.T) {
	t.Parallel()
	lab.RequireTools(t, "qemu-system-x86_64", "mksquashfs")
	vmlinuz, modules := lab.Kernel(t)
	dir := t.TempDir()
	initrd, squash := bootArtifacts(t, dir, modules, func(root string) error {
		return BuildRootfs(root, RootfsOptions{})
	})
	if fi, err := os.Stat(initrd); err == nil {
		t.Logf("initramfs %d bytes", fi.Size())
	}

	rec, host := liveHead(t, "t1", squash)
	base := "http://" + host
	appendArgs := "console=ttyS0 panic=-1 " +
		"root=live:" + base + "/rootfs.squashfs?node=t1 " +
		"netbootui.url=" + base + " netbootui.node=t1 netbootui.token=x netbootui.gen=g1 " +
		"netbootui.checkin=" + base + "/checkin netbootui.checkin_interval=600 " +
		"netbootui.probe=/root/marker netbootui.test_write=/root/marker"

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	start := time.Now()
	vm, err := lab.StartVM(ctx, lab.VMOptions{
		Name: "t1", Kernel: vmlinuz, Initrd: initrd, Append: appendArgs, Dir: dir, MAC: lab.MAC(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()

	// Boot 1: the console shows each stage, then the first check-in arrives
	// with a clean overlay and no marker.
	for _, stage := range []string{"Run /init as init process", "netbootui: dhcp on", "netbootui: fetching rootfs",
		"netbootui: switching to the rootfs", "netbootui: rootfs up: netbootui test rootfs on t1"} {
		if _, err := vm.WaitSerial(ctx, regexp.MustCompile(regexp.QuoteMeta(stage))); err != nil {
			t.Fatal(err)
		}
		t.Logf("%5.1fs %s", time.Since(start).Seconds(), stage)
	}
	first := rec.next(t, 60*time.Second, vm)
	bootTime := time.Since(start)
	t.Logf("boot to first check-in: %v", bootTime.Round(100*time.Millisecond))
	for k, want := range map[string]string{
		"node": "t1", "token": "x", "generation": "g1", "probe": "absent",
		"_content_type": "application/x-www-form-urlencoded",
	} {
		if got := first.Get(k); got != want {
			t.Errorf("first check-in %s = %q, want %q (form %v)", k, got, want, first)
		}
	}
	bootID := first.Get("boot_id")
	if !regexp.MustCompile(`^[0-9a-f-]{16,}$`).MatchString(bootID) {
		t.Errorf("boot_id %q does not look random per boot", bootID)
	}
	if up, err := strconv.ParseFloat(first.Get("uptime"), 64); err != nil || up <= 0 {
		t.Errorf("uptime %q: %v", first.Get("uptime"), err)
	}
	clean := overlayBytes(t, first)
	if clean >= 64*1024 {
		t.Errorf("clean boot reports %d overlay bytes, want < 64 KiB", clean)
	}
	// Boot 1, second check-in: the test hook wrote 64 KiB into the overlay.
	dirty := rec.next(t, 30*time.Second, vm)
	if dirty.Get("probe") != "present" || dirty.Get("boot_id") != bootID {
		t.Fatalf("second check-in: probe=%q boot_id=%q, want present and %q", dirty.Get("probe"), dirty.Get("boot_id"), bootID)
	}
	if n := overlayBytes(t, dirty); n < 64*1024 {
		t.Fatalf("after writing 64 KiB the overlay reports %d bytes", n)
	}

	// Reset: the node boots the same image again, and the write is gone.
	resetAt := time.Now()
	if err := vm.Reset(); err != nil {
		t.Fatal(err)
	}
	again := rec.next(t, 60*time.Second, vm)
	t.Logf("reset to check-in: %v", time.Since(resetAt).Round(100*time.Millisecond))
	if again.Get("boot_id") == bootID {
		t.Fatalf("check-in after reset has the old boot_id %q: the node did not reboot", bootID)
	}
	if again.Get("probe") != "absent" {
		t.Fatalf("after reset the marker is %q, want absent: overlay writes survived a reboot", again.Get("probe"))
	}
	if n := overlayBytes(t, again); n >= 64*1024 {
		t.Fatalf("after reset the overlay reports %d bytes, want < 64 KiB", n)
	}
}

func overlayBytes(t *testing.T, f url.Values) int64 {
	t.Helper()
	n, err := strconv.ParseInt(f.Get("overlay_bytes"), 10, 64)
	if err != nil || n < 0 {
		t.Fatalf("overlay_bytes %q is not a byte count", f.Get("overlay_bytes"))
	}
	return n
}

// TestQEMURootWithoutInit boots, over an e1000 NIC this time, an image that
// has no /sbin/init: the live init must fetch it, then say what is wrong on
// the console instead of hanging or panicking.
func TestQEMURootWithoutInit(t *testing.T) {
	t.Parallel()
	lab.RequireTools(t, "qemu-system-x86_64", "mksquashfs")
	vmlinuz, modules := lab.Kernel(t)
	dir := t.TempDir()
	initrd, squash := bootArtifacts(t, dir, modules, func(root string) error {
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, "etc", "motd"), []byte("no init here\n"), 0o644)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/rootfs.squashfs", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, squash) })
	host := serve(t, mux)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	vm, err := lab.StartVM(ctx, lab.VMOptions{
		Name: "noinit", Kernel: vmlinuz, Initrd: initrd, Dir: dir, MAC: lab.MAC(2), NIC: "e1000",
		Append: "console=ttyS0 panic=-1 root=live:http://" + host + "/rootfs.squashfs netbootui.node=noinit",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	if _, err := vm.WaitSerial(ctx, regexp.MustCompile(`netbootui: rootfs: \d+ bytes, done`)); err != nil {
		t.Fatal(err)
	}
	m, err := vm.WaitSerial(ctx, regexp.MustCompile(`netbootui: FAILED: (.*)`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "has no /sbin/init"; !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(m[1]) {
		t.Fatalf("failure reason %q does not say %q", m[1], want)
	}
}

// TestQEMUVariants boots an image that ships per-node and per-group variants
// under /etc/netbootui/overlay.d. Node t1 in group g gets both stacked as
// read-only lowers, the node's above the group's: /etc/variant (only in the
// variants) is present, the node's /etc/os-release wins over the group's and
// the image's (rcS prints its PRETTY_NAME), and the overlay stays clean
// because nothing was copied into the tmpfs. Node t2 in group h, which have
// no variants, boots the plain image.
func TestQEMUVariants(t *testing.T) {
	t.Parallel()
	lab.RequireTools(t, "qemu-system-x86_64", "mksquashfs")
	vmlinuz, modules := lab.Kernel(t)
	dir := t.TempDir()
	initrd, squash := bootArtifacts(t, dir, modules, func(root string) error {
		if err := BuildRootfs(root, RootfsOptions{}); err != nil {
			return err
		}
		files := map[string]string{
			"group-g/etc/variant":    "group\n",
			"group-g/etc/os-release": "PRETTY_NAME=\"variant group-g\"\n",
			"node-t1/etc/variant":    "node\n",
			"node-t1/etc/os-release": "PRETTY_NAME=\"variant node-t1\"\n",
			// A variant for a name the boots below do not carry.
			"node-t9/etc/variant": "t9\n",
		}
		for name, body := range files {
			p := filepath.Join(root, "etc", "netbootui", "overlay.d", filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	rec, host := liveHead(t, "", squash)
	base := "http://" + host

	for i, tc := range []struct {
		node, group string
		variants    string // the init's "netbootui: variants" line
		pretty      string // PRETTY_NAME rcS prints: whose os-release won
		probe       string // /etc/variant
	}{
		{"t1", "g", "node-t1 group-g", "variant node-t1", "present"},
		{"t2", "h", "none", "netbootui test rootfs", "absent"},
	} {
		// Run one VM at a time: two cores, and each boot is ~11 s under TCG.
		vmDir := filepath.Join(dir, tc.node)
		if err := os.Mkdir(vmDir, 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
		vm, err := lab.StartVM(ctx, lab.VMOptions{
			Name: tc.node, Kernel: vmlinuz, Initrd: initrd, Dir: vmDir, MAC: lab.MAC(10 + i),
			Append: "console=ttyS0 panic=-1 root=live:" + base + "/rootfs.squashfs " +
				"netbootui.url=" + base + " netbootui.node=" + tc.node + " netbootui.group=" + tc.group +
				" netbootui.token=x netbootui.gen=g1 netbootui.checkin=" + base + "/checkin" +
				" netbootui.checkin_interval=600 netbootui.probe=/etc/variant",
		})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		for _, w := range []struct{ re, want string }{
			{`netbootui: variants ([^\r\n]*)`, tc.variants},
			{`netbootui: rootfs up: (.*) on ` + tc.node + `,`, tc.pretty},
		} {
			m, err := vm.WaitSerial(ctx, regexp.MustCompile(w.re))
			if err != nil {
				vm.Stop()
				cancel()
				t.Fatalf("%s: %v; serial log ends:\n%s", tc.node, err, tailLines(vm.Serial(), 40))
			}
			if m[1] != w.want {
				t.Errorf("%s: console %q: got %q, want %q", tc.node, w.re, m[1], w.want)
			}
		}
		f := rec.next(t, 60*time.Second, vm)
		vm.Stop()
		cancel()
		if f.Get("node") != tc.node || f.Get("probe") != tc.probe {
			t.Errorf("%s: check-in node=%q probe=%q, want %q and %q (form %v)", tc.node, f.Get("node"), f.Get("probe"), tc.node, tc.probe, f)
		}
		if n := overlayBytes(t, f); n >= 64*1024 {
			t.Errorf("%s: overlay reports %d bytes after a clean boot with variants, want < 64 KiB", tc.node, n)
		}
		t.Logf("%s in %s: variants %s, probe %s, overlay %d bytes", tc.node, tc.group, tc.variants, f.Get("probe"), overlayBytes(t, f))
	}
}

// TestQEMUHeadDown boots a real node under TCG whose first head is down
// (several heads): netbootui.url, the root and the check-in URL name a head
// that refuses connections; netbootui.heads= names it a second time and then
// a live one. The live init fetches the root from the live head, and the
// agent checks in there.
func TestQEMUHeadDown(t *testing.T) {
	t.Parallel()
	lab.RequireTools(t, "qemu-system-x86_64", "mksquashfs")
	vmlinuz, modules := lab.Kernel(t)
	dir := t.TempDir()
	initrd, squash := bootArtifacts(t, dir, modules, func(root string) error {
		return BuildRootfs(root, RootfsOptions{})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://10.0.2.2:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close() // the first head is down
	rec, host := liveHead(t, "t4", squash)
	live := "http://" + host
	appendArgs := "console=ttyS0 panic=-1 " +
		"root=live:" + dead + "/rootfs.squashfs?node=t4 " +
		"netbootui.url=" + dead + " netbootui.node=t4 netbootui.token=x netbootui.gen=g1 " +
		"netbootui.checkin=" + dead + "/checkin netbootui.checkin_interval=600 " +
		"netbootui.heads=" + dead + "," + live

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	vm, err := lab.StartVM(ctx, lab.VMOptions{
		Name: "t4", Kernel: vmlinuz, Initrd: initrd, Append: appendArgs, Dir: dir, MAC: lab.MAC(4),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	for _, stage := range []string{"netbootui: rootfs: trying head " + live, "netbootui: switching to the rootfs"} {
		if _, err := vm.WaitSerial(ctx, regexp.MustCompile(regexp.QuoteMeta(stage))); err != nil {
			t.Fatal(err)
		}
	}
	first := rec.next(t, 60*time.Second, vm)
	if first.Get("node") != "t4" || first.Get("generation") != "g1" {
		t.Errorf("check-in on the live head: %v", first)
	}
}

// liveHead serves a test head: check-ins go to the returned recorder
// (token "x") and /rootfs.squashfs serves squash, to node only unless node
// is "". It returns the head's host:port.
func liveHead(t *testing.T, node, squash string) (*checkinRecorder, string) {
	t.Helper()
	rec := &checkinRecorder{token: "x", forms: make(chan url.Values, 16)}
	mux := http.NewServeMux()
	mux.Handle("/checkin", rec)
	mux.HandleFunc("/rootfs.squashfs", func(w http.ResponseWriter, r *http.Request) {
		if node != "" && r.URL.Query().Get("node") != node {
			http.Error(w, "wrong node", http.StatusNotFound)
			return
		}
		http.ServeFile(w, r, squash)
	})
	return rec, serve(t, mux)
}
