// Package kernelcache says where scripts/fetch-kernel.sh put the Debian
// kernel (vmlinuz and modules/) that the default recipe and the QEMU tests
// use, the same way the script decides it: $NETBOOTUI_KERNEL_DIR names the
// folder itself; else it is kernel/ in $NETBOOTUI_CACHE; else kernel/ in
// the source tree's .cache.
package kernelcache

import (
	"os"
	"path/filepath"
)

// Environment variables the script and this package read.
const (
	DirEnv   = "NETBOOTUI_KERNEL_DIR" // the kernel's folder
	CacheEnv = "NETBOOTUI_CACHE"      // the cache folder (default <repo>/.cache)
)

// Dir returns the kernel's folder: $NETBOOTUI_KERNEL_DIR, else
// $NETBOOTUI_CACHE/kernel, else repo/.cache/kernel ("" when repo is "").
// It does not check that anything is there.
func Dir(repo string) string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	if c := os.Getenv(CacheEnv); c != "" {
		return filepath.Join(c, "kernel")
	}
	if repo == "" {
		return ""
	}
	return filepath.Join(repo, ".cache", "kernel")
}
