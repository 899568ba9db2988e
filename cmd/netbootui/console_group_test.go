package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/lab"
)

// TestConsoleGroupEditInTmux edits group gpu's kernel arguments from the
// real console against a real daemon, with $EDITOR a script that changes
// the file: E on gpu2, the diff and rendered entry in a dialog that
// defaults to No (esc changes nothing), E again and y applies it; `netbootui
// boot show` renders the new arguments for every gpu node and not for the
// others, and a broken edit is refused with its place.
func TestConsoleGroupEditInTmux(t *testing.T) {
	lab.RequireTools(t, "tmux")
	p, inv, dir, _ := serveWithGeneration(t, consoleInventory)
	defer p.stop(t)
	bootShow := func(node string) string {
		t.Helper()
		out, errOut, code := runCLI(t, "boot", "show", node, "--api-socket", p.socket)
		if code != 0 {
			t.Fatalf("boot show %s: %d %s", node, code, errOut)
		}
		return out
	}
	kernelLine := regexp.MustCompile(`(?m)^kernel .*$`)
	if l := kernelLine.FindString(bootShow("gpu3")); !strings.Contains(l, " nomodeset ||") {
		t.Fatalf("gpu3's entry before the edit: %q", l)
	}

	// $EDITOR: a script that sets the kernel_args line of the file it is given
	editor := filepath.Join(dir, "editor.sh")
	args := filepath.Join(dir, "args")
	os.WriteFile(editor, []byte("#!/bin/sh\nset -e\nsed -i \"s|^kernel_args:.*\\$|kernel_args: $(cat "+args+")|\" \"$1\"\n"), 0o755)
	os.WriteFile(args, []byte("nomodeset loglevel=7"), 0o644)

	c := startConsole(t, p.socket, "TERM=xterm-256color", "VISUAL=", "EDITOR="+editor)
	c.waitFor("start", regexp.MustCompile(`20 nodes · 0 marked`))
	c.tmux("resize-window", "-t", "ui", "-x", "120", "-y", "45") // the dialog shows the whole entry
	c.waitFor("resized", regexp.MustCompile(`(?m)^netbootui nodes .{60,}rev `))
	c.keys("/", "g", "p", "u", "2", "Enter")
	c.waitFor("filter", regexp.MustCompile(`1 shown · 0 marked`))
	c.keys("E")
	s := c.waitFor("dialog", regexp.MustCompile(`Apply this edit to group gpu \(4 nodes, at their next boot\)\?`))
	for _, want := range []string{"- group gpu's kernel_args: nomodeset", "+ group gpu's kernel_args: nomodeset loglevel=7",
		"Rendered ipxe entry of gpu2 (- now, + after the edit):", "[ No ]"} {
		if !strings.Contains(s, want) {
			t.Errorf("dialog lacks %q:\n%s", want, s)
		}
	}
	if !regexp.MustCompile(`(?m)^\s*│ \+ kernel `).MatchString(s) || strings.Count(s, "loglevel=7") < 2 {
		t.Errorf("the diff of the entry lacks the new kernel line (wrapped):\n%s", s)
	}
	time.Sleep(300 * time.Millisecond)
	c.keys("Enter") // the default: No
	c.waitFor("discarded", regexp.MustCompile(`edit discarded; nothing changed`))
	if l := kernelLine.FindString(bootShow("gpu2")); strings.Contains(l, "loglevel") {
		t.Fatalf("No changed the entry: %q", l)
	}

	c.keys("E")
	c.waitFor("dialog again", regexp.MustCompile(`Apply this edit to group gpu`))
	time.Sleep(300 * time.Millisecond)
	c.keys("y")
	c.waitFor("applied", regexp.MustCompile(`applied to group gpu: inventory revision\s+\w+`))
	for _, n := range []string{"gpu1", "gpu2", "gpu3", "gpu4"} {
		if l := kernelLine.FindString(bootShow(n)); !strings.Contains(l, " nomodeset loglevel=7 ||") {
			t.Errorf("%s after the group edit: %q", n, l)
		}
	}
	if l := kernelLine.FindString(bootShow("n01")); strings.Contains(l, "loglevel") || !strings.Contains(l, " console=ttyS0 ||") {
		t.Errorf("n01 (group compute) changed: %q", l)
	}
	if b, _ := os.ReadFile(inv); !strings.Contains(string(b), "gpu: {image: compute, kernel_args: nomodeset loglevel=7}") {
		t.Errorf("inventory file:\n%s", b)
	}

	// the events view has the audit entry of the edit
	c.keys(":", "e", "v", "e", "n", "t", "s", "Enter")
	c.waitFor("audit in events", regexp.MustCompile(`(?m)^\S+ +- +audit +\S.*: edit group gpu kernel_args → ok: revision \w+`))
	c.keys("Escape")
	c.waitFor("back to the nodes", regexp.MustCompile(`netbootui nodes`))

	// an argument the renderer refuses: the error and its place, nothing changed
	os.WriteFile(args, []byte("netbootui.token=forged"), 0o644)
	before, _ := os.ReadFile(inv)
	c.keys("E")
	c.waitFor("refused", regexp.MustCompile(`edit refused: group gpu: kernel_args: argument "netbootui\.token=forged"`))
	if after, _ := os.ReadFile(inv); string(after) != string(before) {
		t.Errorf("a refused edit changed the inventory:\n%s", after)
	}
	c.keys("C-c")
}

// TestConsoleReconnectsInTmux stops the daemon under a running console: it
// says "disconnected, retrying", and when a daemon is back on the socket it
// recovers by itself, event stream included (a boot fetch made to the new
// daemon shows up live).
func TestConsoleReconnectsInTmux(t *testing.T) {
	lab.RequireTools(t, "tmux")
	p, inv, dir := serveInventory(t, consoleInventory)
	c := startConsole(t, p.socket, "TERM=xterm-256color")
	c.waitFor("start", regexp.MustCompile(`20 nodes · 0 marked`))
	// an event before the restart, which the new daemon's backlog sends again
	if resp, err := http.Get(bootScriptURL(t, apiclient.New(p.socket), "n05")); err == nil {
		resp.Body.Close()
	}
	p.stop(t)
	c.waitFor("disconnected", regexp.MustCompile(`disconnected, retrying`))
	p = startServe(t, inv, dir) // same data folder: same socket
	defer p.stop(t)
	script := bootScriptURL(t, apiclient.New(p.socket), "n05")
	// the console's backoff is at most 5 s
	deadline := time.Now().Add(20 * time.Second)
	for strings.Contains(c.capture(false), "disconnected") {
		if time.Now().After(deadline) {
			t.Fatalf("the console did not recover:\n%s", c.capture(false))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// recovered, stream included: a fetch made now shows up live
	time.Sleep(300 * time.Millisecond)
	resp, err := http.Get(script)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// :events has both fetches (the second live from the new daemon) and
	// shows each event once, in time order, whatever the streams sent again
	// (a boot request named by a MAC is a claim: it moves no stage)
	c.keys(":", "e", "v", "Tab", "Enter")
	c.keys("/", "n", "0", "5", "Enter")
	s := c.waitFor("live update from the new daemon", regexp.MustCompile(`(?s)EVENTS .*n05 .*/boot/.*n05 .*/boot/`))
	var rows []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, " n05 ") {
			rows = append(rows, strings.TrimSpace(l))
		}
	}
	for i := 1; i < len(rows); i++ {
		if rows[i] == rows[i-1] || rows[i][:12] < rows[i-1][:12] {
			t.Errorf("events of n05 repeated or out of order:\n%s", strings.Join(rows, "\n"))
			break
		}
	}
	c.keys("C-c")
}

// serveWithGeneration is serveInventory with a published generation of
// image compute to render boot entries from.
func serveWithGeneration(t *testing.T, text string) (p *serveProc, inv, dir string, cl *apiclient.Client) {
	t.Helper()
	p, inv, dir = serveInventory(t, text)
	cl = apiclient.New(p.socket)
	publishCompute(t, p, cl, dir)
	return p, inv, dir, cl
}

// publishCompute imports and publishes a generation of image compute
// (files made in dir): nodes following it then fetch a boot script, so a
// fetch moves their stage.
func publishCompute(t *testing.T, p *serveProc, cl *apiclient.Client, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src := map[string]string{}
	for _, name := range image.BootFiles {
		src[name] = filepath.Join(dir, "src-"+name)
		os.WriteFile(src[name], []byte("console test "+name), 0o644)
	}
	if _, err := cl.Import(ctx, apitype.ImportRequest{Image: "compute", Publish: true},
		apiclient.ImportFiles{Kernel: src[apitype.FileKernel], Initrd: src[apitype.FileInitrd], Rootfs: src[apitype.FileRootfs]}); err != nil {
		p.stop(t)
		t.Fatal(err)
	}
}

// serveInventory writes text as the inventory of a new folder and starts a
// daemon on it.
func serveInventory(t *testing.T, text string) (p *serveProc, inv, dir string) {
	t.Helper()
	dir = t.TempDir()
	inv = filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(inv, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return startServe(t, inv, dir), inv, dir
}

// bootScriptURL is where node's firmware fetches its iPXE script.
func bootScriptURL(t *testing.T, cl *apiclient.Client, node string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := cl.Node(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + st.HTTP + "/boot/" + n.MAC + ".ipxe"
}

// TestConsoleBMCAndSerialInTmux opens node c1, whose BMC is ipmi_sim with
// serial-over-LAN, in the real console: the detail shows the BMC's device ID
// and a power read (never the password), c hands the terminal to the
// node's serial console, and ~. brings the console back.
func TestConsoleBMCAndSerialInTmux(t *testing.T) {
	lab.RequireTools(t, "tmux")
	port, p := solLab(t)
	c := startConsole(t, p.socket, "TERM=xterm-256color")
	c.waitFor("start", regexp.MustCompile(`1 nodes · 0 marked`))
	c.tmux("resize-window", "-t", "ui", "-x", "120", "-y", "30")
	c.waitFor("resized", regexp.MustCompile(`(?m)^netbootui nodes .{60,}rev `))
	c.keys("Enter")
	s := c.waitFor("BMC facts", regexp.MustCompile(`bmc device +device \d+ rev \d+, firmware \d+\.\d+, IPMI 2\.0, manufacturer \d+, product \d+`))
	if !regexp.MustCompile(`bmc power +(on|off) at \d\d:\d\d:\d\d \(\d+s ago\) · the daemon does not poll power`).MatchString(s) {
		t.Errorf("no power read in the detail:\n%s", s)
	}
	if strings.Contains(s, cliBMCPassword) {
		t.Errorf("the BMC password is on the screen:\n%s", s)
	}
	c.keys("c")
	c.waitFor("serial console", regexp.MustCompile(`boot progress`))
	c.tmux("send-keys", "-t", "ui", "-l", "hello c1")
	c.keys("Enter")
	c.waitFor("echo", regexp.MustCompile(`echo: hello c1`))
	if got := port.Received(); !strings.Contains(got, "hello c1\r") {
		t.Errorf("serial port got %q", got)
	}
	c.tmux("send-keys", "-t", "ui", "-l", "~.")
	c.waitFor("back in the console", regexp.MustCompile(`(?s)node c1.*serial console of c1 detached`))
	c.keys("C-c")
}
