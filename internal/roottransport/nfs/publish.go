package nfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/netbootui/netbootui/internal/roottransport"
)

// TreeDir is the head's directory holding a generation's tree: the
// directory behind TreePath.
func TreeDir(site roottransport.NFSSite, image, gen string) string {
	return filepath.Join(site.Dir, "images", image, gen)
}

// PublishTree unpacks the squashfs at squashfs into dst, once: when dst
// exists it is left as it is (a tree is never rewritten: nodes may have it
// mounted). The tree is made in a temporary directory beside dst with
// unsquashfs and renamed into place, so dst is either absent or complete.
// It reports whether it unpacked.
func PublishTree(squashfs, dst string) (bool, error) {
	if _, err := os.Lstat(dst); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	bin, err := exec.LookPath("unsquashfs")
	if err != nil {
		return false, fmt.Errorf("nfs: publishing a tree needs unsquashfs (package squashfs-tools): %w", err)
	}
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return false, fmt.Errorf("nfs: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return false, fmt.Errorf("nfs: %w", err)
	}
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "root")
	var out bytes.Buffer
	cmd := exec.Command(bin, "-no-progress", "-quiet", "-d", tree, squashfs)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return false, fmt.Errorf("nfs: unsquashfs %s: %v: %s", squashfs, err, strings.TrimSpace(out.String()))
	}
	// The tree's root directory is the root of the node's filesystem.
	if err := os.Chmod(tree, 0o755); err != nil {
		return false, fmt.Errorf("nfs: %w", err)
	}
	if err := os.Rename(tree, dst); err != nil {
		if _, serr := os.Lstat(dst); serr == nil {
			return false, nil // another publisher won: same bytes
		}
		return false, fmt.Errorf("nfs: %w", err)
	}
	return true, nil
}
