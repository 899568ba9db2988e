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

// MountPoints are the directories a booted root mounts over, which
// PublishTree adds to a tree that lacks them. dracut's nfs module waits for
// the root with the finished check "[ -e $NEWROOT/proc ]": on a tree without
// /proc (a root made from a container image, say) its initqueue never
// finishes and the node drops to dracut's emergency shell after its
// timeout, though the mount had worked. /sys, /dev and /run are what the
// init and systemd mount next.
var MountPoints = []string{"proc", "sys", "dev", "run"}

// addMountPoints makes each of MountPoints in tree that is missing (an
// empty directory, 0755); what exists, of any type, is left as it is.
func addMountPoints(tree string) error {
	for _, d := range MountPoints {
		p := filepath.Join(tree, d)
		if _, err := os.Lstat(p); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("nfs: %w", err)
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("nfs: %w", err)
		}
	}
	return nil
}

// PublishTree unpacks the squashfs at squashfs into dst, once: when dst
// exists it is left as it is (a tree is never rewritten: nodes may have it
// mounted). The tree is made in a temporary directory beside dst with
// unsquashfs and renamed into place, so dst is either absent or complete.
// The directories of MountPoints are added when the squashfs lacks them.
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
	if err := addMountPoints(tree); err != nil {
		return false, err
	}
	if err := os.Rename(tree, dst); err != nil {
		if _, serr := os.Lstat(dst); serr == nil {
			return false, nil // another publisher won: same bytes
		}
		return false, fmt.Errorf("nfs: %w", err)
	}
	return true, nil
}
