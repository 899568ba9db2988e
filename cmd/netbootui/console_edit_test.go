package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/lab"
)

// TestConsoleNodeEditInTmux drives e at 80x24 (NO_COLOR) with $EDITOR a script that
// sets the kernel_args line and keeps a copy of every file it is given:
// the file shows the node's own arguments on the kernel_args line and the
// group's as inherited; the confirmation scrolls through the whole change;
// another node edited meanwhile is no conflict, the same node edited
// meanwhile is, and the admin's text comes back in the editor with why
// (applied on the second save); a refused edit reopens the editor with the
// admin's line kept and the daemon's reason.
func TestConsoleNodeEditInTmux(t *testing.T) {
	lab.RequireTools(t, "tmux")
	p, inv, dir, cl := serveWithGeneration(t, consoleInventory)
	defer p.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// n03 gets arguments of its own (out of its range entry)
	if _, err := cl.EditNode(ctx, "n03", apitype.Edit{Set: map[string]any{"kernel_args": "quiet"}}); err != nil {
		t.Fatal(err)
	}
	editor := filepath.Join(dir, "editor.sh")
	args, seen := filepath.Join(dir, "args"), filepath.Join(dir, "seen")
	os.WriteFile(editor, []byte("#!/bin/sh\nset -e\ncat \"$1\" >> "+seen+"\necho =====END===== >> "+seen+
		"\nsed -i \"s|^kernel_args:.*\\$|kernel_args: $(cat "+args+")|\" \"$1\"\n"), 0o755)
	os.WriteFile(args, []byte("quiet loglevel=7"), 0o644)
	seenFiles := func() []string {
		b, _ := os.ReadFile(seen)
		return strings.Split(strings.TrimSuffix(string(b), "=====END=====\n"), "=====END=====\n")
	}
	ownArgs := func(node string) string {
		t.Helper()
		v, err := cl.Node(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		return v.OwnKernelArgs
	}

	c := startConsole(t, p.socket, "TERM=xterm-256color", "NO_COLOR=1", "VISUAL=", "EDITOR="+editor)
	c.waitFor("start", regexp.MustCompile(`20 nodes · 0 marked`))
	c.keys("/", "n", "0", "3", "Enter")
	c.waitFor("filter", regexp.MustCompile(`1 shown · 0 marked`))
	c.keys("e")
	s := c.waitFor("dialog", regexp.MustCompile(`Apply this edit to n03\?`))
	files := seenFiles()
	if len(files) != 1 || !strings.Contains(files[0], "\nkernel_args: quiet\n") ||
		!regexp.MustCompile(`# Inherited from group compute .*\n#   console=ttyS0\n`).MatchString(files[0]) {
		t.Fatalf("the edit file does not show n03's own and inherited arguments:\n%s", files)
	}
	// 80x24: the change does not fit; the dialog says which lines it shows and scrolls
	if !strings.Contains(s, "- node's own kernel_args: quiet") || !regexp.MustCompile(`lines 1-\d+ of \d+ · j/k`).MatchString(s) {
		t.Errorf("the dialog at 80x24:\n%s", s)
	}
	time.Sleep(300 * time.Millisecond)
	c.keys("PageDown", "PageDown", "PageDown")
	where := regexp.MustCompile(`lines \d+-(\d+) of (\d+) · j/k`)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		s = c.capture(false)
		if m := where.FindStringSubmatch(s); m != nil && m[1] == m[2] {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("pgdn did not scroll to the end of the change:\n%s", s)
		}
	}
	if !strings.Contains(s, "quiet loglevel=7 || goto failed") {
		t.Errorf("the end of the change lacks the new kernel line:\n%s", s)
	}

	// another node changes meanwhile: not a conflict
	if _, err := cl.EditNode(ctx, "n05", apitype.Edit{Set: map[string]any{"kernel_args": "n05=own"}}); err != nil {
		t.Fatal(err)
	}
	c.keys("y")
	c.waitFor("applied", regexp.MustCompile(`applied to n03: inventory revision\s+\w+`))
	if got := ownArgs("n03"); got != "quiet loglevel=7" {
		t.Fatalf("n03's own arguments after the edit: %q", got)
	}

	// n03 itself changes meanwhile: a conflict; the admin's text comes back
	// in the editor, and saving it again applies it
	os.WriteFile(args, []byte("quiet loglevel=3"), 0o644)
	c.keys("e")
	c.waitFor("dialog", regexp.MustCompile(`Apply this edit to n03\?`))
	if _, err := cl.EditNode(ctx, "n03", apitype.Edit{Set: map[string]any{"kernel_args": "quiet debug"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	c.keys("y")
	for end := time.Now().Add(20 * time.Second); !regexp.MustCompile(`Apply this edit to n03\?(?s:.*)- node's own kernel_args: quiet debug`).MatchString(c.capture(false)); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no dialog after the conflict:\n%s\nfiles the editor saw:\n%s", c.capture(false), strings.Join(seenFiles(), "\n=====\n"))
		}
	}
	files = seenFiles()
	if last := files[len(files)-1]; len(files) != 3 || !strings.Contains(last, "# !! n03 changed since you opened it") ||
		!strings.Contains(last, "\nkernel_args: quiet loglevel=3\n") {
		t.Fatalf("the conflict did not bring the admin's text back:\n%s", last)
	}
	time.Sleep(300 * time.Millisecond)
	c.keys("y")
	c.waitFor("applied after the conflict", regexp.MustCompile(`applied to n03: inventory revision\s+\w+`))
	if got := ownArgs("n03"); got != "quiet loglevel=3" {
		t.Fatalf("n03's own arguments after the second save: %q", got)
	}

	// a refused argument: the editor comes back with the line as typed and why
	os.WriteFile(args, []byte("netbootui.token=forged"), 0o644)
	before, _ := os.ReadFile(inv)
	c.keys("e")
	c.waitFor("refused", regexp.MustCompile(`edit refused: .*netbootui\.token=forged`))
	for end := time.Now().Add(20 * time.Second); len(seenFiles()) < 5; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the editor was not reopened after the refusal: %d files", len(seenFiles()))
		}
	}
	files = seenFiles()
	if last := files[len(files)-1]; !strings.Contains(last, "# !! the daemon refused this edit") ||
		!strings.Contains(last, "\nkernel_args: netbootui.token=forged\n") {
		t.Fatalf("the refused edit did not come back with the admin's text:\n%s", last)
	}
	if after, _ := os.ReadFile(inv); string(after) != string(before) {
		t.Errorf("a refused edit changed the inventory:\n%s", after)
	}
	c.keys("C-c")
}
