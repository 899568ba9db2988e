// Package atomicfile writes files so that a reader, or the file system after
// a crash, sees either the old content or the new, never a mix: the content
// goes to a temporary file in the same folder, is synced, renamed over the
// target, and the folder is synced. A symbolic link is followed: its target
// is replaced and the link kept.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix is the name prefix of the temporary files written for path
// (".NAME.tmp-"). A file with this prefix left in the folder belongs to a
// writer that died before its rename.
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// IsTemp reports whether name is a temporary file of some atomic write.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// Write replaces path with data, with permissions perm.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Resolve returns the file a write to path replaces: path itself, or, when
// path is a symbolic link, the file it points to (links followed to the
// end), so that the link stays a link and its target (an inventory kept in a
// git checkout) gets the new content. A link to nothing is an error.
func Resolve(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return path, nil
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("write %s: symbolic link: %w", path, err)
	}
	return target, nil
}

// WriteFunc replaces path with what write writes, with permissions perm. When
// write or any step fails, path is unchanged and no temporary file remains.
// A symbolic link at path is kept: its target is replaced (see Resolve).
func WriteFunc(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	if path, err = Resolve(path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix(path)+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a folder, making renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync folder %s: %w", dir, err)
	}
	return nil
}
