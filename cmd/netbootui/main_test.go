package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/inventory"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netbootui-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "netbootui")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building netbootui: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLIWithin(t, 60*time.Second, args...)
}

// runCLIWithin is runCLI with a time limit of its own.
func runCLIWithin(t *testing.T, limit time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func TestValidate(t *testing.T) {
	// The example as the README installs it (secrets file 0600) is valid.
	inv := copyExample(t)
	out, errOut, code := runCLI(t, "validate", inv)
	if code != 0 || !strings.Contains(out, "ok: 12 nodes") {
		t.Fatalf("example: code %d\n%s%s", code, out, errOut)
	}
	// With the secrets file as git checks it out (0644) the daemon would
	// refuse every password: so does validate.
	os.Chmod(filepath.Join(filepath.Dir(inv), "secrets.yaml"), 0o644)
	if _, errOut, code := runCLI(t, "validate", inv); code != 1 || !strings.Contains(errOut, "settings.secrets") || !strings.Contains(errOut, "must be 0600") {
		t.Fatalf("example with a 0644 secrets file: code %d, stderr %q", code, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("nodes:\n  - name: n1\n    nics: [{mac: \"zz:54:00:00:00:01\"}]\n"), 0o644)
	_, errOut, code = runCLI(t, "validate", bad)
	if code != 1 || !strings.HasPrefix(errOut, bad+":3:") || !strings.Contains(errOut, "zz:54") {
		t.Fatalf("bad file: code %d, stderr %q", code, errOut)
	}
	if _, _, code := runCLI(t, "validate"); code != 2 {
		t.Fatalf("no argument: code %d, want 2", code)
	}
}

// serveProc is a running `netbootui serve`.
type serveProc struct {
	cmd    *exec.Cmd
	socket string
	stderr *bytes.Buffer
}

// startServe runs `netbootui serve` on the inventory with loopback servers
// and waits for its API.
func startServe(t *testing.T, inv, data string) *serveProc {
	t.Helper()
	p, _ := startServeWith(t, inv, data)
	return p
}

// startServeWith runs `netbootui serve` with the test defaults and then
// extra flags (a later flag wins), waits for its API and returns its
// status. The power poller is off: the example's BMCs are documentation
// addresses that must never be contacted.
func startServeWith(t *testing.T, inv, data string, extra ...string) (*serveProc, apitype.Status) {
	t.Helper()
	socket := filepath.Join(data, "api.sock")
	args := append([]string{"serve", "--inventory", inv, "--data", data, "--http-listen", "127.0.0.1:0",
		"--tftp-listen", "127.0.0.1:0", "--api-socket", socket, "--reload-interval", "100ms",
		"--power-poll", "0"}, extra...)
	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, socket: socket, stderr: &stderr}
	c := apiclient.New(socket)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := c.Status(ctx)
		cancel()
		if err == nil {
			return p, st
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("serve did not come up: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *serveProc) stop(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve exited: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		t.Error("serve did not stop on SIGTERM")
	}
}

func copyExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile("../../examples/nodes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(inv, b, 0o644)
	s, _ := os.ReadFile("../../examples/secrets.yaml")
	os.WriteFile(filepath.Join(dir, "secrets.yaml"), s, 0o600)
	return inv
}

func TestServeAndClientVerbs(t *testing.T) {
	inv := copyExample(t)
	p := startServe(t, inv, filepath.Join(t.TempDir(), "data"))
	defer p.stop(t)
	sock := "--api-socket=" + p.socket

	out, errOut, code := runCLI(t, "node", "list", sock)
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "n08") || !strings.Contains(out, "login1") {
		t.Fatalf("node list: %d\n%s%s", code, out, errOut)
	}
	out, _, _ = runCLI(t, "node", "list", "-o", "json", sock)
	var nodes []apitype.NodeView
	if err := json.Unmarshal([]byte(out), &nodes); err != nil || len(nodes) != 12 {
		t.Fatalf("node list -o json: %v (%d nodes)", err, len(nodes))
	}
	for _, n := range nodes {
		if strings.Contains(out, "s3cret") || strings.Contains(fmt.Sprint(n), "password") {
			t.Fatalf("node list leaks BMC credentials: %+v", n)
		}
	}
	out, _, code = runCLI(t, "node", "show", "n03", sock)
	if code != 0 || !strings.Contains(out, "52:54:00:00:01:03") || !strings.Contains(out, "10.1.0.13") {
		t.Fatalf("node show: %d\n%s", code, out)
	}
	out, _, code = runCLI(t, "boot", "show", "n03", "-o", "ipxe", sock)
	if code != 0 || !strings.HasPrefix(out, "#!ipxe") {
		t.Fatalf("boot show: %d\n%s", code, out)
	}
	if _, errOut, code = runCLI(t, "node", "show", "nosuch", sock); code == 0 || !strings.Contains(errOut, "nosuch") {
		t.Fatalf("unknown node: %d %s", code, errOut)
	}

	// An edit, then a stale one that must conflict.
	st, _ := apiclient.New(p.socket).Status(context.Background())
	stale := st.Inventory.Revision
	if out, errOut, code = runCLI(t, "node", "set", "login1", "kernel_args=quiet", sock); code != 0 {
		t.Fatalf("node set: %d %s%s", code, out, errOut)
	}
	if _, errOut, code = runCLI(t, "node", "set", "login1", "kernel_args=loud", "--base", stale, sock); code == 0 || !strings.Contains(errOut, "conflict") {
		t.Fatalf("stale edit: code %d, %s", code, errOut)
	}
	b, _ := os.ReadFile(inv)
	if !bytes.Contains(b, []byte("kernel_args: quiet")) || bytes.Contains(b, []byte("loud")) {
		t.Fatalf("inventory after edits:\n%s", b)
	}
	out, _, _ = runCLI(t, "events", "-n", "20", sock)
	if !strings.Contains(out, "inventory revision") {
		t.Fatalf("events:\n%s", out)
	}
}

// TestSIGKILLDuringWrites kills the daemon at random moments while a client
// edits the inventory through it in a loop: the file always parses and holds
// one of the versions written, never older than the last one the daemon
// acknowledged. The kill comes after a random number of acknowledged edits
// (plus a random delay), not after a fixed time: one durable edit is two
// fsyncs, which take seconds on a disk shared with other jobs.
func TestSIGKILLDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	inv := copyExample(t)
	data := filepath.Join(t.TempDir(), "data")
	for round := range 8 {
		p := startServe(t, inv, data)
		c := apiclient.New(p.socket)
		ctx, cancel := context.WithCancel(context.Background())
		var tried, acked atomic.Int64
		acked.Store(-1)
		acks := make(chan struct{}, 1000)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ctx.Err() == nil; i++ {
				v := round*100000 + i
				tried.Store(int64(v))
				if _, err := c.EditNode(ctx, "login1", apitype.Edit{Set: map[string]any{"kernel_args": fmt.Sprintf("k=%d", v)}}); err == nil {
					acked.Store(int64(v))
					select {
					case acks <- struct{}{}:
					default:
					}
				}
			}
		}()
		want := 1 + rand.IntN(8)
		deadline := time.After(2 * time.Minute)
		for n := range want {
			select {
			case <-acks:
			case <-deadline:
				p.cmd.Process.Kill()
				p.cmd.Wait()
				cancel()
				<-done
				t.Fatalf("round %d: %d of %d edits acknowledged in 2 minutes\n%s", round, n, want, p.stderr.String())
			}
		}
		time.Sleep(rand.N(50 * time.Millisecond))
		p.cmd.Process.Kill()
		p.cmd.Wait()
		cancel()
		<-done
		if acked.Load() < 0 {
			t.Fatalf("round %d: no edit went through before the kill\n%s", round, p.stderr.String())
		}
		got, err := inventory.Load(inv)
		if err != nil {
			t.Fatalf("round %d: inventory unparseable after SIGKILL: %v", round, err)
		}
		// The node's kernel args follow its group's.
		ka := got.Node("login1").KernelArgs
		var v int64
		if _, err := fmt.Sscanf(ka, "console=ttyS0,115200 k=%d", &v); err != nil || fmt.Sprintf("console=ttyS0,115200 k=%d", v) != ka {
			t.Fatalf("round %d: login1 kernel args %q are none of the versions written", round, ka)
		}
		if v < acked.Load() || v > tried.Load() {
			t.Fatalf("round %d: login1 kernel args %q; acknowledged up to k=%d, tried up to k=%d", round, ka, acked.Load(), tried.Load())
		}
	}
	// The daemon starts again on the same data directory and file.
	p := startServe(t, inv, data)
	p.stop(t)
}

func TestCLIValue(t *testing.T) {
	for in, want := range map[string]any{
		"623": 623, "true": true, "quiet splash": "quiet splash", `"0123"`: "0123", "[17, 3]": []any{17, 3}, "[x": "[x",
	} {
		if got := cliValue(in); fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprintf("%T", got) != fmt.Sprintf("%T", want) {
			t.Errorf("cliValue(%q) = %#v, want %#v", in, got, want)
		}
	}
}
