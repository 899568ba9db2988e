// Package lab is test support for netbootui's end-to-end tests: checks for
// the external tools and the test kernel a test needs, and a QEMU harness
// (StartVM) that boots a node under TCG, by PXE through QEMU's iPXE ROM or
// directly from a kernel and initramfs, with its serial console in a log file
// and a QMP monitor for reset and power.
//
// It is an ordinary package so that tests in other packages can import it;
// nothing in the daemon or the command imports it.
package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/netbootui/netbootui/internal/kernelcache"
)

// RequireEnv names the environment variable that turns missing tools and a
// missing test kernel from a skip into a failure (CI sets it to 1).
const RequireEnv = "NETBOOTUI_REQUIRE_TOOLS"

// KernelDirEnv overrides where Kernel looks for the fetched test kernel
// (kernelcache.DirEnv; kernelcache.CacheEnv moves the whole cache).
const KernelDirEnv = kernelcache.DirEnv

// Missing skips the test because something it needs is not here (a tool, a
// file, a permission), or fails it when RequireEnv is 1.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf(format+" ("+RequireEnv+"=1)", args...)
		return
	}
	tb.Skipf(format, args...)
}

// RequireTools skips the test when one of the named programs is not in PATH
// (or, for an absolute path, a file a package installs is not there), or
// fails it when NETBOOTUI_REQUIRE_TOOLS=1.
func RequireTools(tb testing.TB, names ...string) {
	tb.Helper()
	for _, n := range names {
		var err error
		if filepath.IsAbs(n) {
			_, err = os.Stat(n)
		} else {
			_, err = exec.LookPath(n)
		}
		if err != nil {
			Missing(tb, "needs %s: %v", n, err)
		}
	}
}

// Kernel returns the test kernel fetched by scripts/fetch-kernel.sh: the
// vmlinuz file and the lib/modules/<version> directory. It looks in
// $NETBOOTUI_KERNEL_DIR, else in $NETBOOTUI_CACHE/kernel, else in
// .cache/kernel of the module root (found by walking up from the working
// directory to go.mod): internal/kernelcache. When there is none the
// test skips, or fails when NETBOOTUI_REQUIRE_TOOLS=1.
func Kernel(tb testing.TB) (vmlinuz, modulesDir string) {
	tb.Helper()
	dir, err := KernelDir()
	if err != nil {
		Missing(tb, "no test kernel: %v; run scripts/fetch-kernel.sh", err)
		return "", ""
	}
	return filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "modules")
}

// KernelDir returns the directory holding the fetched kernel (vmlinuz and
// modules/), or an error saying where it looked.
func KernelDir() (string, error) {
	root, rerr := ModuleRoot()
	dir := kernelcache.Dir(root)
	if dir == "" {
		return "", rerr
	}
	for _, f := range []string{"vmlinuz", filepath.Join("modules", "modules.dep")} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// ModuleRoot returns the nearest directory at or above the working directory
// that holds go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", &os.PathError{Op: "find", Path: "go.mod", Err: os.ErrNotExist}
		}
		dir = up
	}
}
