package ui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/hostlist"
)

// fakeBackend is an in-memory daemon that records every call.
type fakeBackend struct {
	mu     sync.Mutex
	nodes  []apitype.NodeView
	rev    int
	events []apitype.Event
	calls  []string
	down   bool // every call fails as if the socket were gone

	audit      []apitype.AuditEntry
	auditFeed  chan apitype.AuditEntry // FollowAudit streams these after the history, until it closes
	console    map[string][]string     // node -> captured serial console lines
	powerFail  map[string]string       // node -> the error its BMC gives
	rebootFail map[string]string       // node -> why its reboot fails
	rebootGate chan struct{}           // RebootClean waits on it before each node's end

	images    []apitype.ImageInfo
	buildFail string                      // Build fails with this
	rollouts  map[string]*apitype.Rollout // by id
	stageFail map[string]string           // node -> why it fails its wave
	roSeq     int
	stageFeed chan *apitype.Rollout // FollowStage streams these after the rollout's own steps
	groupIPXE map[string]string     // group -> its boot override
	unknown   []apitype.UnknownNode
	persist   map[string]*apitype.PersistView // node -> its persisted paths (fake_persist_test.go)
	wipeRole  apitype.Role                    // the caller's role for WipePersist ("": admin)
}

var errDown = errors.New("daemon at /tmp/x.sock: connection refused")

func (f *fakeBackend) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	if f.down {
		return errDown
	}
	return nil
}

func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBackend) reset() {
	f.mu.Lock()
	f.calls = nil
	f.mu.Unlock()
}

func (f *fakeBackend) revision() string { return fmt.Sprintf("rev%04d", f.rev) }

func (f *fakeBackend) Status(ctx context.Context) (apitype.Status, error) {
	if err := f.record("Status"); err != nil {
		return apitype.Status{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return apitype.Status{Inventory: apitype.InventoryStatus{Revision: f.revision(), Nodes: len(f.nodes)}}, nil
}

func (f *fakeBackend) Nodes(ctx context.Context) ([]apitype.NodeView, error) {
	if err := f.record("Nodes"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apitype.NodeView(nil), f.nodes...), nil
}

func (f *fakeBackend) find(name string) (int, error) {
	for i := range f.nodes {
		if f.nodes[i].Name == name {
			return i, nil
		}
	}
	return 0, &apitype.Error{Message: fmt.Sprintf("unknown node %q", name), Code: apitype.CodeNotFound}
}

func (f *fakeBackend) Node(ctx context.Context, name string) (apitype.NodeView, error) {
	if err := f.record("Node %s", name); err != nil {
		return apitype.NodeView{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i, err := f.find(name)
	if err != nil {
		return apitype.NodeView{}, err
	}
	return f.nodes[i], nil
}

func (f *fakeBackend) BootEntry(ctx context.Context, name, format string) (string, error) {
	if err := f.record("BootEntry %s %s", name, format); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i, err := f.find(name)
	if err != nil {
		return "", err
	}
	n := f.nodes[i]
	return fmt.Sprintf("#!ipxe\nkernel http://10.0.0.1/%s/vmlinuz %s\ninitrd http://10.0.0.1/%s/initrd\nboot\n", n.Assigned, n.KernelArgs, n.Assigned), nil
}

func (f *fakeBackend) EditNode(ctx context.Context, name string, e apitype.Edit) (string, error) {
	keys := []string{}
	for k := range e.Set {
		keys = append(keys, k)
	}
	if err := f.record("EditNode %s base=%s set=%v unset=%v", name, e.BaseRevision, sortedStrings(keys), e.Unset); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.BaseRevision != f.revision() {
		return "", fmt.Errorf("%w: inventory changed since %s", apiclient.ErrConflict, e.BaseRevision)
	}
	i, err := f.find(name)
	if err != nil {
		return "", err
	}
	if v, ok := e.Set["kernel_args"].(string); ok {
		f.nodes[i].KernelArgs = v
	}
	if _, ok := e.Set["boot_override.ipxe"]; ok {
		f.nodes[i].Override = true
	}
	f.rev++
	return f.revision(), nil
}

func (f *fakeBackend) Events(ctx context.Context, node string, n int, follow bool, fn func(apitype.Event) error) error {
	return f.EventsBacklog(ctx, node, n, 0, follow, fn)
}

func (f *fakeBackend) EventsBacklog(ctx context.Context, node string, n, notable int, follow bool, fn func(apitype.Event) error) error {
	if err := f.record("Events %s %d %v", node, n, follow); err != nil {
		return err
	}
	f.mu.Lock()
	var all []apitype.Event
	for _, ev := range f.events {
		if node == "" || ev.Node == node {
			all = append(all, ev)
		}
	}
	// the newest n, and before them the newest notable ones that are not
	// routine (of all nodes only)
	var evs []apitype.Event
	later := 0
	for i := len(all) - 1; i >= 0; i-- {
		ev := all[i]
		if i >= len(all)-n || (node == "" && !ev.Routine && later < notable) {
			evs = append(evs, ev)
		}
		if !ev.Routine {
			later++
		}
	}
	slices.Reverse(evs)
	f.mu.Unlock()
	for _, ev := range evs {
		if err := fn(ev); err != nil {
			return err
		}
	}
	if follow {
		<-ctx.Done()
	}
	return nil
}

func (f *fakeBackend) Images(ctx context.Context) ([]apitype.ImageInfo, error) {
	if err := f.record("Images"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]apitype.ImageInfo, len(f.images))
	for i, im := range f.images {
		out[i] = im
		out[i].Generations = append([]*apitype.Manifest(nil), im.Generations...)
		slices.Reverse(out[i].Generations) // newest first, as the daemon sends them
	}
	return out, nil
}

func sortedStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// epoch is the fixed "now" of model tests.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testCluster builds n nodes in three groups with a spread of states.
func testCluster(n int) []apitype.NodeView {
	out := make([]apitype.NodeView, 0, n)
	for i := 1; i <= n; i++ {
		v := apitype.NodeView{
			Name: fmt.Sprintf("n%02d", i), Group: "compute", MAC: fmt.Sprintf("52:54:00:00:00:%02x", i),
			Arch: "bios", Loader: "ipxe", Image: "compute", Assigned: "g2", KernelArgs: "console=ttyS0",
			Defined: fmt.Sprintf("nodes.yaml:%d:5", 40+i), BMC: fmt.Sprintf("10.2.0.%d:623", i),
		}
		if i%5 == 0 {
			v.Group, v.Image = "gpu", "gpu"
		}
		st := apitype.NodeState{Node: v.Name, Power: "on"}
		switch i % 7 {
		case 0:
			st.Stage, st.Power = apitype.StageOff, "off"
		case 1, 2:
			st.Stage, st.Generation, st.LastCheckin = apitype.StageBooted, "g2", epoch.Add(-time.Duration(i)*time.Minute)
			st.Timeline = []apitype.StageMark{{Stage: "nbp", Time: epoch.Add(-time.Hour)}, {Stage: "kernel", Time: epoch.Add(-time.Hour + 2*time.Second)}, {Stage: "booted", Time: epoch.Add(-time.Hour + 11*time.Second)}}
		case 3:
			st.Stage, st.Generation, st.LastCheckin = apitype.StageBooted, "g1", epoch.Add(-3*time.Hour)
			v.Dirty, v.DirtyReasons = true, []string{"runs g1, assigned g2"}
		case 4:
			st.Stage, st.Path, st.Bytes, st.Total = apitype.StageRootfs, "/g2/rootfs.squashfs", 42<<20, 100<<20
		case 5:
			st.Stage, st.Error = apitype.StageStalled, "no progress in stage kernel for 2m0s"
		case 6:
			st.Stage, st.Error = apitype.StageFailed, "GET /g2/initrd: 404"
		}
		v.State = st
		out = append(out, v)
	}
	return out
}

// fakePower is the fake's power state machine: what each op leaves.
var fakePower = map[string]string{"on": "on", "off": "off", "soft": "off", "cycle": "on", "reset": "on"}

// selected expands a selection the way the daemon does, refusing unknown
// nodes. Callers hold f.mu.
func (f *fakeBackend) selected(sel string) ([]int, error) {
	names, err := hostlist.Expand(sel)
	if err != nil {
		return nil, &apitype.Error{Message: err.Error(), Code: apitype.CodeInvalid}
	}
	var out []int
	for _, n := range names {
		i, err := f.find(n)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, nil
}

func (f *fakeBackend) Power(ctx context.Context, op, sel string) ([]apitype.PowerResult, error) {
	if err := f.record("Power %s %s", op, sel); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := fakePower[op]; !ok && op != "status" {
		return nil, &apitype.Error{Message: fmt.Sprintf("unknown power operation %q", op), Code: apitype.CodeInvalid}
	}
	idx, err := f.selected(sel)
	if err != nil {
		return nil, err
	}
	var out []apitype.PowerResult
	var details []string
	for _, i := range idx {
		n := &f.nodes[i]
		r := apitype.PowerResult{Node: n.Name, BMC: n.BMC, Op: op, Duration: 40 * time.Millisecond}
		switch {
		case n.BMC == "":
			r.Error = "node " + n.Name + ": no BMC host in the inventory"
		case f.powerFail[n.Name] != "":
			r.Error = f.powerFail[n.Name]
		default:
			if p, ok := fakePower[op]; ok {
				n.State.Power = p
			}
			r.Power = n.State.Power
		}
		if r.Error != "" {
			details = append(details, n.Name+": "+r.Error)
		}
		out = append(out, r)
	}
	f.audit = append(f.audit, apitype.AuditEntry{Time: epoch.Add(time.Duration(len(f.audit)) * time.Second), Who: "uid 0 (root)",
		Action: "power " + op, Target: sel, Nodes: len(idx), Result: fmt.Sprintf("%d ok, %d failed", len(idx)-len(details), len(details)), Details: details})
	return out, nil
}

func (f *fakeBackend) RebootCleanRequest(ctx context.Context, req apitype.RebootRequest, fn func(apitype.RebootProgress) error) ([]apitype.RebootResult, error) {
	sel, via := req.Selection, ""
	if req.Via != "" && req.Via != apitype.ViaAuto {
		via = " via " + req.Via
	}
	if err := f.record("RebootClean %s %v%s", sel, req.Timeout, via); err != nil {
		return nil, err
	}
	f.mu.Lock()
	idx, err := f.selected(sel)
	gate := f.rebootGate
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	send := func(p apitype.RebootProgress) error {
		p.Time = epoch
		if fn == nil {
			return nil
		}
		return fn(p)
	}
	var out []apitype.RebootResult
	for _, i := range idx {
		f.mu.Lock()
		n := f.nodes[i]
		fail := f.rebootFail[n.Name]
		f.mu.Unlock()
		for _, p := range []apitype.RebootProgress{
			{Node: n.Name, Step: apitype.StepBootdev},
			{Node: n.Name, Step: apitype.StepCycle},
			{Node: n.Name, Step: apitype.StepBoot, Stage: apitype.StageKernel, Generation: n.Assigned},
		} {
			if err := send(p); err != nil {
				return out, err
			}
		}
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return out, ctx.Err()
			}
		}
		r := apitype.RebootResult{Node: n.Name, OK: fail == "", Step: apitype.StepClean, Generation: n.Assigned, Duration: 11 * time.Second,
			Via: apitype.ViaPower, Why: "asked for"}
		if req.Via != apitype.ViaPower {
			r.Via, r.Why = apitype.ViaKexec, "agent polling"
		}
		if fail != "" {
			r.Step, r.Error = apitype.StepFailed, n.Name+": "+fail
			if err := send(apitype.RebootProgress{Node: n.Name, Step: apitype.StepFailed, Message: r.Error}); err != nil {
				return out, err
			}
		} else if err := send(apitype.RebootProgress{Node: n.Name, Step: apitype.StepClean, Generation: n.Assigned}); err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeBackend) SOLLog(ctx context.Context, node string, n int) (apitype.SOLLog, error) {
	if err := f.record("SOLLog %s %d", node, n); err != nil {
		return apitype.SOLLog{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return apitype.SOLLog{Node: node, Lines: f.console[node]}, nil
}

func (f *fakeBackend) Audit(ctx context.Context, n int) ([]apitype.AuditEntry, error) {
	if err := f.record("Audit %d", n); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recentAudit(n), nil
}

// recentAudit is the newest n entries; callers hold f.mu.
func (f *fakeBackend) recentAudit(n int) []apitype.AuditEntry {
	out := f.audit
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return append([]apitype.AuditEntry(nil), out...)
}

// FollowAudit sends the newest n entries, then what auditFeed delivers
// until it closes or ctx ends; without a feed it returns after the history
// (as if the console had ended the stream: the harness runs commands one
// after the other).
func (f *fakeBackend) FollowAudit(ctx context.Context, n int, fn func(apitype.AuditEntry) error) error {
	if err := f.record("FollowAudit %d", n); err != nil {
		return err
	}
	f.mu.Lock()
	hist, feed := f.recentAudit(n), f.auditFeed
	f.mu.Unlock()
	return feedTo(ctx, hist, feed, fn)
}

// feedTo calls fn with each of first, then with each value of feed (when
// not nil) until it closes or ctx ends.
func feedTo[T any](ctx context.Context, first []T, feed chan T, fn func(T) error) error {
	for _, v := range first {
		if err := fn(v); err != nil {
			return err
		}
	}
	if feed == nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case v, ok := <-feed:
			if !ok {
				return nil
			}
			if err := fn(v); err != nil {
				return err
			}
		}
	}
}

func (f *fakeBackend) Unknown(ctx context.Context) ([]apitype.UnknownNode, error) {
	if err := f.record("Unknown"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apitype.UnknownNode(nil), f.unknown...), nil
}

// Adopt names the machines after the group's node count (the daemon's
// naming is tested in internal/daemon) and moves them to the node list.
func (f *fakeBackend) Adopt(ctx context.Context, r apitype.AdoptRequest) (apitype.AdoptResult, error) {
	if len(r.BMCs) > 0 {
		return f.adoptBMCs(r)
	}
	if err := f.record("Adopt %v group=%s", r.MACs, r.Group); err != nil {
		return apitype.AdoptResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var res apitype.AdoptResult
	for _, mac := range r.MACs {
		name := fmt.Sprintf("new%02d", len(f.nodes)+1)
		f.nodes = append(f.nodes, apitype.NodeView{Name: name, Group: r.Group, MAC: mac})
		res.Nodes = append(res.Nodes, apitype.Adopted{MAC: mac, Name: name})
		f.unknown = slices.DeleteFunc(f.unknown, func(u apitype.UnknownNode) bool { return u.MAC == mac })
	}
	f.rev++
	res.Revision = f.revision()
	return res, nil
}

// adoptBMCs adopts one machine per BMC with two made-up NICs (the daemon's
// reading of them is tested in internal/daemon); a BMC named "down" fails
// as an unreachable one does.
func (f *fakeBackend) adoptBMCs(r apitype.AdoptRequest) (apitype.AdoptResult, error) {
	if err := f.record("Adopt bmcs=%v group=%s", r.BMCs, r.Group); err != nil {
		return apitype.AdoptResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var res apitype.AdoptResult
	for i, b := range r.BMCs {
		if b == "down" {
			return apitype.AdoptResult{}, fmt.Errorf("adopt: reading the NICs of down: BMC down:443: connection refused")
		}
		nics := []string{fmt.Sprintf("52:54:00:bb:%02x:01", i), fmt.Sprintf("52:54:00:bb:%02x:02", i)}
		name := fmt.Sprintf("new%02d", len(f.nodes)+1)
		f.nodes = append(f.nodes, apitype.NodeView{Name: name, Group: r.Group, MAC: nics[0]})
		res.Nodes = append(res.Nodes, apitype.Adopted{MAC: nics[0], Name: name, BMC: b, NICs: nics})
	}
	f.rev++
	res.Revision = f.revision()
	return res, nil
}
