package ui

import (
	"fmt"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/daemon"
)

// imagesView lists images and their generations, as the daemon stores them.
type imagesView struct {
	c       *Common
	images  []daemon.ImageInfo
	err     error
	loading bool
	offset  int
}

func (v *imagesView) set(msg imagesMsg) {
	v.images, v.err, v.loading = msg.images, msg.err, false
}

func (v *imagesView) scroll(msg tea.KeyPressMsg, k KeyMap) {
	v.offset = scrollKey(msg, k, v.offset, len(v.lines()), v.c.Height-3)
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (v *imagesView) lines() []string {
	s := v.c.Styles
	out := []string{s.Dim.Render("image builds are not available in this daemon yet; generations come from `netbootui image import`")}
	switch {
	case v.loading:
		return append(out, "loading…")
	case v.err != nil:
		return append(out, s.Error.Render(v.err.Error()))
	case len(v.images) == 0:
		return append(out, "no images")
	}
	now := v.c.Now()
	for _, im := range v.images {
		out = append(out, "", s.Title.Render(im.Name)+"  "+s.Dim.Render(im.Description))
		if len(im.Generations) == 0 {
			out = append(out, s.Dim.Render("  no generations"))
		}
		for _, g := range im.Generations {
			cur := "  "
			if g.ID == im.Current {
				cur = "* "
			}
			sha := ""
			if f, ok := g.File("rootfs.squashfs"); ok && len(f.SHA256) >= 12 {
				sha = f.SHA256[:12]
			}
			out = append(out, fmt.Sprintf("  %s%-24s %9s  %-6s %s", cur, g.ID, humanSize(g.Size()),
				ago(now, g.Created), sha))
		}
	}
	return out
}
