package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/state"
)

// PersistWipesDocument is the state document (state.Documents) holding, per
// node with a persist disk, the newest wipe an admin requested of it.
const PersistWipesDocument = "persist-wipes.json"

// wipeCacheTTL is how long a read of the wipes document serves renders
// before it is read again (another head's wipe is seen within it).
const wipeCacheTTL = 5 * time.Second

// wipeRecord is one node's newest requested wipe.
type wipeRecord struct {
	ID  string    `json:"id"` // roottransport.WipeIDLen hex digits, random
	At  time.Time `json:"at"`
	Who string    `json:"who"`
}

// persistWipes keeps the wipes document, read through a short cache: every
// render of a disk-backed node asks it for the node's wipe id.
type persistWipes struct {
	docs state.Documents
	now  func() time.Time

	mu   sync.Mutex
	m    map[string]wipeRecord
	read time.Time // when m was read; zero: never
}

// load reads the document: its records and revision.
func (w *persistWipes) load() (map[string]wipeRecord, state.Rev, error) {
	data, rev, err := w.docs.Get(PersistWipesDocument)
	if err != nil {
		return nil, 0, err
	}
	m := map[string]wipeRecord{}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", PersistWipesDocument, err)
		}
	}
	return m, rev, nil
}

// get returns node's newest wipe (zero when none). When the document
// cannot be read, the copy read last is used and the error returned too.
func (w *persistWipes) get(node string) (wipeRecord, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	if w.read.IsZero() || w.now().Sub(w.read) >= wipeCacheTTL {
		var m map[string]wipeRecord
		if m, _, err = w.load(); err == nil {
			w.m, w.read = m, w.now()
		}
	}
	return w.m[node], err
}

// request records a new wipe of node (a fresh random id) by compare-and-
// swap, read again on a conflict.
func (w *persistWipes) request(node, who string) (wipeRecord, error) {
	var b [roottransport.WipeIDLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return wipeRecord{}, err
	}
	rec := wipeRecord{ID: hex.EncodeToString(b[:]), At: w.now().UTC(), Who: who}
	for range 5 {
		m, rev, err := w.load()
		if err != nil {
			return wipeRecord{}, err
		}
		m[node] = rec
		data, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return wipeRecord{}, err
		}
		if _, err = w.docs.Put(PersistWipesDocument, data, rev); errors.Is(err, state.ErrConflict) {
			continue
		} else if err != nil {
			return wipeRecord{}, err
		}
		w.mu.Lock()
		w.m, w.read = m, w.now()
		w.mu.Unlock()
		return rec, nil
	}
	return wipeRecord{}, fmt.Errorf("%s: changed under every attempt: try again", PersistWipesDocument)
}

// renderWipe is pxe.Boot's PersistWipe hook: the id rendered as
// netbootui.persist_wipe= for a disk-backed node.
func (d *Daemon) renderWipe(node string) string {
	rec, err := d.wipes.get(node)
	if err != nil {
		d.log.Warn("persist wipes: reading the document failed; using the copy read last", "err", err)
	}
	return rec.ID
}

// persistDiskView fills v for n, a node whose persisted paths live on its
// own disk: the disk's settings, its newest wipe and what the node said.
func (d *Daemon) persistDiskView(v PersistView, n *inventory.Node) (PersistView, error) {
	pd := n.PersistDisk
	v.Disk = &apitype.PersistDisk{Label: pd.Label, Missing: pd.Missing, Format: pd.Format}
	for _, p := range n.Persist {
		v.Paths = append(v.Paths, apitype.PersistPath{Path: p, OnNode: true})
	}
	if r, ok := d.boot.Persisted(n.Name); ok {
		v.Disk.Reported, v.Disk.ReportedAt = r.State, r.At
	}
	rec, err := d.wipes.get(n.Name)
	if err != nil {
		return v, err
	}
	v.Disk.Wipe, v.Disk.WipeAt, v.Disk.WipeBy = rec.ID, rec.At, rec.Who
	v.Disk.WipePending = rec.ID != "" && !strings.Contains(v.Disk.Reported, "wipe "+rec.ID+" applied")
	return v, nil
}

// wipePersistDisk records a wipe of n's persist disk, applied by the node
// at its next boot, and audits it.
func (d *Daemon) wipePersistDisk(req apitype.PersistWipeRequest, n *inventory.Node) (PersistView, error) {
	rec, err := d.wipes.request(n.Name, req.Who)
	res := "requested wipe " + rec.ID + ": the node empties its persisted paths on its disk at its next boot"
	if err != nil {
		res = "failed: " + err.Error()
	}
	d.auditRecord(audit.Entry{Who: req.Who, Action: "persist wipe", Target: n.Name, Nodes: 1, Result: res, Details: n.Persist})
	if err != nil {
		return PersistView{Node: n.Name}, err
	}
	return d.Persist(n.Name)
}
