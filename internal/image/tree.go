package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

func sortStrings(s []string) { sort.Strings(s) }

// copyBufs recycles copyBuf's buffers: a tree of thousands of files would
// otherwise allocate a buffer per file.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func copyBuf(w io.Writer, r io.Reader) (int64, error) {
	b := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(b)
	return io.CopyBuffer(w, r, *b)
}

// TreeEntry is one path of a tree: what hashTree describes and what a
// generation's root holds (Store.Tree).
type TreeEntry struct {
	// Path is relative to the tree's root, slash-separated ("." is the
	// root itself).
	Path string
	Mode fs.FileMode
	UID  uint32
	GID  uint32
	// Size and SHA256 of a regular file.
	Size   int64
	SHA256 string
	// Link is a symlink's target.
	Link string
	// Rdev is a device node's number.
	Rdev uint64
}

// walkTree lists the tree at root in walk order, with every regular file's
// size and sha256 (read by a worker per CPU; from c when its stat is
// unchanged, c may be nil).
func walkTree(root string, c *hashCache) ([]TreeEntry, error) {
	var ents []TreeEntry
	var infos []fs.FileInfo
	var files []int
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := TreeEntry{Path: filepath.ToSlash(rel), Mode: fi.Mode()}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if st != nil {
			e.UID, e.GID = st.Uid, st.Gid
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			e.Size = fi.Size()
			files = append(files, len(ents))
		case st != nil && fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice) != 0:
			e.Rdev = uint64(st.Rdev)
		}
		ents = append(ents, e)
		infos = append(infos, fi)
		return nil
	})
	if err != nil {
		return nil, err
	}
	work := make(chan int)
	errs := make([]error, len(ents))
	var wg sync.WaitGroup
	for range max(1, min(runtime.NumCPU(), 8)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ents[i].SHA256, errs[i] = c.sum(filepath.Join(root, filepath.FromSlash(ents[i].Path)), infos[i])
			}
		}()
	}
	for _, i := range files {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return ents, nil
}

// hashTree writes a description of the tree at root (paths, types, modes,
// symlink targets, file contents) to h. A missing root hashes as "absent".
// File contents are hashed by a worker per CPU; the description is written
// in walk order, so the result does not depend on the workers.
func hashTree(h hash.Hash, root string, c *hashCache) error {
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(h, "absent\n")
		return nil
	}
	ents, err := walkTree(root, c)
	if err != nil {
		return err
	}
	for _, e := range ents {
		fmt.Fprintf(h, "%q %o ", e.Path, e.Mode)
		switch {
		case e.Mode&fs.ModeSymlink != 0:
			fmt.Fprintf(h, "-> %q\n", e.Link)
		case e.Mode.IsRegular():
			fmt.Fprintf(h, "%d %s\n", e.Size, e.SHA256)
		default:
			fmt.Fprintf(h, "dev %d\n", e.Rdev)
		}
	}
	return nil
}

func fileSHA(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := copyBuf(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashPath hashes a file or a tree (c may be nil).
func hashPath(h hash.Hash, p string, c *hashCache) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return hashTree(h, p, c)
	}
	sum, err := c.sum(p, fi)
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "file %d %s\n", fi.Size(), sum)
	return nil
}

// copyTree copies the tree at src over dst (which exists): directories are
// merged, files and symlinks replace what is there. Modes and times are
// kept; owners too when running as root. Device nodes and FIFOs are
// recreated when running as root.
func copyTree(ctx interface{ Err() error }, src, dst string) error {
	return walkCopy(ctx, src, dst, false)
}

// linkTree is copyTree with regular files hard-linked instead of copied
// when src and dst share a file system (and copied when they do not). The
// caller must never write into a file of dst in place: every later step
// replaces files (unlink, then create), so the source stays untouched.
func linkTree(ctx interface{ Err() error }, src, dst string) error {
	return walkCopy(ctx, src, dst, true)
}

func walkCopy(ctx interface{ Err() error }, src, dst string, link bool) error {
	root := os.Geteuid() == 0
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if link && fi.Mode().IsRegular() {
			if err := os.Link(p, target); err == nil {
				return nil
			} else if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("link %s: %w", p, err)
			}
			link = false // another file system (or not allowed): copy from now on
		}
		if err := place(p, target, fi, root); err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
		return nil
	})
}

func place(src, target string, fi fs.FileInfo, root bool) error {
	mode := fi.Mode()
	if old, err := os.Lstat(target); err == nil && !(old.IsDir() && mode.IsDir()) {
		if err := RemoveAll(target); err != nil {
			return err
		}
	}
	switch {
	case mode.IsDir():
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case mode&fs.ModeSymlink != 0:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, target); err != nil {
			return err
		}
	case mode.IsRegular():
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = copyBuf(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	default:
		if !root {
			return nil // device nodes need root; an unprivileged build skips them
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if err := syscall.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if root && st != nil {
		if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if mode&fs.ModeSymlink == 0 {
		if err := os.Chmod(target, mode&(fs.ModePerm|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid)); err != nil {
			return err
		}
		if err := os.Chtimes(target, fi.ModTime(), fi.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// extractTar unpacks a tar stream into dst. Entries may not leave dst
// (absolute names are taken from dst, ".." may not climb out, nothing is
// written through a symlink). OCI whiteouts (.wh.*) are refused: flatten
// layers first.
func extractTar(ctx interface{ Err() error }, r io.Reader, dst string) error {
	root := os.Geteuid() == 0
	tr := tar.NewReader(r)
	type dirTime struct {
		p string
		t time.Time
	}
	var dirs []dirTime
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		name := path.Clean("/" + hdr.Name)
		if name == "/" {
			continue
		}
		if strings.HasPrefix(path.Base(name), ".wh.") {
			return fmt.Errorf("tar: %s: whiteout in a plain tar", hdr.Name)
		}
		target := filepath.Join(dst, filepath.FromSlash(name))
		if err := noSymlinkParents(dst, filepath.Dir(target)); err != nil {
			return fmt.Errorf("tar: %s: %w", hdr.Name, err)
		}
		if old, err := os.Lstat(target); err == nil && !(old.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := RemoveAll(target); err != nil {
				return err
			}
		}
		mode := os.FileMode(hdr.Mode).Perm()
		if hdr.Mode&04000 != 0 {
			mode |= fs.ModeSetuid
		}
		if hdr.Mode&02000 != 0 {
			mode |= fs.ModeSetgid
		}
		if hdr.Mode&01000 != 0 {
			mode |= fs.ModeSticky
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		case tar.TypeReg, tar.TypeRegA:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			_, err = copyBuf(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("tar: %s: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src := filepath.Join(dst, filepath.FromSlash(path.Clean("/"+hdr.Linkname)))
			if err := noSymlinkParents(dst, src); err != nil {
				return fmt.Errorf("tar: %s: link to %s: %w", hdr.Name, hdr.Linkname, err)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Link(src, target); err != nil {
				return fmt.Errorf("tar: %s: %w", hdr.Name, err)
			}
			continue
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if !root {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			m := uint32(mode.Perm())
			switch hdr.Typeflag {
			case tar.TypeChar:
				m |= syscall.S_IFCHR
			case tar.TypeBlock:
				m |= syscall.S_IFBLK
			default:
				m |= syscall.S_IFIFO
			}
			dev := int((hdr.Devmajor&0xfff)<<8 | hdr.Devminor&0xff | (hdr.Devminor&^0xff)<<12)
			if err := syscall.Mknod(target, m, dev); err != nil {
				return fmt.Errorf("tar: %s: %w", hdr.Name, err)
			}
		default:
			continue // pax headers and the like carry nothing to lay out
		}
		if root {
			if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
				return err
			}
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(target, mode); err != nil {
				return err
			}
			if hdr.Typeflag != tar.TypeDir {
				os.Chtimes(target, hdr.ModTime, hdr.ModTime)
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chtimes(dirs[i].p, dirs[i].t, dirs[i].t)
	}
	return nil
}

// noSymlinkParents checks that no directory between root and dir (inclusive)
// is a symlink, so that writing below dir stays inside root.
func noSymlinkParents(root, dir string) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("leaves the root")
	}
	if rel == "." {
		return nil
	}
	p := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symlink", p)
		}
	}
	return nil
}
