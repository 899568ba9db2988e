package daemon

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/netbootui/netbootui/internal/lab"
)

// ballastRootfs returns a copy of the squashfs at src with mib MiB of
// random bytes added at /opt/ballast, a file no boot reads: an image big
// enough that holding it whole in RAM (http-live) shows against reading
// only what is used (nfs, nbd).
func ballastRootfs(t *testing.T, src string, mib int) string {
	t.Helper()
	lab.RequireTools(t, "unsquashfs", "mksquashfs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if out, err := exec.Command("unsquashfs", "-no-progress", "-quiet", "-d", tree, src).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	os.MkdirAll(filepath.Join(tree, "opt"), 0o755)
	b := make([]byte, mib<<20)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(tree, "opt", "ballast"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "rootfs.squashfs")
	if out, err := exec.Command("mksquashfs", tree, dst, "-all-root", "-noappend", "-quiet", "-no-progress", "-comp", "zstd").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return dst
}
