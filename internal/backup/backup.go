// Package backup writes a daemon's durable state to one file and restores
// it into an empty data folder: the boot state of every node, the image
// store (every generation's manifest and files, each image's current
// pointer and publish history), the token key, the check-in replay
// guard's records, the whole audit log, the state documents (rollouts,
// the wipes requested of nodes' persist disks) and
// the inventory.
//
// The file is a tar archive. Its first entry is a header naming the format
// version; its last is an index that lists every entry before it with its
// size and sha256. A reader checks every entry against the index and that
// nothing follows it, so a truncated or damaged file is refused before
// anything is written. The state is read through internal/state (any
// store); a restore writes a local data folder (internal/state/local).
//
// A backup holds the token key: the file is written mode 0600 and its
// content is never printed. BMC passwords (the secrets file) are not in it.
package backup

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/state"
)

// Format is the version of the file this package writes and reads.
const Format = 1

// Names of the entries.
const (
	HeaderName    = "netbootui-backup.json"
	IndexName     = "index.json"
	tokenKeyName  = "state/token.key"
	bootName      = "state/bootstate.json"
	checkinsName  = "state/checkins.json"
	auditName     = "state/audit.jsonl"
	documentsDir  = "state/documents/"
	inventoryDir  = "inventory/"
	imagesDir     = "images/"
	maxStateEntry = 1 << 30 // the largest non-image entry a restore reads into memory
)

// keepAllHistory asks a boot-state store for every event it keeps.
const keepAllHistory = 1 << 30

// Header is the first entry.
type Header struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	// Inventory is the inventory file's base name.
	Inventory string `json:"inventory"`
}

// Index is the last entry: every entry before it, in order.
type Index struct {
	Format  int     `json:"format"`
	Entries []Entry `json:"entries"`
}

// Entry is one file of a backup.
type Entry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Source is what Write reads.
type Source struct {
	State     state.Store
	Images    *image.Store
	Inventory string   // the inventory file's path
	Documents []string // names of the state documents to keep (rollout.DocumentName)
}

// Write writes a backup of src to w. Each part is read whole at one moment:
// the boot states in one read of the store, the audit log with no entry
// being recorded, the inventory file as one version, each image's pointers
// before its generations (which are immutable, and a current one is never
// collected).
func Write(w io.Writer, src Source) error {
	bw := &writer{tw: tar.NewWriter(w), now: time.Now().UTC()}
	inv, err := os.ReadFile(src.Inventory)
	if err != nil {
		return fmt.Errorf("backup: inventory: %w", err)
	}
	hdr, err := json.Marshal(Header{Format: Format, Created: bw.now, Inventory: filepath.Base(src.Inventory)})
	if err != nil {
		return err
	}
	if err := bw.add(HeaderName, hdr, 0o644); err != nil {
		return err
	}
	if err := bw.add(inventoryDir+filepath.Base(src.Inventory), inv, 0o644); err != nil {
		return err
	}
	key, err := src.State.TokenKey()
	if err != nil {
		return fmt.Errorf("backup: token key: %w", err)
	}
	if err := bw.add(tokenKeyName, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	snap, err := src.State.BootStates().Load(keepAllHistory)
	if err != nil {
		return fmt.Errorf("backup: boot states: %w", err)
	}
	if err := bw.addJSON(bootName, snap); err != nil {
		return err
	}
	// The check-in replay guard's records, of every node with a boot
	// state (a node that checked in has one).
	checkins := map[string]state.CheckinSeen{}
	for _, ns := range snap.States {
		seen, rev, err := src.State.Checkins().Get(ns.Node)
		if err != nil {
			return fmt.Errorf("backup: check-ins of %s: %w", ns.Node, err)
		}
		if rev != 0 {
			checkins[ns.Node] = seen
		}
	}
	if err := bw.addJSON(checkinsName, checkins); err != nil {
		return err
	}
	lines, err := auditLines(src.State.Audit())
	if err != nil {
		return err
	}
	if err := bw.add(auditName, lines, 0o600); err != nil {
		return err
	}
	for _, name := range src.Documents {
		data, rev, err := src.State.Documents().Get(name)
		if err != nil {
			return fmt.Errorf("backup: document %s: %w", name, err)
		}
		if rev == 0 {
			continue
		}
		if err := bw.add(documentsDir+name, data, 0o644); err != nil {
			return err
		}
	}
	if err := bw.images(src.Images); err != nil {
		return err
	}
	idx, err := json.Marshal(Index{Format: Format, Entries: bw.entries})
	if err != nil {
		return err
	}
	if err := bw.tw.WriteHeader(&tar.Header{Name: IndexName, Mode: 0o644, Size: int64(len(idx)), ModTime: bw.now, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := bw.tw.Write(idx); err != nil {
		return err
	}
	return bw.tw.Close()
}

// auditLines is the whole audit log as JSON lines.
func auditLines(a state.Audit) ([]byte, error) {
	entries := a.Recent(0)
	if l, ok := a.(state.AuditLister); ok {
		all, err := l.All()
		if err != nil {
			return nil, fmt.Errorf("backup: audit log: %w", err)
		}
		entries = all
	}
	var b []byte
	for _, e := range entries {
		line, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("backup: audit log: %w", err)
		}
		b = append(append(b, line...), '\n')
	}
	return b, nil
}

type writer struct {
	tw      *tar.Writer
	now     time.Time
	entries []Entry
}

func (w *writer) add(name string, data []byte, mode int64) error {
	if err := w.tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: w.now, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if _, err := w.tw.Write(data); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	w.entries = append(w.entries, Entry{Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	return nil
}

func (w *writer) addJSON(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	return w.add(name, b, 0o644)
}

// addFile copies a file that does not change (a generation's).
func (w *writer) addFile(name, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := w.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o444, Size: st.Size(), ModTime: w.now, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w.tw, h), f)
	if err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if n != st.Size() {
		return fmt.Errorf("backup: %s changed while it was read", p)
	}
	w.entries = append(w.entries, Entry{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// images writes every image's pointers, then its generations.
func (w *writer) images(st *image.Store) error {
	imgs, err := st.Images()
	if err != nil {
		return fmt.Errorf("backup: images: %w", err)
	}
	for _, img := range imgs {
		dir := filepath.Join(st.Dir(), img)
		var pinned []string
		for _, ptr := range []string{"current", "history"} {
			b, err := os.ReadFile(filepath.Join(dir, ptr))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("backup: image %s: %w", img, err)
			}
			if err := w.add(imagesDir+img+"/"+ptr, b, 0o644); err != nil {
				return err
			}
			for _, f := range strings.Fields(string(b)) {
				if image.ValidGenerationID(f) {
					pinned = append(pinned, f)
				}
			}
		}
		gens, err := st.Generations(img)
		if err != nil {
			return fmt.Errorf("backup: image %s: %w", img, err)
		}
		have := map[string]bool{}
		for _, m := range gens {
			files := []string{image.FileManifest}
			for _, f := range m.Files {
				files = append(files, f.Name)
			}
			if m.Log != "" {
				files = append(files, image.FileLog)
			}
			for _, f := range files {
				p, err := st.Path(img, m.ID, f)
				if err != nil {
					return fmt.Errorf("backup: image %s generation %s: %w", img, m.ID, err)
				}
				err = w.addFile(imagesDir+img+"/generations/"+m.ID+"/"+f, p)
				if errors.Is(err, os.ErrNotExist) && !slices.Contains(pinned, m.ID) {
					break // collected meanwhile: its files are left out with it
				}
				if err != nil {
					return err
				}
			}
			have[m.ID] = true
		}
		for _, id := range pinned {
			if !have[id] {
				return fmt.Errorf("backup: image %s: generation %s is current or in the history but missing from the store", img, id)
			}
		}
	}
	return nil
}

// Summary says what a backup holds.
type Summary struct {
	Header      Header
	Entries     int
	Bytes       int64
	Nodes       int // nodes with a boot state
	Events      int
	Checkins    int // nodes with a check-in replay record
	Audit       int // audit entries
	Images      int
	Generations int
	Documents   []string
}

// Verify reads a whole backup and checks it: the format, every entry's
// size and sha256 against the index, and that the index is last. It
// returns what the backup holds.
func Verify(r io.Reader) (*Summary, error) {
	return read(r, nil)
}

// read walks a backup, checking it; each entry's content goes to fn (when
// not nil) as it is read, before its checksum is known: fn's effects must
// be undone by the caller when read fails.
func read(r io.Reader, fn func(name string, mode int64, content io.Reader) error) (*Summary, error) {
	tr := tar.NewReader(r)
	var (
		seen []Entry
		sum  Summary
		imgs = map[string]bool{}
	)
	for {
		th, err := tr.Next()
		if err == io.EOF {
			if len(seen) == 0 {
				return nil, errors.New("not a netbootui backup: the file is empty")
			}
			return nil, fmt.Errorf("truncated: the backup ends after %d entries without its index", len(seen))
		}
		if err != nil {
			return nil, fmt.Errorf("truncated or damaged after %d entries: %w", len(seen), err)
		}
		if th.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("damaged: entry %q is not a file", th.Name)
		}
		if len(seen) == 0 && th.Name != HeaderName {
			return nil, fmt.Errorf("not a netbootui backup: it starts with %q", th.Name)
		}
		if th.Name == IndexName {
			b, err := io.ReadAll(io.LimitReader(tr, maxStateEntry))
			if err != nil {
				return nil, fmt.Errorf("truncated or damaged index: %w", err)
			}
			var idx Index
			if err := json.Unmarshal(b, &idx); err != nil {
				return nil, fmt.Errorf("damaged index: %w", err)
			}
			if idx.Format != Format {
				return nil, fmt.Errorf("backup format %d; this netbootui reads format %d", idx.Format, Format)
			}
			// The index has no checksum of its own: it must be exactly
			// what Write makes of it (JSON keys match in any case).
			if again, err := json.Marshal(idx); err != nil || !bytes.Equal(again, b) {
				return nil, errors.New("damaged index: it is not as written")
			}
			if !slices.Equal(idx.Entries, seen) {
				return nil, errors.New(describeMismatch(idx.Entries, seen))
			}
			switch _, err := tr.Next(); {
			case err == io.EOF:
			case err == nil:
				return nil, errors.New("damaged: entries follow the index")
			case errors.Is(err, io.ErrUnexpectedEOF):
				return nil, errors.New("truncated: the archive's end is cut")
			default:
				return nil, fmt.Errorf("damaged after the index: %w", err)
			}
			sum.Entries = len(seen)
			sum.Images = len(imgs)
			return &sum, nil
		}
		if err := checkName(th.Name); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(seen, func(e Entry) bool { return e.Name == th.Name }) {
			return nil, fmt.Errorf("damaged: entry %q appears twice", th.Name)
		}
		h := sha256.New()
		var body io.Reader = io.TeeReader(tr, h)
		if !strings.HasPrefix(th.Name, imagesDir) {
			// State entries are read whole: they are small next to images.
			b, err := io.ReadAll(io.LimitReader(body, maxStateEntry))
			if err != nil {
				return nil, fmt.Errorf("truncated or damaged in %q: %w", th.Name, err)
			}
			if err := sum.note(th.Name, b); err != nil {
				return nil, err
			}
			body = bytes.NewReader(b)
		} else {
			parts := strings.Split(strings.TrimPrefix(th.Name, imagesDir), "/")
			imgs[parts[0]] = true
			if len(parts) == 4 && parts[3] == image.FileManifest {
				sum.Generations++
			}
		}
		if fn != nil {
			if err := fn(th.Name, th.Mode, body); err != nil {
				return nil, err
			}
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return nil, fmt.Errorf("truncated or damaged in %q: %w", th.Name, err)
		}
		seen = append(seen, Entry{Name: th.Name, Size: th.Size, SHA256: hex.EncodeToString(h.Sum(nil))})
		sum.Bytes += th.Size
	}
}

// note adds what a state entry holds to the summary, checking that it
// parses.
func (sum *Summary) note(name string, b []byte) error {
	switch {
	case name == HeaderName:
		if err := json.Unmarshal(b, &sum.Header); err != nil {
			return fmt.Errorf("damaged header: %w", err)
		}
		if sum.Header.Format != Format {
			return fmt.Errorf("backup format %d; this netbootui reads format %d", sum.Header.Format, Format)
		}
	case name == bootName:
		var snap bootstate.Snapshot
		if err := json.Unmarshal(b, &snap); err != nil {
			return fmt.Errorf("damaged boot state: %w", err)
		}
		sum.Nodes = len(snap.States)
		for _, h := range snap.History {
			sum.Events += len(h)
		}
		sum.Events += len(snap.Unknown)
	case name == checkinsName:
		var c map[string]state.CheckinSeen
		if err := json.Unmarshal(b, &c); err != nil {
			return fmt.Errorf("damaged check-in records: %w", err)
		}
		sum.Checkins = len(c)
	case name == auditName:
		sum.Audit = bytes.Count(b, []byte("\n"))
	case strings.HasPrefix(name, documentsDir):
		sum.Documents = append(sum.Documents, strings.TrimPrefix(name, documentsDir))
	}
	return nil
}

// describeMismatch says how the entries read differ from the index.
func describeMismatch(idx, seen []Entry) string {
	for i := range min(len(idx), len(seen)) {
		if idx[i].Name != seen[i].Name {
			return fmt.Sprintf("damaged: entry %d is %q, the index says %q", i+1, seen[i].Name, idx[i].Name)
		}
		if idx[i] != seen[i] {
			return fmt.Sprintf("damaged: %s does not match its checksum in the index", seen[i].Name)
		}
	}
	return fmt.Sprintf("damaged: %d entries, the index lists %d", len(seen), len(idx))
}

// checkName accepts only the entry names a backup has, so that a restore
// never writes outside its folder.
func checkName(name string) error {
	bad := fmt.Errorf("damaged: unexpected entry %q", name)
	if name != path.Clean(name) || strings.HasPrefix(name, "/") {
		return bad
	}
	switch {
	case name == HeaderName || name == tokenKeyName || name == bootName || name == checkinsName || name == auditName:
		return nil
	case strings.HasPrefix(name, documentsDir):
		if d := strings.TrimPrefix(name, documentsDir); d == "" || strings.ContainsAny(d, "/\\") || strings.HasPrefix(d, ".") {
			return bad
		}
		return nil
	case strings.HasPrefix(name, inventoryDir):
		if f := strings.TrimPrefix(name, inventoryDir); f == "" || strings.ContainsAny(f, "/\\") || strings.HasPrefix(f, ".") {
			return bad
		}
		return nil
	case strings.HasPrefix(name, imagesDir):
		p := strings.Split(strings.TrimPrefix(name, imagesDir), "/")
		if !image.ValidImageName(p[0]) {
			return bad
		}
		switch {
		case len(p) == 2 && (p[1] == "current" || p[1] == "history"):
			return nil
		case len(p) == 4 && p[1] == "generations" && image.ValidGenerationID(p[2]):
			switch p[3] {
			case image.FileKernel, image.FileInitrd, image.FileRootfs, image.FileManifest, image.FileLog:
				return nil
			}
		}
	}
	return bad
}
