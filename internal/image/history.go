package image

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netbootui/netbootui/internal/atomicfile"
)

// HistoryEntry is one publish of an image.
type HistoryEntry struct {
	Time time.Time
	ID   string
}

// maxHistory bounds the history file; older publishes are forgotten.
const maxHistory = 1000

func (s *Store) historyPath(image string) string { return filepath.Join(s.dir, image, "history") }

// History lists an image's publishes, oldest first. Rollback removes the
// entries it undoes, so the last entry is the generation most recently made
// current by Publish or Rollback.
func (s *Store) History(image string) ([]HistoryEntry, error) {
	if !ValidImageName(image) {
		return nil, fmt.Errorf("image %q: %w", image, ErrNotFound)
	}
	p := s.historyPath(image)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []HistoryEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || !ValidGenerationID(f[1]) {
			return nil, fmt.Errorf("%s:%d: want \"<RFC3339 time> <generation id>\", got %q", p, n, line)
		}
		t, err := time.Parse(time.RFC3339, f[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", p, n, err)
		}
		out = append(out, HistoryEntry{Time: t, ID: f[1]})
	}
	return out, sc.Err()
}

func (s *Store) writeHistory(image string, h []HistoryEntry) error {
	if len(h) > maxHistory {
		h = h[len(h)-maxHistory:]
	}
	var b bytes.Buffer
	for _, e := range h {
		fmt.Fprintf(&b, "%s %s\n", e.Time.UTC().Format(time.RFC3339), e.ID)
	}
	return atomicfile.Write(s.historyPath(image), b.Bytes(), 0o644)
}

func (s *Store) appendHistory(image, id string) error {
	h, err := s.History(image)
	if err != nil {
		return err
	}
	if len(h) > 0 && h[len(h)-1].ID == id {
		return nil // publishing the current generation again
	}
	return s.writeHistory(image, append(h, HistoryEntry{Time: time.Now(), ID: id}))
}

// Rollback makes the generation published before the current one current
// again and returns its id. It walks the publish history back past the
// current generation, skipping generations that no longer exist, and drops
// the undone entries from the history (so a second rollback goes further
// back). The current pointer is replaced atomically; the history after it.
func (s *Store) Rollback(image string) (string, error) {
	cur, err := s.Current(image)
	if err != nil {
		return "", fmt.Errorf("rollback %s: %w", image, err)
	}
	h, err := s.History(image)
	if err != nil {
		return "", fmt.Errorf("rollback %s: %w", image, err)
	}
	i := len(h) - 1
	for i >= 0 && h[i].ID != cur {
		i--
	}
	if i < 0 {
		i = len(h) // current is not in the history: everything is older
	}
	for j := i - 1; j >= 0; j-- {
		if h[j].ID == cur {
			continue
		}
		if _, err := s.Generation(image, h[j].ID); err != nil {
			continue
		}
		if err := s.writeCurrent(image, h[j].ID); err != nil {
			return "", fmt.Errorf("rollback %s: %w", image, err)
		}
		if err := s.writeHistory(image, h[:j+1]); err != nil {
			return "", fmt.Errorf("rollback %s: current is %s but the history was not updated: %w", image, h[j].ID, err)
		}
		return h[j].ID, nil
	}
	return "", fmt.Errorf("rollback %s: no earlier published generation than %s: %w", image, cur, ErrNotFound)
}

// GC removes the generations of image beyond the newest keep, except the
// current one, the last one in the publish history and those in inUse (the
// generations nodes are assigned to, staged on or running). It returns the
// removed ids. A removal renames the generation out of sight first, so no
// reader ever sees half a generation.
func (s *Store) GC(image string, keep int, inUse map[string]bool) ([]string, error) {
	if keep < 0 {
		return nil, fmt.Errorf("gc %s: keep %d is negative", image, keep)
	}
	gens, err := s.Generations(image)
	if err != nil {
		return nil, err
	}
	protect := map[string]bool{}
	for id := range inUse {
		protect[id] = true
	}
	if cur, err := s.Current(image); err == nil {
		protect[cur] = true
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("gc %s: %w", image, err)
	}
	h, err := s.History(image)
	if err != nil {
		return nil, fmt.Errorf("gc %s: %w", image, err)
	}
	if len(h) > 0 {
		protect[h[len(h)-1].ID] = true
	}
	var removed []string
	for i, m := range gens { // newest first
		if i < keep || protect[m.ID] {
			continue
		}
		dir := s.genDir(image, m.ID)
		trash := filepath.Join(filepath.Dir(dir), ".gc-"+m.ID)
		if err := os.Chmod(dir, 0o755); err != nil {
			return removed, fmt.Errorf("gc %s: %w", image, err)
		}
		if err := os.Rename(dir, trash); err != nil {
			return removed, fmt.Errorf("gc %s: %w", image, err)
		}
		s.mu.Lock()
		delete(s.manifests, image+"/"+m.ID)
		s.mu.Unlock()
		if err := RemoveAll(trash); err != nil {
			return removed, fmt.Errorf("gc %s: %w", image, err)
		}
		removed = append(removed, m.ID)
	}
	if len(removed) > 0 {
		if err := atomicfile.SyncDir(filepath.Join(s.dir, image, "generations")); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// RemoveAll is os.RemoveAll that also removes trees with read-only
// directories (generations and extracted roots have some): it makes them
// writable first when a plain removal fails.
func RemoveAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// Prefixes of the temporary directories below <image>/generations.
const (
	buildPrefix = ".build-"
	gcPrefix    = ".gc-"
	importPfx   = ".import-"
	lockName    = ".lock"
)

// CleanStale removes what crashed builds, imports and collections left below
// every image's generations directory: build directories whose builder no
// longer holds their lock, ".gc-" directories, and ".import-" directories
// older than an hour. It returns the removed paths.
func (s *Store) CleanStale() ([]string, error) {
	imgs, err := s.Images()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, img := range imgs {
		gens := filepath.Join(s.dir, img, "generations")
		ents, err := os.ReadDir(gens)
		if err != nil {
			return removed, err
		}
		for _, e := range ents {
			p := filepath.Join(gens, e.Name())
			stale := false
			switch {
			case strings.HasPrefix(e.Name(), gcPrefix):
				stale = true
			case strings.HasPrefix(e.Name(), buildPrefix):
				stale = !lockHeld(filepath.Join(p, lockName))
			case strings.HasPrefix(e.Name(), importPfx):
				if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
					stale = true
				}
			}
			if stale {
				unmountBelow(p)
				if err := RemoveAll(p); err != nil {
					return removed, err
				}
				removed = append(removed, p)
			}
		}
	}
	return removed, nil
}

// lockHeld reports whether some process holds an flock on file.
func lockHeld(file string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false // no lock file: the builder died before making it
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// commitBuilt turns dir, a directory below <image>/generations holding the
// boot files and a build log, into a generation: it hashes the files,
// writes the manifest, makes it read-only and renames it into place. When a
// generation with the same content exists, dir is left for the caller to
// remove and the existing manifest is returned.
func (s *Store) commitBuilt(image, dir string, m *Manifest) (*Manifest, error) {
	idHash := sha256.New()
	m.Files = m.Files[:0]
	// The files are synced and hashed at once (the squashfs's writeback
	// and the kernel's hashing need not wait for each other).
	infos := make([]FileInfo, len(BootFiles))
	errs := make([]error, len(BootFiles))
	var wg sync.WaitGroup
	for i, name := range BootFiles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			infos[i], errs[i] = hashFile(filepath.Join(dir, name))
		}()
	}
	wg.Wait()
	for i, name := range BootFiles {
		if errs[i] != nil {
			return nil, fmt.Errorf("image %s: %s: %w", image, name, errs[i])
		}
		fi := infos[i]
		fi.Name = name
		m.Files = append(m.Files, fi)
		fmt.Fprintf(idHash, "%s %d %s\n", fi.Name, fi.Size, fi.SHA256)
	}
	m.ID = hex.EncodeToString(idHash.Sum(nil))[:16]
	if old, err := s.Generation(image, m.ID); err == nil {
		return old, nil
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, FileManifest), append(mb, '\n'), 0o444); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if err := os.Chmod(filepath.Join(dir, e.Name()), 0o444); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		return nil, err
	}
	gens := filepath.Join(s.dir, image, "generations")
	if err := os.Rename(dir, s.genDir(image, m.ID)); err != nil {
		os.Chmod(dir, 0o755)
		return nil, fmt.Errorf("image %s: %w", image, err)
	}
	if err := atomicfile.SyncDir(gens); err != nil {
		return nil, err
	}
	return m, nil
}

func hashFile(p string) (FileInfo, error) {
	f, st, err := openRegular(p)
	if err != nil {
		return FileInfo{}, err
	}
	defer f.Close()
	synced := make(chan error, 1)
	go func() { synced <- f.Sync() }()
	h := sha256.New()
	n, err := copyBuf(h, io.NewSectionReader(f, 0, st.Size()))
	if serr := <-synced; err == nil {
		err = serr
	}
	if err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
