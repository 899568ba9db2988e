// Package liveinit builds netbootui's own live boot pieces around a static
// busybox: the initramfs whose /init fetches a squashfs root over HTTP and
// boots it under a tmpfs overlay (Build), and a minimal test root filesystem
// with the check-in agent (BuildRootfs, MakeSquashfs).
//
// The node-side scripts come from the assets package (assets/scripts): init.sh
// becomes /init, udhcpc.sh the DHCP event script, checkin.sh the agent. The
// boot contract they implement (kernel command line words, check-in form) is
// described in README.md.
package liveinit

import (
	"github.com/netbootui/netbootui/internal/atomicfile"

	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/netbootui/netbootui/assets"
	"github.com/u-root/u-root/pkg/cpio"
)

// DefaultBusybox is where Debian's busybox-static installs its binary.
const DefaultBusybox = "/bin/busybox"

// Paths inside the initramfs.
const (
	// ModulesListPath lists the modules /init loads with insmod, one
	// initramfs path a line, in load order.
	ModulesListPath = "etc/netbootui/modules"
	// CheckinPath is the check-in agent; /init copies it into roots that
	// lack /usr/sbin/netbootui-checkin.
	CheckinPath = "etc/netbootui/checkin.sh"
	// UdhcpcScriptPath is the udhcpc event script.
	UdhcpcScriptPath = "etc/netbootui/udhcpc.script"
	// NodeAgentPath is the static node agent (cmd/netbootui-agent), in the
	// initramfs when Options.Agent names one; /init hands it over to the
	// booted root as /run/netbootui/netbootui-agent. Images whose
	// initramfs is not the built-in one carry it at the same path in their
	// root.
	NodeAgentPath = "usr/sbin/netbootui-agent"
)

// requiredApplets are the busybox applets the node scripts call; a busybox
// without one of them cannot boot a node.
var requiredApplets = []string{
	"awk", "cat", "chmod", "cp", "cttyhack", "cut", "dd", "du", "grep",
	"hostname", "ifconfig", "insmod", "ip", "kill", "mkdir", "mount", "mv",
	"losetup", "od", "route", "rm", "sed", "setsid", "sh", "sleep", "stat",
	"switch_root", "timeout", "tr", "udhcpc", "usleep", "wget",
}

// Options says what goes into an initramfs.
type Options struct {
	// Busybox is a statically linked busybox binary for the node's
	// architecture (DefaultBusybox when empty). It is run once on the build
	// host with --list to learn its applets.
	Busybox string
	// KernelModulesDir is the kernel's lib/modules/<version> directory
	// (with modules.dep). Needed when Modules is not empty.
	KernelModulesDir string
	// KernelVersion names the /lib/modules/<version> directory in the
	// initramfs; when empty it is read from the first module's vermagic.
	KernelVersion string
	// Modules are module names (e.g. "virtio_net", "e1000", "loop",
	// "squashfs", "overlay"). They are loaded with their dependencies,
	// dependencies first; names built into the kernel are skipped.
	Modules []string
	// Programs are programs of the build host copied in at their own path
	// with the shared libraries ldd lists for them, e.g.
	// "/usr/sbin/nbd-client" for an nbd root.
	Programs []string
	// Agent is the static node agent binary (cmd/netbootui-agent built with
	// CGO_ENABLED=0) put at NodeAgentPath; "" leaves it out, and the image's
	// nodes are rebooted clean by power only.
	Agent string
}

// entry is one file of an archive or tree being built.
type entry struct {
	name    string // relative, slash-separated
	mode    fs.FileMode
	data    []byte // file content or symlink target
	symlink bool
	dir     bool
	dev     [2]uint64 // character device major, minor when mode has ModeCharDevice
}

// Build writes a gzip-compressed newc cpio initramfs to w. The same options
// and input files always give the same bytes: entries are sorted, times,
// owners and inode numbers fixed.
func Build(w io.Writer, opt Options) error {
	entries, err := initramfsEntries(opt)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	if err := writeCpio(zw, entries); err != nil {
		return err
	}
	return zw.Close()
}

// BuildFile writes the initramfs to file, atomically: a temporary file in
// the same directory, fsynced, then renamed over file.
func BuildFile(file string, opt Options) error {
	return atomicfile.WriteFunc(file, 0o644, func(w io.Writer) error { return Build(w, opt) })
}

func initramfsEntries(opt Options) ([]entry, error) {
	bb, applets, err := loadBusybox(opt.Busybox)
	if err != nil {
		return nil, err
	}
	initScript, err := assetScript("init.sh")
	if err != nil {
		return nil, err
	}
	checkin, err := assetScript("checkin.sh")
	if err != nil {
		return nil, err
	}
	udhcpc, err := assetScript("udhcpc.sh")
	if err != nil {
		return nil, err
	}
	t := newTree()
	t.file("init", 0o755, initScript)
	t.file("bin/busybox", 0o755, bb)
	for _, a := range applets {
		t.symlink("bin/"+a, "busybox")
	}
	t.file(CheckinPath, 0o755, checkin)
	t.file(UdhcpcScriptPath, 0o755, udhcpc)
	t.symlink("etc/resolv.conf", "/run/netbootui/resolv.conf")
	t.chardev("dev/console", 0o600, 5, 1)
	t.chardev("dev/null", 0o666, 1, 3)
	for _, d := range []string{"newroot", "proc", "sys", "run", "tmp"} {
		t.dir(d, 0o755)
	}

	var list bytes.Buffer
	if len(opt.Modules) > 0 {
		if opt.KernelModulesDir == "" {
			return nil, fmt.Errorf("liveinit: Modules %v given without KernelModulesDir", opt.Modules)
		}
		order, err := ResolveModules(opt.KernelModulesDir, opt.Modules)
		if err != nil {
			return nil, err
		}
		ver := opt.KernelVersion
		for _, rel := range order {
			src := filepath.Join(opt.KernelModulesDir, filepath.FromSlash(rel))
			ko, err := readModule(src)
			if err != nil {
				return nil, fmt.Errorf("liveinit: module %s: %w", ModuleName(rel), err)
			}
			if ver == "" {
				v, ok := vermagic(ko)
				if !ok {
					return nil, fmt.Errorf("liveinit: %s has no vermagic; set Options.KernelVersion", src)
				}
				ver = v
			}
			if strings.ContainsAny(ver, "/ \n") || ver == "." || ver == ".." {
				return nil, fmt.Errorf("liveinit: bad kernel version %q", ver)
			}
			dst := "lib/modules/" + ver + "/" + strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(rel, ".xz"), ".zst"), ".gz")
			t.file(dst, 0o644, ko)
			fmt.Fprintf(&list, "/%s\n", dst)
		}
	}
	t.file(ModulesListPath, 0o644, list.Bytes())
	if err := addPrograms(t, opt.Programs); err != nil {
		return nil, err
	}
	if opt.Agent != "" {
		b, err := ReadStatic(opt.Agent)
		if err != nil {
			return nil, fmt.Errorf("liveinit: node agent: %w", err)
		}
		t.file(NodeAgentPath, 0o755, b)
	}
	return t.sorted(), nil
}

// ReadStatic reads a program that must run without a libc: a statically
// linked ELF binary.
func ReadStatic(file string) ([]byte, error) { return readStatic(file, "build it with CGO_ENABLED=0") }

// readStatic is ReadStatic with the advice a dynamic binary gets.
func readStatic(file, fix string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s is not an ELF binary: %w", file, err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked; the initramfs has no libc (%s)", file, fix)
		}
	}
	return data, nil
}

// loadBusybox reads the busybox binary, checks it is static and has the
// applets the scripts use, and returns its applet names (sorted).
func loadBusybox(file string) ([]byte, []string, error) {
	if file == "" {
		file = DefaultBusybox
	}
	data, err := readStatic(file, "use busybox-static")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("liveinit: busybox: %w (Debian package busybox-static)", err)
	} else if err != nil {
		return nil, nil, fmt.Errorf("liveinit: busybox %w", err)
	}
	out, err := exec.Command(file, "--list").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("liveinit: %s --list: %w", file, err)
	}
	seen := map[string]bool{}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") || a == "." || a == ".." || seen[a] {
			continue
		}
		seen[a] = true
		applets = append(applets, a)
	}
	var missing []string
	for _, a := range requiredApplets {
		if !seen[a] {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("liveinit: busybox %s lacks applets the node scripts need: %s", file, strings.Join(missing, " "))
	}
	sort.Strings(applets)
	return data, applets, nil
}

// assetScript returns assets/scripts/name.
func assetScript(name string) ([]byte, error) {
	b, err := fs.ReadFile(assets.FS, "scripts/"+name)
	if err != nil {
		return nil, fmt.Errorf("liveinit: embedded script %s: %w", name, err)
	}
	return b, nil
}

// tree collects entries by name and adds missing parent directories.
type tree map[string]entry

func newTree() tree { return tree{} }

func (t tree) add(e entry) {
	t[e.name] = e
	for d := path.Dir(e.name); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := t[d]; !ok {
			t[d] = entry{name: d, mode: 0o755, dir: true}
		}
	}
}

func (t tree) file(name string, mode fs.FileMode, data []byte) {
	t.add(entry{name: name, mode: mode, data: data})
}
func (t tree) symlink(name, target string) {
	t.add(entry{name: name, mode: 0o777, data: []byte(target), symlink: true})
}
func (t tree) dir(name string, mode fs.FileMode) { t.add(entry{name: name, mode: mode, dir: true}) }
func (t tree) chardev(name string, mode fs.FileMode, major, minor uint64) {
	t.add(entry{name: name, mode: mode | fs.ModeCharDevice, dev: [2]uint64{major, minor}})
}

func (t tree) sorted() []entry {
	out := make([]entry, 0, len(t))
	for _, e := range t {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// writeCpio writes entries (sorted, parents first) as a newc archive.
func writeCpio(w io.Writer, entries []entry) error {
	rw := cpio.Newc.Writer(w)
	for i, e := range entries {
		perm := uint64(e.mode.Perm())
		if e.mode&fs.ModeSticky != 0 {
			perm |= 0o1000
		}
		var rec cpio.Record
		switch {
		case e.dir:
			rec = cpio.Directory(e.name, perm)
			rec.NLink = 2
		case e.symlink:
			rec = cpio.Symlink(e.name, string(e.data))
			rec.NLink = 1
		case e.mode&fs.ModeCharDevice != 0:
			rec = cpio.CharDev(e.name, perm, e.dev[0], e.dev[1])
			rec.NLink = 1
		default:
			rec = cpio.StaticRecord(e.data, cpio.Info{Name: e.name, Mode: cpio.S_IFREG | perm})
			rec.NLink = 1
		}
		rec.Ino = uint64(i + 1)
		rec = cpio.MakeReproducible(rec)
		if err := rw.WriteRecord(rec); err != nil {
			return fmt.Errorf("liveinit: cpio %s: %w", e.name, err)
		}
	}
	return cpio.WriteTrailer(rw)
}
