package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/power/powertest"
	"github.com/netbootui/netbootui/internal/workflow"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// writeSeamInventory is a cluster of two nodes behind the test backend
// (simpower: machines m1 and m2 behind one lab "BMC") and one node behind
// IPMI (i1; its BMC's port once known).
func writeSeamInventory(t *testing.T, dir string, ipmiPort int) string {
	t.Helper()
	i1BMC := ""
	if ipmiPort != 0 {
		i1BMC = fmt.Sprintf("    bmc: {protocol: ipmi, host: 127.0.0.1, port: %d, password: lab, ipmi: {cipher_suites: [17, 3]}}\n", ipmiPort)
	}
	inv := `settings:
  secrets: secrets.yaml
  overlay_dirty_bytes: 1048576
images:
  compute: {}
groups:
  sim:
    image: compute
    bmc: {protocol: simpower, password: lab}
nodes:
  - name: p1
    group: sim
    nics: [{mac: "52:54:00:5e:00:01"}]
    bmc: {host: lab.example, simpower: {machine: m1}}
  - name: p2
    group: sim
    nics: [{mac: "52:54:00:5e:00:02"}]
    bmc: {host: lab.example, simpower: {machine: m2}}
  - name: i1
    image: compute
    nics: [{mac: "52:54:00:5e:00:03"}]
` + i1BMC
	p := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(p, []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("bmc_passwords:\n  lab: "+rebootPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRebootCleanThroughTestBackend is the power seam's proof: a second
// backend (internal/power/powertest, no BMC protocol at all) is registered
// by this test, in one line, on the daemon's registry; the inventory names
// it; and with no other change the daemon powers simulated nodes through
// it. Their firmware really boots from the daemon (bootloader over TFTP,
// script, kernel, initrd and root over HTTP, check-in). p1 runs generation A
// and turns dirty when B is published; reboot-clean over p1, p2 (off) and
// i1 (an IPMI node beside them) brings all three back clean on B. A console
// on a backend without one says so.
func TestRebootCleanThroughTestBackend(t *testing.T) {
	dir := t.TempDir()
	lab := powertest.NewLab(rebootPassword)
	reg := backends.Registry()
	if err := reg.Register(lab.Protocol()); err != nil { // the registration line
		t.Fatal(err)
	}
	d, genA, nodes := startPowerCluster(t, dir, writeSeamInventory(t, dir, 0), reg, io.Discard, []string{"m1", "m2", "i1"}, "52:54:00:5e:00:%02x")
	lab.Add("m1", nodes["m1"])
	lab.Add("m2", nodes["m2"])
	writeSeamInventory(t, dir, nodes["i1"].Port())
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()

	// p1 boots generation A through the test backend, driven by the API's
	// power verbs.
	for _, op := range []string{"bootdev-pxe", "on"} {
		res, err := d.Power(rctx, PowerRequest{Selection: "p1", Op: op, Who: "tester"}, nil)
		if err != nil || len(res) != 1 || res[0].Error != "" || res[0].BMC != "lab.example:7" {
			t.Fatalf("power %s p1: %+v, %v", op, res, err)
		}
	}
	if !simnode.WaitFor(20*time.Second, func() bool { v, _ := d.Node("p1"); return v.State.Generation == genA && !v.Dirty }) {
		v, _ := d.Node("p1")
		t.Fatalf("p1 did not boot generation %s: %+v, firmware %+v", genA, v, nodes["m1"].Stats())
	}
	// Generation B is published: p1 now runs the wrong one.
	genB := importGen(t, d, dir, 'b', true)
	if v, _ := d.Node("p1"); !v.Dirty || v.Assigned != genB {
		t.Fatalf("p1 after B was published: dirty %v, assigned %s (want %s)", v.Dirty, v.Assigned, genB)
	}

	// One bulk status over the mixed cluster: both backends answer.
	state, _ := powerStates(t, rctx, d, "p[1-2],i1")
	if state["p1"] != "on" || state["p2"] != "off" || state["i1"] != "off" {
		t.Fatalf("status: %v", state)
	}

	var steps []string
	res, err := d.RebootClean(rctx, RebootRequest{Selection: "p[1-2],i1", Timeout: 30 * time.Second, Who: "tester"}, func(p RebootProgress) {
		if p.Node == "p1" {
			steps = append(steps, string(p.Step))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.OK || r.Generation != genB || r.Step != workflow.StepClean {
			t.Errorf("%s: %+v", r.Node, r)
		}
	}
	for _, name := range []string{"p1", "p2", "i1"} {
		if v, _ := d.Node(name); v.State.Generation != genB || v.Dirty {
			t.Errorf("%s after reboot-clean: running %s, dirty %v %v", name, v.State.Generation, v.Dirty, v.DirtyReasons)
		}
	}
	if !slices.Equal(steps[:3], []string{"render", "bootdev", "cycle"}) || steps[len(steps)-1] != "clean" {
		t.Errorf("p1 steps %v", steps)
	}
	// The machines were driven through the test backend, and booted for
	// real: the bootloader over TFTP, then HTTP.
	calls := strings.Join(lab.Calls(), "\n")
	for _, want := range []string{"m1 boot pxe", "m1 cycle", "m2 boot pxe", "m2 cycle"} {
		if !strings.Contains(calls, want) {
			t.Errorf("the test backend was not asked %q; calls:\n%s", want, calls)
		}
	}
	if lab.Opened() != 1 {
		t.Errorf("the backend was opened %d times, want once", lab.Opened())
	}
	for name, boots := range map[string]int{"m1": 2, "m2": 1, "i1": 1} {
		s := nodes[name].Stats()
		if s.NetBoots != boots || len(s.Fetched) < 5 || s.Fetched[len(s.Fetched)-5] != "tftp:undionly.kpxe" ||
			s.Fetched[len(s.Fetched)-1] != "/images/compute/"+genB+"/rootfs.squashfs" {
			t.Errorf("%s: %d network boots (want %d), fetched %v", name, s.NetBoots, boots, s.Fetched)
		}
	}
	// The history names the protocol of each power event.
	evs := d.History("p1", 200)
	seen := false
	for _, ev := range evs {
		seen = seen || ev.Kind == bootstate.KindPower && ev.Proto == powertest.Name && ev.Message == "cycle"
	}
	if !seen {
		t.Errorf("no simpower cycle event in p1's history: %+v", evs)
	}

	// A console on a backend without one says so, naming the backend.
	err = d.Console(rctx, "p1", "tester", strings.NewReader(""), io.Discard, func() { t.Error("ready called") })
	if !errors.Is(err, power.ErrNoConsole) || !strings.Contains(err.Error(), "the simpower backend has no serial console") {
		t.Errorf("console on p1: %v", err)
	}
}

// startPowerCluster runs a daemon (daemontest) on the inventory at inv,
// power backends from reg, logs to logs, with generation A imported and
// published before it starts (returned), and starts one simulated node per
// name, MACs from macFmt and 1, 2, ..., booting from the daemon; all
// stopped at the end of the test.
func startPowerCluster(t *testing.T, dir, inv string, reg *power.Registry, logs io.Writer, names []string, macFmt string) (*Daemon, string, map[string]*simnode.Node) {
	t.Helper()
	var genA string
	d := daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{InventoryPath: inv,
		TFTPListen: "127.0.0.1:0", StallTimeout: 5 * time.Second, ReloadInterval: 50 * time.Millisecond,
		Backends: reg, Power: power.Config{CallTimeout: 3 * time.Second},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		Before: func(d *Daemon) error { genA = importGen(t, d, dir, 'a', true); return nil }}).D
	nodes := map[string]*simnode.Node{}
	for i, name := range names {
		n, err := simnode.Start(simnode.Options{MAC: fmt.Sprintf(macFmt, i+1), Password: rebootPassword,
			BaseURL: "http://" + d.HTTPAddr().String(), TFTPAddr: d.TFTPAddr().String()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		nodes[name] = n
	}
	return d, genA, nodes
}

// powerStates runs one bulk power status over sel and returns each node's
// power; every node must answer.
func powerStates(t *testing.T, ctx context.Context, d *Daemon, sel string) (map[string]string, []PowerResult) {
	t.Helper()
	st, err := d.Power(ctx, PowerRequest{Selection: sel, Op: "status"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]string{}
	for _, r := range st {
		if r.Error != "" {
			t.Fatalf("status %s: %s", r.Node, r.Error)
		}
		state[r.Node] = r.Power
	}
	return state, st
}
