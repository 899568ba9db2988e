package liveinit

import (
	"github.com/netbootui/netbootui/internal/atomicfile"

	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// RootfsOptions says what goes into a test root filesystem.
type RootfsOptions struct {
	// Busybox is a statically linked busybox (DefaultBusybox when empty).
	Busybox string
	// Name is the PRETTY_NAME in /etc/os-release ("netbootui test rootfs"
	// when empty).
	Name string
}

// AgentPath is where images carry the check-in agent.
const AgentPath = "usr/sbin/netbootui-checkin"

// inittab for busybox init: rcS once, the check-in agent once (it never
// exits while it has somewhere to report to), a shell on the console.
const inittab = `# netbootui test rootfs (busybox init)
::sysinit:/etc/init.d/rcS
::once:/usr/sbin/netbootui-checkin
::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/bin/reboot
::shutdown:/bin/umount -a -r
`

// BuildRootfs lays out a minimal busybox root filesystem in dir, for
// MakeSquashfs to pack: bin/busybox with its applet links, sbin/init (busybox
// init) with etc/inittab and etc/init.d/rcS (from assets/scripts/rootfs-rcS.sh),
// the check-in agent at usr/sbin/netbootui-checkin, etc/passwd, etc/group,
// etc/os-release, and etc/resolv.conf pointing at the live init's
// /run/netbootui/resolv.conf. The console gets a root shell without login:
// this root is for tests and demos, not production.
//
// dir must not exist or be an empty directory; the tree is built beside it
// and renamed into place, so a failure leaves dir as it was.
func BuildRootfs(dir string, opt RootfsOptions) error {
	if ents, err := os.ReadDir(dir); err == nil {
		if len(ents) > 0 {
			return fmt.Errorf("liveinit: rootfs directory %s is not empty", dir)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("liveinit: rootfs directory: %w", err)
	}
	bb, applets, err := loadBusybox(opt.Busybox)
	if err != nil {
		return err
	}
	agent, err := assetScript("checkin.sh")
	if err != nil {
		return err
	}
	rcS, err := assetScript("rootfs-rcS.sh")
	if err != nil {
		return err
	}
	name := opt.Name
	if name == "" {
		name = "netbootui test rootfs"
	}
	if strings.ContainsAny(name, "\"\\\n`$") {
		return fmt.Errorf("liveinit: rootfs name %q has characters os-release cannot hold", name)
	}

	t := newTree()
	t.file("bin/busybox", 0o755, bb)
	for _, a := range applets {
		t.symlink("bin/"+a, "busybox")
	}
	t.symlink("sbin/init", "/bin/busybox")
	t.file("etc/inittab", 0o644, []byte(inittab))
	t.file("etc/init.d/rcS", 0o755, rcS)
	t.file(AgentPath, 0o755, agent)
	t.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	t.file("etc/group", 0o644, []byte("root:x:0:\n"))
	t.file("etc/hostname", 0o644, []byte("netbootui-node\n"))
	t.file("etc/os-release", 0o644, []byte(fmt.Sprintf(
		"PRETTY_NAME=\"%s\"\nNAME=\"%s\"\nID=netbootui-test\nVERSION_ID=1\n", name, name)))
	t.symlink("etc/resolv.conf", "/run/netbootui/resolv.conf")
	t.symlink("var/run", "/run")
	for _, d := range []string{"dev", "proc", "sys", "run", "mnt", "usr/bin", "var/log"} {
		t.dir(d, 0o755)
	}
	t.dir("root", 0o700)
	t.dir("tmp", 0o777|fs.ModeSticky)

	parent := filepath.Dir(filepath.Clean(dir))
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return fmt.Errorf("liveinit: rootfs: %w", err)
	}
	if err := writeTree(stage, t.sorted()); err != nil {
		os.RemoveAll(stage)
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		os.RemoveAll(stage)
		return fmt.Errorf("liveinit: rootfs: %w", err)
	}
	if err := os.Rename(stage, dir); err != nil {
		os.RemoveAll(stage)
		return fmt.Errorf("liveinit: rootfs: %w", err)
	}
	return nil
}

// writeTree creates entries (sorted, parents first) below root.
func writeTree(root string, entries []entry) error {
	if err := os.Chmod(root, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(root, filepath.FromSlash(e.name))
		var err error
		switch {
		case e.dir:
			err = os.Mkdir(p, 0o700)
		case e.symlink:
			err = os.Symlink(string(e.data), p)
		case e.mode&fs.ModeCharDevice != 0:
			err = fmt.Errorf("device nodes are not laid out in directories")
		default:
			err = os.WriteFile(p, e.data, 0o600)
		}
		if err == nil && !e.symlink {
			// Chmod after creation: the umask must not change the modes.
			err = os.Chmod(p, e.mode&(fs.ModePerm|fs.ModeSticky))
		}
		if err != nil {
			return fmt.Errorf("liveinit: rootfs %s: %w", e.name, err)
		}
	}
	return nil
}

// MakeSquashfs packs dir into the squashfs image out with mksquashfs
// (squashfs-tools), owned by root, compressed with zstd (xz or gzip when this
// mksquashfs lacks zstd), with fixed timestamps so the same tree gives the
// same image. out is written through a temporary file and renamed.
func MakeSquashfs(dir, out string) error {
	bin, err := exec.LookPath("mksquashfs")
	if err != nil {
		return fmt.Errorf("liveinit: mksquashfs not found (install squashfs-tools): %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("liveinit: squashfs source: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("liveinit: squashfs source %s is not a directory", dir)
	}
	comp, err := squashfsCompressor(bin)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("liveinit: squashfs: %w", err)
	}
	tmp.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp.Name())
		}
	}()
	cmd := exec.Command(bin, dir, tmp.Name(), "-noappend", "-all-root", "-comp", comp,
		"-mkfs-time", "0", "-all-time", "0", "-no-progress", "-quiet")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("liveinit: mksquashfs %s: %v: %s", dir, err, strings.TrimSpace(string(msg)))
	}
	f, err := os.OpenFile(tmp.Name(), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Chmod(0o644)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("liveinit: squashfs: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("liveinit: squashfs: %w", err)
	}
	ok = true
	return atomicfile.SyncDir(filepath.Dir(out))
}

// squashfsCompressor picks the best compressor this mksquashfs offers.
func squashfsCompressor(bin string) (string, error) {
	// mksquashfs -help exits non-zero on some versions; its text is what counts.
	help, _ := exec.Command(bin, "-help").CombinedOutput()
	avail := map[string]bool{}
	in := false
	for _, line := range strings.Split(string(help), "\n") {
		if strings.Contains(line, "Compressors available") {
			in = true
			continue
		}
		if !in {
			continue
		}
		f := strings.Fields(line)
		if len(f) > 0 {
			avail[f[0]] = true
		}
	}
	for _, c := range []string{"zstd", "xz", "gzip"} {
		if avail[c] {
			return c, nil
		}
	}
	if !bytes.Contains(help, []byte("gzip")) {
		return "", fmt.Errorf("liveinit: %s -help lists no known compressor", bin)
	}
	return "gzip", nil
}
