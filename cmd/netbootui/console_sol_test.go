package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/ipmi/ipmisim"
	"github.com/netbootui/netbootui/internal/lab"
)

// startSerialPort plays a node's serial port behind ipmi_sim's SOL: "boot
// progress N" every 100 ms, "echo: LINE" for every line typed.
func startSerialPort(t *testing.T) *ipmisim.SerialPort {
	t.Helper()
	sp, err := ipmisim.StartSerialPort("", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func waitText(t *testing.T, b *lab.Buffer, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v in:\n%s", want, timeout, b.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestConsoleSOLCLI runs `netbootui serve` and `netbootui console c1` as
// programs: c1's BMC is ipmi_sim with SOL wired to a TCP serial port. Output
// arrives, typed lines reach the port, "~." at the start of a line detaches
// (exit 0, nothing after it sent), `console --log` prints the captured
// lines, an unknown node is a clear error, and the session is audited.
// solLab is `netbootui serve` with node c1 whose BMC is an ipmi_sim with
// SOL wired to a serial port.
func solLab(t *testing.T) (*ipmisim.SerialPort, *serveProc) {
	t.Helper()
	lab.RequireTools(t, "ipmi_sim")
	dir := t.TempDir()
	port := startSerialPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sim, err := ipmisim.Start(ctx, ipmisim.Options{Dir: filepath.Join(dir, "bmc"), Password: cliBMCPassword,
		SOLPort: port.Port()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Stop() })
	inv := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(inv, []byte(fmt.Sprintf(`settings:
  secrets: secrets.yaml
nodes:
  - name: c1
    nics: [{mac: "52:54:00:dd:05:01"}]
    bmc: {host: 127.0.0.1, port: %d, user: admin, password: lab, cipher_suites: [3]}
`, sim.Port())), 0o644)
	os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("bmc_passwords:\n  lab: "+cliBMCPassword+"\n"), 0o600)
	p := startServe(t, inv, filepath.Join(dir, "data"))
	t.Cleanup(func() { p.stop(t) })
	return port, p
}

func TestConsoleSOLCLI(t *testing.T) {
	port, p := solLab(t)
	ctx := context.Background()
	sock := "--api-socket=" + p.socket

	cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
	defer ccancel()
	cmd := exec.CommandContext(cctx, binary, "console", "c1", sock)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut lab.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitText(t, &errOut, "type ~. at the start of a line to detach", 15*time.Second)
	waitText(t, &out, "boot progress", 10*time.Second)
	in.Write([]byte("hello console\r"))
	waitText(t, &out, "echo: hello console", 10*time.Second)
	in.Write([]byte("~.after-escape\r"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("console exited: %v\n%s", err, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("~. did not detach:\n%s", errOut.String())
	}
	if !strings.Contains(errOut.String(), "detached from c1") {
		t.Errorf("stderr: %q", errOut.String())
	}
	time.Sleep(200 * time.Millisecond)
	if got := port.Received(); !strings.Contains(got, "hello console\r") || strings.Contains(got, "after-escape") {
		t.Errorf("serial port received %q", got)
	}

	o, e, code := runCLI(t, "console", "--log", "c1", "-n", "1000", sock)
	if code != 0 || !strings.Contains(o, "echo: hello console") || strings.Contains(o, "\r") {
		t.Errorf("console --log: code %d\n%s%s", code, o, e)
	}
	if _, e, code := runCLI(t, "console", "nosuch", sock); code != 1 || !strings.Contains(e, `unknown node "nosuch"`) {
		t.Errorf("unknown node: code %d, %q", code, e)
	}
	if o, _, _ := runCLI(t, "audit", sock); !strings.Contains(o, "console") || !strings.Contains(o, "c1") {
		t.Errorf("audit lacks the console session:\n%s", o)
	}
}

// TestConsoleSOLRawTerminal runs `netbootui console c1` on a real terminal
// (tmux): the terminal is raw while attached (Enter reaches the node as a
// bare CR, which the serial port needs to see a line), "~." typed as keys
// detaches even when the terminal's answer to the node's cursor-position
// query (busybox asks after each prompt) came in between the Enter and it, and the terminal's settings afterwards are those before.
func TestConsoleSOLRawTerminal(t *testing.T) {
	lab.RequireTools(t, "tmux")
	port, p := solLab(t)
	dir := t.TempDir()
	server := fmt.Sprintf("netbootui-sol-%d-%d", os.Getpid(), time.Now().UnixNano())
	tmux := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("tmux", append([]string{"-L", server}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	before, after := filepath.Join(dir, "before"), filepath.Join(dir, "after")
	script := fmt.Sprintf("stty -a > %s; %s console c1 --api-socket=%s; echo exit=$?; stty -a > %s; sleep 60",
		before, binary, p.socket, after)
	tmux("new-session", "-d", "-s", "sol", "-x", "100", "-y", "30", "sh", "-c", script)
	t.Cleanup(func() { exec.Command("tmux", "-L", server, "kill-server").Run() })
	screen := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			s := tmux("capture-pane", "-p", "-t", "sol")
			if strings.Contains(s, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %q on the screen:\n%s", what, want, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	screen("attach", "type ~. at the start of a line to detach")
	screen("output", "boot progress")
	tmux("send-keys", "-t", "sol", "-l", "from tmux")
	tmux("send-keys", "-t", "sol", "Enter")
	screen("echo", "echo: from tmux")
	if got := port.Received(); !strings.Contains(got, "from tmux\r") {
		t.Errorf("serial port got %q (Enter should arrive as CR in raw mode)", got)
	}
	// the port's shell asks for the cursor position after its prompt, as
	// busybox does; tmux (the terminal) answers it in the input after the
	// Enter, before the "~." below
	port.SetPrompt("~ # ")
	tmux("send-keys", "-t", "sol", "-l", "ls")
	tmux("send-keys", "-t", "sol", "Enter")
	screen("prompt", "echo: ls")
	cpr := regexp.MustCompile(`ls\r\x1b\[[0-9]+;[0-9]+R$`)
	for end := time.Now().Add(10 * time.Second); !cpr.MatchString(port.Received()); {
		if time.Now().After(end) {
			t.Fatalf("the terminal's cursor position report never reached the port: %q\n%s", port.Received(), tmux("capture-pane", "-p", "-S", "-", "-t", "sol"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	tmux("send-keys", "-t", "sol", "-l", "~.")
	screen("detach", "exit=0")
	screen("detach message", "detached from c1")
	b, _ := os.ReadFile(before)
	a, err := os.ReadFile(after)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) || !strings.Contains(string(a), " icanon") || !strings.Contains(string(a), " echo ") {
		t.Errorf("terminal not restored:\nbefore: %s\nafter:  %s", b, a)
	}
}
