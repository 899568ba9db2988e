package ui

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

func TestFilterSemantics(t *testing.T) {
	nodes := testCluster(20)
	cases := []struct {
		filter string
		want   string // matching names, space-separated
	}{
		{"", "n01 n02 n03 n04 n05 n06 n07 n08 n09 n10 n11 n12 n13 n14 n15 n16 n17 n18 n19 n20"},
		{"n1", "n10 n11 n12 n13 n14 n15 n16 n17 n18 n19"},
		{"N1", "n10 n11 n12 n13 n14 n15 n16 n17 n18 n19"},
		{"n[01-03],n20", "n01 n02 n03 n20"},
		{"re:^n0[1-3]$", "n01 n02 n03"},
		{"state:stalled", "n05 n12 n19"},
		{"stage:OFF", "n07 n14"},
		{"group:gpu", "n05 n10 n15 n20"},
		{"group:gpu state:booted", "n10 n15"},
		{"dirty", "n03 n10 n17"},
		{"drift", "n03 n10 n17"},
		{"!dirty group:gpu", "n05 n15 n20"},
		{"404", "n06 n13 n20"},
		{"power:off", "n07 n14"},
		{"marked", "n02"},
		{"!marked n0", "n01 n03 n04 n05 n06 n07 n08 n09"},
	}
	for _, c := range cases {
		f, err := ParseFilter(c.filter)
		if err != nil {
			t.Errorf("%q: %v", c.filter, err)
			continue
		}
		var got []string
		for i := range nodes {
			if f.Match(&nodes[i], nodes[i].Name == "n02") {
				got = append(got, nodes[i].Name)
			}
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%q matches %v, want %s", c.filter, got, c.want)
		}
	}
	bad := []struct{ filter, err string }{
		{"re:(", "filter: column 1: re: "},
		{"n0 n[3-", "filter: column 4: hostlist"},
		{"colour:red", `filter: column 1: unknown field "colour"`},
		{"!", "filter: column 1: empty term"},
		{"n[1-9999999]", "more than"},
	}
	for _, b := range bad {
		_, err := ParseFilter(b.filter)
		if err == nil || !strings.Contains(err.Error(), b.err) {
			t.Errorf("%q: error %v, want one containing %q", b.filter, err, b.err)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"n1", "re:^a", "n[01-08]", "state:booted !dirty", "group:gpu drift", "re:(", "n[1-"} {
		f.Add(s)
	}
	nodes := testCluster(8)
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			var fe *FilterError
			if !asFilterError(err, &fe) || fe.Col < 1 || fe.Col > len(s) {
				t.Fatalf("%q: error %v does not name a column in the text", s, err)
			}
			return
		}
		for i := range nodes {
			flt.Match(&nodes[i], i%2 == 0)
		}
	})
}

func asFilterError(err error, fe **FilterError) bool {
	e, ok := err.(*FilterError)
	*fe = e
	return ok
}

func TestMarksSurviveFilters(t *testing.T) {
	hs := newHarness(t, 20, 80, 24)
	hs.keys("<space>", "j", "<space>") // n01, n03
	hs.keys("/")
	hs.typeText("group:gpu")
	hs.keys("<enter>", "<space>") // n05
	if got := hs.m.nodes.marked(); !slices.Equal(got, []string{"n01", "n03", "n05"}) {
		t.Fatalf("marked %v", got)
	}
	if !strings.Contains(hs.screen(), "3 marked") || !strings.Contains(hs.screen(), "4 shown") {
		t.Errorf("title does not show the marks and the filter:\n%s", hs.screen())
	}
	hs.keys("<esc>")
	hs.be.nodes[2].State.Stage = "failed" // a live refresh keeps the marks
	hs.send(refreshTickMsg{})
	if got := hs.m.nodes.marked(); !slices.Equal(got, []string{"n01", "n03", "n05"}) {
		t.Fatalf("after clearing the filter and a refresh, marked %v", got)
	}
	hs.keys("/")
	hs.typeText("marked")
	if len(hs.m.nodes.shown) != 3 {
		t.Errorf("filter marked shows %d nodes", len(hs.m.nodes.shown))
	}
}

func TestKeysMakeCalls(t *testing.T) {
	cases := []struct {
		name string
		keys []string
		want []string
	}{
		{"detail", []string{"j", "j", "<enter>"}, []string{"Node n03", "BootEntry n03 ", "Events n03 50 false", "DiffImages compute:g1 compute:g2", "Audit 500", "SOLLog n03 15", "NodeBMC n03"}},
		{"images", []string{":", "i", "m", "<enter>"}, []string{"Images"}},
		{"refresh", []string{"<ctrl+r>"}, []string{"Nodes", "Status"}},
		{"filter and move make no calls", []string{"/", "n", "1", "<enter>", "j", "k", "G", "g", "<space>", "S", "?", "<esc>"}, nil},
		{"c without a console hook makes no calls", []string{"c"}, nil},
		{"s reads the images to pick a generation", []string{"s"}, []string{"Images"}},
		{"command completion", []string{":", "e", "v", "<tab>", "<enter>"}, []string{"FollowAudit 200"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs := newHarness(t, 20, 80, 24)
			hs.be.reset()
			for _, k := range c.keys {
				hs.send(keyMsg(k))
			}
			if got := hs.be.Calls(); !slices.Equal(got, c.want) {
				t.Errorf("calls %q, want %q", got, c.want)
			}
		})
	}
}

func TestNotYetMessages(t *testing.T) {
	for k, want := range map[string]string{"c": noSOL} {
		hs := newHarness(t, 5, 120, 40)
		hs.keys(k)
		if !strings.Contains(hs.screen(), want) {
			t.Errorf("%s: screen lacks %q", k, want)
		}
	}
}

func TestNoEditAndSerialConsoleHooks(t *testing.T) {
	hs := newHarness(t, 5, 120, 40)
	hs.m.opts.NoEdit = "editing is off here"
	hs.be.reset()
	hs.keys("e")
	if !strings.Contains(hs.screen(), "editing is off here") || len(hs.be.Calls()) != 0 {
		t.Fatalf("e with NoEdit: calls %q\n%s", hs.be.Calls(), hs.screen())
	}
	var asked string
	hs.m.opts.SerialConsole = func(node string) *exec.Cmd { asked = node; return exec.Command("true") }
	if cmd := hs.m.serialConsole("n01"); cmd == nil || asked != "n01" {
		t.Fatalf("serial console command for %q, cmd %v", asked, cmd)
	}
	hs.send(solDoneMsg{node: "n01"})
	if !strings.Contains(hs.screen(), "serial console of n01 detached") {
		t.Fatalf("after detach:\n%s", hs.screen())
	}
}

// TestLongFlashWraps: a flash wider than the screen (a serial console that
// cannot open: a Redfish BMC has none, and the text ends with what to use
// instead) wraps over the bottom of the body instead of being cut; a very
// long one is bounded; a short one keeps its line; the screen keeps its
// height, title and key lines.
func TestLongFlashWraps(t *testing.T) {
	const why = "exit status 1: console gpu01: BMC 127.0.0.2:40123: the redfish backend has no serial console; " +
		"this BMC also speaks IPMI (bmc.redfish.ipmi_sol): reach the console over IPMI serial-over-LAN with bmc.protocol: ipmi on 127.0.0.2"
	for _, tc := range []struct {
		name, err string
		rows      int    // lines the flash takes
		want      string // what the screen says, blanks squeezed
	}{
		{"short", "exit status 1", 1, "serial console of gpu01: exit status 1"},
		{"redfish", why, 4, "serial console of gpu01: " + why},
		{"bounded", strings.Repeat("very long reason ", 40), 4, "serial console of gpu01: very long reason very long reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, 5, 80, 24)
			before := strings.Split(hs.screen(), "\n")
			hs.send(solDoneMsg{node: "gpu01", err: errors.New(tc.err)})
			lines := strings.Split(hs.screen(), "\n")
			if len(lines) != 24 || lines[0] != before[0] || lines[23] != before[23] {
				t.Fatalf("%d lines, title %q, keys %q", len(lines), lines[0], lines[23])
			}
			for i, l := range lines {
				if lipgloss.Width(l) > 80 {
					t.Errorf("line %d is %d wide", i, lipgloss.Width(l))
				}
			}
			// The body above the flash is untouched.
			if keep := 22 - tc.rows; !slices.Equal(lines[:keep+1], before[:keep+1]) {
				t.Errorf("the body above the flash changed:\n%s", strings.Join(lines, "\n"))
			}
			flash := strings.Join(strings.Fields(strings.Join(lines[23-tc.rows:23], " ")), " ")
			if !strings.HasPrefix(flash, tc.want) {
				t.Errorf("flash %q, want %q", flash, tc.want)
			}
			if tc.name == "bounded" && !strings.HasSuffix(flash, "…") {
				t.Errorf("a cut flash does not say so: %q", flash)
			}
		})
	}
}

func TestQuitKeys(t *testing.T) {
	hs := newHarness(t, 5, 80, 24)
	hs.keys("<enter>", "q")
	if hs.m.quitting || hs.m.view != viewNodes {
		t.Fatalf("q in the detail view should go back, quitting=%v view=%v", hs.m.quitting, hs.m.view)
	}
	hs.keys("q")
	if !hs.m.quitting {
		t.Fatal("q at the top does not quit")
	}
	hs = newHarness(t, 5, 80, 24)
	hs.keys("/", "<ctrl+c>")
	if !hs.m.quitting {
		t.Fatal("ctrl+c while filtering does not quit")
	}
}

func TestDialogDefaultsNoAndSwallowsEarlyKeys(t *testing.T) {
	c := &Common{Width: 80, Height: 24, Styles: NewStyles(true), Keys: DefaultKeyMap()}
	now := epoch
	c.Now = func() time.Time { return now }
	cases := []struct {
		name      string
		count     int
		early     []string // typed within the guard
		late      []string
		done, yes bool
	}{
		{"enter defaults to no", 1, nil, []string{"<enter>"}, true, false},
		{"early y and enter ignored", 1, []string{"y", "<enter>"}, nil, false, false},
		{"y after the guard", 1, []string{"y"}, []string{"y"}, true, true},
		{"right then enter", 1, nil, []string{"<right>", "<enter>"}, true, true},
		{"esc", 1, nil, []string{"<esc>"}, true, false},
		{"many nodes: y is not enough", 12, nil, []string{"y", "<enter>"}, true, false},
		{"many nodes: count typed", 12, []string{"1", "2"}, []string{"1", "2", "<enter>"}, true, true},
		{"many nodes: wrong count", 12, nil, []string{"1", "3", "<enter>"}, true, false},
	}
	for _, tc := range cases {
		now = epoch
		d := NewConfirm(c, "Do it?", "body", tc.count)
		var done, yes bool
		for _, k := range tc.early {
			now = now.Add(10 * time.Millisecond)
			if done, _ = d.Update(dkey(k)); done {
				t.Errorf("%s: early key %q answered the dialog", tc.name, k)
			}
		}
		now = epoch.Add(DialogGuard)
		for _, k := range tc.late {
			if done {
				break
			}
			done, yes = d.Update(dkey(k))
		}
		if done != tc.done || yes != tc.yes {
			t.Errorf("%s: done=%v yes=%v, want %v %v", tc.name, done, yes, tc.done, tc.yes)
		}
	}
}

func dkey(s string) tea.KeyPressMsg {
	if s == "<right>" {
		return tea.KeyPressMsg{Code: tea.KeyRight}
	}
	return keyMsg(s)
}

// editWith runs the edit flow with the editor replaced by writing text.
func editWith(t *testing.T, hs *harness, edit func(string) string) {
	t.Helper()
	editWithKey(t, hs, "e", edit)
}

// editWithKey is editWith for the edit key k (e: the node, E: its group).
func editWithKey(t *testing.T, hs *harness, k string, edit func(string) string) {
	t.Helper()
	hs.keys(k)
	if hs.m.edit == nil {
		t.Fatalf("no edit session: %s", hs.m.flash)
	}
	b, err := os.ReadFile(hs.m.edit.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hs.m.edit.path, []byte(edit(string(b))), 0o600); err != nil {
		t.Fatal(err)
	}
	hs.send(editorDoneMsg{})
}

func TestEditFlow(t *testing.T) {
	t.Run("apply after confirm", func(t *testing.T) {
		hs := newHarness(t, 3, 100, 40)
		hs.be.reset()
		editWith(t, hs, func(s string) string {
			s = strings.Replace(s, "kernel_args: \n", "kernel_args: console=ttyS1 quiet\n", 1)
			return s + "#!ipxe\nchain http://10.0.0.1/{{.Node}}.ipxe\n"
		})
		if hs.m.dialog == nil {
			t.Fatalf("no confirm dialog; flash %q", hs.m.flash)
		}
		scr := hs.screen()
		for _, want := range []string{"Apply this edit to n01?", "+ node's own kernel_args: console=ttyS1 quiet", "+ chain http://10.0.0.1/n01.ipxe", "- kernel http://10.0.0.1/g2/vmlinuz"} {
			if !strings.Contains(scr, want) {
				t.Errorf("dialog lacks %q:\n%s", want, scr)
			}
		}
		hs.keys("y", "<enter>") // in flight: swallowed
		if hs.m.dialog == nil {
			t.Fatal("keys typed right after the dialog opened answered it")
		}
		hs.now = hs.now.Add(time.Second)
		hs.keys("y")
		want := []string{"Status", "Node n01", "BootEntry n01 ipxe", "PreviewEdit n01 group= ipxe set=[boot_override.ipxe kernel_args] unset=[]",
			"EditNode n01 base=rev0007 set=[boot_override.ipxe kernel_args] unset=[]"}
		if got := hs.be.Calls(); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			t.Errorf("calls %q, want %q first", got, want)
		}
		if hs.be.nodes[0].KernelArgs != "console=ttyS1 quiet" || !strings.Contains(hs.screen(), "applied to n01: inventory revision rev0008") {
			t.Errorf("not applied: %+v\n%s", hs.be.nodes[0], hs.screen())
		}
	})
	t.Run("default no changes nothing", func(t *testing.T) {
		hs := newHarness(t, 3, 100, 40)
		editWith(t, hs, func(s string) string { return strings.Replace(s, "kernel_args: \n", "kernel_args: x=1\n", 1) })
		path := hs.m.edit.path
		hs.now = hs.now.Add(time.Second)
		hs.keys("<enter>")
		if hs.be.rev != 7 || hs.be.nodes[0].KernelArgs != "console=ttyS0" {
			t.Errorf("enter on the default button changed the node")
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("edit file left behind: %v", err)
		}
		if !strings.Contains(hs.screen(), "edit discarded; nothing changed") {
			t.Errorf("no outcome shown:\n%s", hs.screen())
		}
	})
	t.Run("invalid override refused", func(t *testing.T) {
		hs := newHarness(t, 3, 100, 40)
		hs.be.reset()
		editWith(t, hs, func(s string) string { return s + "#!ipxe\n{{ .Broken\n" })
		if hs.m.dialog != nil {
			t.Fatal("an invalid override opened the confirm dialog")
		}
		if !strings.Contains(hs.screen(), "edit refused: boot_override.ipxe: template: 2:1: unclosed action; nothing changed") {
			t.Errorf("error not shown:\n%s", hs.screen())
		}
		for _, c := range hs.be.Calls() {
			if strings.HasPrefix(c, "EditNode") {
				t.Errorf("invalid edit applied: %q", c)
			}
		}
	})
	t.Run("syntax error names the line", func(t *testing.T) {
		hs := newHarness(t, 3, 120, 40)
		editWith(t, hs, func(s string) string { return strings.Replace(s, "kernel_args: \n", "kernel_args: a\nbogus\n", 1) })
		if !strings.Contains(hs.screen(), `: line 10: "bogus"`) {
			t.Errorf("error not shown:\n%s", hs.screen())
		}
	})
	t.Run("conflict refused", func(t *testing.T) {
		hs := newHarness(t, 3, 120, 40)
		editWith(t, hs, func(s string) string { return strings.Replace(s, "kernel_args: \n", "kernel_args: -\n", 1) })
		hs.be.rev++ // someone else edited the inventory meanwhile
		hs.now = hs.now.Add(time.Second)
		hs.keys("y")
		if hs.be.nodes[0].KernelArgs != "console=ttyS0" || !strings.Contains(hs.screen(), "edit failed: conflict") {
			t.Errorf("stale edit not refused:\n%s", hs.screen())
		}
	})
}

func FuzzParseEditFile(f *testing.F) {
	f.Add(editFile(apitype.NodeView{Name: "n1", Loader: "ipxe"}, "r1"))
	f.Add(groupEditFile(apitype.GroupView{Name: "g", Nodes: []string{"n1", "n2"}, IPXE: "#!ipxe\nexit\n"}, apitype.NodeView{Name: "n1", Loader: "ipxe"}, "r1"))
	f.Add("kernel_args: a b\n--- boot_override.pxelinux\nDEFAULT x\n")
	f.Add("kernel_args: -\nkernel_args: x\n")
	f.Add("--- boot_override.efi\n")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseEditFile(s)
		if err != nil {
			if !strings.Contains(err.Error(), "line ") && !strings.Contains(err.Error(), "missing") {
				t.Fatalf("error without a place: %v", err)
			}
			return
		}
		if p.format != "ipxe" && p.format != "pxelinux" {
			t.Fatalf("format %q accepted", p.format)
		}
		if p.kernelArgs != nil && strings.ContainsAny(*p.kernelArgs, "\n\r\x00") {
			t.Fatalf("kernel args with control characters: %q", *p.kernelArgs)
		}
	})
}

func TestDisconnectedRetrying(t *testing.T) {
	hs := newHarness(t, 3, 80, 24)
	hs.be.down = true
	hs.be.reset()
	_, cmd := hs.m.Update(refreshTickMsg{})
	msg := cmd()
	_, retry := hs.m.Update(msg)
	if !strings.Contains(hs.screen(), "disconnected, retrying") || retry == nil {
		t.Fatalf("no disconnected status or no retry:\n%s", hs.screen())
	}
	hs.be.down = false
	hs.run(retry) // the backoff tick, then the reconnect
	if strings.Contains(hs.screen(), "disconnected") {
		t.Errorf("still disconnected after the daemon came back:\n%s", hs.screen())
	}
	if got := hs.be.Calls(); !slices.Contains(got, "Status") || !slices.Contains(got[1:], "Nodes") {
		t.Errorf("reconnect calls %q", got)
	}
}

func TestDetailShowsCapturedConsole(t *testing.T) {
	hs := newHarness(t, 20, 120, 40)
	hs.be.mu.Lock()
	hs.be.console = map[string][]string{"n03": {"netbootui: fetching rootfs", "netbootui: FAILED: no DHCP lease on eth0"}}
	hs.be.mu.Unlock()
	hs.keys("j", "j", "<enter>")
	for range 30 { // scroll until the section is on screen
		if strings.Contains(hs.screen(), "FAILED: no DHCP lease") {
			return
		}
		hs.keys("j")
	}
	t.Fatalf("captured console not shown:\n%s", hs.screen())
}
