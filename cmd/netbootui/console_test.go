package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/lab"
)

// consoleInventory has 20 nodes in two groups.
const consoleInventory = `images:
  compute: {description: test image}
groups:
  compute: {image: compute, kernel_args: console=ttyS0}
  gpu: {image: compute, kernel_args: nomodeset}
nodes:
  - name: n[01-16]
    group: compute
    ip: 10.1.0.11
    nics:
      - {mac: "52:54:00:00:01:01", boot: true}
  - name: gpu[1-4]
    group: gpu
    ip: 10.1.0.101
    nics:
      - {mac: "52:54:00:00:03:01", boot: true}
`

// tmuxConsole is the console running in a detached tmux session of its own
// server.
type tmuxConsole struct {
	t      *testing.T
	server string
}

func (c *tmuxConsole) tmux(args ...string) string {
	c.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", c.server}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (c *tmuxConsole) capture(escapes bool) string {
	args := []string{"capture-pane", "-p", "-t", "ui"}
	if escapes {
		args = append(args, "-e")
	}
	return c.tmux(args...)
}

// waitFor polls the screen until re matches it.
func (c *tmuxConsole) waitFor(what string, re *regexp.Regexp) string {
	c.t.Helper()
	return c.waitForWithin(what, 20*time.Second, re)
}

// waitForWithin is waitFor with a time limit of its own.
func (c *tmuxConsole) waitForWithin(what string, limit time.Duration, re *regexp.Regexp) string {
	c.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := c.capture(false)
		if re.MatchString(s) {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: screen never matched %s:\n%s", what, re, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone polls the screen until text is no longer on it.
func (c *tmuxConsole) waitGone(what, text string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Contains(c.capture(false), text) {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s stays on the screen:\n%s", what, c.capture(false))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *tmuxConsole) keys(keys ...string) {
	c.t.Helper()
	c.tmux(append([]string{"send-keys", "-t", "ui"}, keys...)...)
}

func startConsole(t *testing.T, socket string, env ...string) *tmuxConsole {
	t.Helper()
	c := &tmuxConsole{t: t, server: fmt.Sprintf("netbootui-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	cmd := fmt.Sprintf("env %s NETBOOTUI_SOCKET=%s %s", strings.Join(env, " "), socket, binary)
	c.tmux("new-session", "-d", "-s", "ui", "-x", "80", "-y", "24", cmd)
	t.Cleanup(func() { exec.Command("tmux", "-L", c.server, "kill-server").Run() })
	return c
}

func TestConsoleInTmux(t *testing.T) {
	lab.RequireTools(t, "tmux")
	dir := t.TempDir()
	inv := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(inv, []byte(consoleInventory), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, inv, dir)
	defer p.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := apiclient.New(p.socket)
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n03, err := cl.Node(ctx, "n03")
	if err != nil {
		t.Fatal(err)
	}

	c := startConsole(t, p.socket, "TERM=xterm-256color")
	s := c.waitFor("start", regexp.MustCompile(`20 nodes · 0 marked`))
	colour := c.capture(true)
	// at 80 columns GROUP and ASSIGNED stay (short titles)
	if !regexp.MustCompile(`(?m)^  NAME +GROUP +PWR +STAGE +ASSIGNED +RUNNING +DIRTY +SEEN`).MatchString(s) {
		t.Errorf("the node list's columns at 80x24:\n%s", s)
	}

	// live update: n03 fetches its boot script from the real HTTP server
	resp, err := http.Get("http://" + st.HTTP + "/boot/" + n03.MAC + ".ipxe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// (a boot request named by a MAC is a claim: it is in the event stream
	// and the node's timeline, and moves no stage)
	c.keys(":", "e", "v", "Tab", "Enter")
	c.waitFor("live update", regexp.MustCompile(`(?s)EVENTS.*n03 +(fetch|fail|claim) +config http /boot/`))
	c.keys("Escape")
	c.waitFor("back", regexp.MustCompile(`netbootui nodes`))

	c.keys("/", "g", "p", "u")
	c.waitFor("filter", regexp.MustCompile(`4 shown`))
	c.keys("Enter", "Space", "Space", "Space")
	c.waitFor("marks", regexp.MustCompile(`4 shown · 3 marked`))
	c.keys("Escape")
	// (waits for the marked rows too: tmux may show the title redrawn
	// before the rows)
	s = c.waitFor("filter cleared", regexp.MustCompile(`(?m)20 nodes · 3 marked(?s:.*)^\* gpu1 .*\n\* gpu2 .*\n\* gpu3 `))
	if !regexp.MustCompile(`(?m)^\* gpu1 .*\n\* gpu2 .*\n\* gpu3 `).MatchString(s) {
		t.Errorf("marks not shown on gpu1-3:\n%s", s)
	}
	c.keys("g", "j", "j", "Enter")
	c.waitFor("detail", regexp.MustCompile(`(?s)node n03.*Boot timeline`))
	c.keys("G")
	s = c.waitFor("detail events", regexp.MustCompile(`(?s)node n03.*Recent events`))
	if !strings.Contains(s, "/boot/"+n03.MAC+".ipxe") {
		t.Errorf("detail lacks n03's boot script fetch:\n%s", s)
	}
	c.keys("Escape")
	c.waitFor("back", regexp.MustCompile(`netbootui nodes`))
	c.keys(":", "e", "v", "Tab", "Enter")
	c.waitFor("events", regexp.MustCompile(`(?s)EVENTS.*n03 +(fetch|fail|claim) +config http /boot/`))
	c.keys("/", "g", "p", "u", "Enter")
	c.waitFor("events filter", regexp.MustCompile(`EVENTS  0 shown of [1-9]`))
	c.keys("Escape")
	c.waitFor("events filter cleared", regexp.MustCompile(`EVENTS  ([1-9][0-9]*) shown of ([1-9][0-9]*)\n`))
	// by kind, and one event in full
	c.keys("/")
	c.keys("-l", "kind:claim,fetch,fail")
	c.keys("Enter")
	s = c.waitFor("events of two kinds", regexp.MustCompile(`filter: kind:claim,fetch,fail`))
	for _, l := range strings.Split(s, "\n") {
		if regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} `).MatchString(l) && !regexp.MustCompile(` (claim|fetch|fail) `).MatchString(l) {
			t.Errorf("kind:claim,fetch,fail shows %q", l)
		}
	}
	c.keys("g", "Enter")
	s = c.waitFor("an event in full", regexp.MustCompile(`(?s)Event.*kind +(claim|fetch|fail).*any key closes`))
	if !strings.Contains(s, "node       n03") {
		t.Errorf("the event box lacks n03:\n%s", s)
	}
	c.keys("x")
	c.waitGone("the event box", "any key closes")
	c.keys("Escape")
	c.waitGone("the kind filter", "filter: kind:")
	c.keys("Escape")
	c.waitFor("back from events", regexp.MustCompile(`netbootui nodes`))

	// power status on the marked nodes: the daemon has no BMC for them and
	// says so per node; the audit log keeps it and gpu1's detail shows it
	c.keys("p")
	c.waitFor("power menu", regexp.MustCompile(`Power: 3 nodes gpu\[1-3\]`))
	c.keys("t")
	s = c.waitFor("power status result", regexp.MustCompile(`status: 0 ok, 3 failed — gpu1: no BMC host in the inventory`))
	for _, n := range []string{"gpu1", "gpu2", "gpu3"} {
		if !regexp.MustCompile(`(?m)^  ` + n + ` +- +\S+ +FAILED: no BMC host in the inventory`).MatchString(s) {
			t.Errorf("no failed row for %s:\n%s", n, s)
		}
	}
	c.keys("Escape")
	c.waitFor("back from the action", regexp.MustCompile(`last action: status: 0 ok, 3 failed`))
	c.keys("G", "k", "k", "k", "Enter")
	c.waitFor("gpu1 detail", regexp.MustCompile(`(?s)node gpu1.*Boot timeline`))
	c.keys("G")
	c.waitFor("audit in detail", regexp.MustCompile(`(?s)node gpu1.*Audit\n.*: power status gpu\[1-3\] → 0 ok, 3 failed`))
	c.keys("Escape")
	c.waitFor("back from detail", regexp.MustCompile(`netbootui nodes`))
	c.keys("q")
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("tmux", "-L", c.server, "has-session", "-t", "ui").Run() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("q did not quit:\n%s", c.capture(false))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// NO_COLOR: the same screen without colour codes (reverse video stays)
	nc := startConsole(t, p.socket, "TERM=xterm-256color", "NO_COLOR=1")
	nc.waitFor("start without colour", regexp.MustCompile(`20 nodes · 0 marked`))
	plain := nc.capture(true)
	// 120x40: the wide titles
	nc.tmux("resize-window", "-t", "ui", "-x", "120", "-y", "40")
	nc.waitFor("wide columns", regexp.MustCompile(`(?m)^  NAME +GROUP +POWER +STAGE +ASSIGNED +RUNNING +DIRTY +CHECK-IN +ERROR`))
	sgrColour := regexp.MustCompile(`\x1b\[[0-9;]*(38|48);[25];`)
	if !sgrColour.MatchString(colour) {
		t.Errorf("the colour run shows no colour codes:\n%q", colour)
	}
	if m := sgrColour.FindString(plain); m != "" {
		t.Errorf("NO_COLOR run has colour code %q", m)
	}
	nc.keys("C-c")
}
