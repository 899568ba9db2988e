package daemon

import (
	"fmt"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
)

// ImageInfo is an image with its generations, newest first.
type ImageInfo struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Current     string            `json:"current,omitempty"`
	Generations []*image.Manifest `json:"generations"`
}

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
		out = append(out, ImageInfo{Name: name, Description: names[name], Current: cur, Generations: gens})
	}
	return out, nil
}

// ImportRequest names a kernel, an initramfs and a squashfs root on the head
// node to become a new generation of Image.
type ImportRequest struct {
	Image   string `json:"image"`
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd"`
	Rootfs  string `json:"rootfs"`
	Publish bool   `json:"publish"`
	Source  string `json:"source,omitempty"`
}

// ImportImage copies files into a new generation and, if asked, publishes it.
func (d *Daemon) ImportImage(r ImportRequest) (*image.Manifest, error) {
	src := r.Source
	if src == "" {
		src = "import"
	}
	m, err := d.images.Import(r.Image, map[string]string{
		image.FileKernel: r.Kernel, image.FileInitrd: r.Initrd, image.FileRootfs: r.Rootfs,
	}, src)
	if err != nil {
		return nil, err
	}
	d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "image",
		Message: fmt.Sprintf("image %s generation %s imported (%d bytes)", r.Image, m.ID, m.Size())})
	if r.Publish {
		if err := d.PublishImage(r.Image, m.ID); err != nil {
			return m, err
		}
	}
	return m, nil
}

// PublishImage makes gen the current generation of an image.
func (d *Daemon) PublishImage(name, gen string) error {
	old, _ := d.images.Current(name)
	if err := d.images.Publish(name, gen); err != nil {
		return err
	}
	d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "image",
		Message: fmt.Sprintf("image %s: current generation %s (was %q)", name, gen, old)})
	return nil
}
