package ui

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// press sends keys; "<wait>" lets the dialog guard pass.
func (hs *harness) press(seq ...string) {
	for _, k := range seq {
		if k == "<wait>" {
			hs.now = hs.now.Add(time.Second)
			continue
		}
		hs.send(keyMsg(k))
	}
}

func TestActionKeysMakeCalls(t *testing.T) {
	mark4 := []string{"<space>", "<space>", "<space>", "j", "<space>"} // n01-n03, n05
	cases := []struct {
		name  string
		nodes int
		keys  []string
		want  []string
	}{
		{"status on the cursor node needs no confirmation", 20, []string{"j", "p", "t"}, []string{"Power status n02", "Nodes"}},
		{"cycle on marked nodes after yes", 20, append(mark4, "p", "c", "<wait>", "y"), []string{"Power cycle n[01-03,05]", "Nodes"}},
		{"menu by j/k and enter", 20, []string{"p", "k", "<enter>", "<wait>", "y"}, []string{"Power reset n01", "Nodes"}},
		{"menu wraps", 20, []string{"p", "j", "<enter>", "<wait>", "<right>", "<enter>"}, []string{"Power on n01", "Nodes"}},
		{"enter on the dialog is no", 20, append(mark4, "p", "c", "<wait>", "<enter>"), nil},
		{"n is no", 20, []string{"p", "f", "<wait>", "n"}, nil},
		{"esc closes the menu", 20, []string{"p", "<esc>", "y"}, nil},
		{"keys typed before the dialog appeared are swallowed", 20, []string{"p", "c", "y", "<enter>"}, nil},
		{"12 nodes: y is not enough", 12, []string{"<ctrl+a>", "p", "c", "<wait>", "y", "<enter>"}, nil},
		{"12 nodes: wrong count", 12, []string{"<ctrl+a>", "p", "o", "<wait>", "1", "1", "<enter>"}, nil},
		{"12 nodes: count typed", 12, []string{"<ctrl+a>", "p", "o", "<wait>", "1", "2", "<enter>"}, []string{"Power on n[01-12]", "Nodes"}},
		{"8 nodes: y is enough", 8, []string{"<ctrl+a>", "p", "s", "<wait>", "y"}, []string{"Power soft n[01-08]", "Nodes"}},
		{"marks across a filter", 20, []string{"/", "g", "r", "o", "u", "p", ":", "g", "p", "u", "<enter>", "<ctrl+a>", "<esc>", "p", "r", "<wait>", "y"}, []string{"Power reset n[05,10,15,20]", "Nodes"}},
		{"reboot the cursor node", 20, []string{"G", "R", "<wait>", "y"}, []string{"RebootClean n20 0s", "Nodes"}},
		{"reboot marked nodes", 20, append(mark4, "R", "<wait>", "y"), []string{"RebootClean n[01-03,05] 0s", "Nodes"}},
		{"reboot by kexec: v picks the path", 20, []string{"G", "R", "<wait>", "v", "y"}, []string{"RebootClean n20 0s via kexec", "Nodes"}},
		{"reboot by power: v twice", 20, append(mark4, "R", "<wait>", "v", "v", "y"), []string{"RebootClean n[01-03,05] 0s via power", "Nodes"}},
		{"reboot path cycles back to auto", 20, []string{"G", "R", "<wait>", "v", "v", "v", "y"}, []string{"RebootClean n20 0s", "Nodes"}},
		{"reboot 12 nodes by power: count typed", 12, []string{"<ctrl+a>", "R", "<wait>", "v", "v", "1", "2", "<enter>"}, []string{"RebootClean n[01-12] 0s via power", "Nodes"}},
		{"reboot default no", 20, []string{"R", "<wait>", "<enter>"}, nil},
		{"reboot early keys swallowed", 20, []string{"R", "y"}, nil},
		{"reboot 12 nodes: count typed", 12, []string{"<ctrl+a>", "R", "<wait>", "y", "<enter>", "R", "<wait>", "1", "2", "<enter>"}, []string{"RebootClean n[01-12] 0s", "Nodes"}},
		{"power from the detail view acts on its node", 20, []string{"j", "j", "<enter>", "p", "t"}, []string{"Node n03", "BootEntry n03 ", "Events n03 50 false", "DiffImages compute:g1 compute:g2", "Audit 500", "SOLLog n03 15", "NodeBMC n03", "Power status n03", "Nodes", "Node n03"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs := newHarness(t, c.nodes, 80, 24)
			hs.be.reset()
			hs.press(c.keys...)
			if got := hs.be.Calls(); !slices.Equal(got, c.want) {
				t.Errorf("calls %q, want %q", got, c.want)
			}
		})
	}
}

func TestPowerDialogText(t *testing.T) {
	hs := newHarness(t, 20, 100, 30)
	hs.press("<space>", "<space>", "p")
	if scr := hs.screen(); !strings.Contains(scr, "Power: 2 nodes n[01-02]") || !strings.Contains(scr, "t  status  read the power state") {
		t.Fatalf("menu not shown:\n%s", scr)
	}
	hs.press("c")
	scr := hs.screen()
	for _, want := range []string{"Power cycle 2 nodes?", "n[01-02]", "anything running", "stops at once", "[ No ]"} {
		if !strings.Contains(scr, want) {
			t.Errorf("dialog lacks %q:\n%s", want, scr)
		}
	}
	if hs.m.dialog.yes {
		t.Error("the dialog opened on Yes")
	}
	hs.press("<wait>", "<enter>")
	if !strings.Contains(hs.screen(), "power cycle cancelled; nothing changed") {
		t.Errorf("no cancel message:\n%s", hs.screen())
	}
	if hs.be.nodes[0].State.Power != "on" || hs.m.act != nil {
		t.Error("a cancelled dialog ran the action")
	}
}

func TestPowerResults(t *testing.T) {
	hs := newHarness(t, 8, 120, 30)
	hs.be.powerFail = map[string]string{"n07": "BMC 10.2.0.7:623: no answer within 5s"}
	hs.be.nodes[2].BMC = ""
	hs.send(refreshTickMsg{})
	hs.press("<ctrl+a>", "p", "c", "<wait>", "y")
	scr := hs.screen()
	want := "cycle: 6 ok, 2 failed — n03: no BMC host in the inventory (:action lists all)"
	if !strings.Contains(scr, want) {
		t.Errorf("summary %q missing:\n%s", want, scr)
	}
	for _, row := range []string{
		"n01        10.2.0.1:623           on    ok (40ms)",
		"n03        -                      on    FAILED: no BMC host in the inventory",
		"n07        10.2.0.7:623           off   FAILED: BMC 10.2.0.7:623: no answer within 5s",
	} {
		if !strings.Contains(scr, row) {
			t.Errorf("action view lacks %q:\n%s", row, scr)
		}
	}
	if hs.m.view != viewAction {
		t.Errorf("view %v, want the action view", hs.m.view)
	}
	hs.press("<esc>")
	if scr := hs.screen(); !strings.Contains(scr, "last action: "+want) {
		t.Errorf("nodes view does not keep the outcome:\n%s", scr)
	}
	// the node list was refreshed from the daemon: n07 stays off, n01 is on
	if p := hs.m.nodes.all[0].State.Power; p != "on" {
		t.Errorf("n01 power %q after the refresh", p)
	}
	hs.press(":", "a", "c", "t", "<enter>")
	if hs.m.view != viewAction {
		t.Error(":action does not show the last action")
	}
}

func TestPowerCallFailure(t *testing.T) {
	hs := newHarness(t, 3, 100, 30)
	hs.be.down = true
	hs.press("p")
	_, cmd := hs.m.Update(keyMsg("t"))
	batch, ok := cmd().(tea.BatchMsg) // the call, and the clock while it runs
	if !ok || len(batch) != 2 {
		t.Fatalf("power started %T, want the call and the clock", cmd())
	}
	hs.m.Update(batch[0]()) // the reconnect it schedules is not run: the fake stays down
	scr := hs.screen()
	if !strings.Contains(scr, "status: 0 ok, 0 failed, 1 not done — daemon at /tmp/x.sock: connection refused") || !strings.Contains(scr, "disconnected, retrying") {
		t.Errorf("call failure not shown:\n%s", scr)
	}
}

// stepReboot confirms a reboot of every node and returns the call's two
// commands: the blocking call and the progress reader (the third, the
// clock that redraws the elapsed time, is checked and left out).
func stepReboot(t *testing.T, hs *harness) (run, wait tea.Cmd) {
	t.Helper()
	hs.press("<ctrl+a>", "R", "<wait>")
	_, cmd := hs.m.Update(keyMsg("y"))
	batch, ok := cmd().(tea.BatchMsg)
	if !ok || len(batch) != 3 {
		t.Fatalf("reboot started %T, want a batch of three commands", cmd())
	}
	if _, ok := batch[2]().(clockMsg); !ok {
		t.Fatal("the reboot's third command is not the clock")
	}
	return batch[0], batch[1]
}

// TestRunningTimerTicks: while a reboot runs and no progress arrives, the
// clock redraws the action view every ClockEvery, so "running for" moves;
// it stops once the reboot ends.
func TestRunningTimerTicks(t *testing.T) {
	hs := newHarness(t, 3, 100, 30)
	gate := make(chan struct{})
	hs.be.rebootGate = gate
	run, wait := stepReboot(t, hs)
	done := make(chan tea.Msg, 1)
	go func() { done <- run() }()
	if !strings.Contains(hs.screen(), "running for 0s") {
		t.Fatalf("no timer:\n%s", hs.screen())
	}
	hs.now = hs.now.Add(3 * time.Second)
	_, cmd := hs.m.Update(clockMsg{})
	if cmd == nil {
		t.Fatal("the clock stopped while the reboot runs")
	}
	if !strings.Contains(hs.screen(), "running for 3s") {
		t.Errorf("the timer did not move:\n%s", hs.screen())
	}
	close(gate)
	<-done
	for msg := wait(); ; {
		_, next := hs.m.Update(msg)
		if !hs.m.act.running {
			break
		}
		msg = next()
	}
	if _, cmd := hs.m.Update(clockMsg{}); cmd != nil {
		t.Error("the clock still ticks after the reboot ended")
	}
}

func TestRebootProgressAndResult(t *testing.T) {
	hs := newHarness(t, 3, 100, 30)
	gate := make(chan struct{})
	hs.be.rebootGate = gate
	hs.be.rebootFail = map[string]string{"n03": "stalled in stage kernel for 2m0s"}
	run, wait := stepReboot(t, hs)
	go run()
	// progress arrives while the call still runs: n01 is booting, the
	// others wait
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(hs.screen(), "boot: kernel") {
		if time.Now().After(deadline) {
			t.Fatalf("no progress shown:\n%s", hs.screen())
		}
		_, wait = hs.m.Update(wait())
	}
	scr := hs.screen()
	if !strings.Contains(scr, "reboot-clean: 0/3 done") || !strings.Contains(scr, "n02        10.2.0.2:623           on    waiting") {
		t.Errorf("progress view:\n%s", scr)
	}
	// esc hides it, says how to cancel, and the nodes view shows it running
	hs.press("<esc>")
	if scr := hs.screen(); !strings.Contains(scr, "keeps running: :action shows it, ctrl+x cancels it") {
		t.Errorf("esc does not say how to cancel:\n%s", scr)
	}
	hs.press("j")
	if scr := hs.screen(); !strings.Contains(scr, "reboot-clean: 0/3 done · :action shows it · ctrl+x cancels") {
		t.Errorf("nodes view does not show the running reboot:\n%s", scr)
	}
	hs.press("R")
	if !strings.Contains(hs.screen(), "a reboot to clean state is running on n[01-03]") || hs.m.dialog != nil {
		t.Errorf("a second action while one runs:\n%s", hs.screen())
	}
	close(gate)
	for hs.m.act.running {
		if time.Now().After(deadline) {
			t.Fatal("the reboot never ended")
		}
		msg := wait()
		_, cmd := hs.m.Update(msg)
		if rm := msg.(rebootMsg); rm.done != nil {
			hs.run(cmd)
			break
		}
		wait = cmd
	}
	hs.press(":", "a", "c", "t", "i", "o", "n", "<enter>")
	scr = hs.screen()
	for _, want := range []string{
		"reboot-clean: 2 ok, 1 failed — n03: stalled in stage kernel for 2m0s",
		"n01        10.2.0.1:623           on    clean: runs g2 (11s)",
		"n03        10.2.0.3:623           on    FAILED: stalled in stage kernel for 2m0s",
	} {
		if !strings.Contains(scr, want) {
			t.Errorf("result lacks %q:\n%s", want, scr)
		}
	}
	if got := hs.be.Calls(); !slices.Contains(got, "RebootClean n[01-03] 0s") {
		t.Errorf("calls %q", got)
	}
}

func TestRebootCancel(t *testing.T) {
	hs := newHarness(t, 3, 100, 30)
	hs.be.rebootGate = make(chan struct{}) // never opens
	run, wait := stepReboot(t, hs)
	done := make(chan struct{})
	go func() { run(); close(done) }()
	_, wait = hs.m.Update(wait()) // the first progress lines
	hs.press("<ctrl+x>")
	if !strings.Contains(hs.screen(), "cancelling") {
		t.Errorf("ctrl+x not acknowledged:\n%s", hs.screen())
	}
	for {
		msg := wait()
		_, cmd := hs.m.Update(msg)
		if msg.(rebootMsg).done != nil {
			break
		}
		wait = cmd
	}
	<-done
	scr := hs.screen()
	if !strings.Contains(scr, "reboot-clean: 0 ok, 0 failed, 3 not done (cancelled)") || hs.m.act.running {
		t.Errorf("cancel outcome:\n%s", scr)
	}
	hs.press("<ctrl+x>")
	if !strings.Contains(hs.screen(), "nothing to cancel") {
		t.Errorf("second ctrl+x:\n%s", hs.screen())
	}
}

func TestSelectionFor(t *testing.T) {
	cases := []struct {
		names []string
		want  string
	}{
		{[]string{"n01"}, "n01"},
		{[]string{"n01", "n02", "n03", "n05"}, "n[01-03,05]"},
		{[]string{"n01", "gpu1", "n02", "gpu2"}, "n[01-02],gpu[1-2]"},
		{[]string{"head"}, "head"},
	}
	for _, c := range cases {
		got, err := selectionFor(c.names)
		if err != nil || got != c.want {
			t.Errorf("%v: %q, %v; want %q", c.names, got, err, c.want)
		}
	}
	if _, err := selectionFor([]string{"a,b"}); err == nil {
		t.Error("a name that is not a host list was accepted")
	}
}

func TestNodeAudit(t *testing.T) {
	n := apitype.NodeView{Name: "n02", Group: "compute"}
	at := func(i int) time.Time { return epoch.Add(time.Duration(i) * time.Minute) }
	all := []apitype.AuditEntry{
		{Time: at(0), Action: "power cycle", Target: "n[01-03]", Result: "3 ok, 0 failed"},
		{Time: at(1), Action: "power off", Target: "n[03-09]", Result: "7 ok, 0 failed"},
		{Time: at(2), Action: "edit node n02", Result: "ok"},
		{Time: at(3), Action: "edit node n20", Result: "ok"},
		{Time: at(4), Action: "power on", Target: "@compute", Result: "ok"},
		{Time: at(5), Action: "power on", Target: "@gpu", Result: "ok"},
		{Time: at(6), Action: "reboot-clean", Target: "@all", Result: "1 failed", Details: []string{"n02: node n02: BMC 10.2.0.2:623: timeout"}},
		{Time: at(7), Action: "power status", Target: "n02,n12", Result: "ok"},
		{Time: at(8), Action: "power status", Target: "n[1-9999999]", Result: "ok"},
	}
	got := nodeAudit(all, n, 10)
	var times []int
	for _, e := range got {
		times = append(times, int(e.Time.Sub(epoch).Minutes()))
	}
	if !slices.Equal(times, []int{7, 6, 4, 2, 0}) {
		t.Errorf("entries at minutes %v, want [7 6 4 2 0]", times)
	}
	if got := nodeAudit(all, n, 2); len(got) != 2 || !got[0].Time.Equal(at(7)) {
		t.Errorf("limit: %v", got)
	}
	if d := nodeDetail(all[6], "n02"); d != "BMC 10.2.0.2:623: timeout" {
		t.Errorf("detail %q", d)
	}
}

func TestDetailShowsAudit(t *testing.T) {
	hs := newHarness(t, 5, 120, 60)
	hs.be.audit = []apitype.AuditEntry{
		{Time: epoch.Add(-time.Hour), Who: "uid 0 (root)", Action: "power cycle", Target: "n[01-03]", Nodes: 3, Result: "2 ok, 1 failed", Details: []string{"n02: node n02: BMC 10.2.0.2:623: no answer within 5s"}},
		{Time: epoch.Add(-time.Minute), Who: "uid 1000 (ada)", Action: "edit node n02", Result: "ok"},
		{Time: epoch, Who: "uid 0 (root)", Action: "power off", Target: "n04", Result: "1 ok, 0 failed"},
	}
	hs.press("j", "<enter>")
	scr := hs.screen()
	for _, want := range []string{
		"bmc            10.2.0.2:623",
		"03-01 11:59:00 uid 1000 (ada): edit node n02 → ok",
		"03-01 11:00:00 uid 0 (root): power cycle n[01-03] → 2 ok, 1 failed (BMC 10.2.0.2:623: no answer within 5s)",
	} {
		if !strings.Contains(scr, want) {
			t.Errorf("detail lacks %q:\n%s", want, scr)
		}
	}
	if strings.Contains(scr, "power off n04") {
		t.Errorf("another node's entry shown:\n%s", scr)
	}
}

// TestDetailMarksUnprovenRequests: a timeline mark left by a request that
// only claimed the node (its MAC) says so; the proven marks do not.
func TestDetailMarksUnprovenRequests(t *testing.T) {
	hs := newHarness(t, 5, 120, 60)
	hs.be.mu.Lock()
	hs.be.nodes[1].State.Timeline = []apitype.StageMark{
		{Stage: apitype.StageConfig, Time: epoch.Add(-time.Hour), Unproven: true},
		{Stage: apitype.StageKernel, Time: epoch.Add(-time.Hour + 2*time.Second)},
		{Stage: apitype.StageBooted, Time: epoch.Add(-time.Hour + 11*time.Second)},
		{Stage: apitype.StageNBP, Time: epoch.Add(-time.Minute), Unproven: true},
	}
	hs.be.mu.Unlock()
	hs.press("<ctrl+r>", "j", "<enter>")
	scr := hs.screen()
	var marks []string
	markRE := regexp.MustCompile(`^\s+([a-z-]+)\s+\d\d:\d\d:\d\d\.\d{3}`)
	for _, line := range strings.Split(scr, "\n") {
		if m := markRE.FindStringSubmatch(line); m != nil {
			marks = append(marks, fmt.Sprintf("%s %v", m[1], strings.Contains(line, "(unproven request)")))
		}
	}
	if got := strings.Join(marks, ", "); got != "config true, kernel false, booted false, nbp true" {
		t.Errorf("timeline marks (stage, unproven): %s\n%s", got, scr)
	}
}
