package pxe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// FileRoot serves real files below one directory. Every open is confined to
// Dir with os.Root, so neither ".." nor a symlink (absolute or relative, at
// any depth) can reach a file outside it, and only regular files are served:
// directories, devices, FIFOs and sockets are refused without blocking.
//
// Aliases map a served name (a clean name, as CleanName returns it) to an
// absolute path outside Dir, for files that packages install elsewhere, such
// as the bootloaders DefaultLoaders finds. An alias is used only when Dir has
// no file of that name, so a file put into Dir overrides a package's loader.
// Alias targets are the administrator's choice and may be symlinks.
//
// The zero FileRoot serves nothing. Dir is opened afresh on every Open, so
// replacing the directory (or a symlink to it) takes effect at once.
type FileRoot struct {
	Dir     string
	Aliases map[string]string
}

// openFlags never block (a FIFO opens at once, to be refused) and never make
// a terminal our controlling one.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOCTTY

// Open opens a served file and returns it with its size. name must be clean
// (as CleanName returns it); anything else is refused. Errors match
// ErrNotFound or ErrAccessDenied with errors.Is and name the requested file,
// never the host path behind it.
func (r *FileRoot) Open(name string) (*os.File, int64, error) {
	clean, err := CleanName(name)
	if err != nil {
		return nil, 0, err
	}
	if clean != name {
		return nil, 0, &NameError{Name: name, Reason: fmt.Sprintf("not clean (clean form is %q)", clean)}
	}
	if r.Dir != "" {
		f, size, err := r.openInDir(name)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return f, size, err
		}
	}
	if target, ok := r.Aliases[name]; ok {
		if !filepath.IsAbs(target) {
			return nil, 0, fmt.Errorf("%w: %q: alias target is not an absolute path", ErrAccessDenied, name)
		}
		f, err := os.OpenFile(target, openFlags, 0)
		if err != nil {
			return nil, 0, classifyOpenError(name, err)
		}
		return regularOnly(name, f)
	}
	return nil, 0, fmt.Errorf("%q: %w", name, ErrNotFound)
}

func (r *FileRoot) openInDir(name string) (*os.File, int64, error) {
	root, err := os.OpenRoot(r.Dir)
	if err != nil {
		return nil, 0, fmt.Errorf("%q: served directory: %w", name, err)
	}
	defer root.Close()
	// Refuse non-regular files before opening them where we can (opening a
	// device may have side effects); the check after the open is the one that
	// counts, since the name may change in between.
	if st, err := root.Stat(name); err == nil && !st.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%w: %q: not a regular file (%s)", ErrAccessDenied, name, fileKind(st.Mode()))
	}
	f, err := root.OpenFile(name, openFlags, 0)
	if err != nil {
		return nil, 0, classifyOpenError(name, err)
	}
	return regularOnly(name, f)
}

// regularOnly returns f with its size if it is a regular file, and closes it
// otherwise.
func regularOnly(name string, f *os.File) (*os.File, int64, error) {
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%q: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %q: not a regular file (%s)", ErrAccessDenied, name, fileKind(st.Mode()))
	}
	return f, st.Size(), nil
}

// classifyOpenError turns an open error into ErrNotFound or ErrAccessDenied,
// keeping the reason but not the host path.
func classifyOpenError(name string, err error) error {
	reason := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		reason = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%q: %w", name, ErrNotFound)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %q: permission denied", ErrAccessDenied, name)
	default:
		// os.Root reports "path escapes from parent" for symlinks and ".."
		// leading out of the root; ELOOP for symlink loops.
		return fmt.Errorf("%w: %q: %v", ErrAccessDenied, name, reason)
	}
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return m.Type().String()
}

// Check reports the first problem with the configuration: Dir (when set)
// must be a directory, every alias name must be clean and every alias target
// an absolute path to a regular file. The error names the alias at fault.
func (r *FileRoot) Check() error {
	if r.Dir != "" {
		st, err := os.Stat(r.Dir)
		if err != nil {
			return fmt.Errorf("boot root %s: %w", r.Dir, err)
		}
		if !st.IsDir() {
			return fmt.Errorf("boot root %s: not a directory", r.Dir)
		}
	}
	names := make([]string, 0, len(r.Aliases))
	for n := range r.Aliases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		target := r.Aliases[n]
		if c, err := CleanName(n); err != nil || c != n {
			return fmt.Errorf("alias %q: served name is not clean (CleanName gives %q, %v)", n, c, err)
		}
		if !filepath.IsAbs(target) {
			return fmt.Errorf("alias %q: target %q is not an absolute path", n, target)
		}
		st, err := os.Stat(target)
		if err != nil {
			return fmt.Errorf("alias %q: %w", n, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("alias %q: target %s is not a regular file (%s)", n, target, fileKind(st.Mode()))
		}
	}
	return nil
}

// Where Debian's ipxe, pxelinux, syslinux-common and syslinux-efi packages
// install their loaders.
const (
	ipxeDir       = "/usr/lib/ipxe"
	pxelinuxDir   = "/usr/lib/PXELINUX"
	syslinuxBIOS  = "/usr/lib/syslinux/modules/bios"
	syslinuxEFI64 = "/usr/lib/syslinux/modules/efi64"
	syslinuxEFI   = "/usr/lib/SYSLINUX.EFI/efi64"
)

// syslinuxModules are the com32 modules a menu-driven pxelinux config needs.
var syslinuxModules = []string{"ldlinux.c32", "menu.c32", "vesamenu.c32", "libutil.c32", "libcom32.c32", "chain.c32"}

// defaultLoaderPaths lists every loader DefaultLoaders knows, served name to
// package path.
func defaultLoaderPaths() map[string]string {
	m := map[string]string{
		"undionly.kpxe":  ipxeDir + "/undionly.kpxe",
		"undionly.kkpxe": ipxeDir + "/undionly.kkpxe",
		"ipxe.pxe":       ipxeDir + "/ipxe.pxe",
		"ipxe.efi":       ipxeDir + "/ipxe.efi",
		"snponly.efi":    ipxeDir + "/snponly.efi",
		"pxelinux.0":     pxelinuxDir + "/pxelinux.0",
		"lpxelinux.0":    pxelinuxDir + "/lpxelinux.0",
		// UEFI syslinux loads ldlinux.e64 and its modules from the directory
		// it was itself loaded from: "efi64/syslinux.efi" gets a consistent
		// set under efi64/, the top-level pair serves configs without
		// modules.
		"syslinux.efi":       syslinuxEFI + "/syslinux.efi",
		"ldlinux.e64":        syslinuxEFI64 + "/ldlinux.e64",
		"efi64/syslinux.efi": syslinuxEFI + "/syslinux.efi",
		"efi64/ldlinux.e64":  syslinuxEFI64 + "/ldlinux.e64",
	}
	for _, mod := range syslinuxModules {
		m[mod] = syslinuxBIOS + "/" + mod
		if mod != "ldlinux.c32" {
			m["efi64/"+mod] = syslinuxEFI64 + "/" + mod
		}
	}
	return m
}

// DefaultLoaders returns, as FileRoot aliases, the bootloaders that Debian
// packages installed on this machine: undionly.kpxe, undionly.kkpxe,
// ipxe.pxe, ipxe.efi and snponly.efi (package ipxe); pxelinux.0 and
// lpxelinux.0 (pxelinux); ldlinux.c32 and the menu modules menu.c32,
// vesamenu.c32, libutil.c32, libcom32.c32, chain.c32 (syslinux-common); and
// for UEFI syslinux.efi and ldlinux.e64, also with the efi64 modules under
// "efi64/" (syslinux-efi). Only files that exist as regular files are
// returned.
func DefaultLoaders() map[string]string {
	out := make(map[string]string)
	for name, p := range defaultLoaderPaths() {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			out[name] = p
		}
	}
	return out
}
