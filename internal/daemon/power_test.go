package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/ipmi/ipmisim"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/power"
)

// TestPowerThroughIPMISim drives two ipmi_sim BMCs and one BMC that is not
// there through the daemon: power on, status and off change the simulated
// chassis, the poller and the actions move the nodes' boot state, a missing
// BMC fails alone with a clear error, and the audit log records the action
// with its caller and never the password.
func TestPowerThroughIPMISim(t *testing.T) {
	lab.RequireTools(t, "ipmi_sim")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sims []*ipmisim.Sim
	for i := range 2 {
		s, err := ipmisim.Start(ctx, ipmisim.Options{Dir: t.TempDir(), Password: "pw-secret-1"})
		if err != nil {
			t.Fatalf("sim %d: %v", i, err)
		}
		defer s.Stop()
		sims = append(sims, s)
	}
	dir := t.TempDir()
	inv := fmt.Sprintf(`settings:
  secrets: secrets.yaml
images:
  img: {}
groups:
  g:
    image: img
    bmc: {user: admin, password: lab, cipher_suites: [3]}
nodes:
  - name: b1
    group: g
    nics: [{mac: "52:54:00:cc:00:01"}]
    bmc: {host: 127.0.0.1, port: %d}
  - name: b2
    group: g
    nics: [{mac: "52:54:00:cc:00:02"}]
    bmc: {host: 127.0.0.1, port: %d}
  - name: gone
    group: g
    nics: [{mac: "52:54:00:cc:00:03"}]
    bmc: {host: 127.0.0.1, port: 9}
`, sims[0].Port(), sims[1].Port())
	d := daemontest.Start(t, daemontest.Options{Dir: dir, Inventory: inv, Secrets: "bmc_passwords:\n  lab: pw-secret-1\n", NoHTTP: true,
		Config: Config{PowerPoll: 200 * time.Millisecond, Power: power.Config{CallTimeout: 2 * time.Second}}}).D

	res, err := d.Power(ctx, PowerRequest{Selection: "b[1-2],gone", Op: "off", Who: "tester"}, nil)
	if err != nil || len(res) != 3 {
		t.Fatalf("power off: %v %+v", err, res)
	}
	for _, r := range res {
		switch {
		case r.Node == "gone" && (r.Error == "" || !strings.Contains(r.Error, "BMC 127.0.0.1:9")):
			t.Errorf("gone: %+v", r)
		case r.Node != "gone" && r.Error != "":
			t.Errorf("%s: %s", r.Node, r.Error)
		}
	}
	for _, s := range sims {
		if st, _ := s.State(); st.Power {
			t.Fatalf("%s still on after power off", s.Addr())
		}
	}
	if st, _ := d.NodeState("b1"); st.Stage != bootstate.StageOff {
		t.Fatalf("b1 after off: %+v", st)
	}
	res, err = d.Power(ctx, PowerRequest{Selection: "b1", Op: "on", Who: "tester"}, nil)
	if err != nil || res[0].Error != "" {
		t.Fatalf("power on: %v %+v", err, res)
	}
	if st, _ := sims[0].State(); !st.Power {
		t.Fatal("b1's chassis is not on")
	}
	if st, _ := d.NodeState("b1"); st.Stage != bootstate.StagePoweringOn {
		t.Fatalf("b1 after on: stage %q", st.Stage)
	}
	// The poller sees b2 off and b1 on.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s1, _ := d.NodeState("b1")
		s2, _ := d.NodeState("b2")
		if s1.Power == "on" && s2.Power == "off" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s1, _ := d.NodeState("b1"); s1.Power != "on" {
		t.Fatalf("poller: b1 power %q", s1.Power)
	}
	if _, err := d.Power(ctx, PowerRequest{Selection: "", Op: "cycle"}, nil); err == nil {
		t.Fatal("empty selection accepted")
	}
	entries := d.Audit(10)
	if len(entries) != 2 || entries[0].Who != "tester" || entries[0].Action != "power off" ||
		entries[0].Result != "2 ok, 1 failed" || entries[0].Nodes != 3 {
		t.Fatalf("audit: %+v", entries)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "data", "audit.log"))
	for _, ev := range d.History("", 200) {
		b = append(b, fmt.Sprintf("%+v", ev)...)
	}
	if strings.Contains(string(b), "pw-secret-1") {
		t.Fatal("the BMC password shows in the audit log or the events")
	}
}
