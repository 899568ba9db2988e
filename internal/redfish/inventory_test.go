package redfish_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/redfish"
	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
)

// TestInventory: the built-in inventory accepts protocol: redfish with its
// section, applies its defaults, resolves the CA file, and reports every
// mistake at FILE:LINE:COL.
func TestInventory(t *testing.T) {
	for _, tc := range []struct {
		name, bmc string
		want      redfish.BMCOptions
		port      int
		err       string
	}{
		{name: "defaults", bmc: `{protocol: redfish, host: h}`, port: 443},
		{name: "all keys", bmc: `{protocol: redfish, host: h, port: 8443, redfish: {system: /redfish/v1/Systems/System.Embedded.1, ca: certs/ca.pem, ipmi_sol: true}}`,
			want: redfish.BMCOptions{System: "/redfish/v1/Systems/System.Embedded.1", CA: "/etc/nb/certs/ca.pem", IPMISOL: true}, port: 8443},
		{name: "insecure", bmc: `{protocol: redfish, host: h, redfish: {insecure: true}}`, want: redfish.BMCOptions{Insecure: true}, port: 443},
		{name: "http boot", bmc: `{protocol: redfish, host: h, redfish: {http_boot: true}}`, want: redfish.BMCOptions{HTTPBoot: true}, port: 443},
		{name: "http boot not a bool", bmc: `{protocol: redfish, host: h, redfish: {http_boot: yes please}}`, err: `bmc.redfish.http_boot`},
		{name: "system not a path", bmc: `{protocol: redfish, host: h, redfish: {system: Systems/1}}`,
			err: `/etc/nb/nodes.yaml:2:79: node a: bmc.redfish.system "Systems/1": want a path starting with /redfish/v1/Systems/`},
		{name: "system with two segments", bmc: `{protocol: redfish, host: h, redfish: {system: /redfish/v1/Systems/1/Bios}}`,
			err: `node a: bmc.redfish.system "/redfish/v1/Systems/1/Bios": want one system id`},
		{name: "insecure and ca", bmc: `{protocol: redfish, host: h, redfish: {insecure: true, ca: ca.pem}}`,
			err: `bmc.redfish.insecure: true turns certificate checks off, so bmc.redfish.ca is ignored`},
		{name: "unknown key", bmc: `{protocol: redfish, host: h, redfish: {sytem: /redfish/v1/Systems/1}}`, err: `sytem`},
		{name: "unknown protocol names the valid ones", bmc: `{protocol: redfsh, host: h}`,
			err: `/etc/nb/nodes.yaml:2:43: node a: unknown bmc.protocol "redfsh" (protocols: ipmi, redfish)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "nodes:\n  - {name: a, arch: uefi, bmc: " + tc.bmc + `, nics: [{mac: "02:00:00:00:00:01"}]}` + "\n"
			inv, err := inventory.Parse("/etc/nb/nodes.yaml", []byte(src))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "/etc/nb/nodes.yaml:2:") {
					t.Fatalf("error %v, want it positioned and with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b := inv.Node("a").BMC
			if b.Protocol != "redfish" || b.Port != tc.port || b.User != "root" || b.Options.(redfish.BMCOptions) != tc.want {
				t.Fatalf("bmc %+v", b)
			}
		})
	}
}

// TestInventoryToBMC: a node of an inventory file, its password from the
// secrets file, reaches a simulated BMC through the built-in registry.
func TestInventoryToBMC(t *testing.T) {
	sim, err := redfishsim.Start(redfishsim.Options{Vendor: redfishsim.Lenovo, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	if err := sim.CA().WriteFile(filepath.Join(dir, "bmc-ca.pem")); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "nodes.yaml")
	src := "nodes:\n  - {name: a, bmc: {protocol: redfish, host: 127.0.0.1, port: " + itoa(sim.Port()) +
		", password: rf, redfish: {system: /redfish/v1/Systems/1, ca: bmc-ca.pem}}, nics: [{mac: \"02:00:00:00:00:01\"}]}\n"
	sec := filepath.Join(dir, "secrets.yaml")
	if err := os.WriteFile(inv, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sec, []byte("bmc_passwords:\n  rf: \""+testPassword+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(inv)
	parsed, err := inventory.Parse(inv, data)
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := inventory.LoadSecrets(sec)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := parsed.Node("a").BMCTarget(secrets)
	if err != nil {
		t.Fatal(err)
	}
	s := power.New(power.Config{CallTimeout: 5 * time.Second}, backends.Registry())
	defer s.Close()
	if r := s.Do(context.Background(), tg, power.OpOn); r.Err != nil || !sim.Power(0) {
		t.Fatalf("on: %+v", r)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
