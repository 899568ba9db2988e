package daemon

import (
	"fmt"
	"github.com/netbootui/netbootui/internal/apitype"
	"io"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
)

// ImageInfo is an image with its generations, newest first (the API type).
type ImageInfo = apitype.ImageInfo

// ImageList lists the images the inventory names and those the store holds.
func (d *Daemon) ImageList() ([]ImageInfo, error) {
	inv := d.Inventory()
	names := map[string]string{}
	for name, im := range inv.Images {
		names[name] = im.Description
	}
	stored, err := d.images.Images()
	if err != nil {
		return nil, err
	}
	for _, name := range stored {
		if _, ok := names[name]; !ok {
			names[name] = ""
		}
	}
	var out []ImageInfo
	for _, name := range sortedKeys(names) {
		gens, err := d.images.Generations(name)
		if err != nil {
			return nil, err
		}
		cur, _ := d.images.Current(name)
		out = append(out, ImageInfo{Name: name, Description: names[name], Current: cur, Generations: ManifestViews(gens)})
	}
	return out, nil
}

// ImportRequest names a kernel, an initramfs and a squashfs root that the
// daemon itself may read (its own files: the demo's, a test's) to become a
// new generation of Image. The API never passes a caller's paths here: it
// streams the caller's files to ImportStream.
type ImportRequest struct {
	Image   string
	Kernel  string
	Initrd  string
	Rootfs  string
	Publish bool
	Source  string
}

// ImportImage copies the daemon's own files into a new generation and, if
// asked, publishes it.
func (d *Daemon) ImportImage(r ImportRequest) (*image.Manifest, error) {
	m, err := d.images.Import(r.Image, map[string]string{
		image.FileKernel: r.Kernel, image.FileInitrd: r.Initrd, image.FileRootfs: r.Rootfs,
	}, importSource(r.Source))
	return d.imported(r.Image, r.Publish, m, err)
}

// ImportStream makes a new generation from content a caller sent (see
// image.Store.ImportStream for next) and, if asked, publishes it.
func (d *Daemon) ImportStream(r apitype.ImportRequest, next func() (string, io.Reader, error)) (*image.Manifest, error) {
	m, err := d.images.ImportStream(r.Image, importSource(r.Source), next)
	return d.imported(r.Image, r.Publish, m, err)
}

func importSource(s string) string {
	if s == "" {
		return "import"
	}
	return s
}

// imported reports the outcome of an import and publishes the generation
// if asked.
func (d *Daemon) imported(img string, publish bool, m *image.Manifest, err error) (*image.Manifest, error) {
	if err != nil {
		return nil, err
	}
	d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "image",
		Message: fmt.Sprintf("image %s generation %s imported (%d bytes)", img, m.ID, m.Size())})
	if publish {
		if err := d.PublishImage(img, m.ID); err != nil {
			return m, err
		}
	}
	return m, nil
}

// PublishImage makes gen the current generation of an image.
func (d *Daemon) PublishImage(name, gen string) error {
	old, _ := d.images.Current(name)
	// An nfs image's nodes mount the generation's tree: unpack it before
	// any node is told to boot it.
	if err := d.PublishNFSTree(name, gen); err != nil {
		return err
	}
	if err := d.images.Publish(name, gen); err != nil {
		return err
	}
	d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "image",
		Message: fmt.Sprintf("image %s: current generation %s (was %q)", name, gen, old)})
	return nil
}
