package daemon

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/rollout"
	"github.com/netbootui/netbootui/internal/workflow"
)

// fill sets every field reachable from v to a value that is not its zero
// value, different for each field, so that a conversion that forgets a field
// shows.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + strings.Repeat("x", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			v.SetInt(int64(*n) * int64(time.Second))
		} else {
			v.SetInt(int64(*n))
		}
	case reflect.Uint64, reflect.Uint32, reflect.Uint:
		v.SetUint(uint64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(s.Index(0), n)
		fill(s.Index(1), n)
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, *n%60, 0, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	}
}

func filled[T any]() T {
	var v T
	n := 0
	fill(reflect.ValueOf(&v).Elem(), &n)
	return v
}

// sameJSON checks that the domain value and its wire form encode alike: the
// wire form keeps every field under the name the API always used.
func sameJSON(t *testing.T, name string, domain, wire any) {
	t.Helper()
	a, _ := json.Marshal(domain)
	b, _ := json.Marshal(wire)
	var am, bm any
	json.Unmarshal(a, &am)
	json.Unmarshal(b, &bm)
	if !reflect.DeepEqual(am, bm) {
		t.Errorf("%s:\ndomain %s\nwire   %s", name, a, b)
	}
}

// TestWireForms converts a fully filled value of every daemon type that has
// a wire form and checks that no field is lost or renamed.
func TestWireForms(t *testing.T) {
	st := filled[bootstate.NodeState]()
	sameJSON(t, "NodeState", st, NodeStateView(st))
	ev := filled[bootstate.Event]()
	sameJSON(t, "Event", ev, EventView(ev))
	m := filled[image.Manifest]()
	sameJSON(t, "Manifest", m, ManifestView(&m))
	if ManifestView(nil) != nil || RolloutView(nil) != nil {
		t.Error("nil did not stay nil")
	}
	p := filled[workflow.Progress]()
	sameJSON(t, "RebootProgress", p, RebootProgressView(p))
	rs := filled[[]workflow.Result]()
	sameJSON(t, "RebootResult", rs, RebootResultViews(rs))
	ro := filled[rollout.Rollout]()
	sameJSON(t, "Rollout", ro, RolloutView(&ro))
	sameJSON(t, "Rollouts", []*rollout.Rollout{&ro}, RolloutViews([]*rollout.Rollout{&ro}))
	es := filled[[]audit.Entry]()
	sameJSON(t, "AuditEntry", es, AuditViews(es))

	// image.Progress has no JSON names: compare field by field.
	bp := filled[image.Progress]()
	w := BuildProgressView(bp)
	if w.Image != bp.Image || w.Step != bp.Step || w.Percent != bp.Percent || w.Line != bp.Line {
		t.Errorf("BuildProgress %+v -> %+v", bp, w)
	}
	if reflect.TypeFor[image.Progress]().NumField() != reflect.TypeFor[apitype.BuildProgress]().NumField() {
		t.Error("image.Progress and apitype.BuildProgress have different fields")
	}
}

// TestWireConstants checks that the constants clients switch on have the
// values the daemon uses.
func TestWireConstants(t *testing.T) {
	stages := map[bootstate.Stage]apitype.Stage{
		bootstate.StageUnknown: apitype.StageUnknown, bootstate.StageOff: apitype.StageOff,
		bootstate.StagePoweringOn: apitype.StagePoweringOn, bootstate.StageDHCP: apitype.StageDHCP,
		bootstate.StageNBP: apitype.StageNBP, bootstate.StageConfig: apitype.StageConfig,
		bootstate.StageKernel: apitype.StageKernel, bootstate.StageInitrd: apitype.StageInitrd,
		bootstate.StageRootfs: apitype.StageRootfs, bootstate.StageBooted: apitype.StageBooted,
		bootstate.StageStalled: apitype.StageStalled, bootstate.StageFailed: apitype.StageFailed,
		bootstate.StageKexec: apitype.StageKexec,
	}
	kinds := map[bootstate.Kind]apitype.Kind{
		bootstate.KindFetch: apitype.KindFetch, bootstate.KindDHCP: apitype.KindDHCP,
		bootstate.KindProgress: apitype.KindProgress, bootstate.KindCheckin: apitype.KindCheckin,
		bootstate.KindPower: apitype.KindPower, bootstate.KindFail: apitype.KindFail,
		bootstate.KindStall: apitype.KindStall, bootstate.KindUnknown: apitype.KindUnknown,
		bootstate.KindDenied: apitype.KindDenied, bootstate.KindMark: apitype.KindMark, bootstate.KindInfo: apitype.KindInfo,
		bootstate.KindKexec: apitype.KindKexec,
		bootstate.KindClaim: apitype.KindClaim,
	}
	steps := map[workflow.Step]apitype.RebootStep{
		workflow.StepRender: apitype.StepRender, workflow.StepBootdev: apitype.StepBootdev,
		workflow.StepCycle: apitype.StepCycle, workflow.StepBoot: apitype.StepBoot,
		workflow.StepClean: apitype.StepClean, workflow.StepFailed: apitype.StepFailed,
		workflow.StepKexec: apitype.StepKexec,
	}
	states := map[rollout.State]apitype.RolloutState{
		rollout.StateStaged: apitype.RolloutStaged, rollout.StateRunning: apitype.RolloutRunning,
		rollout.StateHalted: apitype.RolloutHalted, rollout.StateCompleted: apitype.RolloutCompleted,
		rollout.StateAborted: apitype.RolloutAborted, rollout.StatePromoted: apitype.RolloutPromoted,
		rollout.StateRolledBack: apitype.RolloutRolledBack,
	}
	nodes := map[rollout.NodeStatus]apitype.RolloutNodeStatus{
		rollout.NodeStaged: apitype.NodeStaged, rollout.NodeRebooting: apitype.NodeRebooting,
		rollout.NodeDone: apitype.NodeDone, rollout.NodeReverted: apitype.NodeReverted, rollout.NodeRestored: apitype.NodeRestored,
	}
	waves := map[rollout.WaveState]apitype.WaveState{
		rollout.WavePending: apitype.WavePending, rollout.WaveRunning: apitype.WaveRunning,
		rollout.WavePassed: apitype.WavePassed, rollout.WaveFailed: apitype.WaveFailed,
	}
	builds := map[string]string{
		image.StepHash: apitype.BuildStepHash, image.StepUnchanged: apitype.BuildStepUnchanged,
		image.StepRootfs: apitype.BuildStepRootfs, image.StepOverlay: apitype.BuildStepOverlay,
		image.StepAgent: apitype.BuildStepAgent, image.StepKernel: apitype.BuildStepKernel,
		image.StepInitramfs: apitype.BuildStepInitramfs, image.StepSquashfs: apitype.BuildStepSquashfs,
		image.StepChecksums: apitype.BuildStepChecksums, image.StepPublish: apitype.BuildStepPublish,
		image.StepDone: apitype.BuildStepDone,
	}
	vias := map[string]string{workflow.ViaAuto: apitype.ViaAuto, workflow.ViaKexec: apitype.ViaKexec, workflow.ViaPower: apitype.ViaPower}
	check(t, "reboot path", vias, apitype.RebootVias)
	check(t, "stage", stages, apitype.Stages)
	check(t, "kind", kinds, apitype.Kinds)
	check(t, "reboot step", steps, apitype.RebootSteps)
	check(t, "rollout state", states, apitype.RolloutStates)
	check(t, "rollout node status", nodes, apitype.RolloutNodeStatuses)
	check(t, "wave state", waves, apitype.WaveStates)
	check(t, "build step", builds, apitype.BuildSteps)
	for d, w := range map[string]string{bootstate.PowerOn: apitype.PowerOn, bootstate.PowerOff: apitype.PowerOff,
		bootstate.PowerUnknown: apitype.PowerUnknown, image.FileKernel: apitype.FileKernel,
		image.FileInitrd: apitype.FileInitrd, image.FileRootfs: apitype.FileRootfs} {
		if d != w {
			t.Errorf("constant %q is %q on the wire", d, w)
		}
	}
	if workflow.DefaultTimeout != apitype.DefaultRebootTimeout || rollout.DefaultTimeout != apitype.DefaultStageTimeout {
		t.Error("default timeouts differ")
	}
}

// check verifies that each domain constant has the same text as its wire
// constant and that the wire list holds exactly those.
func check[D, W ~string](t *testing.T, what string, m map[D]W, list []W) {
	t.Helper()
	if len(m) != len(list) {
		t.Errorf("%s: %d daemon values, %d wire values", what, len(m), len(list))
	}
	listed := map[W]bool{}
	for _, w := range list {
		listed[w] = true
	}
	for d, w := range m {
		if string(d) != string(w) || !listed[w] {
			t.Errorf("%s %q is %q on the wire (listed %v)", what, d, w, listed[w])
		}
	}
}
