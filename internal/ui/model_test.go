package ui

import (
	"flag"
	"github.com/netbootui/netbootui/internal/golden"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/netbootui/netbootui/internal/apitype"
)

var updateGolden = flag.Bool("update-ui", false, "rewrite the golden screens of internal/ui")

// harness drives a Model synchronously: every command is run and its
// message fed back, the way the program would, with a fake clock.
type harness struct {
	t   *testing.T
	m   *Model
	be  *fakeBackend
	now time.Time
}

func newHarness(t *testing.T, n int, w, h int) *harness {
	t.Helper()
	hs := &harness{t: t, be: &fakeBackend{nodes: testCluster(n), rev: 7, images: testImages()}, now: epoch}
	hs.m = New(hs.be, Options{Dark: true, Now: func() time.Time { return hs.now }, NoStream: true, TempDir: t.TempDir(), ClockEvery: time.Millisecond})
	t.Cleanup(hs.m.Close)
	hs.send(tea.WindowSizeMsg{Width: w, Height: h})
	hs.run(hs.m.Init())
	return hs
}

func (hs *harness) send(msg tea.Msg) {
	_, cmd := hs.m.Update(msg)
	hs.run(cmd)
}

// run executes cmd and feeds back what it returns (batches included).
// Ticks are run too: they are short.
func (hs *harness) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	msg := cmd()
	switch msg := msg.(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			hs.run(c)
		}
	case tea.QuitMsg:
	default:
		if reflect.TypeOf(msg).PkgPath() != reflect.TypeOf(hs.m).Elem().PkgPath() {
			return // the program's own messages (background colour, exec)
		}
		hs.send(msg)
	}
}

// keys sends each key; named keys are written <enter>, <esc>, <space>,
// <tab>, <bs>, <ctrl+c>, <down>, <up>.
func (hs *harness) keys(seq ...string) {
	for _, s := range seq {
		hs.send(keyMsg(s))
	}
}

func (hs *harness) typeText(s string) {
	for _, r := range s {
		if r == ' ' {
			hs.send(keyMsg("<space>"))
			continue
		}
		hs.send(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

func keyMsg(s string) tea.KeyPressMsg {
	switch s {
	case "<enter>":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "<esc>":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "<space>":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "<tab>":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "<bs>":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "<ctrl+c>", "<ctrl+r>", "<ctrl+a>", "<ctrl+u>", "<ctrl+x>":
		return tea.KeyPressMsg{Code: rune(s[6]), Mod: tea.ModCtrl}
	case "<down>":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "<up>":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "<right>":
		return tea.KeyPressMsg{Code: tea.KeyRight}
	}
	r := []rune(s)
	return tea.KeyPressMsg{Code: r[0], Text: s}
}

func (hs *harness) screen() string {
	return ansi.Strip(hs.m.Render())
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", "golden", name+".txt"), got, *updateGolden, "go test ./internal/ui -update-ui")
}

// checkSize asserts the screen is exactly h lines of at most w cells.
func checkSize(t *testing.T, screen string, w, h int) {
	t.Helper()
	lines := strings.Split(screen, "\n")
	if len(lines) != h {
		t.Errorf("screen has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if cw := ansi.StringWidth(l); cw > w {
			t.Errorf("line %d is %d cells wide, more than %d: %q", i+1, cw, w, l)
		}
	}
}

func TestGoldenScreens(t *testing.T) {
	sizes := []struct{ w, h int }{{80, 24}, {120, 40}}
	flows := []struct {
		name string
		do   func(hs *harness)
	}{
		{"nodes", func(hs *harness) {}},
		{"filter-marks", func(hs *harness) {
			hs.keys("<space>", "<space>")
			hs.keys("/")
			hs.typeText("state:booted")
			hs.keys("<enter>")
		}},
		{"sorted-stage", func(hs *harness) { hs.keys("S", "j", "j") }},
		{"detail", func(hs *harness) { hs.keys("j", "<enter>") }},
		{"help", func(hs *harness) { hs.keys("?") }},
		{"command", func(hs *harness) { hs.keys(":"); hs.typeText("ev") }},
		{"events", func(hs *harness) {
			hs.keys(":")
			hs.typeText("events")
			hs.keys("<enter>")
		}},
		{"images", func(hs *harness) { hs.keys(":"); hs.typeText("images"); hs.keys("<enter>") }},
		{"not-yet", func(hs *harness) { hs.keys("c") }},
		{"images-build", func(hs *harness) {
			hs.keys(":")
			hs.typeText("images")
			hs.keys("<enter>")
			hs.m.Update(keyMsg("b")) // the call is not run: progress is fed below
			hs.now = hs.now.Add(12 * time.Second)
			hs.m.Update(buildMsg{id: hs.m.images.build.id, progress: []apitype.BuildProgress{
				{Image: "compute", Step: "rootfs", Percent: 10, Line: "unpacking busybox rootfs"},
				{Image: "compute", Line: "adding /etc/hostname"},
				{Image: "compute", Step: "squashfs", Percent: 45, Line: "mksquashfs: 412 files, 38% done"},
			}})
		}},
		{"stage-preview", func(hs *harness) { hs.press("<space>", "<space>", "<space>", "s", "<enter>") }},
		{"stage-rollout", func(hs *harness) {
			hs.be.stageFail = map[string]string{"n03": "n03: no check-in with g3 within 10m0s"}
			hs.press("<space>", "<space>", "<space>", "<space>", "j", "<space>", "s", "<enter>", "<enter>", "<wait>", "y")
		}},
		{"dialog", func(hs *harness) {
			hs.m.dialog = NewConfirm(hs.m.c, "Reboot 12 nodes to a clean state?", "n01 n02 n03 …", 12)
		}},
		{"power-menu", func(hs *harness) { hs.press("<space>", "<space>", "<space>", "p") }},
		{"power-dialog", func(hs *harness) { hs.press("<space>", "<space>", "<space>", "p", "c") }},
		{"power-results", func(hs *harness) {
			hs.be.powerFail = map[string]string{"n07": "BMC 10.2.0.7:623: no answer within 5s"}
			hs.be.nodes[1].BMC = ""
			hs.send(refreshTickMsg{})
			hs.press("/", "n", "0", "<enter>", "<ctrl+a>", "<esc>", "p", "c", "<wait>")
			hs.press(strings.Split("9", "")...)
			hs.press("<enter>")
		}},
		{"reboot-dialog", func(hs *harness) { hs.press("<ctrl+a>", "R") }},
		{"reboot-progress", func(hs *harness) {
			hs.press("<space>", "<space>", "<space>", "R", "<wait>")
			hs.m.Update(keyMsg("y")) // the call is not run: progress is fed below
			hs.now = hs.now.Add(42 * time.Second)
			hs.m.Update(rebootMsg{id: hs.m.act.id, progress: []apitype.RebootProgress{
				{Node: "n01", Step: apitype.StepClean, Generation: "g2", Time: hs.now.Add(-2 * time.Second)},
				{Node: "n02", Step: apitype.StepBoot, Stage: apitype.StageRootfs, Generation: "g2"},
				{Node: "n03", Step: apitype.StepCycle},
			}})
		}},
		{"reboot-results", func(hs *harness) {
			hs.be.rebootFail = map[string]string{"n02": "stalled in stage kernel for 2m0s"}
			hs.press("<space>", "<space>", "<space>", "R", "<wait>", "y")
		}},
	}
	for _, sz := range sizes {
		for _, f := range flows {
			name := f.name + "-" + itoa(sz.w) + "x" + itoa(sz.h)
			t.Run(name, func(t *testing.T) {
				hs := newHarness(t, 20, sz.w, sz.h)
				hs.be.events = []apitype.Event{
					{Seq: 1, Time: epoch.Add(-time.Minute), Node: "n02", Kind: apitype.KindFetch, Stage: "kernel", Proto: "http", Path: "/g2/vmlinuz"},
					{Seq: 2, Time: epoch.Add(-30 * time.Second), Node: "n02", Kind: apitype.KindCheckin, Generation: "g2"},
					{Seq: 3, Time: epoch.Add(-10 * time.Second), Kind: apitype.KindUnknown, MAC: "52:54:00:aa:bb:cc", Remote: "127.0.0.1:4000"},
				}
				hs.m.events.add(hs.be.events)
				hs.be.audit = []apitype.AuditEntry{
					{Time: epoch.Add(-time.Hour), Who: "uid 0 (root)", Action: "power cycle", Target: "n[01-03]", Nodes: 3, Result: "2 ok, 1 failed", Details: []string{"n02: node n02: BMC 10.2.0.2:623: no answer within 5s"}},
					{Time: epoch.Add(-time.Minute), Who: "uid 1000 (ada)", Action: "edit node n02", Result: "ok"},
				}
				f.do(hs)
				s := hs.screen()
				checkSize(t, s, sz.w, sz.h)
				checkGolden(t, name, s)
			})
		}
	}
}

func itoa(i int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(i)) }

func fmtInt(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for i > 0 {
		s = string(rune('0'+i%10)) + s
		i /= 10
	}
	return s
}
