package bootstate

import (
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Options.Clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Event shorthands for the tables.
func fetch(s Stage) Event { return Event{Kind: KindFetch, Stage: s, Path: "/" + string(s), Total: 100} }
func progress(b, total int64) Event {
	return Event{Kind: KindProgress, Path: "/rootfs", Bytes: b, Total: total}
}
func checkin(gen string, overlay int64) Event {
	return Event{Kind: KindCheckin, Generation: gen, Uptime: time.Minute, OverlayBytes: overlay}
}
func dhcp() Event {
	return Event{Kind: KindDHCP, Stage: StageDHCP, Proto: "dhcp", MAC: "52:54:00:00:00:01"}
}
func claim(s Stage) Event {
	return Event{Kind: KindClaim, Stage: s, Path: "/" + string(s), Remote: "127.0.0.77:4000", MAC: "52:54:00:00:00:66"}
}
func powerAction(a string) Event { return Event{Kind: KindPower, Message: a, Proto: "ipmi"} }
func powerSeen(p string) Event   { return Event{Kind: KindPower, Power: p, Proto: "ipmi"} }

const mib = 1 << 20

var fullBoot = []Event{powerAction(ActionCycle), fetch(StageConfig), fetch(StageKernel),
	fetch(StageInitrd), fetch(StageRootfs), progress(50, 100), progress(100, 100), checkin("g2", 0)}

func seq(parts ...[]Event) []Event {
	var out []Event
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestStateMachine(t *testing.T) {
	type want struct {
		stage    Stage
		timeline []Stage
		power    string
		powerErr string
		err      string
		reasons  []string // Dirty("g2", 1 MiB); nil = clean
	}
	cases := []struct {
		name   string
		events []Event
		want   want
	}{
		{"healthy ipxe boot", fullBoot, want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn}},
		{"pxelinux chainload keeps one boot", []Event{fetch(StageNBP), fetch(StageNBP), fetch(StageConfig), fetch(StageKernel)}, want{
			stage: StageKernel, timeline: []Stage{StageNBP, StageConfig, StageKernel}, power: PowerOn}},
		// DHCP names a node by its MAC only: a claim (an unproven mark,
		// shown here as "dhcp?"), never a stage.
		{"dhcp before nbp is one boot; the firmware's repeated requests are one mark",
			seq([]Event{powerAction(ActionCycle), dhcp(), dhcp(), fetch(StageNBP), fetch(StageConfig)}), want{
				stage: StageConfig, timeline: []Stage{StagePoweringOn, "dhcp?", StageNBP, StageConfig}, power: PowerOn}},
		{"dhcp after booted is a claim: the node stays booted", seq(fullBoot, []Event{dhcp()}), want{
			stage: StageBooted, timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted, "dhcp?"}, power: PowerOn}},
		{"dhcp while at kernel is a claim", []Event{dhcp(), fetch(StageNBP), fetch(StageKernel), dhcp()}, want{
			stage: StageKernel, timeline: []Stage{"dhcp?", StageNBP, StageKernel, "dhcp?"}, power: PowerOn}},
		{"a claim moves nothing of a node never seen", []Event{claim(StageConfig)}, want{
			stage: StageUnknown, timeline: []Stage{"config?"}, power: PowerUnknown}},
		{"claims never move a boot; a flood of them is one mark per stage",
			seq(fullBoot[:2], []Event{claim(StageNBP), claim(StageConfig), claim(StageKernel), claim(StageKernel), claim(StageRootfs), claim(StageKernel), claim("")}), want{
				stage: StageConfig, timeline: []Stage{StagePoweringOn, StageConfig, "nbp?", "config?", "kernel?", "rootfs?"}, power: PowerOn}},
		{"claims after booted change nothing a dirty check looks at", seq(fullBoot, []Event{checkin("g1", 0), claim(StageNBP), claim(StageConfig)}), want{
			stage: StageBooted, timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted, "nbp?", "config?"}, power: PowerOn,
			reasons: []string{"running generation g1, assigned g2"}}},
		{"a proven fetch after claims starts the new boot with them", seq(fullBoot, []Event{claim(StageNBP), claim(StageConfig), fetch(StageKernel)}), want{
			stage: StageKernel, timeline: []Stage{"nbp?", "config?", StageKernel}, power: PowerOn}},
		{"claims of later stages than the proven fetch stay with the old boot", seq(fullBoot, []Event{claim(StageRootfs), fetch(StageKernel)}), want{
			stage: StageKernel, timeline: []Stage{StageKernel}, power: PowerOn}},
		{"a check-in of a boot not seen keeps its claims", []Event{claim(StageConfig), claim(StageKernel), checkin("g2", 0)}, want{
			stage: StageBooted, timeline: []Stage{"config?", "kernel?", StageBooted}, power: PowerOn}},
		{"a claimed failure stage is no mark", seq(fullBoot[:2], []Event{claim(StageFailed), claim(StageBooted)}), want{
			stage: StageConfig, timeline: []Stage{StagePoweringOn, StageConfig}, power: PowerOn}},
		{"nbp after booted starts a new boot", seq(fullBoot, []Event{fetch(StageNBP)}), want{
			stage: StageNBP, timeline: []Stage{StageNBP}, power: PowerOn}},
		{"earlier stage while at rootfs starts a new boot",
			[]Event{fetch(StageNBP), fetch(StageConfig), fetch(StageKernel), fetch(StageInitrd), fetch(StageRootfs), fetch(StageConfig)},
			want{stage: StageConfig, timeline: []Stage{StageConfig}, power: PowerOn}},
		{"fetch of a non-boot file changes nothing", []Event{{Kind: KindFetch, Path: "/favicon.ico"}}, want{
			stage: StageUnknown, power: PowerUnknown}},
		{"failure then retry of the same stage continues the boot",
			[]Event{fetch(StageNBP), fetch(StageConfig), fetch(StageKernel), {Kind: KindFail, Error: "GET /kernel: 404"}, fetch(StageKernel)},
			want{stage: StageKernel, timeline: []Stage{StageNBP, StageConfig, StageKernel, StageFailed, StageKernel}, power: PowerOn}},
		{"failure then nbp starts a new boot",
			[]Event{fetch(StageNBP), fetch(StageConfig), {Kind: KindFail, Error: "boom"}, fetch(StageNBP)},
			want{stage: StageNBP, timeline: []Stage{StageNBP}, power: PowerOn}},
		{"failure keeps its reason", []Event{fetch(StageKernel), {Kind: KindFail, Error: "GET /kernel: 404"}}, want{
			stage: StageFailed, timeline: []Stage{StageKernel, StageFailed}, power: PowerOn, err: "GET /kernel: 404"}},
		{"failure without error uses the message", []Event{fetch(StageKernel), {Kind: KindFail, Message: "disk gone"}}, want{
			stage: StageFailed, timeline: []Stage{StageKernel, StageFailed}, power: PowerOn, err: "disk gone"}},
		{"power off observed while booted", seq(fullBoot, []Event{powerSeen(PowerOff)}), want{
			stage:    StageOff,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted, StageOff},
			power:    PowerOff}},
		{"power off observed twice", []Event{powerSeen(PowerOff), powerSeen(PowerOff)}, want{
			stage: StageOff, timeline: []Stage{StageOff}, power: PowerOff}},
		{"power off action", seq(fullBoot, []Event{powerAction(ActionOff)}), want{
			stage:    StageOff,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted, StageOff},
			power:    PowerOff}},
		{"on observed while off means a boot", []Event{powerSeen(PowerOff), powerSeen(PowerOn)}, want{
			stage: StagePoweringOn, timeline: []Stage{StagePoweringOn}, power: PowerOn}},
		{"on observed while booted keeps the stage", seq(fullBoot, []Event{powerSeen(PowerOn)}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn}},
		{"on observed for a node never seen", []Event{powerSeen(PowerOn)}, want{
			stage: StageUnknown, power: PowerOn}},
		{"odd power value is unknown", []Event{powerSeen("sideways")}, want{
			stage: StageUnknown, power: PowerUnknown}},
		{"power on action of a running node changes nothing", seq(fullBoot, []Event{powerAction(ActionOn)}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn}},
		{"power on action while off", []Event{powerSeen(PowerOff), powerAction(ActionOn)}, want{
			stage: StagePoweringOn, timeline: []Stage{StagePoweringOn}, power: PowerOn}},
		{"power on action while unknown", []Event{powerAction(ActionOn)}, want{
			stage: StagePoweringOn, timeline: []Stage{StagePoweringOn}, power: PowerOn}},
		{"reset while booted starts a boot", seq(fullBoot, []Event{powerAction(ActionReset)}), want{
			stage: StagePoweringOn, timeline: []Stage{StagePoweringOn}, power: PowerOn}},
		{"cycle while powering on restarts the timeline", seq(fullBoot[:3], []Event{powerAction(ActionCycle)}), want{
			stage: StagePoweringOn, timeline: []Stage{StagePoweringOn}, power: PowerOn}},
		{"soft shutdown waits for the observation", seq(fullBoot, []Event{powerAction(ActionSoft)}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn}},
		{"failed power action fails the node", seq(fullBoot, []Event{{Kind: KindPower, Message: ActionCycle, Error: "BMC 10.0.0.5: timeout"}}), want{
			stage:    StageFailed,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted, StageFailed},
			power:    PowerUnknown, powerErr: "BMC 10.0.0.5: timeout", err: "power cycle: BMC 10.0.0.5: timeout"}},
		{"failed status read keeps the stage", seq(fullBoot, []Event{{Kind: KindPower, Error: "BMC 10.0.0.5: timeout"}}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerUnknown, powerErr: "BMC 10.0.0.5: timeout"}},
		{"power error cleared by the next answer", []Event{{Kind: KindPower, Error: "timeout"}, powerSeen(PowerOff)}, want{
			stage: StageOff, timeline: []Stage{StageOff}, power: PowerOff}},
		{"checkin without a boot seen", []Event{checkin("g2", 0)}, want{
			stage: StageBooted, timeline: []Stage{StageBooted}, power: PowerOn}},
		{"checkin from an off node starts a fresh timeline", seq(fullBoot, []Event{powerSeen(PowerOff), checkin("g2", 0)}), want{
			stage: StageBooted, timeline: []Stage{StageBooted}, power: PowerOn}},
		{"repeated checkins keep one mark", seq(fullBoot, []Event{checkin("g2", 10), checkin("g2", 20)}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn}},
		{"wrong generation is dirty", seq(fullBoot, []Event{checkin("g1", 0)}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn, reasons: []string{"running generation g1, assigned g2"}}},
		{"unreported generation is dirty", []Event{{Kind: KindCheckin}}, want{
			stage: StageBooted, timeline: []Stage{StageBooted}, power: PowerOn,
			reasons: []string{"running generation not reported, assigned g2"}}},
		{"overlay writes above threshold are dirty", seq(fullBoot, []Event{checkin("g2", 2*mib)}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn, reasons: []string{"overlay writes 2.0 MiB above threshold 1.0 MiB"}}},
		{"overlay writes at threshold are clean", seq(fullBoot, []Event{checkin("g2", mib)}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn}},
		{"a stale generation does not make a booting node dirty", seq(fullBoot, []Event{checkin("g1", 5*mib), fetch(StageNBP)}), want{
			stage: StageNBP, timeline: []Stage{StageNBP}, power: PowerOn}},
		{"every reason at once", seq(fullBoot, []Event{checkin("g1", 3*mib), {Kind: KindMark, Message: "debugging"}}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn,
			reasons:  []string{"running generation g1, assigned g2", "overlay writes 3.0 MiB above threshold 1.0 MiB", "marked by admin: debugging"}}},
		{"mark cleared", seq(fullBoot, []Event{{Kind: KindMark, Message: "x"}, {Kind: KindMark}}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn}},
		{"mark is gone after a new boot", seq(fullBoot, []Event{{Kind: KindMark, Message: "x"}}, fullBoot), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn}},
		{"stall reported while booted is ignored", seq(fullBoot, []Event{{Kind: KindStall}}), want{
			stage:    StageBooted,
			timeline: []Stage{StagePoweringOn, StageConfig, StageKernel, StageInitrd, StageRootfs, StageBooted},
			power:    PowerOn}},
		{"stall reported in kernel", []Event{fetch(StageKernel), {Kind: KindStall, Error: "kernel download stuck"}}, want{
			stage: StageStalled, timeline: []Stage{StageKernel, StageStalled}, power: PowerOn, err: "kernel download stuck"}},
		{"progress resumes a stalled node", []Event{fetch(StageRootfs), {Kind: KindStall}, progress(60, 100)}, want{
			stage: StageRootfs, timeline: []Stage{StageRootfs, StageStalled, StageRootfs}, power: PowerOn}},
		{"stalled powering on then nbp continues the boot", []Event{powerAction(ActionOn), {Kind: KindStall}, fetch(StageNBP)}, want{
			stage: StageNBP, timeline: []Stage{StagePoweringOn, StageStalled, StageNBP}, power: PowerOn}},
		{"kexec starts a new boot without firmware: kernel and initrd follow in it", seq(fullBoot, []Event{checkin("g1", 3*mib), {Kind: KindMark, Message: "x"},
			{Kind: KindKexec, Generation: "g2"}, fetch(StageKernel), fetch(StageInitrd), fetch(StageRootfs), checkin("g2", 0)}), want{
			stage: StageBooted, timeline: []Stage{StageKexec, StageKernel, StageInitrd, StageRootfs, StageBooted}, power: PowerOn}},
		{"kexec refused by the agent fails the node", seq(fullBoot, []Event{{Kind: KindKexec}, {Kind: KindFail, Error: "kexec refused"}}), want{
			stage: StageFailed, timeline: []Stage{StageKexec, StageFailed}, power: PowerOn, err: "kexec refused"}},
		{"kexec can stall", []Event{{Kind: KindKexec}, {Kind: KindStall}}, want{
			stage: StageStalled, timeline: []Stage{StageKexec, StageStalled}, power: PowerOn, err: "no progress in stage kexec for 1s"}},
		{"denied, unknown and info events only go to history", seq(fullBoot[:2], []Event{{Kind: KindDenied, Error: "bad token"}, {Kind: KindInfo}, {Kind: KindUnknown}, {Kind: "new-kind"}}), want{
			stage: StageConfig, timeline: []Stage{StagePoweringOn, StageConfig}, power: PowerOn}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newFakeClock()
			tr, err := New(Options{Clock: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			var st NodeState
			for _, ev := range c.events {
				clk.Advance(time.Second)
				ev.Node = "n01"
				st = tr.Apply(ev)
			}
			var stages []Stage
			for i, m := range st.Timeline {
				if m.Unproven {
					m.Stage += "?"
				}
				stages = append(stages, m.Stage)
				if i > 0 && m.Time.Before(st.Timeline[i-1].Time) {
					t.Errorf("timeline goes back in time: %v", st.Timeline)
				}
			}
			got := want{stage: st.Stage, timeline: stages, power: st.Power, powerErr: st.PowerError, err: st.Error}
			_, got.reasons = st.Dirty("g2", mib)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			if g, ok := tr.Get("n01"); !ok || !reflect.DeepEqual(g, st) {
				t.Errorf("Get = %+v, %v; Apply returned %+v", g, ok, st)
			}
			if (st.Stage == StageFailed || st.Stage == StageStalled) != (st.Error != "") {
				t.Errorf("stage %s with Error %q", st.Stage, st.Error)
			}
		})
	}
}

func TestProgressFields(t *testing.T) {
	clk := newFakeClock()
	tr, _ := New(Options{Clock: clk.Now})
	defer tr.Close()
	tr.Apply(Event{Node: "n1", Kind: KindFetch, Stage: StageRootfs, Path: "/img/rootfs.squashfs", Total: 1000, Remote: "10.0.2.15:4000"})
	clk.Advance(3 * time.Second)
	st := tr.Apply(Event{Node: "n1", Kind: KindProgress, Bytes: 400})
	want := NodeState{Node: "n1", Stage: StageRootfs, Path: "/img/rootfs.squashfs", Bytes: 400, Total: 1000,
		Power: PowerOn, Remote: "10.0.2.15:4000", LastProgress: clk.Now(), LastSeen: clk.Now(),
		StageSince: clk.Now().Add(-3 * time.Second), Seq: 2,
		Timeline: []StageMark{{Stage: StageRootfs, Time: clk.Now().Add(-3 * time.Second)}}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
}

func TestDirty(t *testing.T) {
	cases := []struct {
		name      string
		st        NodeState
		assigned  string
		threshold int64
		want      []string
	}{
		{"clean", NodeState{Stage: StageBooted, Generation: "g1"}, "g1", 0, nil},
		{"no assignment skips generation", NodeState{Stage: StageBooted, Generation: "g1"}, "", 0, nil},
		{"generation differs", NodeState{Stage: StageBooted, Generation: "g1"}, "g2", 0, []string{"running generation g1, assigned g2"}},
		{"off node is not dirty by generation", NodeState{Stage: StageOff, Generation: "g1"}, "g2", 0, nil},
		// overlay_dirty_bytes 0 (or left out) means any write, as the
		// inventory documents it.
		{"threshold 0, no write", NodeState{Stage: StageBooted, Generation: "g1"}, "g1", 0, nil},
		{"threshold 0, one byte", NodeState{Stage: StageBooted, Generation: "g1", OverlayBytes: 1}, "g1", 0, []string{"overlay writes 1 B above threshold 0 B"}},
		{"threshold 0, a lot", NodeState{Stage: StageBooted, Generation: "g1", OverlayBytes: 1 << 40}, "g1", 0, []string{"overlay writes 1.0 TiB above threshold 0 B"}},
		{"negative threshold is 0", NodeState{Stage: StageBooted, Generation: "g1", OverlayBytes: 4096}, "g1", -1, []string{"overlay writes 4.0 KiB above threshold 0 B"}},
		{"at the threshold", NodeState{Stage: StageBooted, Generation: "g1", OverlayBytes: 1000}, "g1", 1000, nil},
		{"threshold 0, mid-boot", NodeState{Stage: StageRootfs, OverlayBytes: 4096}, "g1", 0, nil},
		{"overlay bytes", NodeState{Stage: StageBooted, Generation: "g1", OverlayBytes: 1500}, "g1", 1000, []string{"overlay writes 1.5 KiB above threshold 1000 B"}},
		{"overlay gib", NodeState{Stage: StageBooted, OverlayBytes: 3 << 30}, "", 1 << 30, []string{"overlay writes 3.0 GiB above threshold 1.0 GiB"}},
		{"mark without reason", NodeState{Stage: StageOff, MarkedDirty: true}, "g1", 0, []string{"marked by admin"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dirty, reasons := c.st.Dirty(c.assigned, c.threshold)
			if dirty != (len(c.want) > 0) || !reflect.DeepEqual(reasons, c.want) {
				t.Errorf("Dirty = %v %q, want %q", dirty, reasons, c.want)
			}
		})
	}
}

func TestTimelineBounded(t *testing.T) {
	tr, _ := New(Options{})
	defer tr.Close()
	tr.Apply(Event{Node: "n1", Kind: KindFetch, Stage: StageNBP})
	var st NodeState
	for range 200 {
		tr.Apply(Event{Node: "n1", Kind: KindFail, Error: "x"})
		st = tr.Apply(Event{Node: "n1", Kind: KindFetch, Stage: StageNBP})
	}
	if len(st.Timeline) != maxTimeline {
		t.Fatalf("timeline has %d marks, want %d", len(st.Timeline), maxTimeline)
	}
	if last := st.Timeline[len(st.Timeline)-1].Stage; last != StageNBP {
		t.Errorf("last mark %s, want nbp", last)
	}
}

func TestStallText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2 * time.Minute:                            "no progress in stage kernel for 2m0s",
		2*time.Minute + 400*time.Millisecond:       "no progress in stage kernel for 2m0s",
		90*time.Minute + 29*time.Second:            "no progress in stage kernel for 1h30m29s",
		50*time.Millisecond + 300*time.Microsecond: "no progress in stage kernel for 50ms",
	} {
		if got := stallText(StageKernel, d); got != want {
			t.Errorf("stallText(%v) = %q, want %q", d, got, want)
		}
	}
	if !strings.Contains(stallText(StagePoweringOn, time.Minute), "powering-on") {
		t.Error("stall text does not name the stage")
	}
}

// TestClaimsMoveNothing: a claim (and a DHCP request) leaves every field of
// a node's state but its timeline as it was (address, MAC, last seen, file
// progress, power), so a node whose boot is claimed but never proved still
// stalls in its last proven stage; a denied, unknown or info event about
// the node (a wrong token, a missing file asked for by a claim) leaves all
// of it.
func TestClaimsMoveNothing(t *testing.T) {
	clk := newFakeClock()
	tr, err := New(Options{Clock: clk.Now, StallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	before := tr.Apply(Event{Node: "n1", Kind: KindPower, Message: ActionCycle, Proto: "ipmi", Remote: "bmc:623"})
	for _, ev := range []Event{claim(StageNBP), dhcp(), claim(StageConfig), claim(StageKernel), claim(StageInitrd), claim(StageRootfs)} {
		clk.Advance(15 * time.Second)
		ev.Node = "n1"
		ev.Bytes, ev.Total, ev.Generation, ev.Uptime, ev.OverlayBytes = 7, 9, "g9", time.Hour, 1<<30
		after := tr.Apply(ev)
		if len(after.Timeline) != len(before.Timeline)+1 || !after.Timeline[len(after.Timeline)-1].Unproven {
			t.Fatalf("%s claim: timeline %+v", ev.Stage, after.Timeline)
		}
		after.Timeline, after.Seq = before.Timeline, before.Seq
		if !reflect.DeepEqual(after, before) {
			t.Fatalf("%s claim moved the node:\n got  %+v\n want %+v", ev.Stage, after, before)
		}
		before, _ = tr.Get("n1")
	}
	for _, kind := range []Kind{KindDenied, KindUnknown, KindInfo} {
		after := tr.Apply(Event{Node: "n1", Kind: kind, Proto: "http", Remote: "127.0.0.77:4000", MAC: "52:54:00:00:00:66", Error: "bad token"})
		after.Seq = before.Seq
		if !reflect.DeepEqual(after, before) {
			t.Fatalf("%s event moved the node:\n got  %+v\n want %+v", kind, after, before)
		}
	}
	if n := tr.checkStalls(clk.Now()); n != 1 {
		t.Fatalf("%d nodes stalled, want n1 (claimed for 90 s, proven last at the cycle)", n)
	}
	if st, _ := tr.Get("n1"); st.Stage != StageStalled || !strings.Contains(st.Error, "stage powering-on") {
		t.Errorf("n1 after the stall check: %+v", st)
	}
}
