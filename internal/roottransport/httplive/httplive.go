// Package httplive is the http-live root transport, netbootui's default: the
// whole squashfs of the generation is downloaded over HTTP into the node's
// RAM, mounted read-only and covered with a tmpfs overlay.
//
// It writes root=live:URL, which both initramfs kinds read: netbootui's
// built-in live init (assets/scripts/init.sh: wget into /run, loop mount,
// overlay) and dracut's livenet + dmsquash-live modules (curl into /run,
// dmsquash-live's overlay), so images built with dracut boot unchanged.
package httplive

import (
	"errors"
	"net/url"

	"github.com/netbootui/netbootui/internal/roottransport"
)

// Name and Scheme of the transport.
const (
	Name   = "http-live"
	Scheme = "live"
)

// Transport is the http-live transport. Its zero value is ready to use.
type Transport struct{}

var _ roottransport.Transport = Transport{}

// Name implements roottransport.Transport.
func (Transport) Name() string { return Name }

// Scheme implements roottransport.Transport.
func (Transport) Scheme() string { return Scheme }

// DracutArgs are the words a dracut initramfs needs beside root=live:URL:
// dmsquash-live's live image, fetched after the network is up, with a tmpfs
// overlayfs (upper /run/overlayfs), the root netbootui's dracut module
// stacks the variants over.
var DracutArgs = []string{"rd.live.image", "rd.live.overlay.overlayfs=1"}

// KernelArgs implements roottransport.Transport: root=live:ROOTFS_URL, and
// for a dracut image DracutArgs and roottransport.DracutNetArgs.
func (Transport) KernelArgs(b roottransport.Boot) ([]string, error) {
	if b.RootfsURL == "" {
		return nil, errors.New("http-live: the generation has no rootfs URL")
	}
	words := []string{roottransport.KeyRoot + "=" + Scheme + ":" + b.RootfsURL}
	if b.Dracut {
		words = append(append(words, DracutArgs...), roottransport.DracutNetArgs...)
	}
	return words, nil
}

// Locate implements roottransport.Transport: the value is the URL the
// initramfs downloads (http or https, with a host).
func (Transport) Locate(value string) (roottransport.Root, error) {
	u, err := url.Parse(value)
	if err != nil {
		return roottransport.Root{}, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return roottransport.Root{}, errors.New("http-live: want an http:// or https:// URL")
	}
	return roottransport.Root{Fetch: []string{value}}, nil
}
