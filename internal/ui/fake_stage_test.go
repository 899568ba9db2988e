package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/api"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/rollout"
)

// testImages are the fake's images: compute with three generations (g2
// current), gpu with one.
func testImages() []daemon.ImageInfo {
	gen := func(im, id string, age time.Duration, size int64, sha string) *image.Manifest {
		return &image.Manifest{Image: im, ID: id, Created: epoch.Add(-age), Files: []image.FileInfo{
			{Name: "vmlinuz", Size: 8 << 20, SHA256: strings.Repeat("a", 64)},
			{Name: "rootfs.squashfs", Size: size, SHA256: sha + strings.Repeat("0", 64-len(sha))},
		}}
	}
	return []daemon.ImageInfo{
		{Name: "compute", Description: "compute nodes", Current: "g2", Generations: []*image.Manifest{
			gen("compute", "g1", 72*time.Hour, 300<<20, "1f3a9c0d2b4e"),
			gen("compute", "g2", 24*time.Hour, 310<<20, "2c8e1d7f9a03"),
			gen("compute", "g3", time.Hour, 312<<20, "3b5d7f9e1c2a"),
		}},
		{Name: "gpu", Description: "gpu nodes", Current: "g2", Generations: []*image.Manifest{
			gen("gpu", "g2", 48*time.Hour, 900<<20, "9d0c1b2a3e4f"),
		}},
	}
}

func (f *fakeBackend) imageIndex(name string) (int, error) {
	for i := range f.images {
		if f.images[i].Name == name {
			return i, nil
		}
	}
	return 0, &api.Error{Message: fmt.Sprintf("unknown image %q", name), Code: api.CodeNotFound}
}

func (f *fakeBackend) Build(ctx context.Context, req daemon.BuildRequest, fn func(image.Progress)) (*image.Manifest, error) {
	if err := f.record("Build %s publish=%v force=%v", req.Image, req.Publish, req.Force); err != nil {
		return nil, err
	}
	f.mu.Lock()
	i, err := f.imageIndex(req.Image)
	fail := f.buildFail
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, p := range []image.Progress{
		{Image: req.Image, Step: "rootfs", Percent: 10, Line: "unpacking busybox rootfs"},
		{Image: req.Image, Step: "squashfs", Percent: 60, Line: "mksquashfs: 412 files"},
		{Image: req.Image, Step: "publish", Percent: 95, Line: "sha256 ok"},
	} {
		if fn != nil {
			fn(p)
		}
	}
	if fail != "" {
		return nil, &api.Error{Message: "build " + req.Image + ": " + fail, Code: api.CodeInvalid}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	im := &f.images[i]
	g := &image.Manifest{Image: im.Name, ID: fmt.Sprintf("g%d", len(im.Generations)+1), Created: epoch,
		Files: []image.FileInfo{{Name: "rootfs.squashfs", Size: 320 << 20, SHA256: strings.Repeat("4", 64)}}}
	im.Generations = append(im.Generations, g)
	if req.Publish {
		im.Current = g.ID
	}
	return g, nil
}

func (f *fakeBackend) Rollback(ctx context.Context, name string) (string, error) {
	if err := f.record("Rollback %s", name); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i, err := f.imageIndex(name)
	if err != nil {
		return "", err
	}
	im := &f.images[i]
	for j, g := range im.Generations {
		if g.ID == im.Current && j > 0 {
			im.Current = im.Generations[j-1].ID
			return im.Current, nil
		}
	}
	return "", &api.Error{Message: "image " + name + ": no generation before " + im.Current, Code: api.CodeConflict}
}

// plan works out a rollout the way the daemon does: the selected nodes not
// assigned the generation change, in waves of the given size. Callers
// hold f.mu.
func (f *fakeBackend) plan(req daemon.StageRequest) (*daemon.Rollout, error) {
	idx, err := f.selected(req.Selection)
	if err != nil {
		return nil, err
	}
	im, gen, ok := strings.Cut(req.Generation, "@")
	if !ok {
		return nil, &api.Error{Message: "generation " + req.Generation + ": want image@id", Code: api.CodeInvalid}
	}
	ii, err := f.imageIndex(im)
	if err != nil {
		return nil, err
	}
	found := false
	for _, g := range f.images[ii].Generations {
		found = found || g.ID == gen
	}
	if !found {
		return nil, &api.Error{Message: "image " + im + " has no generation " + gen, Code: api.CodeNotFound}
	}
	ws := rollout.WaveSize{Count: 1}
	if req.Wave != "" {
		if ws, err = rollout.ParseWaveSize(req.Wave); err != nil {
			return nil, &api.Error{Message: err.Error(), Code: api.CodeInvalid}
		}
	}
	ro := &daemon.Rollout{Selection: req.Selection, Image: im, Generation: gen, State: rollout.StateStaged, Created: epoch}
	ro.Wave = ws
	for _, i := range idx {
		n := f.nodes[i]
		if n.Image != im {
			return nil, &api.Error{Message: "node " + n.Name + " uses image " + n.Image + ", not " + im, Code: api.CodeInvalid}
		}
		if n.Assigned == gen {
			ro.Unchanged = append(ro.Unchanged, n.Name)
			continue
		}
		ro.Nodes = append(ro.Nodes, &rollout.Node{Name: n.Name, Image: im, Previous: n.Assigned, Group: n.Group, Status: rollout.NodeStaged})
	}
	size := ws.Of(len(ro.Nodes))
	for j, n := range ro.Nodes {
		if j%size == 0 {
			ro.Waves = append(ro.Waves, &rollout.Wave{Index: len(ro.Waves), State: rollout.WavePending})
		}
		w := ro.Waves[len(ro.Waves)-1]
		w.Nodes = append(w.Nodes, n.Name)
		n.Wave = w.Index
	}
	return ro, nil
}

func cloneRollout(ro *daemon.Rollout) *daemon.Rollout {
	c := *ro
	c.Nodes, c.Waves = nil, nil
	for _, n := range ro.Nodes {
		nn := *n
		c.Nodes = append(c.Nodes, &nn)
	}
	for _, w := range ro.Waves {
		ww := *w
		ww.Nodes = append([]string(nil), w.Nodes...)
		c.Waves = append(c.Waves, &ww)
	}
	return &c
}

func (f *fakeBackend) StagePreview(ctx context.Context, req daemon.StageRequest) (*daemon.Rollout, error) {
	if err := f.record("StagePreview %s %s wave=%s", req.Selection, req.Generation, req.Wave); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.plan(req)
}

func (f *fakeBackend) StageCreate(ctx context.Context, req daemon.StageRequest) (*daemon.Rollout, error) {
	if err := f.record("StageCreate %s %s wave=%s", req.Selection, req.Generation, req.Wave); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ro, err := f.plan(req)
	if err != nil {
		return nil, err
	}
	f.roSeq++
	ro.ID = fmt.Sprintf("r%d", f.roSeq)
	if f.rollouts == nil {
		f.rollouts = map[string]*daemon.Rollout{}
	}
	f.rollouts[ro.ID] = ro
	return cloneRollout(ro), nil
}

// Stage returns the rollout; a running rollout moves one step per read:
// the wave in flight passes (or fails and halts the rollout), and the next
// one starts.
func (f *fakeBackend) Stage(ctx context.Context, id string) (*daemon.Rollout, error) {
	if err := f.record("Stage %s", id); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ro, err := f.rollout(id)
	if err != nil {
		return nil, err
	}
	if ro.State == rollout.StateRunning {
		f.step(ro)
	}
	return cloneRollout(ro), nil
}

func (f *fakeBackend) rollout(id string) (*daemon.Rollout, error) {
	if id == "" {
		for i := f.roSeq; i > 0; i-- {
			if ro := f.rollouts[fmt.Sprintf("r%d", i)]; ro != nil && !ro.State.Final() {
				return ro, nil
			}
		}
	}
	if ro := f.rollouts[id]; ro != nil {
		return ro, nil
	}
	return nil, &api.Error{Message: fmt.Sprintf("no rollout %q", id), Code: api.CodeNotFound}
}

// startWave starts the first pending wave, or completes the rollout.
func (f *fakeBackend) startWave(ro *daemon.Rollout) {
	for _, w := range ro.Waves {
		if w.State == rollout.WavePending {
			w.State, w.Started = rollout.WaveRunning, epoch
			for _, name := range w.Nodes {
				ro.Node(name).Status = rollout.NodeRebooting
			}
			ro.State = rollout.StateRunning
			return
		}
	}
	ro.State, ro.Reason = rollout.StateCompleted, ""
}

// step finishes the wave in flight.
func (f *fakeBackend) step(ro *daemon.Rollout) {
	for _, w := range ro.Waves {
		if w.State != rollout.WaveRunning {
			continue
		}
		w.OK, w.Failed = 0, 0
		for _, name := range w.Nodes {
			n := ro.Node(name)
			if why := f.stageFail[name]; why != "" {
				n.Status, n.Error = rollout.NodeReverted, why
				w.Failed++
				continue
			}
			n.Status = rollout.NodeDone
			w.OK++
			if i, err := f.find(name); err == nil {
				f.nodes[i].Assigned = ro.Generation
			}
		}
		w.Finished = epoch
		if w.Failed > ro.MaxFailures {
			w.State = rollout.WaveFailed
			ro.State = rollout.StateHalted
			ro.Reason = fmt.Sprintf("wave %d: %d of %d nodes failed", w.Index+1, w.Failed, len(w.Nodes))
			return
		}
		w.State = rollout.WavePassed
		f.startWave(ro)
		return
	}
	f.startWave(ro)
}

func (f *fakeBackend) StageAction(ctx context.Context, id, action string) (*daemon.Rollout, error) {
	if err := f.record("StageAction %s %s", id, action); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ro, err := f.rollout(id)
	if err != nil {
		return nil, err
	}
	bad := func() (*daemon.Rollout, error) {
		return nil, &api.Error{Message: fmt.Sprintf("rollout %s is %s: cannot %s", ro.ID, ro.State, action), Code: api.CodeConflict}
	}
	switch action {
	case "run":
		if ro.State != rollout.StateStaged {
			return bad()
		}
		f.startWave(ro)
	case "resume":
		if ro.State != rollout.StateHalted {
			return bad()
		}
		for _, w := range ro.Waves { // the failed wave's nodes are tried again
			if w.State == rollout.WaveFailed {
				w.State, w.OK, w.Failed = rollout.WavePending, 0, 0
				for _, name := range w.Nodes {
					if n := ro.Node(name); n.Status == rollout.NodeReverted {
						n.Status, n.Error = rollout.NodeStaged, ""
					}
				}
			}
		}
		ro.Reason = ""
		f.startWave(ro)
	case "halt":
		if ro.State != rollout.StateRunning {
			return bad()
		}
		ro.State, ro.Reason = rollout.StateHalted, "halted by uid 0 (root)"
	case "abort":
		if ro.State.Final() || ro.State == rollout.StateCompleted {
			return bad()
		}
		for _, n := range ro.Nodes {
			if n.Status == rollout.NodeStaged {
				n.Status = rollout.NodeRestored
			}
		}
		ro.State = rollout.StateAborted
	case "promote":
		if ro.State != rollout.StateCompleted && ro.State != rollout.StateAborted {
			return bad()
		}
		ro.State, ro.Promoted = rollout.StatePromoted, "images."+ro.Image+".current: "+ro.Generation
	case "rollback":
		if ro.State.Final() {
			return bad()
		}
		for _, n := range ro.Nodes {
			n.Status = rollout.NodeRestored
			if i, err := f.find(n.Name); err == nil {
				f.nodes[i].Assigned = n.Previous
			}
		}
		ro.State = rollout.StateRolledBack
	default:
		return nil, &api.Error{Message: "unknown stage action " + action, Code: api.CodeInvalid}
	}
	return cloneRollout(ro), nil
}
