package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/ipmi/ipmisim"
	"github.com/netbootui/netbootui/internal/lab"
)

// serialPort plays a node's serial port behind ipmi_sim's SOL: "boot
// progress N" every 100 ms, "echo: LINE" for every line typed; it records
// what it received.
type serialPort struct {
	ln  net.Listener
	mu  sync.Mutex
	got bytes.Buffer
}

func startSerialPort(t *testing.T) *serialPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &serialPort{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *serialPort) serve(c net.Conn) {
	defer c.Close()
	var wmu sync.Mutex
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			wmu.Lock()
			_, err := fmt.Fprintf(c, "boot progress %d\r\n", i)
			wmu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\r')
		s.mu.Lock()
		s.got.WriteString(line)
		s.mu.Unlock()
		if err != nil {
			return
		}
		wmu.Lock()
		fmt.Fprintf(c, "echo: %s\r\n", strings.TrimSpace(line))
		wmu.Unlock()
	}
}

func (s *serialPort) received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.String()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func waitText(t *testing.T, b *syncBuf, want string, timeout time.Duration) {
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
func TestConsoleSOLCLI(t *testing.T) {
	lab.RequireTools(t, "ipmi_sim")
	dir := t.TempDir()
	port := startSerialPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim, err := ipmisim.Start(ctx, ipmisim.Options{Dir: filepath.Join(dir, "bmc"), Password: cliBMCPassword,
		SOLPort: port.ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop()
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
	defer p.stop(t)
	sock := "--api-socket=" + p.socket

	cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
	defer ccancel()
	cmd := exec.CommandContext(cctx, binary, "console", "c1", sock)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuf
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
	if got := port.received(); !strings.Contains(got, "hello console\r") || strings.Contains(got, "after-escape") {
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
