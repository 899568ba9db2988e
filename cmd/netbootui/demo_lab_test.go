package main

import (
	"bytes"
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
	"github.com/netbootui/netbootui/internal/demo/qemubmc"
	"github.com/netbootui/netbootui/internal/lab"
)

// TestDemoLab runs the real binary: `netbootui demo --lab 1 --no-tui` builds
// the default recipe, powers lab01 on through its ipmi_sim (whose chassis
// program starts a TCG QEMU), and lab01 PXE-boots to booted (seen through
// the API). SIGTERM then leaves no QEMU or ipmi_sim process of the demo's lab
// folder, no lab folder and no socket.
func TestDemoLab(t *testing.T) {
	lab.RequireTools(t, "qemu-system-x86_64", "ipmi_sim", "mksquashfs")
	vmlinuz, _ := lab.Kernel(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "demo.sock")
	data := filepath.Join(dir, "data")
	cmd := exec.Command(binary, "demo", "--lab", "1", "--no-tui", "--api-socket", socket, "--data", data,
		"--kernel-dir", filepath.Dir(vmlinuz), "--status-every", "5s", "--power-poll", "2s")
	var out, errOut lab.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	labDirRe := regexp.MustCompile(`lab dir:\s+(\S+)`)
	var labDir string
	defer func() {
		cmd.Process.Kill()
		<-exited
		// A failed test must not leave VMs behind either.
		if labDir != "" {
			for _, pid := range qemubmc.Procs(labDir) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			os.RemoveAll(labDir)
		}
	}()
	start := time.Now()
	c := apiclient.New(socket)
	nodes := waitNodes(t, c, 170*time.Second, "lab01 booted", func(n []apitype.NodeView) bool {
		if labDir == "" {
			if m := labDirRe.FindStringSubmatch(out.String()); m != nil {
				labDir = m[1]
			}
		}
		return len(n) == 1 && n[0].State.Stage == apitype.StageBooted
	})
	t.Logf("lab01 booted %s after start (generation %s)", time.Since(start).Round(100*time.Millisecond), nodes[0].State.Generation)
	if nodes[0].Name != "lab01" || nodes[0].State.Generation == "" || nodes[0].State.Generation != nodes[0].Assigned {
		t.Errorf("lab01: %+v", nodes[0])
	}
	if labDir == "" {
		t.Fatalf("no lab dir in the output:\n%s", out.String())
	}
	// The VM runs from the lab folder, its pid in its pid file; ipmi_sim too.
	pidFile := filepath.Join(labDir, "lab01", "qemu.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("no QEMU pid file: %v", err)
	}
	qemuPid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	procs := qemubmc.Procs(labDir)
	if len(procs) < 2 || syscall.Kill(qemuPid, 0) != nil {
		t.Fatalf("want QEMU %d and ipmi_sim running from %s, got %v", qemuPid, labDir, procs)
	}
	chassis, _ := os.ReadFile(filepath.Join(labDir, "lab01", "chassis.log"))
	if !strings.Contains(string(chassis), "set power 1") {
		t.Errorf("ipmi_sim did not power the VM on through chassis_control:\n%s", chassis)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("demo exited: %v\n%s\n%s", err, out.String(), errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("SIGTERM did not stop the demo\n%s", out.String())
	}
	t.Logf("stopped %s after start", time.Since(start).Round(100*time.Millisecond))
	for _, pid := range procs {
		if syscall.Kill(pid, 0) == nil {
			st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if !bytes.Contains(st, []byte(") Z")) {
				t.Errorf("process %d of the lab is still running: %s", pid, st)
			}
		}
	}
	if left := qemubmc.Procs(labDir); len(left) != 0 {
		t.Errorf("processes left in %s: %v", labDir, left)
	}
	if _, err := os.Stat(labDir); !os.IsNotExist(err) {
		t.Errorf("lab folder %s left behind: %v", labDir, err)
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("socket %s left behind: %v", socket, err)
	}
	s := out.String()
	for _, want := range []string{"default recipe", "QEMU nodes (TCG", "ipmi_sim", "netbootui demo: stopping"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if e := errOut.String(); strings.Contains(e, "cleanup") {
		t.Errorf("cleanup errors:\n%s", e)
	}
}
