package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/netbootui/netbootui/assets"
	"github.com/netbootui/netbootui/internal/image/liveinit"
)

// A debootstrap root is made in two steps: debootstrap lays out the bare
// suite, then the image's own apt installs the recipe's packages in a
// chroot. debootstrap's --include cannot do the second part: it takes the
// first alternative of every dependency, so linux-image-amd64 drags in
// initramfs-tools, which conflicts with dracut. apt resolves alternatives
// and virtual packages (dracut provides linux-initramfs-tool).
//
// Every tool that needs /proc, /sys or /dev inside the root (debootstrap
// itself, apt, dracut) runs in a mount namespace of its own: the mounts
// vanish with the tool, even when the builder is killed, so a build
// directory never holds a live bind of the host's /dev for CleanStale to
// walk into.

// chrootScript mounts /proc, /sys and /dev in root ($1) and runs the rest
// of its arguments chrooted there. It runs in a private mount namespace.
// The host's resolv.conf is bound read-only over the root's when the root
// has one as a plain file (apt needs names; nothing writes to the host's).
const chrootScript = `set -e
r=$1
shift
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
mount --rbind /dev "$r/dev"
if [ -f /etc/resolv.conf ] && [ -f "$r/etc/resolv.conf" ] && [ ! -L "$r/etc/resolv.conf" ]; then
	mount --bind /etc/resolv.conf "$r/etc/resolv.conf"
	mount -o remount,bind,ro "$r/etc/resolv.conf"
fi
exec chroot "$r" "$@"`

// ChrootArgs is the command line (sh first) that runs argv chrooted in
// root with /proc, /sys and /dev mounted. The builder runs it in a mount
// namespace of its own (unshare(CLONE_NEWNS)), so the mounts never reach
// the host's.
func ChrootArgs(root string, argv ...string) []string {
	return append([]string{"/bin/sh", "-c", chrootScript, "netbootui-chroot", root}, argv...)
}

// AptArgs is the command line, run chrooted in a debootstrap root, that
// installs a recipe's packages (no recommends, keeping the packaged
// configuration files).
func AptArgs(packages []string) []string {
	return append([]string{"apt-get", "install", "-y", "--no-install-recommends",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}, packages...)
}

// chrootEnv is the environment of tools run in a root.
var chrootEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"DEBIAN_FRONTEND=noninteractive", "LC_ALL=C", "LANG=C", "HOME=/root", "TERM=dumb",
	// The kernel package's hooks (dracut, initramfs-tools) skip making
	// /boot/initrd.img: the pipeline makes the image's initramfs itself.
	"INITRD=No",
}

// runChroot runs argv chrooted in root, in a private mount namespace.
func runChroot(ctx context.Context, root string, argv []string, lg *buildLog) error {
	cmd, err := chrootCmd(ctx, root, argv)
	if err != nil {
		return err
	}
	return runCmd(ctx, cmd, true, lg)
}

// chrootCmd is the command that runs argv chrooted in root with /proc,
// /sys and /dev mounted (ChrootArgs); the caller runs it isolated (in a
// mount namespace of its own).
func chrootCmd(ctx context.Context, root string, argv []string) (*exec.Cmd, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%s: running it in a chroot needs root", argv[0])
	}
	for _, d := range []string{"proc", "sys", "dev"} {
		p := filepath.Join(root, d)
		if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("the root's /%s is not a directory", d)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
	}
	args := ChrootArgs(root, argv...)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = chrootEnv
	return cmd, nil
}

// makeDebootstrap makes a debootstrap root: the bare suite, then the
// recipe's packages with apt, then apt's caches emptied (a stateless node
// installs nothing).
func makeDebootstrap(ctx context.Context, d DebootstrapSpec, root string, lg *buildLog) error {
	bin, err := exec.LookPath("debootstrap")
	if err != nil {
		return fmt.Errorf("rootfs debootstrap: debootstrap not found (apt-get install debootstrap): %w", err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("rootfs debootstrap: needs root")
	}
	args := DebootstrapArgs(d, root)
	lg.printf("%s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, bin, args[1:]...)
	if err := runCmd(ctx, cmd, true, lg); err != nil {
		return err
	}
	if len(d.Packages) > 0 {
		noStart := filepath.Join(root, "usr", "sbin", "policy-rc.d")
		if err := noSymlinkParents(root, filepath.Dir(noStart)); err != nil {
			return err
		}
		// No service starts inside the build (invoke-rc.d asks policy-rc.d).
		if err := os.WriteFile(noStart, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
			return err
		}
		apt := AptArgs(d.Packages)
		lg.printf("chroot: %s", strings.Join(apt, " "))
		if err := runChroot(ctx, root, apt, lg); err != nil {
			return fmt.Errorf("installing packages: %w", err)
		}
		if err := runChroot(ctx, root, []string{"apt-get", "clean"}, lg); err != nil {
			return err
		}
		if err := os.Remove(noStart); err != nil {
			return err
		}
	}
	lists := filepath.Join(root, "var", "lib", "apt", "lists")
	ents, _ := os.ReadDir(lists)
	for _, e := range ents {
		if e.Type().IsRegular() && e.Name() != "lock" {
			os.Remove(filepath.Join(lists, e.Name()))
		}
	}
	return nil
}

// Where the check-in agent's systemd unit goes in a root that runs systemd,
// and the link that enables it.
const (
	agentUnitPath = "usr/lib/systemd/system/netbootui-checkin.service"
	agentWantPath = "etc/systemd/system/multi-user.target.wants/netbootui-checkin.service"
)

// hasSystemd says whether a root boots systemd.
func hasSystemd(root string) bool {
	for _, p := range []string{"usr/lib/systemd/systemd", "lib/systemd/systemd"} {
		if fi, err := os.Stat(filepath.Join(root, p)); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// installAgent puts the check-in agent into a root, and, when the root
// runs systemd, its unit, enabled for multi-user.target. (The busybox
// root's init starts the agent from its inittab; liveinit writes that.)
func installAgent(root string, r *Recipe, lg *buildLog) error {
	agent, err := fs.ReadFile(assets.FS, "scripts/checkin.sh")
	if err != nil {
		return err
	}
	if err := putFile(root, liveinit.AgentPath, agent, 0o755); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	lg.printf("installed /%s", liveinit.AgentPath)
	if r.Agent != "" && r.Initramfs.Kind != InitramfsBuiltin {
		// The built-in init hands its own copy over in /run; a dracut
		// initramfs does not, so the root carries it.
		b, err := liveinit.ReadStatic(r.Agent)
		if err != nil {
			return fmt.Errorf("node agent: %w", err)
		}
		if err := putFile(root, liveinit.NodeAgentPath, b, 0o755); err != nil {
			return fmt.Errorf("node agent: %w", err)
		}
		lg.printf("installed /%s", liveinit.NodeAgentPath)
	}
	if !hasSystemd(root) {
		return nil
	}
	unit, err := fs.ReadFile(assets.FS, "scripts/netbootui-checkin.service")
	if err != nil {
		return err
	}
	if err := putFile(root, agentUnitPath, unit, 0o644); err != nil {
		return fmt.Errorf("agent unit: %w", err)
	}
	want := filepath.Join(root, filepath.FromSlash(agentWantPath))
	if err := noSymlinkParents(root, filepath.Dir(want)); err != nil {
		return fmt.Errorf("agent unit: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		return err
	}
	os.Remove(want)
	if err := os.Symlink("/"+agentUnitPath, want); err != nil {
		return fmt.Errorf("agent unit: %w", err)
	}
	lg.printf("installed /%s, enabled for multi-user.target", agentUnitPath)
	return nil
}

// putFile writes data to rel inside root, replacing what is there, never
// through a symlink.
func putFile(root, rel string, data []byte, mode fs.FileMode) error {
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := noSymlinkParents(root, filepath.Dir(p)); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	os.Remove(p)
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// unmountBelow detaches every mount point strictly below dir (deepest
// first), so that removing dir never walks into a mounted file system. A
// build's tools mount in namespaces of their own; this is for what an
// older or foreign process may have left.
func unmountBelow(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	prefix := filepath.Clean(dir) + "/"
	var below []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if strings.HasPrefix(mp, prefix) {
			below = append(below, mp)
		}
	}
	sort.Slice(below, func(i, j int) bool { return len(below[i]) > len(below[j]) })
	for _, mp := range below {
		syscall.Unmount(mp, syscall.MNT_DETACH)
	}
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// debootstrapCacheVersion changes when makeDebootstrap makes a different
// root from the same settings.
const debootstrapCacheVersion = "netbootui-debootstrap-cache 1"

// DebootstrapCacheKey names a debootstrap root in a BuildOptions.RootCache:
// a hash of the settings that make it (suite, mirror, variant, packages).
func DebootstrapCacheKey(d DebootstrapSpec) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n%s\n", debootstrapCacheVersion, d.Suite, d.Mirror, d.Variant, strings.Join(d.Packages, " "))
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// tarFlags keep what a root needs: numeric owners, modes, extended
// attributes (file capabilities) and ACLs.
var tarFlags = []string{"--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"}

// cachedDebootstrap makes a debootstrap root, from cache when it holds one
// with the same settings; a root it makes is added to the cache (best
// effort: a cache that cannot be written costs only time).
func cachedDebootstrap(ctx context.Context, d DebootstrapSpec, root, cache string, lg *buildLog) error {
	if cache == "" {
		return makeDebootstrap(ctx, d, root, lg)
	}
	archive := filepath.Join(cache, "debootstrap-"+d.Suite+"-"+DebootstrapCacheKey(d)+".tar")
	if _, err := os.Stat(archive); err == nil {
		lg.printf("debootstrap root from the cache: %s", archive)
		cmd := exec.CommandContext(ctx, "tar", append(append([]string{"-xpf", archive, "-C", root}, tarFlags...), "--same-owner")...)
		if err := runCmd(ctx, cmd, false, lg); err != nil {
			return fmt.Errorf("unpacking cached root %s: %w", archive, err)
		}
		return nil
	}
	if err := makeDebootstrap(ctx, d, root, lg); err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		lg.printf("not caching the root: %v", err)
		return nil
	}
	tmp := archive + ".tmp"
	cmd := exec.CommandContext(ctx, "tar", append(append([]string{"-cpf", tmp, "-C", root}, tarFlags...), ".")...)
	err := runCmd(ctx, cmd, false, lg)
	if err == nil {
		var f *os.File
		if f, err = os.Open(tmp); err == nil {
			err = f.Sync()
			f.Close()
		}
	}
	if err == nil {
		err = os.Rename(tmp, archive)
	}
	if err != nil {
		os.Remove(tmp)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lg.printf("not caching the root: %v", err)
		return nil
	}
	lg.printf("cached the root as %s", archive)
	return nil
}

// DracutModule is netbootui's dracut module (assets/dracut/90netbootui):
// pre-pivot hooks that lay a tmpfs overlay over an NFS root (dracut's nfs
// module mounted it read-only) and stack the node's and group's variants
// over a dmsquash-live overlayfs root. The pipeline installs it into a root
// before the root's dracut runs, and DracutArgs adds it.
const DracutModule = "netbootui"

// dracutModuleDir is where installDracutModule puts the module in a root.
const dracutModuleDir = "usr/lib/dracut/modules.d/90" + DracutModule

// installDracutModule copies netbootui's dracut module into root's dracut
// modules folder, replacing what is there.
func installDracutModule(root string, lg *buildLog) error {
	const src = "dracut/90" + DracutModule
	ents, err := fs.ReadDir(assets.FS, src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, err := fs.ReadFile(assets.FS, src+"/"+e.Name())
		if err != nil {
			return err
		}
		if err := putFile(root, dracutModuleDir+"/"+e.Name(), b, 0o755); err != nil {
			return fmt.Errorf("dracut module: %w", err)
		}
	}
	lg.printf("installed the %s dracut module at /%s", DracutModule, dracutModuleDir)
	return nil
}
