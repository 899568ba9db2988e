package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

// memRE is the line the default recipe's rcS prints once the root is up.
var memRE = regexp.MustCompile(`netbootui: memory: total_kb=(\d+) available_kb=(\d+) used_kb=(\d+)`)

// nfsInventory: one node on the nfs image, one on the same image over
// http-live, the site's NFS server at 10.0.2.2:port (the host, for QEMU).
func nfsInventory(port int, dir string) string {
	return fmt.Sprintf(`settings:
  nfs:
    server: 10.0.2.2
    port: %d
    export: /netbootui
    dir: %s
images:
  live-nfs:
    root: nfs
    kernel_args: "console=ttyS0 panic=-1"
  live-http:
    kernel_args: "console=ttyS0 panic=-1"
nodes:
  - name: q-nfs
    image: live-nfs
    user_data: "#cloud-config\nhostname: {{.Node}}\n"
    nics: [{mac: %q}]
  - name: q-http
    image: live-http
    nics: [{mac: %q}]
`, port, dir, lab.MAC(20), lab.MAC(21))
}

// TestQEMUNFSRoot boots the default recipe over an NFS root from a real
// nfs-ganesha, and the same generation over http-live beside it, and prints
// the RAM each uses once its root is up (measured inside the guest). The
// NFS node boots first while the server is down: its init must report the
// failure at the rootfs stage, naming the server, instead of hanging; then
// the server starts and a reset boots it.
func TestQEMUNFSRoot(t *testing.T) {
	t.Parallel()
	lab.RequireTools(t, "qemu-system-x86_64", "ganesha.nfsd", "unsquashfs")
	files := testImage(t)
	dir := t.TempDir()
	nfsDir := filepath.Join(dir, "nfs")
	port := lab.FreePort(t)
	var gens map[string]string
	rootfs := ballastRootfs(t, files["rootfs.squashfs"], 48)
	initrds := map[string]string{"live-nfs": nfsInitrd(t, dir), "live-http": files["initrd"]}
	env := daemontest.Start(t, daemontest.Options{Dir: dir, Inventory: nfsInventory(port, nfsDir), Config: rootLabConfig(t),
		Before: func(d *Daemon) (err error) {
			gens, err = publishAll(d, files, initrds, rootfs)
			natAdvertise(d)
			return err
		}})
	d := env.D
	// Publishing unpacked the nfs image's tree under the export directory,
	// and only that image's.
	tree := nfs.TreeDir(pxe.NFSSite(d.Inventory().Settings.NFS), "live-nfs", gens["live-nfs"])
	if _, err := os.Stat(filepath.Join(tree, "usr/sbin/netbootui-checkin")); err != nil {
		t.Fatalf("the nfs tree was not published: %v", err)
	}
	if _, err := os.Stat(filepath.Join(nfsDir, "images", "live-http")); err == nil {
		t.Fatalf("an http-live image got an NFS tree")
	}
	vmCtx, vmCancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer vmCancel()
	base := "http://10.0.2.2:" + env.HTTPPort()
	httpVM := bootVM(vmCtx, t, "q-http", lab.MAC(21), base)
	nfsVM := bootVM(vmCtx, t, "q-nfs", lab.MAC(20), base)

	// The server is down: the failure shows at its stage, naming the server.
	st := waitFailed(t, d, nfsVM, "q-nfs", "stage rootfs", "10.0.2.2:/netbootui/images/live-nfs/"+gens["live-nfs"])
	t.Logf("NFS server down: %s", st.Error)

	// The site's server gets the export entries netbootui prints.
	exports := pxe.NFSExports(d.Inventory())
	lab.StartGanesha(t, port, exports)
	if err := nfsVM.Reset(); err != nil {
		t.Fatal(err)
	}
	nfsSt := waitBooted(t, d, nfsVM, "q-nfs", gens["live-nfs"], 4*time.Minute)
	httpSt := waitBooted(t, d, httpVM, "q-http", gens["live-http"], 4*time.Minute)
	// The NFS node downloaded no squashfs: no rootfs stage in this boot.
	for _, m := range nfsSt.Timeline {
		if m.Stage == bootstate.StageRootfs {
			t.Errorf("q-nfs fetched a rootfs over HTTP: %v", stagesOf(nfsSt))
		}
	}
	if fmt.Sprint(stagesOf(httpSt)) != fmt.Sprint([]bootstate.Stage{bootstate.StageConfig, bootstate.StageKernel, bootstate.StageInitrd, bootstate.StageRootfs, bootstate.StageBooted}) {
		t.Errorf("q-http stages %v", stagesOf(httpSt))
	}
	// The node has user_data: its init fetched its NoCloud seed with its
	// token (the daemon answers nothing else).
	fetched := map[string]bool{}
	for _, ev := range d.History("q-nfs", 200) {
		if f, ok := strings.CutPrefix(ev.Message, "cloud-init fetched "); ok && ev.Kind == bootstate.KindInfo {
			fetched[f] = true
		}
		if ev.Kind == bootstate.KindDenied {
			t.Errorf("q-nfs was refused: %+v", ev)
		}
	}
	if !fetched["meta-data"] || !fetched["user-data"] || !fetched["vendor-data"] {
		t.Errorf("q-nfs fetched the NoCloud seed files %v, want all three", fetched)
	}
	if strings.Contains(httpVM.Serial(), "nocloud") {
		t.Errorf("q-http has no user_data but was given a NoCloud seed")
	}
	if !strings.Contains(nfsVM.Serial(), "netbootui: mounting nfs root 10.0.2.2:/netbootui/images/live-nfs/") {
		t.Errorf("q-nfs serial does not show the NFS mount:\n%s", lab.Tail(nfsVM.Serial(), 30))
	}
	usedNFS, usedHTTP := usedKiB(t, nfsVM), usedKiB(t, httpVM)
	sq, _ := os.Stat(rootfs)
	t.Logf("RAM used once the root is up (MemTotal-MemAvailable, same %d KiB generation with 48 MiB nobody reads): nfs %d KiB, http-live %d KiB",
		sq.Size()/1024, usedNFS, usedHTTP)
	if usedHTTP-usedNFS < 32<<10 {
		t.Errorf("RAM used: nfs %d KiB, http-live %d KiB: want the 48 MiB squashfs to show", usedNFS, usedHTTP)
	}
}
