package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
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
	"github.com/netbootui/netbootui/internal/lab"
)

// demoFast are the demo flags of the tests: the tiny generation and short
// timings.
var demoFast = []string{"--image", "tiny", "--post", "100ms", "--checkin-every", "200ms", "--stall-timeout", "12s", "--power-poll", "1s"}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitNodes(t *testing.T, c *apiclient.Client, d time.Duration, what string, cond func([]apitype.NodeView) bool) []apitype.NodeView {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		nodes, err := c.Nodes(ctx)
		cancel()
		if err == nil && cond(nodes) {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v %v", what, err, summary(nodes))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func summary(nodes []apitype.NodeView) map[string]int {
	m := map[string]int{}
	for _, n := range nodes {
		m[string(n.State.Stage)]++
		if n.Dirty {
			m["dirty"]++
		}
	}
	return m
}

func count(nodes []apitype.NodeView, stage apitype.Stage) int {
	k := 0
	for _, n := range nodes {
		if n.State.Stage == stage {
			k++
		}
	}
	return k
}

// TestDemoHeadless: `netbootui demo --no-tui --nodes 16` boots its nodes
// (seen through the API), one turns dirty, cn010 stalls, reboot-clean
// (API) brings the dirty one back clean, the CLI verbs work against the
// demo's socket, and SIGTERM stops everything: socket gone, ports closed.
func TestDemoHeadless(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "demo.sock")
	data := filepath.Join(dir, "data")
	httpPort := freePort(t)
	cmd := exec.Command(binary, append([]string{"demo", "--no-tui", "--nodes", "16", "--api-socket", socket, "--data", data,
		"--http-listen", "127.0.0.1:" + strconv.Itoa(httpPort), "--status-every", "500ms"}, demoFast...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	c := apiclient.New(socket)
	nodes := waitNodes(t, c, 60*time.Second, "15 booted and 1 stalled", func(n []apitype.NodeView) bool {
		return len(n) == 16 && count(n, apitype.StageBooted) == 15 && count(n, apitype.StageStalled) == 1
	})
	for _, n := range nodes {
		if n.State.Stage == apitype.StageStalled && n.Name != "cn010" {
			t.Errorf("%s stalled, want cn010", n.Name)
		}
	}
	waitNodes(t, c, 30*time.Second, "cn003 dirty", func(n []apitype.NodeView) bool {
		for _, v := range n {
			if v.Name == "cn003" {
				return v.Dirty
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.RebootClean(ctx, "cn003", 30*time.Second, nil)
	if err != nil || len(res) != 1 || !res[0].OK {
		t.Fatalf("reboot-clean: %+v %v", res, err)
	}
	v, err := c.Node(ctx, "cn003")
	if err != nil || v.Dirty || v.State.Stage != apitype.StageBooted || v.State.Generation != v.Assigned {
		t.Fatalf("cn003 after reboot-clean: %+v %v", v, err)
	}
	// The CLI verbs talk to the demo too.
	stdout, stderr, code := runCLI(t, "node", "list", "--api-socket", socket)
	if code != 0 || !strings.Contains(stdout, "gpu04") || !strings.Contains(stdout, "io02") {
		t.Fatalf("node list: %d\n%s%s", code, stdout, stderr)
	}
	// gpu01 is behind a simulated Redfish BMC, gpu02 behind IPMI: one
	// power status reads both; gpu01's device ID is a Redfish system's.
	stdout, stderr, code = runCLI(t, "power", "status", "gpu0[1-2]", "--api-socket", socket)
	if code != 0 || !regexp.MustCompile(`(?m)^gpu01 .* on +power On$`).MatchString(stdout) || !regexp.MustCompile(`(?m)^gpu02 .* on `).MatchString(stdout) {
		t.Errorf("power status gpu0[1-2]: %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = runCLI(t, "power", "deviceid", "gpu01", "--api-socket", socket)
	if code != 0 || !strings.Contains(stdout, "Redfish system /redfish/v1/Systems/") || !strings.Contains(stdout, "NICs ") {
		t.Errorf("power deviceid gpu01: %d\n%s%s", code, stdout, stderr)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("demo exited: %v\n%s\n%s", err, out.String(), errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("SIGTERM did not stop the demo\n%s", out.String())
	}
	s := out.String()
	for _, want := range []string{"tiny generation made in Go", "NETBOOTUI_SOCKET=" + socket + " netbootui node list",
		fmt.Sprintf("http://127.0.0.1:%d", httpPort), "booted 15", "netbootui demo: stopping", "  Redfish:   gpu01 127."} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	assertCleanedUp(t, socket, httpPort)
	if _, err := os.Stat(filepath.Join(data, "nodes.yaml")); err != nil {
		t.Errorf("--data folder should be kept: %v", err)
	}
}

// assertCleanedUp checks the socket is gone and the HTTP port refuses.
func assertCleanedUp(t *testing.T, socket string, httpPort int) {
	t.Helper()
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("socket %s left behind: %v", socket, err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(httpPort), time.Second); err == nil {
		c.Close()
		t.Errorf("HTTP port %d still open", httpPort)
	}
}

// TestDemoInTmux opens `netbootui demo --nodes 64` in tmux: the console
// shows the 64 nodes and their live states, a reboot-clean of three marked
// nodes, a reboot of the stalled node whose timer keeps counting, c on a
// simulated IPMI node's serial console (left with ~. after the terminal
// answered its shell's cursor query) and on a Redfish one (says why not),
// q quits, and the process, its
// socket and its ports are gone.
func TestDemoInTmux(t *testing.T) {
	httpPort := freePort(t)
	c, socket, pid := demoInTmux(t, 120, 40, nil, append([]string{"--nodes", "64", "--http-listen", "127.0.0.1:" + strconv.Itoa(httpPort)}, demoFast...)...)
	start := time.Now()
	c.waitFor("64 nodes", regexp.MustCompile(`64 nodes · 0 marked`))
	t.Logf("console up after %s", time.Since(start))
	s := c.waitFor("live states", regexp.MustCompile(`(?m)^\s+cn0\d\d .*booted`))
	if !regexp.MustCompile(`(?m)^\s+cn001 `).MatchString(s) {
		t.Errorf("cn001 not on screen:\n%s", s)
	}
	c.keys("/", "g", "p", "u", "Enter")
	c.waitFor("gpu nodes booted", regexp.MustCompile(`(?m)^\s+gpu16 .*booted`))
	c.keys("Escape")
	c.waitForWithin("stalled node", 45*time.Second, regexp.MustCompile(`(?m)^\s+cn013 .*stalled`))
	t.Logf("cn013 stalled after %s", time.Since(start))

	// Filter, mark three nodes, reboot them to clean with the confirmation,
	// see every one boot and check in clean.
	c.keys("/", "c", "n", "0", "0", "[", "1", "-", "3", "]", "Enter")
	c.waitFor("hostlist filter", regexp.MustCompile(`3 shown · 0 marked`))
	c.keys("g", "Space", "Space", "Space") // from the top: space marks and moves down
	c.waitFor("three marks", regexp.MustCompile(`3 shown · 3 marked`))
	c.keys("R")
	c.waitFor("confirmation", regexp.MustCompile(`\[ No \]`))
	time.Sleep(300 * time.Millisecond) // the dialog ignores keys typed as it appears
	c.keys("y")
	s = c.waitFor("reboot-clean result", regexp.MustCompile(`reboot-clean: 3 ok, 0 failed`))
	for _, n := range []string{"cn001", "cn002", "cn003"} {
		if !regexp.MustCompile(`(?m)^\s+` + n + ` .*clean: runs`).MatchString(s) {
			t.Errorf("%s not clean in the results:\n%s", n, s)
		}
	}
	// The workflow verified each clean check-in; back in the list they run
	// (cn003 is a demo node that refills its overlay, so it turns dirty again).
	c.keys("Escape")
	c.waitFor("nodes again", regexp.MustCompile(`(?m)^\s*\* cn003 .*booted`))
	t.Logf("reboot-clean of three marked nodes done after %s", time.Since(start))
	// Wait between Escape and q: sent together they read as Alt+q.
	c.keys("Escape")
	c.waitFor("filter cleared", regexp.MustCompile(`64 nodes · 3 marked`))

	// A reboot of cn013, which hangs after its kernel: no progress comes,
	// yet the action's "running for" timer keeps counting; ctrl+x cancels.
	c.keys("C-u", "/", "c", "n", "0", "1", "3", "Enter")
	c.waitFor("cn013 alone", regexp.MustCompile(`1 shown · 0 marked`))
	c.keys("R")
	c.waitFor("confirmation", regexp.MustCompile(`\[ No \]`))
	time.Sleep(300 * time.Millisecond)
	c.keys("y")
	running := regexp.MustCompile(`running for (\d+)s`)
	s = c.waitForWithin("cn013 stuck after its kernel", time.Minute, regexp.MustCompile(`(?m)^  cn013 .*kernel(?s:.*)`))
	first := c.waitFor("timer", running)
	n0, _ := strconv.Atoi(running.FindStringSubmatch(first)[1])
	c.waitFor("the timer moves with no progress", regexp.MustCompile(fmt.Sprintf(`running for (%s)s`, laterThan(n0+1))))
	c.keys("C-x")
	c.waitFor("cancelled", regexp.MustCompile(`reboot-clean: .*cancel`))
	c.keys("Escape")
	c.waitFor("back to the list", regexp.MustCompile(`netbootui nodes`))
	c.keys("Escape")
	c.waitFor("filter cleared", regexp.MustCompile(`64 nodes · 0 marked`))

	// c opens cn001's simulated serial console (IPMI serial-over-LAN from
	// its simulated BMC); its shell asks for the cursor position after each
	// prompt, as busybox does, and tmux answers before ~. is typed
	c.keys("/", "c", "n", "0", "0", "1", "Enter")
	c.waitFor("cn001 alone", regexp.MustCompile(`1 shown · 0 marked`))
	c.keys("c")
	c.waitFor("serial console", regexp.MustCompile(`connected to cn001's serial console`))
	// A console that joins a session already running (reboot-clean's
	// capture of cn001 above may still hold it) sees no banner, as on a
	// real serial port: Enter brings the prompt either way.
	c.keys("Enter")
	c.waitFor("prompt", regexp.MustCompile(`(?m)^~ #`))
	c.keys("-l", "echo from the demo test")
	c.keys("Enter")
	c.waitFor("shell answer", regexp.MustCompile(`(?m)^from the demo test\s+~ #`))
	c.keys("-l", "~.")
	c.waitFor("back in the console", regexp.MustCompile(`serial console of cn001 detached`))
	// The session's banner is in the node's console log whether or not
	// the console saw the session start.
	if o, e, code := runCLI(t, "console", "--log", "cn001", "--api-socket", socket); code != 0 || !strings.Contains(o, "from the demo test") || !strings.Contains(o, "serial console (type help)") {
		t.Errorf("console --log cn001: exit %d\n%s%s", code, o, e)
	}
	// gpu01's BMC is Redfish, which has no serial console: c says why and
	// names the alternative, the flash wrapping rather than cut at the edge
	c.keys("Escape")
	c.waitFor("filter cleared", regexp.MustCompile(`64 nodes · 0 marked`))
	c.keys("/", "g", "p", "u", "0", "1", "Enter")
	c.waitFor("gpu01 alone", regexp.MustCompile(`1 shown · 0 marked`))
	c.keys("c")
	c.waitFor("why no console", regexp.MustCompile(`serial\s+console\s+of\s+gpu01:\s+exit\s+status\s+1:\s+console\s+gpu01:\s+BMC\s+\S+\s+the\s+redfish\s+backend\s+has\s+no\s+serial\s+console;\s+Redfish\s+offers\s+none;\s+a\s+BMC\s+that\s+also\s+speaks\s+IPMI\s+gives\s+serial-over-LAN\s+with\s+bmc\.protocol:\s+ipmi`))
	if o, e, code := runCLI(t, "console", "--log", "gpu01", "--api-socket", socket); code == 0 || !strings.Contains(e, "no serial console") {
		t.Errorf("console --log gpu01 after a failed session: exit %d\n%s%s", code, o, e)
	}
	c.keys("Escape")
	c.waitFor("filter cleared", regexp.MustCompile(`64 nodes · 0 marked`))
	c.quitDemo(pid)
	t.Logf("demo ended after %s", time.Since(start))
	assertCleanedUp(t, socket, httpPort)
}

// laterThan is a regexp alternative matching any decimal number >= n.
func laterThan(n int) string {
	alts := []string{}
	for i := n; i < n+100; i++ {
		alts = append(alts, strconv.Itoa(i))
	}
	return strings.Join(alts, "|") + `|\d{4,}`
}

func TestParseSizes(t *testing.T) {
	tests := []struct {
		in     string
		want   [3]int64
		errHas string
	}{
		{"256K,512K,2M", [3]int64{256 << 10, 512 << 10, 2 << 20}, ""},
		{"1, 2 ,1G", [3]int64{1, 2, 1 << 30}, ""},
		{"1K,2K", [3]int64{}, "three sizes, got 2"},
		{"1K,0,1K", [3]int64{}, `size 2 "0"`},
		{"1K,1K,2G", [3]int64{}, `size 3 "2G"`},
		{"1K,x,1K", [3]int64{}, `size 2 "x"`},
	}
	for _, tc := range tests {
		got, err := parseSizes(tc.in)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.errHas)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestDemoFallbackNoteInTmux: with no kernel where NETBOOTUI_CACHE says
// (an empty cache) the demo cannot build the default recipe; before the
// console covers the terminal it says so and waits for Enter, then the
// console opens. The --data folder did not exist: the demo made it.
func TestDemoFallbackNoteInTmux(t *testing.T) {
	lab.RequireTools(t, "tmux")
	dir := t.TempDir()
	socket := filepath.Join(dir, "demo.sock")
	data := filepath.Join(dir, "new", "data")
	httpPort := freePort(t)
	c := &tmuxConsole{t: t, server: fmt.Sprintf("netbootui-fallback-%d-%d", os.Getpid(), time.Now().UnixNano())}
	cmdline := fmt.Sprintf("env TERM=xterm-256color NETBOOTUI_KERNEL_DIR= NETBOOTUI_CACHE=%s %s demo --nodes 4 --data %s --api-socket %s --http-listen 127.0.0.1:%d --image auto --post 100ms --checkin-every 200ms --power-poll 1s",
		t.TempDir(), binary, data, socket, httpPort)
	c.tmux("new-session", "-d", "-s", "ui", "-x", "120", "-y", "40", cmdline)
	t.Cleanup(func() { exec.Command("tmux", "-L", c.server, "kill-server").Run() })
	s := c.waitFor("the fallback note", regexp.MustCompile(`Press Enter to open the console`))
	if !strings.Contains(s, "tiny generation") || !strings.Contains(s, "no kernel") {
		t.Fatalf("the note does not say why:\n%s", s)
	}
	time.Sleep(time.Second) // still waiting: no console yet
	if s := c.capture(false); strings.Contains(s, "4 nodes ·") {
		t.Fatalf("the console opened without Enter:\n%s", s)
	}
	c.keys("Enter")
	c.waitFor("the console", regexp.MustCompile(`4 nodes · 0 marked`))
	c.keys("q")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(socket); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("q did not end the demo:\n%s", c.capture(false))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(data, "demo.log")); err != nil {
		t.Fatalf("--data folder: %v", err)
	}
}
