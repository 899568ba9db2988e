// Package image keeps boot images: immutable generations (kernel, initramfs and
// squashfs root plus a manifest of sizes and sha256 sums), each image's current
// pointer, and the import and publish operations that move it.
//
// Layout below the store's directory:
//
//	<image>/generations/<id>/vmlinuz
//	<image>/generations/<id>/initrd
//	<image>/generations/<id>/rootfs.squashfs
//	<image>/generations/<id>/manifest.json
//	<image>/generations/<id>/build.log    (builds only: the streamed build log)
//	<image>/current            (the published generation id, replaced atomically)
//	<image>/history            (every publish, oldest first; rollback pops it)
//	<image>/generations/.build-*   (builds in flight; removed when stale)
//
// A generation's id is derived from its content, its files are read-only and
// are never rewritten, so a node can fetch them at any time while new
// generations are added and the pointer moves.
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/atomicfile"
)

// The files a generation holds.
const (
	FileKernel   = "vmlinuz"
	FileInitrd   = "initrd"
	FileRootfs   = "rootfs.squashfs"
	FileManifest = "manifest.json"
	// FileLog is the build log a built generation keeps (not in Files).
	FileLog = "build.log"
)

// BootFiles lists the files every generation has, in boot order.
var BootFiles = []string{FileKernel, FileInitrd, FileRootfs}

// ErrNotFound is returned for an image, generation or file the store lacks.
var ErrNotFound = errors.New("not found")

var (
	imageNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	genIDRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
)

// ValidImageName reports whether s can name an image in the store.
func ValidImageName(s string) bool { return imageNameRE.MatchString(s) }

// ValidGenerationID reports whether s has the form of a generation id.
func ValidGenerationID(s string) bool { return genIDRE.MatchString(s) }

// FileInfo describes one file of a generation.
type FileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes a generation. It is written once, with the generation.
type Manifest struct {
	Image   string     `json:"image"`
	ID      string     `json:"id"`
	Created time.Time  `json:"created"`
	Source  string     `json:"source,omitempty"` // where it came from: a recipe hash, "import", ...
	Files   []FileInfo `json:"files"`
	// SourceHash is the hash of a build's inputs (recipe, overlay, input
	// files); a build whose inputs hash the same as the current
	// generation's is a no-op.
	SourceHash string `json:"source_hash,omitempty"`
	// Log names the build log file kept in the generation (FileLog).
	Log string `json:"log,omitempty"`
	// BuildSeconds is how long the build took.
	BuildSeconds float64 `json:"build_seconds,omitempty"`
	// Provenance says what the generation was made from (nil in
	// manifests older than it, and in imports).
	Provenance *Provenance `json:"provenance,omitempty"`
}

// File returns the manifest entry for name.
func (m *Manifest) File(name string) (FileInfo, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return FileInfo{}, false
}

// Size is the total size of the generation's files.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Store is a directory of images and their generations. Its methods are safe
// for concurrent use; several processes may read one store, and writes (import,
// publish) are atomic renames.
type Store struct {
	dir string

	mu        sync.Mutex
	manifests map[string]*Manifest // "image/id" -> manifest; generations are immutable
	current   map[string]currentEntry
	trees     treeCache // the last roots Tree read
}

type currentEntry struct {
	id    string
	mtime time.Time
	size  int64
}

// OpenStore opens (and creates, if needed) the store at dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	return &Store{dir: dir, manifests: map[string]*Manifest{}, current: map[string]currentEntry{}}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) genDir(image, id string) string {
	return filepath.Join(s.dir, image, "generations", id)
}

// Path is the file system path of one file of a generation. It checks names
// and does not check that the file exists.
func (s *Store) Path(image, id, file string) (string, error) {
	if !ValidImageName(image) {
		return "", fmt.Errorf("image %q: %w", image, ErrNotFound)
	}
	if !ValidGenerationID(id) {
		return "", fmt.Errorf("generation %q: %w", id, ErrNotFound)
	}
	switch file {
	case FileKernel, FileInitrd, FileRootfs, FileManifest, FileLog:
	default:
		return "", fmt.Errorf("file %q: %w", file, ErrNotFound)
	}
	return filepath.Join(s.genDir(image, id), file), nil
}

// Open opens one file of a generation for reading.
func (s *Store) Open(image, id, file string) (*os.File, error) {
	p, err := s.Path(image, id, file)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %s generation %s: %s: %w", image, id, file, ErrNotFound)
	}
	return f, err
}

// Generation reads a generation's manifest.
func (s *Store) Generation(image, id string) (*Manifest, error) {
	key := image + "/" + id
	s.mu.Lock()
	m := s.manifests[key]
	s.mu.Unlock()
	if m != nil {
		return m, nil
	}
	p, err := s.Path(image, id, FileManifest)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %s generation %s: %w", image, id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	m = new(Manifest)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	s.mu.Lock()
	s.manifests[key] = m
	s.mu.Unlock()
	return m, nil
}

// Images lists the images that have at least one generation, sorted.
func (s *Store) Images() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && ValidImageName(e.Name()) {
			if _, err := os.Stat(filepath.Join(s.dir, e.Name(), "generations")); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	return out, nil
}

// Generations lists an image's generations, newest first.
func (s *Store) Generations(image string) ([]*Manifest, error) {
	if !ValidImageName(image) {
		return nil, fmt.Errorf("image %q: %w", image, ErrNotFound)
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, image, "generations"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, e := range ents {
		if !e.IsDir() || !ValidGenerationID(e.Name()) {
			continue // temp dirs of imports in flight start with '.'
		}
		m, err := s.Generation(image, e.Name())
		if err != nil {
			continue // a generation without a manifest is not a generation
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Current returns the published generation of an image. It returns an error
// wrapping ErrNotFound when the image has none.
func (s *Store) Current(image string) (string, error) {
	if !ValidImageName(image) {
		return "", fmt.Errorf("image %q: %w", image, ErrNotFound)
	}
	p := filepath.Join(s.dir, image, "current")
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("image %s has no published generation: %w", image, ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	c, ok := s.current[image]
	s.mu.Unlock()
	if ok && c.mtime.Equal(st.ModTime()) && c.size == st.Size() {
		return c.id, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if !ValidGenerationID(id) {
		return "", fmt.Errorf("%s: malformed generation id %q", p, id)
	}
	s.mu.Lock()
	s.current[image] = currentEntry{id: id, mtime: st.ModTime(), size: st.Size()}
	s.mu.Unlock()
	return id, nil
}

// Publish makes id the current generation of image, atomically.
func (s *Store) Publish(image, id string) error {
	if _, err := s.Generation(image, id); err != nil {
		return err
	}
	// The history goes first: a crash between the two writes leaves the
	// new id in the history (protected from GC) and the old one current.
	if err := s.appendHistory(image, id); err != nil {
		return err
	}
	return s.writeCurrent(image, id)
}

func (s *Store) writeCurrent(image, id string) error {
	p := filepath.Join(s.dir, image, "current")
	if err := atomicfile.Write(p, []byte(id+"\n"), 0o644); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.current, image)
	s.mu.Unlock()
	return nil
}

// Import copies the files at the paths of files (keyed by FileKernel,
// FileInitrd, FileRootfs) into a new generation of image; see ImportStream.
func (s *Store) Import(image string, files map[string]string, source string) (*Manifest, error) {
	for _, name := range BootFiles {
		if files[name] == "" {
			return nil, fmt.Errorf("import %s: missing %s", image, name)
		}
	}
	for name := range files {
		if !isBootFile(name) {
			return nil, fmt.Errorf("import %s: unknown file role %q", image, name)
		}
	}
	i := 0
	var open *os.File
	defer func() {
		if open != nil {
			open.Close()
		}
	}()
	return s.ImportStream(image, source, func() (string, io.Reader, error) {
		if open != nil {
			open.Close()
			open = nil
		}
		if i == len(BootFiles) {
			return "", nil, io.EOF
		}
		name := BootFiles[i]
		i++
		f, _, err := openRegular(files[name])
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", name, err)
		}
		open = f
		return name, f, nil
	})
}

// ImportStream makes a new generation of image from the content of its
// files: next returns each file's name (FileKernel, FileInitrd, FileRootfs,
// in any order, each once) and content, then io.EOF. The content is copied
// as it is read, hashed, synced, and the generation appears whole by a
// rename; importing the same content again returns the generation that has
// it and changes nothing. Neither Import nor ImportStream publishes. The
// generation's id is derived from the files' names, sizes and sums.
func (s *Store) ImportStream(image, source string, next func() (string, io.Reader, error)) (*Manifest, error) {
	if !ValidImageName(image) {
		return nil, fmt.Errorf("image name %q: must match %s", image, imageNameRE)
	}
	gens := filepath.Join(s.dir, image, "generations")
	if err := os.MkdirAll(gens, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(gens, ".import-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // after the rename this no longer exists

	got := map[string]FileInfo{}
	for {
		name, r, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", image, err)
		}
		if !isBootFile(name) {
			return nil, fmt.Errorf("import %s: unknown file role %q", image, name)
		}
		if _, dup := got[name]; dup {
			return nil, fmt.Errorf("import %s: %s given twice", image, name)
		}
		fi, err := writeHashed(r, filepath.Join(tmp, name))
		if err != nil {
			return nil, fmt.Errorf("import %s: %s: %w", image, name, err)
		}
		fi.Name = name
		got[name] = fi
	}
	m := &Manifest{Image: image, Created: time.Now().UTC().Truncate(time.Second), Source: source}
	idHash := sha256.New()
	for _, name := range BootFiles {
		fi, ok := got[name]
		if !ok {
			return nil, fmt.Errorf("import %s: missing %s", image, name)
		}
		m.Files = append(m.Files, fi)
		fmt.Fprintf(idHash, "%s %d %s\n", fi.Name, fi.Size, fi.SHA256)
	}
	m.ID = hex.EncodeToString(idHash.Sum(nil))[:16]
	final := s.genDir(image, m.ID)
	if old, err := s.Generation(image, m.ID); err == nil {
		return old, nil // same content: the generation exists already
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(tmp, FileManifest), append(mb, '\n'), 0o444); err != nil {
		return nil, err
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o555); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("import %s: %w", image, err)
	}
	if err := atomicfile.SyncDir(gens); err != nil {
		return nil, err
	}
	return m, nil
}

func isBootFile(name string) bool {
	for _, f := range BootFiles {
		if f == name {
			return true
		}
	}
	return false
}

// Verify re-reads every file of a generation and checks it against the
// manifest.
func (s *Store) Verify(image, id string) error {
	m, err := s.Generation(image, id)
	if err != nil {
		return err
	}
	for _, want := range m.Files {
		f, err := s.Open(image, id, want.Name)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); n != want.Size || got != want.SHA256 {
			return fmt.Errorf("image %s generation %s: %s: size %d sha256 %s, manifest says %d %s",
				image, id, want.Name, n, got, want.Size, want.SHA256)
		}
	}
	return nil
}

// openRegular opens p for reading, refusing anything but a regular file.
func openRegular(p string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", p)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

func copyHashed(src, dst string) (FileInfo, error) {
	in, _, err := openRegular(src)
	if err != nil {
		return FileInfo{}, err
	}
	defer in.Close()
	return writeHashed(in, dst)
}

// writeHashed writes in to a new file dst (mode 0444), synced, and returns
// its size and sha256.
func writeHashed(in io.Reader, dst string) (FileInfo, error) {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return FileInfo{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
