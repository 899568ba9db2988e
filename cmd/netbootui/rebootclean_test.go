package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

const cliBMCPassword = "Cli-s3cret-pw"

func writeCLIInventory(t *testing.T, dir string, ports []int) string {
	return writeSimInventory(t, dir, "groups:\n  g:\n    image: compute\n", "c", "dd", 2, ports)
}

// writeSimInventory writes nodes.yaml (image compute, group g whose lines
// start with groupHead, count nodes PREFIX1.. with MACs 52:54:00:MAC:00:0N
// and, once their simulated BMCs run, their ports) and a secrets file with
// cliBMCPassword; it returns the inventory's path.
func writeSimInventory(t *testing.T, dir, groupHead, prefix, mac string, count int, ports []int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("settings:\n  secrets: secrets.yaml\nimages:\n  compute: {}\n" + groupHead + "    bmc: {user: admin, password: lab}\nnodes:\n")
	for i := range count {
		fmt.Fprintf(&b, "  - name: %s%d\n    group: g\n    nics: [{mac: \"52:54:00:%s:00:0%d\"}]\n", prefix, i+1, mac, i+1)
		if ports != nil {
			fmt.Fprintf(&b, "    bmc: {host: 127.0.0.1, port: %d}\n", ports[i])
		}
	}
	p := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("bmc_passwords:\n  lab: "+cliBMCPassword+"\n"), 0o600)
	return p
}

// TestRebootCleanCLI runs `netbootui serve` and `netbootui reboot-clean`
// as programs against two simulated nodes (in-process BMCs in this test
// whose power-on boots from the daemon over HTTP); c2's firmware hangs after
// the initrd. The verb prints progress lines and a table and exits 1; on c1
// alone it exits 0; ctrl+c stops a run on the daemon.
func TestRebootCleanCLI(t *testing.T) {
	dir := t.TempDir()
	inv := writeCLIInventory(t, dir, nil)
	data := filepath.Join(dir, "data")
	p, st := startStageServe(t, inv, data, "127.0.0.1:0")
	defer p.stop(t)
	c := apiclient.New(p.socket)
	ctx := context.Background()
	var files = map[string]string{}
	for _, f := range []string{"kernel", "initrd", "rootfs"} {
		files[f] = filepath.Join(dir, f)
		os.WriteFile(files[f], bytes.Repeat([]byte(f), 10000), 0o644)
	}
	m, err := c.Import(ctx, apitype.ImportRequest{Image: "compute", Publish: true},
		apiclient.ImportFiles{Kernel: files["kernel"], Initrd: files["initrd"], Rootfs: files["rootfs"]})
	if err != nil {
		t.Fatal(err)
	}
	var ports []int
	for i, stop := range []string{"", "initrd"} {
		n, err := simnode.Start(simnode.Options{MAC: fmt.Sprintf("52:54:00:dd:00:0%d", i+1), Password: cliBMCPassword,
			BaseURL: "http://" + st.HTTP, StopAfter: stop})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		ports = append(ports, n.Port())
	}
	writeCLIInventory(t, dir, ports)
	if _, err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	sock := "--api-socket=" + p.socket

	tests := []struct {
		args    []string
		code    int
		outHas  []string
		errHas  string
		outLack string
	}{
		{args: []string{"c[1-2]", "--timeout", "2s"}, code: 1, outHas: []string{
			" c1 bootdev\n", " c1 cycle\n", " c1 boot kernel\n", " c1 clean booted generation " + m.ID + "\n",
			" c2 boot initrd\n", " c2 failed: no check-in within 2s: stalled in stage initrd since ",
			"NODE  RESULT", "1 ok, 1 failed"}},
		{args: []string{"c1"}, code: 0, outHas: []string{" c1 clean booted", "1 ok, 0 failed"}, outLack: "FAILED"},
		{args: []string{"nosuch"}, code: 1, errHas: "nosuch"},
		{args: []string{"c1", "--timeout", "-1s"}, code: 1, errHas: "--timeout -1s must be positive"},
		{args: []string{}, code: 2},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, append(append([]string{"reboot-clean"}, tc.args...), sock)...)
			t.Logf("stdout:\n%s", out)
			if code != tc.code {
				t.Fatalf("code %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.outHas {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			if tc.outLack != "" && strings.Contains(out, tc.outLack) {
				t.Errorf("stdout has %q:\n%s", tc.outLack, out)
			}
			if !strings.Contains(errOut, tc.errHas) {
				t.Errorf("stderr %q lacks %q", errOut, tc.errHas)
			}
		})
	}

	// -o json prints the results only.
	out, _, code := runCLI(t, "reboot-clean", "c1", "-o", "json", sock)
	if code != 0 || !strings.Contains(out, `"ok": true`) || strings.Contains(out, "bootdev") {
		t.Fatalf("-o json: %d\n%s", code, out)
	}

	// ctrl+c: the run on the daemon stops and is audited as cancelled.
	run := exec.Command(binary, "reboot-clean", "c2", "--timeout", "1m", sock)
	stdout, _ := run.StdoutPipe()
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), " c2 boot initrd") {
			break
		}
	}
	start := time.Now()
	run.Process.Signal(syscall.SIGINT)
	go func() {
		for sc.Scan() {
		}
	}()
	done := make(chan error, 1)
	go func() { done <- run.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("interrupted reboot-clean exited 0")
		}
	case <-time.After(15 * time.Second):
		run.Process.Kill()
		t.Fatal("reboot-clean did not stop on SIGINT")
	}
	cancelled := simnode.WaitFor(10*time.Second, func() bool {
		es, _ := c.Audit(ctx, 5)
		for _, e := range es {
			if e.Action == "reboot-clean" && e.Target == "c2" && strings.Contains(e.Result, "(cancelled)") {
				return true
			}
		}
		return false
	})
	if !cancelled {
		es, _ := c.Audit(ctx, 5)
		t.Fatalf("no cancelled run in the audit log: %+v", es)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	// The audit log has one entry per run, with the failures.
	es, _ := c.Audit(ctx, 20)
	var runs int
	for _, e := range es {
		if e.Action == "reboot-clean" {
			runs++
			if e.Target == "c[1-2]" && (e.Result != "1 ok, 1 failed" || len(e.Details) != 1 || !strings.HasPrefix(e.Details[0], "c2: ")) {
				t.Errorf("audit of c[1-2]: %+v", e)
			}
		}
	}
	if runs != 4 {
		t.Errorf("%d reboot-clean audit entries, want 4 (two runs refused before starting): %+v", runs, es)
	}
}
