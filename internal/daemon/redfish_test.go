package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
	"github.com/netbootui/netbootui/internal/rollout"
	"github.com/netbootui/netbootui/internal/workflow"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// redfishPassword is the Redfish BMCs' password: it must never show in the
// daemon's logs, API results or errors.
const redfishPassword = "Redf1sh-Pa55w0rd"

// writeRedfishInventory is a cluster of two nodes behind simulated Redfish
// BMCs (r1: Dell iDRAC shapes, r2: HPE iLO, both trusting the simulators'
// CA) and one behind IPMI (i1), once their ports are known.
func writeRedfishInventory(t *testing.T, dir string, r1, r2, ipmiPort int) string {
	t.Helper()
	inv := fmt.Sprintf(`settings:
  secrets: secrets.yaml
  overlay_dirty_bytes: 1048576
images:
  compute: {}
groups:
  rf:
    image: compute
    bmc: {protocol: redfish, user: root, password: rf, redfish: {ca: bmc-ca.pem}}
nodes:
  - name: r1
    group: rf
    nics: [{mac: "52:54:00:7f:00:01"}]
    bmc: {host: 127.0.0.1, port: %d, redfish: {system: /redfish/v1/Systems/System.Embedded.1, ipmi_sol: true}}
  - name: r2
    group: rf
    nics: [{mac: "52:54:00:7f:00:02"}]
    bmc: {host: 127.0.0.1, port: %d, redfish: {system: /redfish/v1/Systems/1}}
  - name: i1
    image: compute
    nics: [{mac: "52:54:00:7f:00:03"}]
    bmc: {protocol: ipmi, host: 127.0.0.1, port: %d, password: lab, ipmi: {cipher_suites: [17, 3]}}
`, r1, r2, ipmiPort)
	return writeRedfishLab(t, dir, inv)
}

// writeRedfishLab writes inv as dir/nodes.yaml beside a secrets file with
// the IPMI (lab) and Redfish (rf) passwords, and returns its path.
func writeRedfishLab(t *testing.T, dir, inv string) string {
	t.Helper()
	p := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(p, []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}
	sec := "bmc_passwords:\n  lab: " + rebootPassword + "\n  rf: " + redfishPassword + "\n"
	if err := os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte(sec), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// redfishCA is a CA for simulated Redfish BMCs, written to dir/bmc-ca.pem
// (the inventories' bmc.redfish.ca).
func redfishCA(t *testing.T, dir string) *redfishsim.CA {
	t.Helper()
	ca, err := redfishsim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFile(filepath.Join(dir, "bmc-ca.pem")); err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestRebootCleanRedfish: simulated nodes behind simulated Redfish BMCs of
// two vendor shapes (the BMC's Reset and boot override drive the node, as a
// real BMC drives its machine) and one behind IPMI: one bulk power status
// over the mixed set, then reboot-clean brings the dirty Redfish node and
// the others back clean on the new generation, the firmware really booting
// from the daemon; a staged rollout then moves all three on. The Redfish
// password shows nowhere; a console on a
// Redfish node names the alternative.
func TestRebootCleanRedfish(t *testing.T) {
	dir := t.TempDir()
	logs := &lab.Buffer{}
	var sims []*redfishsim.Sim
	ca := redfishCA(t, dir)
	d, genA, nodes := startPowerCluster(t, dir, writeRedfishInventory(t, dir, 1, 2, 3), backends.Registry(), logs, []string{"r1", "r2", "i1"}, "52:54:00:7f:00:%02x")
	for _, v := range []struct {
		node   string
		vendor redfishsim.Vendor
	}{{"r1", redfishsim.Dell}, {"r2", redfishsim.HPE}} {
		s, err := redfishsim.Start(redfishsim.Options{Vendor: v.vendor, Password: redfishPassword, CA: ca, Machines: []redfishsim.Machine{nodes[v.node]}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		sims = append(sims, s)
	}
	writeRedfishInventory(t, dir, sims[0].Port(), sims[1].Port(), nodes["i1"].Port())
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	var api []PowerResult

	// r1 boots generation A through its Redfish BMC.
	for _, op := range []string{"bootdev-pxe", "on"} {
		res, err := d.Power(rctx, PowerRequest{Selection: "r1", Op: op, Who: "tester"}, nil)
		if err != nil || len(res) != 1 || res[0].Error != "" || res[0].BMC != sims[0].Addr() {
			t.Fatalf("power %s r1: %+v, %v", op, res, err)
		}
		api = append(api, res...)
	}
	if !simnode.WaitFor(20*time.Second, func() bool { v, _ := d.Node("r1"); return v.State.Generation == genA && !v.Dirty }) {
		v, _ := d.Node("r1")
		t.Fatalf("r1 did not boot generation %s: %+v, firmware %+v", genA, v, nodes["r1"].Stats())
	}
	genB := importGen(t, d, dir, 'b', true)
	if v, _ := d.Node("r1"); !v.Dirty {
		t.Fatalf("r1 is not dirty after B was published")
	}

	// One bulk status over the mixed IPMI + Redfish set.
	state, st := powerStates(t, rctx, d, "r[1-2],i1")
	api = append(api, st...)
	if state["r1"] != "on" || state["r2"] != "off" || state["i1"] != "off" {
		t.Fatalf("status: %v", state)
	}

	res, err := d.RebootClean(rctx, RebootRequest{Selection: "r[1-2],i1", Timeout: 30 * time.Second, Who: "tester"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.OK || r.Generation != genB || r.Step != workflow.StepClean {
			t.Errorf("%s: %+v", r.Node, r)
		}
	}
	for name, boots := range map[string]int{"r1": 2, "r2": 1, "i1": 1} {
		if v, _ := d.Node(name); v.State.Generation != genB || v.Dirty {
			t.Errorf("%s after reboot-clean: running %s, dirty %v %v", name, v.State.Generation, v.Dirty, v.DirtyReasons)
		}
		if s := nodes[name].Stats(); s.NetBoots != boots {
			t.Errorf("%s: %d network boots, want %d", name, s.NetBoots, boots)
		}
	}
	// The BMCs were asked with the Reset types they advertise: iDRAC has
	// PowerCycle, iLO has not (ForceOff, then On; r2 was off: On).
	if r := strings.Join(sims[0].Resets(), ","); !strings.Contains(r, "PowerCycle") {
		t.Errorf("r1's BMC resets: %s", r)
	}
	if r := strings.Join(sims[1].Resets(), ","); r != "1 On" {
		t.Errorf("r2's BMC resets: %s", r)
	}

	// A staged rollout over the mixed set, in waves of two: every node
	// reboots through its own protocol into the staged generation.
	genC := importGen(t, d, dir, 'c', false)
	ro, err := d.StageCreate(StageRequest{Selection: "r[1-2],i1", Generation: genC, Wave: "2", Timeout: 20 * time.Second, Who: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.StageAction(ro.ID, "run", "tester"); err != nil {
		t.Fatal(err)
	}
	if err := d.StageWait(rctx, ro.ID); err != nil {
		t.Fatal(err)
	}
	ro, _ = d.StageGet(ro.ID)
	for name, boots := range map[string]int{"r1": 3, "r2": 2, "i1": 2} {
		if s := nodes[name].Stats(); s.NetBoots != boots {
			t.Errorf("%s: %d network boots after the rollout, want %d", name, s.NetBoots, boots)
		}
	}
	for _, name := range []string{"r1", "r2", "i1"} {
		if st := ro.Node(name).Status; st != rollout.NodeDone {
			t.Errorf("rollout: %s is %s (%s: %s)", name, st, ro.State, ro.Reason)
		}
		if v, _ := d.Node(name); v.State.Generation != genC || v.Dirty {
			t.Errorf("%s after the rollout: running %s, dirty %v", name, v.State.Generation, v.Dirty)
		}
	}

	// A console on a Redfish node says there is none and names IPMI SOL.
	consoleErr := d.Console(rctx, "r1", "tester", strings.NewReader(""), io.Discard, func() { t.Error("ready called") })
	if !errors.Is(consoleErr, power.ErrNoConsole) || !strings.Contains(consoleErr.Error(), "IPMI serial-over-LAN") {
		t.Errorf("console on r1: %v", consoleErr)
	}

	// A busy BMC (503) fails alone, naming the BMC and not the password.
	sims[1].SetFaults(redfishsim.Faults{Unavailable: true, RetryAfter: 60})
	st, err = d.Power(rctx, PowerRequest{Selection: "r[1-2],i1", Op: "status"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	api = append(api, st...)
	for _, r := range st {
		if (r.Error != "") != (r.Node == "r2") {
			t.Errorf("%s: %+v", r.Node, r)
		}
		if r.Node == "r2" && !strings.Contains(r.Error, "BMC "+sims[1].Addr()+": service unavailable (HTTP 503)") {
			t.Errorf("r2 busy: %q", r.Error)
		}
	}
	out, _ := json.Marshal(api)
	audit, _ := json.Marshal(d.Audit(1000))
	for where, text := range map[string]string{"logs": logs.String(), "API results": string(out), "console error": fmt.Sprint(consoleErr), "audit": string(audit)} {
		if strings.Contains(text, redfishPassword) {
			t.Errorf("the Redfish password shows in the %s", where)
		}
	}
}
