package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/netbootui/netbootui/internal/apitype"
	"path/filepath"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
)

// BuildRequest is a request to build one image (the API type; Who is set by the
// API server).
type BuildRequest = apitype.BuildRequest

// recipeDir finds the folder a build request names.
func (d *Daemon) recipeDir(req BuildRequest) (string, error) {
	if req.Recipe != "" {
		if !filepath.IsAbs(req.Recipe) {
			return "", fmt.Errorf("recipe %q: give an absolute path (the daemon does not share your working folder)", req.Recipe)
		}
		return req.Recipe, nil
	}
	if req.Image == "" {
		return "", errors.New("build: name an image or a recipe folder")
	}
	inv := d.Inventory()
	im := inv.Images[req.Image]
	if im == nil {
		return "", fmt.Errorf("image %q is not in the inventory", req.Image)
	}
	if im.Recipe == "" {
		return "", fmt.Errorf("image %s has no recipe in the inventory (%s)", req.Image, im.Defined)
	}
	if filepath.IsAbs(im.Recipe) {
		return im.Recipe, nil
	}
	return filepath.Join(filepath.Dir(inv.Path), im.Recipe), nil
}

// BuildImage queues a build (one per image at a time), reports its progress
// to onProgress and as boot events (step changes and every 10%), records it
// in the audit log and returns the generation. Cancelling ctx cancels the
// build; nothing partial is ever published.
func (d *Daemon) BuildImage(ctx context.Context, req BuildRequest, onProgress func(image.Progress)) (m *image.Manifest, err error) {
	dir, err := d.recipeDir(req)
	if err != nil {
		return nil, err
	}
	if req.Image != "" {
		r, err := image.LoadRecipe(dir, map[string]string{"kernel_dir": d.cfg.KernelDir})
		if err != nil {
			return nil, err
		}
		if r.Name != req.Image {
			return nil, fmt.Errorf("recipe %s builds image %q, not %q: set its name: or fix the inventory", r.File, r.Name, req.Image)
		}
	}
	defer func() {
		res := "ok"
		switch {
		case err != nil:
			res = err.Error()
		case m != nil:
			res = "generation " + m.ID
		}
		d.auditRecord(audit.Entry{Who: req.Who, Action: "image build", Target: dir, Result: res})
	}()
	var lastStep string
	var lastTenth int
	job, err := d.builds.Submit(ctx, dir, image.BuildOptions{
		KernelDir: d.cfg.KernelDir, Publish: req.Publish, Force: req.Force, Agent: d.cfg.AgentBinary,
		Progress: func(p image.Progress) {
			if onProgress != nil {
				onProgress(p)
			}
			tenth := int(p.Percent / 10)
			if p.Step == lastStep && tenth == lastTenth {
				return
			}
			lastStep, lastTenth = p.Step, tenth
			msg := fmt.Sprintf("image %s build: %s", p.Image, p.Step)
			if p.Percent > 0 {
				msg += fmt.Sprintf(" %.0f%%", p.Percent)
			}
			d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "image", Message: msg})
		},
	})
	if err != nil {
		return nil, err
	}
	select {
	case <-job.Done():
	case <-ctx.Done():
		job.Cancel()
	}
	return job.Wait()
}

// RollbackImage moves an image's current generation back to the one
// published before it.
func (d *Daemon) RollbackImage(name, who string) (gen string, err error) {
	defer func() {
		res := "current " + gen
		if err != nil {
			res = err.Error()
		}
		d.auditRecord(audit.Entry{Who: who, Action: "image rollback", Target: name, Result: res})
	}()
	gen, err = d.images.Rollback(name)
	if err == nil {
		d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "image",
			Message: fmt.Sprintf("image %s rolled back: current generation %s", name, gen)})
	}
	return gen, err
}

// GCImage removes an image's old generations, keeping the newest keep and
// every generation a node is pinned to or running.
func (d *Daemon) GCImage(name string, keep int, who string) (removed []string, err error) {
	inUse := map[string]bool{}
	inv := d.Inventory()
	for _, n := range inv.Nodes {
		if n.Image == name && n.Generation != "" {
			inUse[n.Generation] = true
		}
		if st, ok := d.tracker.Get(n.Name); ok && st.Generation != "" && n.Image == name {
			inUse[st.Generation] = true
		}
	}
	removed, err = d.images.GC(name, keep, inUse)
	res := fmt.Sprintf("removed %d", len(removed))
	if err != nil {
		res = err.Error()
	}
	d.auditRecord(audit.Entry{Who: who, Action: "image gc", Target: name, Result: res, Details: removed})
	return removed, err
}
