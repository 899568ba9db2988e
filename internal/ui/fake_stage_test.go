package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
)

// testImages are the fake's images: compute with three generations (g2
// current), gpu with one.
func testImages() []apitype.ImageInfo {
	gen := func(im, id string, age time.Duration, size int64, sha string) *apitype.Manifest {
		return &apitype.Manifest{Image: im, ID: id, Created: epoch.Add(-age), Files: []apitype.FileInfo{
			{Name: "vmlinuz", Size: 8 << 20, SHA256: strings.Repeat("a", 64)},
			{Name: "rootfs.squashfs", Size: size, SHA256: sha + strings.Repeat("0", 64-len(sha))},
		}}
	}
	return []apitype.ImageInfo{
		{Name: "compute", Description: "compute nodes", Current: "g2", Generations: []*apitype.Manifest{
			gen("compute", "g1", 72*time.Hour, 300<<20, "1f3a9c0d2b4e"),
			gen("compute", "g2", 24*time.Hour, 310<<20, "2c8e1d7f9a03"),
			gen("compute", "g3", time.Hour, 312<<20, "3b5d7f9e1c2a"),
		}},
		{Name: "gpu", Description: "gpu nodes", Current: "g2", Generations: []*apitype.Manifest{
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
	return 0, &apitype.Error{Message: fmt.Sprintf("unknown image %q", name), Code: apitype.CodeNotFound}
}

func (f *fakeBackend) Build(ctx context.Context, req apitype.BuildRequest, fn func(apitype.BuildProgress)) (*apitype.Manifest, error) {
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
	for _, p := range []apitype.BuildProgress{
		{Image: req.Image, Step: "rootfs", Percent: 10, Line: "unpacking busybox rootfs"},
		{Image: req.Image, Step: "squashfs", Percent: 60, Line: "mksquashfs: 412 files"},
		{Image: req.Image, Step: "publish", Percent: 95, Line: "sha256 ok"},
	} {
		if fn != nil {
			fn(p)
		}
	}
	if fail != "" {
		return nil, &apitype.Error{Message: "build " + req.Image + ": " + fail, Code: apitype.CodeInvalid}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	im := &f.images[i]
	g := &apitype.Manifest{Image: im.Name, ID: fmt.Sprintf("g%d", len(im.Generations)+1), Created: epoch,
		Files: []apitype.FileInfo{{Name: "rootfs.squashfs", Size: 320 << 20, SHA256: strings.Repeat("4", 64)}}}
	im.Generations = append(im.Generations, g)
	if req.Publish {
		im.Current = g.ID
	}
	return g, nil
}

func (f *fakeBackend) Publish(ctx context.Context, img, gen string) error {
	if err := f.record("Publish %s %s", img, gen); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i, err := f.imageIndex(img)
	if err != nil {
		return err
	}
	for _, g := range f.images[i].Generations {
		if g.ID == gen {
			f.images[i].Current = gen
			return nil
		}
	}
	return &apitype.Error{Message: fmt.Sprintf("image %s has no generation %q", img, gen), Code: apitype.CodeNotFound}
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
	return "", &apitype.Error{Message: "image " + name + ": no generation before " + im.Current, Code: apitype.CodeConflict}
}

// plan works out a rollout the way the daemon does: the selected nodes not
// assigned the generation change, in waves of the given size. Callers
// hold f.mu.
func (f *fakeBackend) plan(req apitype.StageRequest) (*apitype.Rollout, error) {
	idx, err := f.selected(req.Selection)
	if err != nil {
		return nil, err
	}
	im, gen, ok := strings.Cut(req.Generation, "@")
	if !ok {
		return nil, &apitype.Error{Message: "generation " + req.Generation + ": want image@id", Code: apitype.CodeInvalid}
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
		return nil, &apitype.Error{Message: "image " + im + " has no generation " + gen, Code: apitype.CodeNotFound}
	}
	ws := apitype.WaveSize{Count: 1}
	if req.Wave != "" {
		if ws, err = apitype.ParseWaveSize(req.Wave); err != nil {
			return nil, &apitype.Error{Message: err.Error(), Code: apitype.CodeInvalid}
		}
	}
	ro := &apitype.Rollout{Selection: req.Selection, Image: im, Generation: gen, State: apitype.RolloutStaged, Created: epoch}
	ro.Wave = ws
	for _, i := range idx {
		n := f.nodes[i]
		if n.Image != im {
			return nil, &apitype.Error{Message: "node " + n.Name + " uses image " + n.Image + ", not " + im, Code: apitype.CodeInvalid}
		}
		if n.Assigned == gen {
			ro.Unchanged = append(ro.Unchanged, n.Name)
			continue
		}
		ro.Nodes = append(ro.Nodes, &apitype.RolloutNode{Name: n.Name, Image: im, Previous: n.Assigned, Group: n.Group, Status: apitype.NodeStaged})
	}
	size := ws.Of(len(ro.Nodes))
	for j, n := range ro.Nodes {
		if j%size == 0 {
			ro.Waves = append(ro.Waves, &apitype.Wave{Index: len(ro.Waves), State: apitype.WavePending})
		}
		w := ro.Waves[len(ro.Waves)-1]
		w.Nodes = append(w.Nodes, n.Name)
		n.Wave = w.Index
	}
	return ro, nil
}

func cloneRollout(ro *apitype.Rollout) *apitype.Rollout {
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

func (f *fakeBackend) StagePreview(ctx context.Context, req apitype.StageRequest) (*apitype.Rollout, error) {
	if err := f.record("StagePreview %s %s wave=%s", req.Selection, req.Generation, req.Wave); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.plan(req)
}

func (f *fakeBackend) StageCreate(ctx context.Context, req apitype.StageRequest) (*apitype.Rollout, error) {
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
		f.rollouts = map[string]*apitype.Rollout{}
	}
	f.rollouts[ro.ID] = ro
	return cloneRollout(ro), nil
}

// Stage returns the rollout; a running rollout moves one step per read:
// the wave in flight passes (or fails and halts the rollout), and the next
// one starts.
func (f *fakeBackend) Stage(ctx context.Context, id string) (*apitype.Rollout, error) {
	if err := f.record("Stage %s", id); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ro, err := f.rollout(id)
	if err != nil {
		return nil, err
	}
	if ro.State == apitype.RolloutRunning {
		f.step(ro)
	}
	return cloneRollout(ro), nil
}

func (f *fakeBackend) rollout(id string) (*apitype.Rollout, error) {
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
	return nil, &apitype.Error{Message: fmt.Sprintf("no rollout %q", id), Code: apitype.CodeNotFound}
}

// startWave starts the first pending wave, or completes the rollout.
func (f *fakeBackend) startWave(ro *apitype.Rollout) {
	for _, w := range ro.Waves {
		if w.State == apitype.WavePending {
			w.State, w.Started = apitype.WaveRunning, epoch
			for _, name := range w.Nodes {
				ro.Node(name).Status = apitype.NodeRebooting
			}
			ro.State = apitype.RolloutRunning
			return
		}
	}
	ro.State, ro.Reason = apitype.RolloutCompleted, ""
}

// step finishes the wave in flight.
func (f *fakeBackend) step(ro *apitype.Rollout) {
	for _, w := range ro.Waves {
		if w.State != apitype.WaveRunning {
			continue
		}
		w.OK, w.Failed = 0, 0
		for _, name := range w.Nodes {
			n := ro.Node(name)
			if why := f.stageFail[name]; why != "" {
				n.Status, n.Error = apitype.NodeReverted, why
				w.Failed++
				continue
			}
			n.Status = apitype.NodeDone
			w.OK++
			if i, err := f.find(name); err == nil {
				f.nodes[i].Assigned = ro.Generation
			}
		}
		w.Finished = epoch
		if w.Failed > ro.MaxFailures {
			w.State = apitype.WaveFailed
			ro.State = apitype.RolloutHalted
			ro.Reason = fmt.Sprintf("wave %d: %d of %d nodes failed", w.Index+1, w.Failed, len(w.Nodes))
			return
		}
		w.State = apitype.WavePassed
		f.startWave(ro)
		return
	}
	f.startWave(ro)
}

func (f *fakeBackend) StageAction(ctx context.Context, id, action string) (*apitype.Rollout, error) {
	if err := f.record("StageAction %s %s", id, action); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ro, err := f.rollout(id)
	if err != nil {
		return nil, err
	}
	bad := func() (*apitype.Rollout, error) {
		return nil, &apitype.Error{Message: fmt.Sprintf("rollout %s is %s: cannot %s", ro.ID, ro.State, action), Code: apitype.CodeConflict}
	}
	switch action {
	case "run":
		if ro.State != apitype.RolloutStaged {
			return bad()
		}
		f.startWave(ro)
	case "resume":
		if ro.State != apitype.RolloutHalted {
			return bad()
		}
		for _, w := range ro.Waves { // the failed wave's nodes are tried again
			if w.State == apitype.WaveFailed {
				w.State, w.OK, w.Failed = apitype.WavePending, 0, 0
				for _, name := range w.Nodes {
					if n := ro.Node(name); n.Status == apitype.NodeReverted {
						n.Status, n.Error = apitype.NodeStaged, ""
					}
				}
			}
		}
		ro.Reason = ""
		f.startWave(ro)
	case "halt":
		if ro.State != apitype.RolloutRunning {
			return bad()
		}
		ro.State, ro.Reason = apitype.RolloutHalted, "halted by uid 0 (root)"
	case "abort":
		if ro.State.Final() || ro.State == apitype.RolloutCompleted {
			return bad()
		}
		for _, n := range ro.Nodes {
			if n.Status == apitype.NodeStaged {
				n.Status = apitype.NodeRestored
			}
		}
		ro.State = apitype.RolloutAborted
	case "promote":
		if ro.State != apitype.RolloutCompleted && ro.State != apitype.RolloutAborted {
			return bad()
		}
		ro.State, ro.Promoted = apitype.RolloutPromoted, "images."+ro.Image+".current: "+ro.Generation
	case "rollback":
		if ro.State.Final() {
			return bad()
		}
		for _, n := range ro.Nodes {
			n.Status = apitype.NodeRestored
			if i, err := f.find(n.Name); err == nil {
				f.nodes[i].Assigned = n.Previous
			}
		}
		ro.State = apitype.RolloutRolledBack
	default:
		return nil, &apitype.Error{Message: "unknown stage action " + action, Code: apitype.CodeInvalid}
	}
	return cloneRollout(ro), nil
}

// FollowStage sends the rollout, then, while it runs, its state after each
// step (every wave passes or fails at once), then what stageFeed delivers
// until it closes or ctx ends.
func (f *fakeBackend) FollowStage(ctx context.Context, id string, fn func(*apitype.Rollout) error) error {
	if err := f.record("FollowStage %s", id); err != nil {
		return err
	}
	f.mu.Lock()
	ro, err := f.rollout(id)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	states := []*apitype.Rollout{cloneRollout(ro)}
	for ro.State == apitype.RolloutRunning {
		f.step(ro)
		states = append(states, cloneRollout(ro))
	}
	feed := f.stageFeed
	f.mu.Unlock()
	return feedTo(ctx, states, feed, fn)
}

// DiffImages answers every diff between two different generations with
// one added and two changed files and a new kernel.
func (f *fakeBackend) DiffImages(ctx context.Context, a, b string) (*apitype.ImageDiff, error) {
	if err := f.record("DiffImages %s %s", a, b); err != nil {
		return nil, err
	}
	d := &apitype.ImageDiff{A: a, B: b, Summary: "no change"}
	if a != b {
		d.Summary, d.Added, d.Changed = "+1 -0 ~2 files, kernel changed", 1, 2
		d.Boot = []apitype.BootFileChange{{Name: apitype.FileKernel}}
	}
	return d, nil
}
