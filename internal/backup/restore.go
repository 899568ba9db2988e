package backup

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/netbootui/netbootui/internal/atomicfile"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/local"
)

// Restore writes the backup in file into dataDir, a data folder that does
// not exist or is empty, and its inventory to inventory, a file that does
// not exist. The whole file is checked first; the data folder is filled
// under a temporary name beside it and renamed into place last, so a
// refused or failed restore leaves both paths as they were.
func Restore(file, dataDir, inventory string) (*Summary, error) {
	dataDir = filepath.Clean(dataDir)
	dirMode := fs.FileMode(0o755)
	switch st, err := os.Stat(dataDir); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	case !st.IsDir():
		return nil, fmt.Errorf("%s is not a folder", dataDir)
	default:
		ents, err := os.ReadDir(dataDir)
		if err != nil {
			return nil, err
		}
		if len(ents) > 0 {
			return nil, fmt.Errorf("%s is not empty (it holds %s): restore only into an empty or new data folder", dataDir, ents[0].Name())
		}
		dirMode = st.Mode().Perm()
	}
	if _, err := os.Lstat(inventory); err == nil {
		return nil, fmt.Errorf("%s exists: restore writes the inventory to a new file", inventory)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := Verify(f); err != nil {
		return nil, fmt.Errorf("%s: %w; nothing was restored", file, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}

	parent := filepath.Dir(dataDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(parent, "."+filepath.Base(dataDir)+".restore-")
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			image.RemoveAll(staging)
		}
	}()
	r := &restorer{dir: staging, state: map[string][]byte{}}
	sum, err := read(f, r.entry)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; nothing was restored", file, err)
	}
	if err := r.applyState(); err != nil {
		return nil, fmt.Errorf("restore: %w; nothing was restored", err)
	}
	inv := r.state[inventoryDir+sum.Header.Inventory]
	if inv == nil {
		return nil, fmt.Errorf("%s: damaged: no inventory %q; nothing was restored", file, sum.Header.Inventory)
	}
	for _, d := range r.genDirs {
		if err := os.Chmod(d, 0o555); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(staging, dirMode); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(inventory), 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(inventory, inv, 0o644); err != nil {
		return nil, err
	}
	if err := os.Remove(dataDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		os.Remove(inventory)
		return nil, err
	}
	if err := os.Rename(staging, dataDir); err != nil {
		os.Remove(inventory)
		return nil, err
	}
	done = true
	return sum, atomicfile.SyncDir(parent)
}

// restorer takes a backup's entries as read writes the image files at
// once (they can be large) and keeps the state entries for applyState.
type restorer struct {
	dir     string
	state   map[string][]byte
	genDirs []string
}

func (r *restorer) entry(name string, _ int64, content io.Reader) error {
	if !strings.HasPrefix(name, imagesDir) {
		b, err := io.ReadAll(content)
		r.state[name] = b
		return err
	}
	p := filepath.Join(r.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if strings.Contains(name, "/generations/") {
		mode = 0o444 // as the store keeps generation files
		if d := filepath.Dir(p); !slices.Contains(r.genDirs, d) {
			r.genDirs = append(r.genDirs, d)
		}
	}
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, content); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// applyState writes the state entries into the staging folder through a
// local store: the token key, the audit log, the boot states, the
// check-in records and the documents.
func (r *restorer) applyState() (err error) {
	st, err := local.Open(r.dir)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}()
	key, err := hex.DecodeString(strings.TrimSpace(string(r.state[tokenKeyName])))
	if err != nil || len(key) == 0 {
		return errors.New("the backup's token key is not a hex key")
	}
	if err := st.SetTokenKey(key); err != nil {
		return err
	}
	var entries []audit.Entry
	for line := range bytes.Lines(r.state[auditName]) {
		var e audit.Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		entries = append(entries, e)
	}
	if err := st.ImportAudit(entries); err != nil {
		return err
	}
	var snap bootstate.Snapshot
	if err := json.Unmarshal(r.state[bootName], &snap); err != nil {
		return fmt.Errorf("boot state: %w", err)
	}
	if err := st.BootStates().Write(snapshotBatch(&snap)); err != nil {
		return fmt.Errorf("boot state: %w", err)
	}
	if b := r.state[checkinsName]; b != nil {
		var checkins map[string]state.CheckinSeen
		if err := json.Unmarshal(b, &checkins); err != nil {
			return fmt.Errorf("check-ins: %w", err)
		}
		for node, seen := range checkins {
			if _, err := st.Checkins().Put(node, seen, 0); err != nil {
				return fmt.Errorf("check-ins of %s: %w", node, err)
			}
		}
	}
	for name, data := range r.state {
		if doc, ok := strings.CutPrefix(name, documentsDir); ok {
			if _, err := st.Documents().Put(doc, data, 0); err != nil {
				return fmt.Errorf("document %s: %w", doc, err)
			}
		}
	}
	return nil
}

// snapshotBatch is the one write that puts a snapshot into an empty store.
func snapshotBatch(s *bootstate.Snapshot) *bootstate.Batch {
	b := &bootstate.Batch{States: s.States, Seq: s.Seq}
	var evs []bootstate.Event
	for _, h := range s.History {
		evs = append(evs, h...)
	}
	evs = append(evs, s.Unknown...)
	slices.SortStableFunc(evs, func(a, b bootstate.Event) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	for _, e := range evs {
		b.Events = append(b.Events, bootstate.BatchEvent{Event: e})
	}
	return b
}
