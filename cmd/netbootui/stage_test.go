package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/rollout"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

func writeStageCLIInventory(t *testing.T, dir string, ports []int) string {
	return writeSimInventory(t, dir, "groups:\n  # kept through promote\n  g:\n    image: compute # group default\n", "k", "6b", 4, ports)
}

// startStageServe runs `netbootui serve` on httpAddr (no TFTP, a short
// stall timeout for the simulated nodes) and waits for its API.
func startStageServe(t *testing.T, inv, data, httpAddr string) (*serveProc, apitype.Status) {
	t.Helper()
	return startServeWith(t, inv, data, "--http-listen", httpAddr, "--tftp-listen", "", "--stall-timeout", "500ms")
}

// TestStageCLIAndSIGKILL drives `netbootui stage` against `netbootui serve`
// and four simulated nodes in waves of two; k3's firmware hangs after the
// kernel, so wave 2 stays in flight. The daemon is killed with SIGKILL in
// the middle of wave 2 and restarted on the same data dir: the rollout is
// halted, wave 1's nodes are done, wave 2's are staged again, and every
// node's staged and previous generations are intact. After k3 is fixed,
// resume completes (stage show -f exits 0) and promote writes the group's
// default with its comments.
func TestStageCLIAndSIGKILL(t *testing.T) {
	dir := t.TempDir()
	inv := writeStageCLIInventory(t, dir, nil)
	data := filepath.Join(dir, "data")
	p, st := startStageServe(t, inv, data, "127.0.0.1:0")
	killed := false
	defer func() {
		if !killed {
			p.stop(t)
		}
	}()
	c := apiclient.New(p.socket)
	ctx := context.Background()
	var gens []string
	for i, pub := range []bool{true, false} {
		files := map[string]string{}
		for _, f := range []string{"kernel", "initrd", "rootfs"} {
			files[f] = filepath.Join(dir, fmt.Sprintf("%s%d", f, i))
			os.WriteFile(files[f], bytes.Repeat([]byte(f+fmt.Sprint(i)), 5000), 0o644)
		}
		m, err := c.Import(ctx, apitype.ImportRequest{Image: "compute", Publish: pub},
			apiclient.ImportFiles{Kernel: files["kernel"], Initrd: files["initrd"], Rootfs: files["rootfs"]})
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, m.ID)
	}
	oldGen, newGen := gens[0], gens[1]
	var ports []int
	var sims []*simnode.Node
	for i := range 4 {
		stop := ""
		if i == 2 {
			stop = "kernel"
		}
		n, err := simnode.Start(simnode.Options{MAC: fmt.Sprintf("52:54:00:6b:00:0%d", i+1), Password: cliBMCPassword,
			BaseURL: "http://" + st.HTTP, StopAfter: stop})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		sims = append(sims, n)
		ports = append(ports, n.Port())
	}
	writeStageCLIInventory(t, dir, ports)
	if _, err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	sock := "--api-socket=" + p.socket

	tests := []struct {
		args   []string
		code   int
		outHas []string
		errHas string
	}{
		{[]string{"preview", "k[1-4]", newGen[:8], "--wave", "50%"}, 0, []string{
			"compute@" + newGen + " on k[1-4]: 4 nodes change, 0 already have it, 2 waves of 50%",
			"1     k1    " + oldGen[:12] + "  " + newGen[:12], "2     k4    "}, ""},
		{[]string{"preview", "k[1-4]", "compute@nosuch"}, 1, nil, `image compute has no generation "nosuch"`},
		{[]string{"preview", "k[1-4]", newGen, "--wave", "x"}, 1, nil, `wave size "x"`},
		{[]string{"preview", "k[1-4]", newGen, "--timeout", "0s"}, 1, nil, "--timeout 0s must be positive"},
		{[]string{"preview", "k1"}, 2, nil, "needs 2 argument"},
		{[]string{"run", "7"}, 1, nil, `no such rollout "7"`},
		{[]string{"fly"}, 2, nil, "usage"},
		{[]string{"create", "k[1-4]", newGen, "--wave", "2", "--timeout", "1m"}, 0, []string{
			"rollout 1: compute@" + newGen[:12] + " on k[1-4]: staged", "1/2   pending  0   0       k1,k2"}, ""},
		{[]string{"create", "k1", newGen}, 1, nil, "node k1 is in rollout 1"},
		{[]string{"promote"}, 1, nil, "rollout 1 is staged: not allowed in this state"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, append(append([]string{"stage"}, tc.args...), sock)...)
			if code != tc.code {
				t.Fatalf("code %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.outHas {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			if !strings.Contains(errOut, tc.errHas) {
				t.Errorf("stderr %q lacks %q", errOut, tc.errHas)
			}
		})
	}
	assigned := func(name string) string {
		v, err := c.Node(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return v.Assigned
	}
	for _, n := range []string{"k1", "k2", "k3", "k4"} {
		if a := assigned(n); a != newGen {
			t.Fatalf("%s assigned %s after create", n, a)
		}
	}

	// Run, and kill the daemon while wave 2 waits for k3.
	if out, errOut, code := runCLI(t, "stage", "run", sock); code != 0 || !strings.Contains(out, "running") {
		t.Fatalf("run: %d\n%s%s", code, out, errOut)
	}
	inWave2 := simnode.WaitFor(40*time.Second, func() bool {
		r, err := c.Stage(ctx, "1")
		return err == nil && r.Waves[0].State == apitype.WavePassed && r.Waves[1].State == apitype.WaveRunning &&
			sims[3].Stats().Checkins == 1
	})
	if !inWave2 {
		r, _ := c.Stage(ctx, "1")
		t.Fatalf("wave 2 never in flight: %+v", r)
	}
	p.cmd.Process.Kill() // SIGKILL
	p.cmd.Wait()
	killed = true
	var f rollout.File
	b, err := os.ReadFile(filepath.Join(data, "rollouts.json"))
	if err == nil {
		f, err = rollout.Parse(b)
	}
	if err != nil || len(f.Rollouts) != 1 || f.Rollouts[0].State != rollout.StateRunning {
		t.Fatalf("state file after SIGKILL: %v %+v", err, f)
	}

	p, _ = startStageServe(t, inv, data, st.HTTP)
	killed = false
	r, err := c.Stage(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != apitype.RolloutHalted || r.Reason != "daemon restarted during wave 2" {
		t.Fatalf("after restart: %s %q", r.State, r.Reason)
	}
	want := map[string]apitype.RolloutNodeStatus{"k1": apitype.NodeDone, "k2": apitype.NodeDone, "k3": apitype.NodeStaged, "k4": apitype.NodeStaged}
	for name, s := range want {
		n := r.Node(name)
		if n.Status != s || n.Previous != oldGen || assigned(name) != newGen {
			t.Errorf("%s after restart: %+v, assigned %s", name, n, assigned(name))
		}
	}
	if r.Waves[1].State != apitype.WavePending || r.Node("k3").Error != "interrupted by a daemon restart" {
		t.Errorf("wave 2 %s, k3 error %q", r.Waves[1].State, r.Node("k3").Error)
	}
	es, _ := c.Audit(ctx, 50)
	if last := es[len(es)-1]; last.Action != "rollout halt" || !strings.Contains(last.Result, "daemon restarted during wave 2") {
		t.Errorf("last audit entry %+v", last)
	}

	// Fix k3 (working firmware on a new BMC), resume and follow.
	sims[2].Close()
	fixed, err := simnode.Start(simnode.Options{MAC: "52:54:00:6b:00:03", Password: cliBMCPassword, BaseURL: "http://" + st.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	defer fixed.Close()
	if _, err := c.EditNode(ctx, "k3", apitype.Edit{Set: map[string]any{"bmc.port": fixed.Port()}}); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runCLI(t, "stage", "resume", "1", sock); code != 0 {
		t.Fatalf("resume: %d\n%s%s", code, out, errOut)
	}
	out, errOut, code := runCLI(t, "stage", "show", "-f", sock)
	if code != 0 || !strings.Contains(out, "rollout 1: compute@"+newGen[:12]+" on k[1-4]: completed") ||
		!strings.Contains(out, "2/2   passed  2   0       k3,k4") {
		t.Fatalf("show -f: %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "stage", "promote", sock)
	if code != 0 || !strings.Contains(out, "promoted: group g image: compute@"+newGen) {
		t.Fatalf("promote: %d\n%s%s", code, out, errOut)
	}
	text, _ := os.ReadFile(inv)
	if !bytes.Contains(text, []byte("  # kept through promote\n  g:\n    image: compute@"+newGen+" # group default\n")) {
		t.Errorf("inventory after promote:\n%s", text)
	}
	if _, errOut, code := runCLI(t, "stage", "rollback", "1", sock); code != 1 || !strings.Contains(errOut, "rollout 1 is promoted") {
		t.Errorf("rollback after promote: %d %s", code, errOut)
	}
	out, _, _ = runCLI(t, "stage", "list", "-o", "json", sock)
	var list []*apitype.Rollout
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].State != apitype.RolloutPromoted {
		t.Errorf("list: %v %s", err, out)
	}
}
