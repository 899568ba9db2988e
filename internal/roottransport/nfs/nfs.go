// Package nfs is the nfs root transport: a generation's root filesystem,
// unpacked once into an immutable tree under the site's NFS export
// directory, is mounted read-only by the node over NFSv4 and covered with a
// tmpfs overlay. A node's RAM then holds only the pages it reads, not the
// whole squashfs.
//
// It writes root=nfs:SERVER:PATH:OPTIONS, dracut's syntax for an NFS root,
// which netbootui's built-in live init (assets/scripts/init.sh, root_nfs)
// reads too. PATH is the tree's path under the site's export
// (EXPORT/images/IMAGE/GENERATION); OPTIONS are vers=4.1 and the server's
// port. A node whose group persists paths also gets netbootui.persist (the
// paths) and netbootui.persist_nfs (its own directory, EXPORT/nodes/NODE,
// made by the head and exported read-write to that node's address alone):
// the init binds each path from there over the overlay.
//
// The package also publishes a generation's tree (PublishTree: unsquashfs
// into a temporary directory, renamed into place, never rewritten) and
// writes the export entries the site's NFS server (nfs-ganesha) needs
// (GaneshaExports).
package nfs

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/netbootui/netbootui/internal/roottransport"
)

// Name and Scheme of the transport.
const (
	Name   = "nfs"
	Scheme = "nfs"
)

// Transport is the nfs transport. Its zero value is ready to use.
type Transport struct{}

var _ roottransport.Transport = Transport{}

// Name implements roottransport.Transport.
func (Transport) Name() string { return Name }

// Scheme implements roottransport.Transport.
func (Transport) Scheme() string { return Scheme }

// TreePath is the path, under the site's export as nodes mount it, of a
// generation's tree.
func TreePath(site roottransport.NFSSite, image, gen string) string {
	return path.Join(site.Export, "images", image, gen)
}

// Options are the NFS mount options the transport writes for site.
func Options(site roottransport.NFSSite) string {
	return "vers=4.1,port=" + strconv.Itoa(site.PortOrDefault())
}

// KernelArgs implements roottransport.Transport:
// root=nfs:SERVER:EXPORT/images/IMAGE/GEN:vers=4.1,port=PORT.
func (Transport) KernelArgs(b roottransport.Boot) ([]string, error) {
	if !b.NFS.Configured() {
		return nil, errors.New("nfs: the inventory names no NFS server (settings.nfs)")
	}
	if b.Image == "" || b.Generation == "" {
		return nil, errors.New("nfs: no generation to mount")
	}
	if err := checkServer(b.NFS.Server); err != nil {
		return nil, err
	}
	v := b.NFS.Server + ":" + TreePath(b.NFS, b.Image, b.Generation) + ":" + Options(b.NFS)
	if _, err := (Transport{}).Locate(v); err != nil {
		return nil, err
	}
	words := []string{roottransport.KeyRoot + "=" + Scheme + ":" + v}
	if len(b.Persist) > 0 {
		if b.Node == "" {
			return nil, errors.New("nfs: persisted paths need the node's name")
		}
		for _, p := range b.Persist {
			if err := roottransport.CheckPersistPath(p); err != nil {
				return nil, fmt.Errorf("nfs: %w", err)
			}
		}
		pv := b.NFS.Server + ":" + NodeExportPath(b.NFS, b.Node) + ":" + Options(b.NFS)
		if _, err := (Transport{}).Locate(pv); err != nil {
			return nil, err
		}
		words = append(words, roottransport.KeyPersist+"="+strings.Join(b.Persist, ","), roottransport.KeyPersistNFS+"="+pv)
	}
	return words, nil
}

// checkServer accepts an IPv4 address: the live init resolves no names, and
// an IPv6 address's colons would split the root= value.
func checkServer(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return fmt.Errorf("nfs: server %q: want an IPv4 address", s)
	}
	return nil
}

// Locate implements roottransport.Transport: the value is
// SERVER:PATH[:OPTIONS], PATH absolute and clean, OPTIONS comma-separated
// key[=value] words.
func (Transport) Locate(value string) (roottransport.Root, error) {
	server, rest, ok := strings.Cut(value, ":")
	if !ok {
		return roottransport.Root{}, errors.New("nfs: want SERVER:PATH[:OPTIONS]")
	}
	if err := checkServer(server); err != nil {
		return roottransport.Root{}, err
	}
	p, opts, _ := strings.Cut(rest, ":")
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return roottransport.Root{}, fmt.Errorf("nfs: path %q: want an absolute, clean path", p)
	}
	if strings.ContainsAny(p, ",= \t\n\"'\\") || strings.ContainsAny(opts, ": \t\n\"'\\") {
		return roottransport.Root{}, errors.New("nfs: path or options hold characters the init cannot pass on")
	}
	if opts != "" {
		for _, w := range strings.Split(opts, ",") {
			k, _, _ := strings.Cut(w, "=")
			if k == "" {
				return roottransport.Root{}, fmt.Errorf("nfs: empty option in %q", opts)
			}
		}
	}
	return roottransport.Root{Mount: server + ":" + p, MountOptions: opts}, nil
}
