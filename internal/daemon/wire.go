package daemon

import (
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/rollout"
)

// The daemon's own types turned into the API's (internal/apitype). A stored
// or internal type never goes on the wire as it is: these copies are the
// only place where the two meet, so either side can change without the
// other noticing.

// NodeStateView is the wire form of a node's boot state.
func NodeStateView(s bootstate.NodeState) apitype.NodeState {
	v := apitype.NodeState{
		Node: s.Node, Stage: apitype.Stage(s.Stage), StageSince: s.StageSince, LastProgress: s.LastProgress,
		Path: s.Path, Bytes: s.Bytes, Total: s.Total, Generation: s.Generation, Uptime: s.Uptime,
		OverlayBytes: s.OverlayBytes, LastCheckin: s.LastCheckin, Power: s.Power, PowerError: s.PowerError,
		Error: s.Error, Remote: s.Remote, MAC: s.MAC, MarkedDirty: s.MarkedDirty, DirtyReason: s.DirtyReason,
		LastSeen: s.LastSeen, Seq: s.Seq,
	}
	if len(s.Timeline) > 0 {
		v.Timeline = make([]apitype.StageMark, len(s.Timeline))
		for i, m := range s.Timeline {
			v.Timeline[i] = apitype.StageMark{Stage: apitype.Stage(m.Stage), Time: m.Time, Unproven: m.Unproven}
		}
	}
	return v
}

// EventView is the wire form of a boot event.
func EventView(e bootstate.Event) apitype.Event {
	return apitype.Event{
		Seq: e.Seq, Time: e.Time, Node: e.Node, Kind: apitype.Kind(e.Kind), Stage: apitype.Stage(e.Stage),
		Proto: e.Proto, Path: e.Path, Remote: e.Remote, MAC: e.MAC, Bytes: e.Bytes, Total: e.Total,
		Generation: e.Generation, Uptime: e.Uptime, OverlayBytes: e.OverlayBytes, Power: e.Power,
		Error: e.Error, Message: e.Message, Routine: e.Routine,
	}
}

// ManifestView is the wire form of a generation's manifest (nil for nil).
func ManifestView(m *image.Manifest) *apitype.Manifest {
	if m == nil {
		return nil
	}
	v := &apitype.Manifest{Image: m.Image, ID: m.ID, Created: m.Created, Source: m.Source,
		SourceHash: m.SourceHash, Log: m.Log, BuildSeconds: m.BuildSeconds, Files: make([]apitype.FileInfo, len(m.Files))}
	for i, f := range m.Files {
		v.Files[i] = fileInfoView(f)
	}
	if p := m.Provenance; p != nil {
		v.Provenance = &apitype.Provenance{RecipeHash: p.RecipeHash, Builder: p.Builder, OCIDigest: p.OCIDigest,
			Packages: p.Packages, Parent: p.Parent}
		if d := p.Debootstrap; d != nil {
			v.Provenance.Debootstrap = &apitype.DebootstrapSource{Suite: d.Suite, Mirror: d.Mirror, Variant: d.Variant}
		}
		if c := p.Change; c != nil {
			v.Provenance.Change = &apitype.Change{Command: c.Command, Who: c.Who, Summary: c.Summary}
		}
	}
	return v
}

func fileInfoView(f image.FileInfo) apitype.FileInfo {
	return apitype.FileInfo{Name: f.Name, Size: f.Size, SHA256: f.SHA256}
}

// VerifyView is the wire form of a generation's file checks.
func VerifyView(img, gen string, checks []image.FileCheck) apitype.VerifyResult {
	v := apitype.VerifyResult{Image: img, Generation: gen, OK: true, Files: make([]apitype.FileCheck, len(checks))}
	for i, c := range checks {
		v.Files[i] = apitype.FileCheck{Name: c.Name, OK: c.OK(), Size: c.Size, SHA256: c.SHA256,
			WantSize: c.Want.Size, WantSHA256: c.Want.SHA256, Error: c.Err}
		v.OK = v.OK && c.OK()
	}
	return v
}

// DiffView is the wire form of a diff between two generations (nil for
// nil).
func DiffView(d *image.Diff) *apitype.ImageDiff {
	if d == nil {
		return nil
	}
	v := &apitype.ImageDiff{A: d.A.String(), B: d.B.String(), Summary: d.Summary(),
		Added: d.Added, Removed: d.Removed, Changed: d.Changed, Files: fileChangeViews(d.Files),
		InitrdFiles: fileChangeViews(d.InitrdFiles), InitrdError: d.InitrdError}
	for _, b := range d.Boot {
		v.Boot = append(v.Boot, apitype.BootFileChange{Name: b.Name, Old: fileInfoView(b.Old), New: fileInfoView(b.New)})
	}
	for _, p := range d.Packages {
		v.Packages = append(v.Packages, apitype.PackageChange{Name: p.Name, Old: p.Old, New: p.New})
	}
	return v
}

func fileChangeViews(fs []image.FileChange) []apitype.ImageFileChange {
	var out []apitype.ImageFileChange
	for _, f := range fs {
		out = append(out, apitype.ImageFileChange{Path: f.Path, Kind: f.Kind, What: f.What,
			Old: treeEntryView(f.Old), New: treeEntryView(f.New)})
	}
	return out
}

func treeEntryView(e *image.TreeEntry) *apitype.TreeEntry {
	if e == nil {
		return nil
	}
	return &apitype.TreeEntry{Mode: e.Mode.String(), UID: e.UID, GID: e.GID, Size: e.Size, SHA256: e.SHA256, Link: e.Link}
}

// ManifestViews converts a list of manifests.
func ManifestViews(ms []*image.Manifest) []*apitype.Manifest { return views(ms, ManifestView) }

// views converts each element of in with view.
func views[T, V any](in []T, view func(T) V) []V {
	out := make([]V, len(in))
	for i, v := range in {
		out[i] = view(v)
	}
	return out
}

// BuildProgressView is the wire form of one build progress event.
func BuildProgressView(p image.Progress) apitype.BuildProgress {
	return apitype.BuildProgress{Image: p.Image, Step: p.Step, Percent: p.Percent, Line: p.Line}
}

// RebootProgressView is the wire form of one reboot-clean progress line.
func RebootProgressView(p RebootProgress) apitype.RebootProgress {
	return apitype.RebootProgress{Node: p.Node, Step: apitype.RebootStep(p.Step), Stage: apitype.Stage(p.Stage),
		Generation: p.Generation, Message: p.Message, Time: p.Time}
}

// RebootResultViews is the wire form of reboot-clean results.
func RebootResultViews(rs []RebootResult) []apitype.RebootResult {
	if rs == nil {
		return nil
	}
	return views(rs, func(r RebootResult) apitype.RebootResult {
		return apitype.RebootResult{Node: r.Node, OK: r.OK, Step: apitype.RebootStep(r.Step), Stage: apitype.Stage(r.Stage),
			Generation: r.Generation, Error: r.Error, Duration: r.Duration, Via: r.Via, Why: r.Why}
	})
}

// RolloutView is the wire form of a stored rollout (nil for nil).
func RolloutView(r *rollout.Rollout) *apitype.Rollout {
	if r == nil {
		return nil
	}
	v := &apitype.Rollout{
		ID: r.ID, Selection: r.Selection, Image: r.Image, Generation: r.Generation, Wave: r.Wave,
		MaxInFlight: r.MaxInFlight, MaxFailures: r.MaxFailures, Timeout: r.Timeout, RebootBack: r.RebootBack, Via: r.Via,
		State: apitype.RolloutState(r.State), Reason: r.Reason, Unchanged: r.Unchanged, Who: r.Who,
		Created: r.Created, Updated: r.Updated, Promoted: r.Promoted,
		Nodes: make([]*apitype.RolloutNode, len(r.Nodes)), Waves: make([]*apitype.Wave, len(r.Waves)),
	}
	for i, n := range r.Nodes {
		v.Nodes[i] = &apitype.RolloutNode{Name: n.Name, Image: n.Image, Previous: n.Previous, Pinned: n.Pinned,
			Group: n.Group, Wave: n.Wave, Status: apitype.RolloutNodeStatus(n.Status), Attempts: n.Attempts,
			Error: n.Error, RebootedBack: n.RebootedBack}
	}
	for i, w := range r.Waves {
		v.Waves[i] = &apitype.Wave{Index: w.Index, Nodes: w.Nodes, State: apitype.WaveState(w.State), OK: w.OK,
			Failed: w.Failed, Started: w.Started, Finished: w.Finished}
	}
	return v
}

// RolloutViews converts a list of rollouts.
func RolloutViews(rs []*rollout.Rollout) []*apitype.Rollout { return views(rs, RolloutView) }

// AuditView is the wire form of an audit entry.
func AuditView(e audit.Entry) apitype.AuditEntry {
	return apitype.AuditEntry{Time: e.Time, Who: e.Who, Action: e.Action, Target: e.Target, Nodes: e.Nodes,
		Result: e.Result, Details: e.Details, Paths: e.Paths}
}

// AuditViews is the wire form of audit entries.
func AuditViews(es []audit.Entry) []apitype.AuditEntry { return views(es, AuditView) }
