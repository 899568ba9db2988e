package ui

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// TestGroupEditFlow: E on a node edits its group's kernel args through the
// same validate → diff and rendered entry → Confirm (default No) → apply
// with the revision read before editing path as e.
func TestGroupEditFlow(t *testing.T) {
	setArgs := func(v string) func(string) string {
		// the line holds the group's arguments now: it is replaced whole
		return func(s string) string {
			return regexp.MustCompile(`(?m)^kernel_args:.*$`).ReplaceAllLiteralString(s, "kernel_args: "+v)
		}
	}
	t.Run("apply after confirm", func(t *testing.T) {
		hs := newHarness(t, 20, 100, 40)
		hs.keys("j", "j", "j", "j") // n05, in group gpu (n05 n10 n15 n20)
		hs.be.reset()
		editWithKey(t, hs, "E", setArgs("console=ttyS0 nomodeset"))
		if hs.m.dialog == nil {
			t.Fatalf("no confirm dialog; flash %q", hs.m.flash)
		}
		scr := hs.screen()
		checkGolden(t, "group-edit-dialog-100x40", scr)
		for _, want := range []string{"Apply this edit to group gpu (4 nodes, at their next boot)?",
			"- group gpu's kernel_args: console=ttyS0", "+ group gpu's kernel_args: console=ttyS0 nomodeset",
			"+ kernel http://10.0.0.1/g2/vmlinuz console=ttyS0 nomodeset", "[ No ]"} {
			if !strings.Contains(scr, want) {
				t.Errorf("dialog lacks %q:\n%s", want, scr)
			}
		}
		hs.now = hs.now.Add(time.Second)
		hs.keys("y")
		want := []string{"Status", "Node n05", "Group gpu", "BootEntry n05 ipxe",
			"PreviewEdit n05 group=gpu ipxe set=[kernel_args] unset=[]",
			"EditGroup gpu base=rev0007 set=[kernel_args] unset=[]"}
		if got := hs.be.Calls(); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			t.Errorf("calls %q, want %q first", got, want)
		}
		for _, n := range hs.be.nodes {
			if got, wantArgs := n.KernelArgs, map[bool]string{true: "console=ttyS0 nomodeset", false: "console=ttyS0"}[n.Group == "gpu"]; got != wantArgs {
				t.Errorf("%s (%s) kernel args %q, want %q", n.Name, n.Group, got, wantArgs)
			}
		}
		if !strings.Contains(hs.screen(), "applied to group gpu: inventory revision rev0008") {
			t.Errorf("outcome not shown:\n%s", hs.screen())
		}
	})
	t.Run("the edit file says what it edits", func(t *testing.T) {
		hs := newHarness(t, 20, 100, 40)
		hs.keys("j", "j", "j", "j")
		hs.keys("E")
		if hs.m.edit == nil {
			t.Fatalf("no edit session: %s", hs.m.flash)
		}
		b, err := os.ReadFile(hs.m.edit.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"# netbootui: group gpu (inventory revision rev0007, nodes.yaml:3:3)",
			"# 4 nodes: n[05,10,15,20]. The result is shown rendered for n05.", "#   console=ttyS0\n", "kernel_args: console=ttyS0\n", "--- boot_override.ipxe\n"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("edit file lacks %q:\n%s", want, b)
			}
		}
		if _, err := parseEditFile(string(b)); err != nil {
			t.Errorf("the untouched group file does not parse: %v", err)
		}
	})
	t.Run("default no changes nothing", func(t *testing.T) {
		hs := newHarness(t, 20, 100, 40)
		editWithKey(t, hs, "E", setArgs("quiet"))
		hs.now = hs.now.Add(time.Second)
		hs.keys("<enter>")
		if hs.be.rev != 7 || hs.be.nodes[0].KernelArgs != "console=ttyS0" {
			t.Errorf("enter on the default button changed the group")
		}
		if !strings.Contains(hs.screen(), "edit discarded; nothing changed") {
			t.Errorf("no outcome shown:\n%s", hs.screen())
		}
	})
	t.Run("more than 8 nodes asks for the count", func(t *testing.T) {
		hs := newHarness(t, 20, 100, 40) // n01 is in compute: 16 nodes
		editWithKey(t, hs, "E", setArgs("quiet"))
		hs.now = hs.now.Add(time.Second)
		hs.keys("y")
		if hs.m.dialog == nil || hs.be.rev != 7 {
			t.Fatal("y answered a dialog that asks for the count")
		}
		hs.typeText("16")
		hs.keys("<enter>")
		if hs.be.rev != 8 || hs.be.nodes[0].KernelArgs != "quiet" {
			t.Errorf("typed count did not apply: rev %d, n01 %q\n%s", hs.be.rev, hs.be.nodes[0].KernelArgs, hs.screen())
		}
	})
	t.Run("invalid kernel args refused with the place", func(t *testing.T) {
		hs := newHarness(t, 20, 120, 40)
		hs.be.reset()
		editWithKey(t, hs, "E", setArgs(`root="x`))
		if hs.m.dialog != nil {
			t.Fatal("an invalid edit opened the confirm dialog")
		}
		if !strings.Contains(hs.screen(), "edit refused: nodes.yaml:4:30: kernel_args: unbalanced quote; nothing changed") {
			t.Errorf("error not shown:\n%s", hs.screen())
		}
		for _, c := range hs.be.Calls() {
			if strings.HasPrefix(c, "EditGroup") {
				t.Errorf("invalid edit applied: %q", c)
			}
		}
	})
	t.Run("conflict refused", func(t *testing.T) {
		hs := newHarness(t, 20, 120, 40)
		hs.keys("j", "j", "j", "j")
		editWithKey(t, hs, "E", setArgs("-"))
		hs.be.rev++ // someone else edited the inventory meanwhile
		hs.now = hs.now.Add(time.Second)
		hs.keys("y")
		if hs.be.nodes[4].KernelArgs != "console=ttyS0" || !strings.Contains(hs.screen(), "edit failed: conflict") {
			t.Errorf("stale edit not refused:\n%s", hs.screen())
		}
	})
	t.Run("from the detail view", func(t *testing.T) {
		hs := newHarness(t, 20, 100, 40)
		hs.keys("j", "j", "j", "j", "<enter>")
		hs.be.reset()
		editWithKey(t, hs, "E", setArgs("quiet"))
		if got := hs.be.Calls(); len(got) < 3 || got[2] != "Group gpu" {
			t.Errorf("calls %q: want the detail node's group read", got)
		}
	})
}

// TestConfirmWrapsLongLines: a kernel command line longer than the dialog
// wraps (continuations indented) instead of losing its end.
func TestConfirmWrapsLongLines(t *testing.T) {
	c := &Common{Width: 60, Height: 24, Styles: NewStyles(true), Keys: DefaultKeyMap(), Now: func() time.Time { return epoch }}
	long := "+ kernel http://10.0.0.1/images/compute/0123456789abcdef/vmlinuz root=live:http://10.0.0.1/images/compute/0123456789abcdef/rootfs.squashfs console=ttyS0 nomodeset loglevel=7"
	scr := ansi.Strip(NewConfirm(c, "Apply?", "Changes:\n"+long+"\n", 0).View())
	if !strings.Contains(scr, "nomodeset loglevel=7") {
		t.Errorf("the end of the long line is lost:\n%s", scr)
	}
	for _, l := range strings.Split(scr, "\n") {
		if w := len([]rune(l)); w > 60 {
			t.Errorf("line of %d cells, wider than the terminal: %q", w, l)
		}
	}
	if !regexp.MustCompile(`(?m)^│ {3}\S`).MatchString(scr) {
		t.Errorf("no indented continuation:\n%s", scr)
	}
}

// TestGroupEditWithoutGroup: E on a node in no group says so and opens no
// editor.
func TestGroupEditWithoutGroup(t *testing.T) {
	hs := newHarness(t, 3, 100, 30)
	hs.be.nodes[0].Group = ""
	hs.keys("E")
	if hs.m.edit != nil {
		t.Fatal("an edit session started for a node in no group")
	}
	if !strings.Contains(hs.screen(), "edit: node n01 is in no group (e edits its own entry)") {
		t.Errorf("no explanation:\n%s", hs.screen())
	}
}

// TestDetailKeysActOnItsNode: in the detail view, c attaches to the
// detail's node and E edits its group, whatever the list's cursor.
func TestDetailKeysActOnItsNode(t *testing.T) {
	hs := newHarness(t, 20, 120, 40)
	hs.m.opts.NoEdit = "editing is off here" // the SSH console: E says so too
	var asked string
	hs.m.opts.SerialConsole = func(node string) *exec.Cmd { asked = node; return exec.Command("true") }
	hs.keys("j", "j", "<enter>")
	_, cmd := hs.m.Update(keyMsg("c"))
	if cmd == nil || asked != "n03" {
		t.Errorf("c in n03's detail attached to %q (cmd %v)", asked, cmd)
	}
	hs.be.reset()
	hs.keys("E")
	if !strings.Contains(hs.screen(), "editing is off here") || len(hs.be.Calls()) != 0 {
		t.Errorf("E with NoEdit: calls %q\n%s", hs.be.Calls(), hs.screen())
	}
}
