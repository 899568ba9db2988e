package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/ipmi/ipmisim"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/sol"
	"github.com/netbootui/netbootui/internal/workflow"
)

// fakeSerial is a TCP server playing a node's serial port behind ipmi_sim's
// SOL: it prints "boot progress N" lines every 100 ms and answers each line
// typed with "echo: LINE".
func fakeSerial(t *testing.T) int {
	t.Helper()
	sp, err := ipmisim.StartSerialPort("", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp.Port()
}

// solPassword is the BMC password of the SOL lab.
const solPassword = "Reb00t-s3cret"

// startSOLLab is a daemon with a published (unbootable) generation and node
// s1 whose BMC is an ipmi_sim with SOL wired to fakeSerial.
func startSOLLab(t *testing.T) *Daemon {
	t.Helper()
	return startSOLLabWith(t, fakeSerial(t))
}

// startSOLLabWith is startSOLLab with SOL wired to tcp 127.0.0.1:serial.
func startSOLLabWith(t *testing.T, serial int) *Daemon {
	t.Helper()
	lab.RequireTools(t, "ipmi_sim")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sim, err := ipmisim.Start(ctx, ipmisim.Options{Dir: filepath.Join(dir, "bmc"), Password: solPassword, SOLPort: serial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Stop() })
	inv := fmt.Sprintf(`settings:
  secrets: secrets.yaml
images:
  compute: {}
nodes:
  - name: s1
    image: compute
    nics: [{mac: "52:54:00:ee:05:01"}]
    bmc: {host: 127.0.0.1, port: %d, user: admin, password: lab, cipher_suites: [3]}
  - name: nobmc
    image: compute
    nics: [{mac: "52:54:00:ee:05:02"}]
`, sim.Port())
	src := map[string]string{}
	for i, name := range image.BootFiles {
		p := filepath.Join(dir, name)
		os.WriteFile(p, bytes.Repeat([]byte{byte('k' + i)}, 4<<10), 0o644)
		src[name] = p
	}
	return daemontest.Start(t, daemontest.Options{Dir: dir, Inventory: inv,
		Secrets: "bmc_passwords:\n  lab: " + solPassword + "\n",
		Config:  Config{Power: power.Config{CallTimeout: 3 * time.Second}},
		Before: func(d *Daemon) error {
			_, err := d.ImportImage(ImportRequest{Image: "compute", Kernel: src[image.FileKernel], Initrd: src[image.FileInitrd],
				Rootfs: src[image.FileRootfs], Publish: true})
			return err
		}}).D
}

// TestConsoleThroughIpmiSim: Console relays both ways through ipmi_sim's
// SOL, its output lands in the node's console log, and the end of the
// client's input ends it.
func TestConsoleThroughIpmiSim(t *testing.T) {
	d := startSOLLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	var out lab.Buffer
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d.Console(ctx, "s1", "tester", pr, &out, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("console: %v", err)
	}
	lab.Eventually(t, "boot output", 10*time.Second, func() bool { return strings.Contains(out.String(), "boot progress") })
	pw.Write([]byte("whoami\r"))
	lab.Eventually(t, "echo", 10*time.Second, func() bool { return strings.Contains(out.String(), "echo: whoami") })
	l, err := d.SOLLog("s1", 500)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Active || !strings.Contains(strings.Join(l.Lines, "\n"), "echo: whoami") || l.Total == 0 {
		t.Errorf("console log: %+v", l)
	}
	pw.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("console after EOF: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("console did not end at EOF")
	}
	lab.Eventually(t, "hub stop", 5*time.Second, func() bool { l, _ := d.SOLLog("s1", 1); return !l.Active })
	// The log outlives the session.
	if l, _ := d.SOLLog("s1", 3); len(l.Lines) < 2 || l.Lines[len(l.Lines)-1] != "echo: whoami" && !strings.HasPrefix(l.Lines[len(l.Lines)-1], "boot progress") {
		t.Errorf("log after the session: %+v", l)
	}
}

func TestConsoleErrors(t *testing.T) {
	d := startSOLLab(t)
	tests := []struct {
		node string
		want string
		is   error
	}{
		{"nosuch", `unknown node "nosuch"`, ErrUnknownNode},
		{"nobmc", "node nobmc: no BMC host", nil},
	}
	for _, tc := range tests {
		t.Run(tc.node, func(t *testing.T) {
			called := false
			err := d.Console(context.Background(), tc.node, "tester", strings.NewReader(""), io.Discard, func() { called = true })
			if err == nil || !strings.Contains(err.Error(), tc.want) || called {
				t.Fatalf("err = %v (ready called %v), want %q", err, called, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v is not %v", err, tc.is)
			}
			if _, err := d.SOLLog(tc.node, 5); tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("SOLLog: %v", err)
			}
		})
	}
}

// TestRebootCleanStallShowsConsole: a node whose console shows progress but
// never checks in fails reboot-clean after the timeout, and both the
// failure progress message and the result carry its last console lines.
func TestRebootCleanStallShowsConsole(t *testing.T) {
	d := startSOLLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var failMsg string
	res, err := d.RebootClean(ctx, RebootRequest{Selection: "s1", Timeout: 4 * time.Second}, func(p RebootProgress) {
		if p.Step == workflow.StepFailed {
			failMsg = p.Message
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].OK {
		t.Fatalf("results %+v", res)
	}
	for what, text := range map[string]string{"result": res[0].Error, "progress": failMsg} {
		if !strings.Contains(text, "last console lines:\n  boot progress") {
			t.Errorf("%s message lacks the console lines: %q", what, text)
		}
		if n := strings.Count(text, "\n  "); n > SOLTailLines {
			t.Errorf("%s message has %d console lines, want at most %d", what, n, SOLTailLines)
		}
	}
	// The capture ends with the run.
	lab.Eventually(t, "capture stop", 5*time.Second, func() bool { l, _ := d.SOLLog("s1", 1); return !l.Active })
}

// floodSerial is a serial port that, once connected, prints lines
// "flood NNNNNN <padding>" (100 bytes each with CR LF) until total bytes are out.
func floodSerial(t *testing.T, total int) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Wait for the console to be activated: the first byte typed.
				if _, err := c.Read(make([]byte, 1)); err != nil {
					return
				}
				var b bytes.Buffer
				for i := 0; b.Len() < total; i++ {
					fmt.Fprintf(&b, "flood %06d %s\r\n", i, strings.Repeat("x", 85))
				}
				c.Write(b.Bytes())
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSOLCaptureBound: 400 KiB of console output through ipmi_sim's SOL
// leaves exactly sol.DefaultRingSize bytes in the node's log, the newest,
// and its tail ends with the last line printed.
func TestSOLCaptureBound(t *testing.T) {
	const total = 400 << 10
	d := startSOLLabWith(t, floodSerial(t, total))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- d.Console(context.WithoutCancel(ctx), "s1", "tester", pr, io.Discard, func() { go pw.Write([]byte("\r")) })
	}()
	last := (total+99)/100 - 1
	lastLine := fmt.Sprintf("flood %06d %s", last, strings.Repeat("x", 85))
	var l SOLLog
	for {
		l, _ = d.SOLLog("s1", 3)
		if len(l.Lines) == 3 && l.Lines[2] == lastLine {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("console ended at %d bytes: %v", l.Total, err)
		case <-ctx.Done():
			all, _ := d.SOLLog("s1", 100000)
			prev := -1
			for _, line := range all.Lines {
				var n int
				fmt.Sscanf(line, "flood %d", &n)
				if n != prev+1 || len(line) != 98 {
					t.Logf("after %d: %q", prev, line)
				}
				prev = n
			}
			t.Fatalf("last line not in 30s: %d of %d bytes; tail %q", l.Total, total, l.Lines)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Logf("%d KiB through SOL in %v", l.Total>>10, time.Since(start).Round(time.Millisecond))
	if l.Kept != sol.DefaultRingSize || l.Total < total {
		t.Errorf("kept %d of %d bytes, want %d of at least %d", l.Kept, l.Total, sol.DefaultRingSize, total)
	}
	if !strings.HasPrefix(l.Lines[0], fmt.Sprintf("flood %06d ", last-2)) {
		t.Errorf("tail %q", l.Lines)
	}
	// The whole log is the newest lines, in order, none torn but the cut
	// first one.
	all, _ := d.SOLLog("s1", 100000)
	for i := 1; i < len(all.Lines); i++ {
		want := fmt.Sprintf("flood %06d %s", last-len(all.Lines)+1+i, strings.Repeat("x", 85))
		if all.Lines[i] != want {
			t.Fatalf("line %d of the log is %q, want %q", i, all.Lines[i], want)
		}
	}
	if n := len(all.Lines); n < sol.DefaultRingSize/100-1 || n > sol.DefaultRingSize/100+1 {
		t.Errorf("%d lines kept, want about %d", n, sol.DefaultRingSize/100)
	}
}

// TestConsoleSharesCapture: a console attached while reboot-clean's capture
// holds the node's SOL joins the same session (the BMC allows one), and
// keeps working after the capture ends.
func TestConsoleSharesCapture(t *testing.T) {
	d := startSOLLab(t)
	stop, err := d.CaptureSOL("s1")
	if err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, "captured output", 10*time.Second, func() bool { l, _ := d.SOLLog("s1", 1); return l.Total > 0 })
	hub := d.SOLSession("s1")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	var out lab.Buffer
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d.Console(ctx, "s1", "tester", pr, &out, func() { close(ready) }) }()
	<-ready
	if d.SOLSession("s1") != hub {
		t.Error("the console started a second SOL session")
	}
	stop() // the capture ends; the console keeps the session
	pw.Write([]byte("still here\r"))
	lab.Eventually(t, "echo after the capture ended", 10*time.Second, func() bool { return strings.Contains(out.String(), "echo: still here") })
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-hub.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session outlived its last user")
	}
}
