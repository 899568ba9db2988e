package daemon

import (
	"errors"
	"fmt"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

// ErrNotPersisted: a wipe of a node that persists nothing.
var ErrNotPersisted = errors.New("nothing to wipe")

// PersistView is what a node keeps across reboots (the API type).
type PersistView = apitype.PersistView

// Persist reads what node keeps across reboots: its group's persisted paths
// and, for each, what its directory on the head holds.
func (d *Daemon) Persist(name string) (PersistView, error) {
	v, site, n, err := d.persistOf(name)
	if err != nil || v.Note != "" {
		return v, err
	}
	if n.PersistDisk != nil {
		return d.persistDiskView(v, n)
	}
	usage, err := nfs.NodeDirUsage(site, n.Name, n.Persist)
	if err != nil {
		return v, err
	}
	for _, u := range usage {
		v.Paths = append(v.Paths, apitype.PersistPath{Path: u.Path, Bytes: u.Bytes, Files: u.Files, Missing: u.Missing})
	}
	return v, nil
}

// WipePersist empties a node's persisted paths and records it in the audit
// log. On an nfs root they are emptied on the head at once (the
// directories stay, so its next boot mounts them empty; a running node
// sees its files go). On a persist disk the wipe is recorded (a new wipe
// id, see PersistWipesDocument) and the node applies it at its next boot,
// before anything uses the paths. A node that persists nothing is refused.
// The node is not rebooted.
func (d *Daemon) WipePersist(req apitype.PersistWipeRequest) (PersistView, error) {
	v, site, n, err := d.persistOf(req.Node)
	if err != nil {
		return v, err
	}
	if v.Note != "" {
		return v, fmt.Errorf("%w: %s: %s", ErrNotPersisted, req.Node, v.Note)
	}
	if n.PersistDisk != nil {
		return d.wipePersistDisk(req, n)
	}
	removed, err := nfs.WipeNodeDir(site, n.Name, n.Persist)
	res := fmt.Sprintf("ok: %d entries removed", removed)
	if err != nil {
		res = "failed after removing " + fmt.Sprint(removed) + " entries: " + err.Error()
	}
	d.auditRecord(audit.Entry{Who: req.Who, Action: "persist wipe", Target: n.Name, Nodes: 1, Result: res, Details: n.Persist})
	if err != nil {
		return v, err
	}
	v, err = d.Persist(n.Name)
	v.Removed = removed
	return v, err
}

// persistOf is node's persist view without usage: Note is set when the
// node persists nothing.
func (d *Daemon) persistOf(name string) (PersistView, roottransport.NFSSite, *inventory.Node, error) {
	inv := d.Inventory()
	n := inv.Node(name)
	if n == nil {
		return PersistView{}, roottransport.NFSSite{}, nil, fmt.Errorf("%w %q", ErrUnknownNode, name)
	}
	v := PersistView{Node: n.Name}
	site := pxe.NFSSite(inv.Settings.NFS)
	im := inv.Images[n.Image]
	switch {
	case len(n.Persist) == 0:
		v.Note = "its group persists no paths (persist:)"
	case n.PersistDisk != nil:
		// on the node's own disk (a RAM root): persistDiskView
	case im == nil || im.Root != nfs.Name:
		v.Note = "persisted paths need an nfs root or the group's persist_disk; image " + n.Image + " is not an nfs root"
	case !site.Configured():
		v.Note = "the inventory has no settings.nfs"
	default:
		v.Export = site.Server + ":" + nfs.NodeExportPath(site, n.Name)
	}
	return v, site, n, nil
}
