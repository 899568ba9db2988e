package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// writeAdoptInventory is group rf behind Redfish BMCs (the simulators' CA)
// with one node, rf01, and group g behind IPMI with g01 at ipmiPort.
func writeAdoptInventory(t *testing.T, dir string, ipmiPort int) string {
	t.Helper()
	inv := fmt.Sprintf(`settings:
  secrets: secrets.yaml
images:
  compute: {}
groups:
  rf:
    image: compute
    bmc: {protocol: redfish, password: rf, redfish: {ca: bmc-ca.pem}}
  g:
    image: compute
    bmc: {user: admin, password: lab}
nodes:
  - name: rf01
    group: rf
    nics: [{mac: "52:54:00:7d:00:01"}]
  - name: g01
    group: g
    nics: [{mac: "52:54:00:7d:01:01"}]
    bmc: {host: 127.0.0.1, port: %d}
`, ipmiPort)
	return writeRedfishLab(t, dir, inv)
}

// TestAdoptByRedfishBMC: the NIC MACs a Redfish BMC reports feed adoption.
// Machine A (HPE shapes) was powered on and asks for a boot as an unknown
// PXE client; machine B (Dell shapes) has never booted. Adopting both by
// their BMCs (and A by its MAC too, which joins A's node) makes rf02 (A: it
// asked first; its boot NIC is the one that asked, not the first its BMC
// lists) and rf03 (B), each with every NIC its BMC reports and that BMC.
// A boots the group's generation on its next retry; B is powered on
// through its BMC by the daemon and boots as rf03. BMCs that cannot be
// read, tell no MACs, or are or report what a node already has fail the
// adoption, which writes nothing; the password shows nowhere.
func TestAdoptByRedfishBMC(t *testing.T) {
	dir := t.TempDir()
	logs := &lab.Buffer{}
	ca := redfishCA(t, dir)
	d, gen, nodes := startPowerCluster(t, dir, writeAdoptInventory(t, dir, 1), backends.Registry(), logs, []string{"g01", "ipmi-only"}, "52:54:00:7d:01:%02x")
	writeAdoptInventory(t, dir, nodes["g01"].Port())
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const aBoot, aOther, bBoot, bOther = "52:54:00:7d:00:0a", "52:54:00:7d:00:02", "52:54:00:7d:00:0b", "52:54:00:7d:10:0b"
	machine := func(mac string) *simnode.Node {
		n, err := simnode.Start(simnode.Options{MAC: mac, Password: rebootPassword, BaseURL: "http://" + d.HTTPAddr().String(),
			PXEFirst: true, Retries: 1000, RetryAfter: 100 * time.Millisecond, POST: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		return n
	}
	bmc := func(o redfishsim.Options) *redfishsim.Sim {
		if o.Password == "" {
			o.Password = redfishPassword
		}
		o.CA = ca
		s, err := redfishsim.Start(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := machine(aBoot), machine(bBoot)
	// The BMCs list the NICs in their own order: A's other NIC first.
	simA := bmc(redfishsim.Options{Vendor: redfishsim.HPE, Machines: []redfishsim.Machine{a}, MACs: []string{aOther, aBoot}})
	simB := bmc(redfishsim.Options{Vendor: redfishsim.Dell, Machines: []redfishsim.Machine{b}, MACs: []string{bBoot, bOther}})

	// A is powered on (at its BMC, as an admin racking it would) and asks.
	if err := a.SetPower(true); err != nil {
		t.Fatal(err)
	}
	if !simnode.WaitFor(10*time.Second, func() bool { return len(d.Unknown()) == 1 && d.Unknown()[0].MAC == aBoot }) {
		t.Fatalf("A did not ask as an unknown client: %+v, %+v", d.Unknown(), a.Stats())
	}

	// Refusals first: each fails alone, names the BMC, writes nothing.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	wrongPW := bmc(redfishsim.Options{Vendor: redfishsim.Lenovo, Password: "not-" + redfishPassword})
	takenMAC := bmc(redfishsim.Options{Vendor: redfishsim.Supermicro, MACs: []string{"52:54:00:7d:00:01"}})
	rev := d.Inventory().Revision
	var texts []string
	for _, tc := range []struct {
		name  string
		req   AdoptRequest
		wants string
	}{
		{"wrong password", AdoptRequest{BMCs: []string{simB.Addr(), wrongPW.Addr()}, Group: "rf"},
			"adopt: reading the NICs of " + wrongPW.Addr() + ": BMC " + wrongPW.Addr() + ": authentication failed for user root"},
		{"closed port", AdoptRequest{BMCs: []string{closed}, Group: "rf"}, "BMC " + closed + ": "},
		{"IPMI tells no MACs", AdoptRequest{BMCs: []string{fmt.Sprintf("127.0.0.1:%d", nodes["ipmi-only"].Port())}, Group: "g"},
			fmt.Sprintf("adopt: BMC 127.0.0.1:%d reports no NIC MAC (a ipmi BMC may not tell them", nodes["ipmi-only"].Port())},
		{"a node's MAC", AdoptRequest{BMCs: []string{takenMAC.Addr()}, Group: "rf"},
			"adopt: BMC " + takenMAC.Addr() + " reports MAC 52:54:00:7d:00:01, which is node rf01's"},
		{"a node's BMC", AdoptRequest{BMCs: []string{fmt.Sprintf("127.0.0.1:%d", nodes["g01"].Port())}, Group: "g"},
			fmt.Sprintf("adopt: BMC 127.0.0.1:%d is node g01's", nodes["g01"].Port())},
		{"twice", AdoptRequest{BMCs: []string{simA.Addr(), simA.Addr()}, Group: "rf"}, "is named twice"},
		{"bad address", AdoptRequest{BMCs: []string{"bmc one"}, Group: "rf"}, `adopt: bad BMC address "bmc one"`},
		{"unknown group", AdoptRequest{BMCs: []string{simA.Addr()}, Group: "nosuch"}, `adopt: unknown group "nosuch"`},
	} {
		tc.req.Who = "tester"
		_, err := d.Adopt(ctx, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.wants) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wants)
			continue
		}
		if got := d.Audit(1); len(got) != 1 || got[0].Action != "adopt" || got[0].Result != err.Error() {
			t.Errorf("%s: audit %+v", tc.name, got)
		}
		texts = append(texts, err.Error())
	}
	if d.Inventory().Revision != rev || len(d.Unknown()) != 1 {
		t.Fatalf("a refused adoption changed the inventory or the unknown table: %+v", d.Unknown())
	}

	res, err := d.Adopt(ctx, AdoptRequest{BMCs: []string{simB.Addr(), simA.Addr()}, MACs: []string{aBoot}, Group: "rf", Who: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	want := []apitype.Adopted{
		{MAC: aBoot, Name: "rf02", BMC: simA.Addr(), NICs: []string{aBoot, aOther}},
		{MAC: bBoot, Name: "rf03", BMC: simB.Addr(), NICs: []string{bBoot, bOther}},
	}
	if fmt.Sprint(res.Nodes) != fmt.Sprint(want) {
		t.Fatalf("adopted %+v, want %+v", res.Nodes, want)
	}
	inv := d.Inventory()
	for i, name := range []string{"rf02", "rf03"} {
		n := inv.Node(name)
		var macs []string
		for _, nic := range n.NICs {
			macs = append(macs, nic.MAC.String())
		}
		sim := []*redfishsim.Sim{simA, simB}[i]
		if n.Group != "rf" || n.BMC.Protocol != "redfish" || n.BMC.Host != "127.0.0.1" || n.BMC.Port != sim.Port() ||
			!slices.Equal(macs, want[i].NICs) || n.BootMAC().String() != want[i].MAC {
			t.Errorf("%s: group %s bmc %+v macs %v boot %s", name, n.Group, n.BMC, macs, n.BootMAC())
		}
	}
	if u := d.Unknown(); len(u) != 0 {
		t.Errorf("unknown after adoption: %+v", u)
	}
	// A's BMC is rf02's now: adopting it again is refused.
	if _, err := d.Adopt(ctx, AdoptRequest{BMCs: []string{simA.Addr()}, Group: "rf"}); err == nil || err.Error() != "adopt: BMC "+simA.Addr()+" is node rf02's" {
		t.Errorf("adopting A's BMC again: %v", err)
	}
	// A boots the group's generation on its next retry.
	if !simnode.WaitFor(20*time.Second, func() bool { v, _ := d.Node("rf02"); return v.State.Generation == gen }) {
		v, _ := d.Node("rf02")
		t.Fatalf("rf02 did not boot %s: %+v, firmware %+v", gen, v.State, a.Stats())
	}
	// B, adopted before it ever booted, is powered on through its BMC.
	if r, err := d.Power(ctx, PowerRequest{Selection: "rf03", Op: "on", Who: "tester"}, nil); err != nil || len(r) != 1 || r[0].Error != "" || r[0].BMC != simB.Addr() {
		t.Fatalf("power on rf03: %+v %v", r, err)
	}
	if !simnode.WaitFor(20*time.Second, func() bool { v, _ := d.Node("rf03"); return v.State.Generation == gen }) {
		v, _ := d.Node("rf03")
		t.Fatalf("rf03 did not boot %s: %+v, firmware %+v", gen, v.State, b.Stats())
	}
	if len(d.Unknown()) != 0 {
		t.Errorf("unknown after B booted: %+v", d.Unknown())
	}
	out, _ := json.Marshal(res)
	audit, _ := json.Marshal(d.Audit(100))
	for where, text := range map[string]string{"logs": logs.String(), "result": string(out), "audit": string(audit), "errors": strings.Join(texts, "\n")} {
		if strings.Contains(text, redfishPassword) || strings.Contains(text, rebootPassword) {
			t.Errorf("a BMC password shows in the %s", where)
		}
	}
}
