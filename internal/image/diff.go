package image

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// GenTree is what a generation's root holds: every path with its type,
// mode, owner, size and content hash, and the Debian packages installed in
// it (nil for a root without dpkg). Store.Tree reads it from the squashfs.
type GenTree struct {
	Entries  []TreeEntry
	Packages map[string]string
}

// maxTreeCache bounds the trees a Store keeps in memory.
const maxTreeCache = 4

type treeCache struct {
	mu    sync.Mutex
	order []string
	trees map[string]*GenTree
}

func (c *treeCache) get(key string) *GenTree {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trees[key]
}

func (c *treeCache) put(key string, t *GenTree) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.trees == nil {
		c.trees = map[string]*GenTree{}
	}
	if _, ok := c.trees[key]; ok {
		return
	}
	c.trees[key] = t
	c.order = append(c.order, key)
	if len(c.order) > maxTreeCache {
		delete(c.trees, c.order[0])
		c.order = c.order[1:]
	}
}

// workDir makes a scratch directory below image's generations whose name
// CleanStale knows (".build-<purpose>-*"), holding an flock on its lock
// file while it is in use: a crash leaves it for CleanStale to remove.
// done detaches anything mounted below it and removes it.
func (s *Store) workDir(image, purpose string) (dir string, done func(), err error) {
	gens := filepath.Join(s.dir, image, "generations")
	if err := os.MkdirAll(gens, 0o755); err != nil {
		return "", nil, err
	}
	prefix := buildPrefix
	if purpose != "" {
		prefix += purpose + "-"
	}
	dir, err = os.MkdirTemp(gens, prefix)
	if err != nil {
		return "", nil, err
	}
	lock, err := os.Create(filepath.Join(dir, lockName))
	if err == nil {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		RemoveAll(dir)
		return "", nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return dir, func() { unmountBelow(dir); RemoveAll(dir); lock.Close() }, nil
}

// unsquash extracts a squashfs file into dst (which must not exist), with
// owners, modes and times, without extended attributes.
func unsquash(ctx context.Context, file, dst string) error {
	bin, err := exec.LookPath("unsquashfs")
	if err != nil {
		return fmt.Errorf("unsquashfs not found (apt-get install squashfs-tools): %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "-n", "-q", "-no-xattrs", "-d", dst, file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("unsquashfs %s: %v: %s", filepath.Base(file), err, lastLines(string(out), 3))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// Tree reads the root of a generation: its squashfs is unpacked into a
// scratch directory of the store (removed afterwards) and walked. Only the
// store is read. The last few trees are kept in memory (generations never
// change).
func (s *Store) Tree(ctx context.Context, image, id string) (*GenTree, error) {
	key := image + "/" + id
	if t := s.trees.get(key); t != nil {
		return t, nil
	}
	p, err := s.Path(image, id, FileRootfs)
	if err != nil {
		return nil, err
	}
	if _, err := s.Generation(image, id); err != nil {
		return nil, err
	}
	dir, done, err := s.workDir(image, "tree")
	if err != nil {
		return nil, err
	}
	defer done()
	root := filepath.Join(dir, "root")
	if err := unsquash(ctx, p, root); err != nil {
		return nil, fmt.Errorf("image %s generation %s: %w", image, id, err)
	}
	t, err := readTree(root)
	if err != nil {
		return nil, fmt.Errorf("image %s generation %s: %w", image, id, err)
	}
	s.trees.put(key, t)
	return t, nil
}

// readTree indexes a root tree on disk.
func readTree(root string) (*GenTree, error) {
	ents, err := walkTree(root, nil)
	if err != nil {
		return nil, err
	}
	pkgs, err := rootPackages(root)
	if err != nil {
		return nil, err
	}
	return &GenTree{Entries: ents, Packages: pkgs}, nil
}

// FileChange is one path that differs between two trees.
type FileChange struct {
	// Path is absolute in the root ("/etc/motd").
	Path string
	// Kind is ChangeAdded, ChangeRemoved or ChangeChanged.
	Kind string
	// What changed, for ChangeChanged: "type", "mode", "owner", "size",
	// "content", "link", "device".
	What []string
	// Old and New are the path's entries (nil where it is absent).
	Old, New *TreeEntry
}

// Kinds of FileChange.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
	ChangeChanged = "changed"
)

// BootFileChange is a kernel or initramfs that differs.
type BootFileChange struct {
	Name     string
	Old, New FileInfo
}

// PackageChange is a Debian package added (Old ""), removed (New "") or
// at another version.
type PackageChange struct {
	Name, Old, New string
}

// GenRef names one generation of one image.
type GenRef struct {
	Image, ID string
}

func (r GenRef) String() string { return r.Image + ":" + r.ID }

// Diff is what differs between two generations (A the old, B the new).
type Diff struct {
	A, B                    GenRef
	Files                   []FileChange
	Added, Removed, Changed int
	// Boot lists the kernel and initramfs when they differ.
	Boot []BootFileChange
	// Packages lists package changes when either root has dpkg.
	Packages []PackageChange
	// InitrdFiles lists what differs inside the initramfs when it
	// changed (ReadInitramfs); InitrdError says why it could not be
	// listed (a compression it does not read).
	InitrdFiles []FileChange
	InitrdError string
}

// Summary is the diff in one line: "+2 -1 ~3 files, kernel changed,
// packages +1 -0 ~2" ("no change" when there is none).
func (d *Diff) Summary() string {
	var parts []string
	if d.Added+d.Removed+d.Changed > 0 {
		parts = append(parts, fmt.Sprintf("+%d -%d ~%d files", d.Added, d.Removed, d.Changed))
	}
	for _, b := range d.Boot {
		what := "kernel"
		if b.Name == FileInitrd {
			what = "initramfs"
		}
		parts = append(parts, what+" changed")
	}
	if len(d.Packages) > 0 {
		var a, r, c int
		for _, p := range d.Packages {
			switch {
			case p.Old == "":
				a++
			case p.New == "":
				r++
			default:
				c++
			}
		}
		parts = append(parts, fmt.Sprintf("packages +%d -%d ~%d", a, r, c))
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, ", ")
}

// Empty says whether the two generations hold the same thing.
func (d *Diff) Empty() bool {
	return len(d.Files) == 0 && len(d.Boot) == 0 && len(d.Packages) == 0
}

// DiffTrees compares two trees.
func DiffTrees(a, b *GenTree) (files []FileChange, pkgs []PackageChange) {
	old := make(map[string]*TreeEntry, len(a.Entries))
	for i := range a.Entries {
		old[a.Entries[i].Path] = &a.Entries[i]
	}
	seen := make(map[string]bool, len(b.Entries))
	for i := range b.Entries {
		n := &b.Entries[i]
		seen[n.Path] = true
		o := old[n.Path]
		if o == nil {
			files = append(files, FileChange{Path: absPath(n.Path), Kind: ChangeAdded, New: n})
			continue
		}
		if what := entryChanges(o, n); len(what) > 0 {
			files = append(files, FileChange{Path: absPath(n.Path), Kind: ChangeChanged, What: what, Old: o, New: n})
		}
	}
	for i := range a.Entries {
		o := &a.Entries[i]
		if !seen[o.Path] {
			files = append(files, FileChange{Path: absPath(o.Path), Kind: ChangeRemoved, Old: o})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for name, v := range b.Packages {
		if ov, ok := a.Packages[name]; !ok {
			pkgs = append(pkgs, PackageChange{Name: name, New: v})
		} else if ov != v {
			pkgs = append(pkgs, PackageChange{Name: name, Old: ov, New: v})
		}
	}
	for name, v := range a.Packages {
		if _, ok := b.Packages[name]; !ok {
			pkgs = append(pkgs, PackageChange{Name: name, Old: v})
		}
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return files, pkgs
}

func absPath(rel string) string {
	if rel == "." {
		return "/"
	}
	return "/" + rel
}

// entryChanges lists what differs between two entries of one path. A
// directory's size is not compared (it depends on the file system).
func entryChanges(o, n *TreeEntry) []string {
	var what []string
	if o.Mode.Type() != n.Mode.Type() {
		return []string{"type"}
	}
	if o.Mode != n.Mode {
		what = append(what, "mode")
	}
	if o.UID != n.UID || o.GID != n.GID {
		what = append(what, "owner")
	}
	switch {
	case n.Mode.IsRegular():
		if o.Size != n.Size {
			what = append(what, "size")
		}
		if o.SHA256 != n.SHA256 {
			what = append(what, "content")
		}
	case n.Mode&fs.ModeSymlink != 0:
		if o.Link != n.Link {
			what = append(what, "link")
		}
	case n.Mode&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		if o.Rdev != n.Rdev {
			what = append(what, "device")
		}
	}
	return what
}

// Diff compares two generations (of one image or of two): their roots
// path by path, their kernels and initramfs, and their Debian packages.
// It reads only the store.
func (s *Store) Diff(ctx context.Context, a, b GenRef) (*Diff, error) {
	ma, err := s.Generation(a.Image, a.ID)
	if err != nil {
		return nil, err
	}
	mb, err := s.Generation(b.Image, b.ID)
	if err != nil {
		return nil, err
	}
	var ta, tb *GenTree
	var ea, eb error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ta, ea = s.Tree(ctx, a.Image, a.ID) }()
	go func() { defer wg.Done(); tb, eb = s.Tree(ctx, b.Image, b.ID) }()
	wg.Wait()
	if ea != nil {
		return nil, ea
	}
	if eb != nil {
		return nil, eb
	}
	d := &Diff{A: a, B: b, Boot: bootChanges(ma, mb)}
	d.Files, d.Packages = DiffTrees(ta, tb)
	d.count()
	for _, bc := range d.Boot {
		if bc.Name == FileInitrd {
			d.InitrdFiles, err = s.initrdChanges(a, b)
			if err != nil {
				d.InitrdError = err.Error()
			}
		}
	}
	return d, nil
}

// initrdChanges lists what differs between the initramfs of two
// generations.
func (s *Store) initrdChanges(a, b GenRef) ([]FileChange, error) {
	var trees [2]*GenTree
	for i, r := range []GenRef{a, b} {
		f, err := s.Open(r.Image, r.ID, FileInitrd)
		if err != nil {
			return nil, err
		}
		ents, err := ReadInitramfs(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r, err)
		}
		trees[i] = &GenTree{Entries: ents}
	}
	files, _ := DiffTrees(trees[0], trees[1])
	return files, nil
}

func (d *Diff) count() {
	d.Added, d.Removed, d.Changed = 0, 0, 0
	for _, f := range d.Files {
		switch f.Kind {
		case ChangeAdded:
			d.Added++
		case ChangeRemoved:
			d.Removed++
		default:
			d.Changed++
		}
	}
}

// bootChanges lists the kernel and initramfs of b that differ from a's.
func bootChanges(a, b *Manifest) []BootFileChange {
	var out []BootFileChange
	for _, name := range []string{FileKernel, FileInitrd} {
		fa, _ := a.File(name)
		fb, _ := b.File(name)
		if fa.SHA256 != fb.SHA256 || fa.Size != fb.Size {
			out = append(out, BootFileChange{Name: name, Old: fa, New: fb})
		}
	}
	return out
}

// squashfsCompressors names mksquashfs's compressors by the id its
// superblock records.
var squashfsCompressors = map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}

// squashfsCompression reads the compressor a squashfs file was made with
// from its superblock, and its compression level when the file records
// one (zstd and gzip made with -Xcompression-level; 0 otherwise: the
// compressor's default).
func squashfsCompression(p string) (comp string, level int, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	// The 96-byte superblock, then the compressor's options (when its
	// flags say so) in an uncompressed metadata block: a 2-byte header,
	// then the options, which for zstd and gzip start with the level.
	var sb [96 + 2 + 4]byte
	if _, err := f.ReadAt(sb[:96], 0); err != nil {
		return "", 0, fmt.Errorf("%s: %w", p, err)
	}
	if string(sb[:4]) != "hsqs" {
		return "", 0, fmt.Errorf("%s: not a squashfs file", p)
	}
	comp, ok := squashfsCompressors[binary.LittleEndian.Uint16(sb[20:22])]
	if !ok {
		return "", 0, fmt.Errorf("%s: unknown squashfs compressor %d", p, binary.LittleEndian.Uint16(sb[20:22]))
	}
	const compressorOptions = 0x0400
	if binary.LittleEndian.Uint16(sb[24:26])&compressorOptions == 0 || (comp != "zstd" && comp != "gzip") {
		return comp, 0, nil
	}
	if _, err := f.ReadAt(sb[96:], 96); err != nil {
		return "", 0, fmt.Errorf("%s: compressor options: %w", p, err)
	}
	if hdr := binary.LittleEndian.Uint16(sb[96:98]); hdr&0x8000 == 0 || hdr&0x7fff < 4 {
		return "", 0, fmt.Errorf("%s: compressor options in a block of header %#x", p, hdr)
	}
	level = int(int32(binary.LittleEndian.Uint32(sb[98:102])))
	if max := map[string]int{"zstd": 22, "gzip": 9}[comp]; level < 1 || level > max {
		return "", 0, fmt.Errorf("%s: %s compression level %d", p, comp, level)
	}
	return comp, level, nil
}
