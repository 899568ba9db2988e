package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/demo"
	"github.com/netbootui/netbootui/internal/lab"
)

// demoInTmux starts `netbootui demo ARGS` in a tmux pane of w x h cells,
// with env (NAME=value words) set; it returns the console, the demo's API
// socket and the demo's pid. The tmux server goes at the end of the test.
func demoInTmux(t *testing.T, w, h int, env []string, args ...string) (*tmuxConsole, string, int) {
	t.Helper()
	lab.RequireTools(t, "tmux")
	socket := filepath.Join(t.TempDir(), "demo.sock")
	c := &tmuxConsole{t: t, server: fmt.Sprintf("netbootui-demo-%d-%d", os.Getpid(), time.Now().UnixNano())}
	cmdline := fmt.Sprintf("env TERM=xterm-256color %s %s demo --api-socket %s %s", strings.Join(env, " "), binary, socket, strings.Join(args, " "))
	c.tmux("new-session", "-d", "-s", "ui", "-x", strconv.Itoa(w), "-y", strconv.Itoa(h), cmdline)
	t.Cleanup(func() { exec.Command("tmux", "-L", c.server, "kill-server").Run() })
	pid, err := strconv.Atoi(strings.TrimSpace(c.tmux("display-message", "-p", "-t", "ui", "#{pane_pid}")))
	if err != nil {
		t.Fatal(err)
	}
	return c, socket, pid
}

// quitDemo presses q in the nodes view and waits for the demo to end.
func (c *tmuxConsole) quitDemo(pid int) {
	c.t.Helper()
	c.keys("q")
	deadline := time.Now().Add(20 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			c.t.Fatalf("q did not end the demo:\n%s", c.capture(false))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// typeLine sends text as typed (-l: no key names) and then Enter.
func (c *tmuxConsole) typeLine(text string) {
	c.t.Helper()
	c.keys("-l", text)
	c.keys("Enter")
}

// wrapped is a regexp matching text however a box wraps it at its spaces
// (between its borders).
func wrapped(text string) string {
	return strings.Join(strings.Fields(regexp.QuoteMeta(text)), `[\s│]+`)
}

// lastSeq is the Seq of the daemon's newest event.
func lastSeq(t *testing.T, c *apiclient.Client) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seq uint64
	if err := c.Events(ctx, "", 1, false, func(ev apitype.Event) error { seq = ev.Seq; return nil }); err != nil {
		t.Fatal(err)
	}
	return seq
}

// TestTurnedDirtyEventInTmux: in the demo's console at 80x24 without
// colour, :events filtered by kind (kind:info dirty) shows the event that
// says cn003 turned dirty after a reboot to clean state, and why; it stays
// there while thousands of check-ins come in after it (they no longer
// push it out of the view); enter opens it in full; esc closes, clears the
// filter, and goes back.
func TestTurnedDirtyEventInTmux(t *testing.T) {
	c, socket, pid := demoInTmux(t, 80, 24, []string{"NO_COLOR=1"}, append([]string{"--nodes", "40", "--unknown", "0"}, demoFast...)...)
	c.waitForWithin("the console", time.Minute, regexp.MustCompile(`40 nodes · 0 marked`))
	cl := apiclient.New(socket)
	// cn003 writes to its overlay until it is dirty
	waitNodes(t, cl, time.Minute, "cn003 dirty", func(n []apitype.NodeView) bool {
		for _, v := range n {
			if v.Name == "cn003" {
				return v.Dirty
			}
		}
		return false
	})
	c.keys(":")
	c.typeLine("events")
	c.waitFor("events view", regexp.MustCompile(`EVENTS\s+\d+ shown of \d+`))
	c.keys("/")
	c.typeLine("kind:info dirty")
	c.waitFor("the filter", regexp.MustCompile(`filter: kind:info dirty  \(esc clears\)`))
	dirtyRow := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d+ cn003\s+info\s+checkin turned dirty: overlay`)
	before := len(dirtyRow.FindAllString(c.capture(false), -1))
	// A reboot to clean state: cn003 boots clean, then turns dirty again.
	if out, errOut, code := runCLI(t, "reboot-clean", "cn003", "--api-socket", socket); code != 0 || !strings.Contains(out, "1 ok, 0 failed") {
		t.Fatalf("reboot-clean cn003: exit %d\n%s%s", code, out, errOut)
	}
	s := c.waitForWithin("cn003 turned dirty", time.Minute, regexp.MustCompile(fmt.Sprintf(`(?s)(%s.*){%d}`, dirtyRow, before+1)))
	if regexp.MustCompile(`(?m)^\S+ \S+\s+checkin\s`).MatchString(s) {
		t.Errorf("kind:info shows check-ins:\n%s", s)
	}
	// The view kept 2,000 events of every kind: 2,500 events after it
	// (nearly all check-ins) pushed it out. They no longer do.
	seq0 := lastSeq(t, cl)
	deadline := time.Now().Add(2 * time.Minute)
	for lastSeq(t, cl) < seq0+2500 {
		if time.Now().After(deadline) {
			t.Fatalf("the demo's nodes did not check in 2,500 times in 2 minutes (from seq %d)", seq0)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // the console has read what the daemon had sent
	if s := c.capture(false); len(dirtyRow.FindAllString(s, -1)) < before+1 {
		t.Fatalf("the check-ins that followed pushed the event out of the view:\n%s", s)
	}
	// A console opened now gets it in its backlog, though the newest
	// events are all check-ins.
	c2 := startConsole(t, socket, "NO_COLOR=1", "TERM=xterm-256color")
	c2.waitFor("a second console", regexp.MustCompile(`40 nodes · 0 marked`))
	c2.keys(":")
	c2.typeLine("events")
	c2.keys("/")
	c2.typeLine("kind:info dirty")
	c2.waitFor("the backlog's turned dirty", dirtyRow)
	c2.keys("C-c")
	c.keys("Enter")
	c.waitFor("the event in full", regexp.MustCompile(`(?s)node\s+cn003.*kind\s+info.*proto\s+checkin.*message\s+`+wrapped("turned dirty: overlay writes")+`\s+[\d.]+\s+MiB\s+above\s+threshold.*any key closes`))
	c.keys("x")
	c.waitGone("the event box", "any key closes")
	c.keys("Escape")
	c.waitGone("the filter", "filter: kind:info")
	c.waitFor("every kind again", regexp.MustCompile(`checkin\s+http /checkin`))
	c.keys("Escape")
	c.waitFor("the nodes view", regexp.MustCompile(`netbootui nodes · 40 nodes · 0 marked`))
	c.quitDemo(pid)
}

// TestDemoAdoptInTmux is sequential discovery on the demo at 80x24: three
// simulated machines that are in no inventory are switched on one by one;
// :unknown lists them in that order (not their MACs' order); the admin
// marks all three and adopts them; they are named cn011, cn012, cn013 in
// that order and, retrying their boot, boot the compute group's image
// without a restart, seen booted in the console with that image.
func TestDemoAdoptInTmux(t *testing.T) {
	c, socket, pid := demoInTmux(t, 80, 24, nil, append([]string{"--nodes", "16", "--unknown", "3", "--unknown-every", "500ms"}, demoFast...)...)
	c.waitForWithin("the console", time.Minute, regexp.MustCompile(`16 nodes · 0 marked`))
	c.keys(":")
	c.typeLine("unknown")
	s := c.waitForWithin("three unknown machines", time.Minute, regexp.MustCompile(`UNKNOWN PXE CLIENTS  3  \(adopt into group compute\)`))
	macs := []string{demo.UnknownMAC(0), demo.UnknownMAC(1), demo.UnknownMAC(2)}
	if !regexp.MustCompile(`(?s)` + macs[0] + `.*` + macs[1] + `.*` + macs[2]).MatchString(s) {
		t.Fatalf("not in the order they were switched on (%v):\n%s", macs, s)
	}
	if macs[0] < macs[1] {
		t.Fatalf("the MACs' order is the power-on order (%v): the test would not tell them apart", macs)
	}
	c.keys("Space", "Space", "Space", "a")
	c.waitFor("confirmation", regexp.MustCompile(`Adopt 3 machines into group compute\?`))
	time.Sleep(300 * time.Millisecond) // the dialog's guard
	c.keys("y")
	// (at 80 columns the line is cut after the second)
	c.waitFor("adopted", regexp.MustCompile(fmt.Sprintf(`adopted %s → cn011, %s → cn012, %s`, macs[0], macs[1], macs[2])))
	c.waitFor("none left", regexp.MustCompile(`UNKNOWN PXE CLIENTS  0 `))
	// Each Escape is waited for: one followed at once by another key is
	// read as Alt+key.
	c.keys("Escape")
	c.waitFor("nodes", regexp.MustCompile(`netbootui nodes · 19 nodes · 0 marked`))
	c.keys("/")
	c.typeLine("cn01[1-3]")
	c.waitFor("the adopted nodes", regexp.MustCompile(`3 shown · 0 marked`))
	cl := apiclient.New(socket)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes := waitNodes(t, cl, time.Minute, "the adopted nodes booted", func(n []apitype.NodeView) bool {
		k := 0
		for _, v := range n {
			if strings.HasPrefix(v.Name, "cn01") && v.Name >= "cn011" && v.State.Stage == apitype.StageBooted && v.State.Generation == v.Assigned {
				k++
			}
		}
		return k == 3
	})
	gen := ""
	for _, v := range nodes {
		if v.Name == "cn011" {
			gen = v.Assigned
		}
	}
	for i, name := range []string{"cn011", "cn012", "cn013"} {
		v, err := cl.Node(ctx, name)
		if err != nil || v.MAC != macs[i] || v.Group != "compute" || v.Image != "default" {
			t.Errorf("%s: %+v %v, want MAC %s in compute on image default", name, v, err, macs[i])
		}
		c.waitFor(name+" booted", regexp.MustCompile(`(?m)^\s+`+name+` .*booted\s+default@`+gen[:4]+`\S*\s+default@`+gen[:4]))
	}
	c.keys("Escape")
	c.waitFor("filter cleared", regexp.MustCompile(`19 nodes · 0 marked`))
	c.quitDemo(pid)
}

// TestRebootPathInTmux: R's confirmation offers the path (auto, kexec,
// power; v changes it); on the demo, whose compute nodes run the node agent,
// auto takes kexec on cn001 and power on gpu02 (no agent), the results say
// which path each took and why, power forces the BMC path on cn002, and
// :events shows the audit's paths.
func TestRebootPathInTmux(t *testing.T) {
	c, socket, pid := demoInTmux(t, 80, 24, []string{"NO_COLOR=1"}, append([]string{"--nodes", "16", "--unknown", "0"}, demoFast...)...)
	c.waitForWithin("the console", time.Minute, regexp.MustCompile(`16 nodes · 0 marked`))
	cl := apiclient.New(socket)
	waitNodes(t, cl, time.Minute, "cn001, cn002 and gpu02 booted", func(n []apitype.NodeView) bool {
		k := 0
		for _, v := range n {
			if (v.Name == "cn001" || v.Name == "cn002" || v.Name == "gpu02") && v.State.Stage == apitype.StageBooted {
				k++
			}
		}
		return k == 3
	})
	reboot := func(sel string, vs int, path string) string {
		t.Helper()
		c.keys("/")
		c.typeLine(sel)
		c.waitFor(sel+" alone", regexp.MustCompile(`\d shown · 0 marked`))
		c.keys("C-a", "R")
		c.waitFor("confirmation", regexp.MustCompile(`path:\s+\[auto\]\s+kexec\s+power\s+v: change`))
		time.Sleep(300 * time.Millisecond) // the dialog's guard
		for range vs {
			c.keys("v")
		}
		c.waitFor("path "+path, regexp.MustCompile(`path:.*\[`+path+`\]`))
		c.keys("y")
		s := c.waitForWithin("results", time.Minute, regexp.MustCompile(`reboot-clean: \d ok, 0 failed`))
		if !strings.Contains(s, "· path "+path) {
			t.Errorf("the action does not say the path asked for:\n%s", s)
		}
		c.keys("Escape")
		c.waitFor("nodes", regexp.MustCompile(`netbootui nodes`))
		c.keys("Escape")
		c.waitFor("filter cleared", regexp.MustCompile(`16 nodes · \d+ marked`))
		c.keys("C-u")
		return s
	}
	s := reboot("cn001,gpu02", 0, "auto")
	for _, want := range []string{`(?m)^\s+cn001 .*clean: runs \S+ \(\S+\)\s+·\s+` + wrapped("by kexec: agent polling"),
		`(?m)^\s+gpu02 .*clean: runs \S+ \(\S+\)\s+·\s+` + wrapped("by power: agent not polling")} {
		if !regexp.MustCompile(want).MatchString(s) {
			t.Errorf("results lack %s:\n%s", want, s)
		}
	}
	s = reboot("cn002", 2, "power")
	if !regexp.MustCompile(`(?m)^\s+cn002 .*clean: runs \S+ \(\S+\)\s+·\s+` + wrapped("by power: asked for power")).MatchString(s) {
		t.Errorf("cn002 not rebooted by power:\n%s", s)
	}
	// The audit says which path ran, in :events.
	c.keys(":")
	c.typeLine("events")
	c.keys("/")
	c.typeLine("kind:audit reboot-clean")
	c.waitFor("the audit's entries", regexp.MustCompile(`(?s)audit .*: reboot-clean cn001,gpu.*audit .*: reboot-clean cn002 → 1`))
	c.keys("k", "Enter")
	c.waitFor("the first reboot in full", regexp.MustCompile(`(?s)message\s+.*`+wrapped("cn001: kexec (agent polling); gpu02: power (agent not polling)")))
	c.keys("x")
	c.waitGone("the event box", "any key closes")
	c.keys("Escape")
	c.waitGone("the filter", "filter: kind:audit")
	c.keys("Escape")
	c.waitFor("the nodes view", regexp.MustCompile(`netbootui nodes · 16 nodes`))
	c.quitDemo(pid)
}
