package daemon

import (
	"fmt"
	"sort"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/roottransport/nbd"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

// PublishNFSTree unpacks generation gen of image name under the site's NFS
// export directory (settings.nfs.dir), once: an existing tree is left as it
// is. It does nothing for an image whose root is not nfs.
func (d *Daemon) PublishNFSTree(name, gen string) error {
	inv := d.Inventory()
	im := inv.Images[name]
	if im == nil || im.Root != nfs.Name {
		return nil
	}
	site := pxe.NFSSite(inv.Settings.NFS)
	squashfs, err := d.images.Path(name, gen, image.FileRootfs)
	if err != nil {
		return err
	}
	dst := nfs.TreeDir(site, name, gen)
	made, err := nfs.PublishTree(squashfs, dst)
	if err != nil {
		d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "image",
			Message: fmt.Sprintf("image %s generation %s: NFS tree not published: %v", name, gen, err)})
		return fmt.Errorf("image %s generation %s: %w", name, gen, err)
	}
	if made {
		d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "image",
			Message: fmt.Sprintf("image %s generation %s: NFS tree published at %s", name, gen, dst)})
	}
	return nil
}

// publishNFSTrees publishes the trees every node of an nfs image may boot:
// each such image's current generation and the generations nodes pin.
func (d *Daemon) publishNFSTrees() {
	inv := d.Inventory()
	want := map[[2]string]bool{}
	for name, im := range inv.Images {
		if im.Root != nfs.Name {
			continue
		}
		if gen, err := d.images.Current(name); err == nil {
			want[[2]string{name, gen}] = true
		}
	}
	for _, n := range inv.Nodes {
		if im := inv.Images[n.Image]; im != nil && im.Root == nfs.Name && n.Generation != "" {
			want[[2]string{n.Image, n.Generation}] = true
		}
	}
	keys := make([][2]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"/"+keys[i][1] < keys[j][0]+"/"+keys[j][1] })
	for _, k := range keys {
		if err := d.PublishNFSTree(k[0], k[1]); err != nil {
			d.log.Warn("nfs tree", "err", err)
		}
	}
}

// preparePersist makes, for every node of an nfs image whose group persists
// paths, the node's own directory under the site's export directory with a
// directory per persisted path, before the node boots: the node never
// creates its directory through a shared writable export. Existing
// directories and their contents are kept; nothing is removed.
func (d *Daemon) preparePersist(inv *inventory.Inventory) {
	site := pxe.NFSSite(inv.Settings.NFS)
	if !site.Configured() {
		return
	}
	for _, n := range inv.Nodes {
		im := inv.Images[n.Image]
		if len(n.Persist) == 0 || im == nil || im.Root != nfs.Name {
			continue
		}
		if err := nfs.MakeNodeDir(site, n.Name, n.Persist); err != nil {
			d.log.Warn("persistent directory", "node", n.Name, "err", err)
			d.tracker.Apply(bootstate.Event{Node: n.Name, Kind: bootstate.KindInfo, Proto: "nfs",
				Error: "persistent directory not made: " + err.Error()})
		}
	}
}

// NBDServerConfig returns the nbd-server configuration (listening on
// listen:port) for the daemon's inventory and image store: see
// NBDServerConfigFor.
func (d *Daemon) NBDServerConfig(listen string, port int) (string, error) {
	return NBDServerConfigFor(d.Inventory(), d.images, listen, port)
}

// NBDServerConfigFor returns the nbd-server configuration (listening on
// listen:port) that serves the squashfs of every generation nodes of an nbd
// image may boot, straight from the image store: the current generation of
// each such image and the generations nodes pin.
func NBDServerConfigFor(inv *inventory.Inventory, images *image.Store, listen string, port int) (string, error) {
	seen := map[string]bool{}
	var exports []nbd.Export
	add := func(img, gen string) error {
		name := nbd.ExportName(img, gen)
		if seen[name] {
			return nil
		}
		seen[name] = true
		file, err := images.Path(img, gen, image.FileRootfs)
		if err != nil {
			return err
		}
		exports = append(exports, nbd.Export{Name: name, File: file})
		return nil
	}
	names := make([]string, 0, len(inv.Images))
	for name, im := range inv.Images {
		if im.Root == nbd.Name {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if gen, err := images.Current(name); err == nil {
			if err := add(name, gen); err != nil {
				return "", err
			}
		}
	}
	for _, n := range inv.Nodes {
		if im := inv.Images[n.Image]; im != nil && im.Root == nbd.Name && n.Generation != "" {
			if err := add(n.Image, n.Generation); err != nil {
				return "", err
			}
		}
	}
	return nbd.ServerConfig(listen, port, exports), nil
}
