package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
)

// TestRedfishThroughAPI: a node behind a simulated Redfish BMC through the
// API socket, as the CLI and the console see it: power, the verified boot
// override, the BMC view with its NIC MACs, the console's refusal naming
// IPMI serial-over-LAN, a UEFI node whose override is UEFI HTTP boot from
// the daemon's iPXE (bmc.redfish.http_boot), a machine adopted by its BMC,
// and a node whose password is wrong. Neither password shows in any answer, error, audit
// entry or log line.
func TestRedfishThroughAPI(t *testing.T) {
	const password, wrong = "Rf-api-Pa55", "Wr0ng-api-Pa55"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ca, err := redfishsim.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	start := func(v redfishsim.Vendor, macs ...string) *redfishsim.Sim {
		s, err := redfishsim.Start(redfishsim.Options{Vendor: v, Password: password, CA: ca, MACs: macs})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	sim := start(redfishsim.Dell, "52:54:00:ab:00:01", "52:54:00:ab:00:02")
	spare := start(redfishsim.Lenovo, "52:54:00:ab:01:01", "52:54:00:ab:01:02")
	other := start(redfishsim.HPE) // rf9's, asked with the wrong password
	uefi := start(redfishsim.Supermicro)
	dir := t.TempDir()
	if err := ca.WriteFile(filepath.Join(dir, "bmc-ca.pem")); err != nil {
		t.Fatal(err)
	}
	logs := &lab.Buffer{}
	e := daemontest.Start(t, daemontest.Options{Dir: dir, Inventory: fmt.Sprintf(`settings:
  secrets: secrets.yaml
images:
  img: {}
groups:
  rf:
    image: img
    bmc: {protocol: redfish, password: rf, redfish: {ca: bmc-ca.pem}}
nodes:
  - name: rf1
    group: rf
    nics: [{mac: "52:54:00:ab:00:01"}]
    bmc: {host: 127.0.0.1, port: %d, redfish: {system: /redfish/v1/Systems/System.Embedded.1, ipmi_sol: true}}
  - name: rf9
    group: rf
    nics: [{mac: "52:54:00:ab:09:01"}]
    bmc: {host: 127.0.0.1, port: %d, password: other}
  - name: rf3
    group: rf
    arch: uefi
    nics: [{mac: "52:54:00:ab:03:01"}]
    bmc: {host: 127.0.0.1, port: %d, redfish: {http_boot: true}}
`, sim.Port(), other.Port(), uefi.Port()), Secrets: "bmc_passwords:\n  rf: " + password + "\n  other: " + wrong + "\n",
		API: func(d *daemon.Daemon) daemontest.APIServer { return &Server{D: d} },
		Config: daemon.Config{PowerPoll: time.Hour, Power: power.Config{CallTimeout: 3 * time.Second},
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}})
	defer e.Stop()
	c := e.Client
	var answers []any
	for _, op := range []string{"bootdev-pxe", "on", "status"} {
		res, err := c.Power(ctx, op, "rf1")
		if err != nil || len(res) != 1 || res[0].Error != "" || res[0].BMC != sim.Addr() {
			t.Fatalf("power %s rf1: %+v %v", op, res, err)
		}
		answers = append(answers, res)
	}
	if en, tgt, _, _ := sim.Boot(0); !sim.Power(0) || en != "Disabled" || tgt != "None" {
		t.Errorf("after bootdev-pxe and on: power %v, override %s %s (the boot used it up)", sim.Power(0), en, tgt)
	}
	facts, err := c.NodeBMC(ctx, "rf1")
	if err != nil || facts.Power != "on" || !strings.Contains(facts.Device, "Dell Inc.") || !strings.HasSuffix(facts.Device, "NICs 52:54:00:ab:00:01 52:54:00:ab:00:02") {
		t.Errorf("node BMC view: %+v %v", facts, err)
	}
	answers = append(answers, facts)
	// The console: refused, naming the alternative.
	if conn, err := c.Console(ctx, "rf1"); err == nil {
		conn.Close()
		t.Error("a console on a Redfish node attached")
	} else if !strings.Contains(err.Error(), "no serial console") || !strings.Contains(err.Error(), "IPMI serial-over-LAN with bmc.protocol: ipmi on 127.0.0.1") {
		t.Errorf("console on rf1: %v", err)
	} else {
		answers = append(answers, err.Error())
	}
	// rf3 boots by UEFI HTTP boot: its one-time override fetches the
	// daemon's iPXE for UEFI, which the daemon serves.
	if res, err := c.Power(ctx, "bootdev-pxe", "rf3"); err != nil || len(res) != 1 || res[0].Error != "" {
		t.Errorf("bootdev-pxe rf3: %+v %v", res, err)
	} else {
		answers = append(answers, res)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	en, tgt, mode, uri := uefi.Boot(0)
	if en != "Once" || tgt != "UefiHttp" || mode != "UEFI" || uri != st.BootURL+"/loaders/ipxe.efi" {
		t.Errorf("rf3's override: %s %s %s %q (boot URL %s)", en, tgt, mode, uri, st.BootURL)
	}
	t.Run("the boot URL is served", func(t *testing.T) {
		lab.RequireTools(t, "/usr/lib/ipxe/ipxe.efi")
		resp, err := http.Get(uri)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n < 64<<10 {
			t.Fatalf("GET %s: %s, %d bytes", uri, resp.Status, n)
		}
	})
	// A wrong password fails alone, naming the BMC.
	res, err := c.Power(ctx, "status", "rf1,rf9")
	byNode := map[string]apitype.PowerResult{}
	for _, r := range res {
		byNode[r.Node] = r
	}
	if err != nil || len(res) != 2 || byNode["rf1"].Error != "" || byNode["rf1"].Power != "on" ||
		!strings.Contains(byNode["rf9"].Error, "BMC "+other.Addr()+": authentication failed for user root") {
		t.Errorf("status rf1,rf9: %+v %v", res, err)
	}
	answers = append(answers, res)
	// The spare machine is adopted by its BMC, with its NICs (rf2: the
	// first free name), and powered through it.
	ad, err := c.Adopt(ctx, apitype.AdoptRequest{BMCs: []string{spare.Addr()}, Group: "rf"})
	if err != nil || len(ad.Nodes) != 1 || ad.Nodes[0].Name != "rf2" || ad.Nodes[0].MAC != "52:54:00:ab:01:01" || len(ad.Nodes[0].NICs) != 2 {
		t.Fatalf("adopt by BMC: %+v %v", ad, err)
	}
	answers = append(answers, ad)
	if n, err := c.Node(ctx, "rf2"); err != nil || n.MAC != "52:54:00:ab:01:01" {
		t.Errorf("node rf2: %+v %v", n, err)
	} else {
		answers = append(answers, n)
	}
	if res, err := c.Power(ctx, "on", "rf2"); err != nil || len(res) != 1 || res[0].Error != "" || res[0].BMC != spare.Addr() || !spare.Power(0) {
		t.Errorf("power on rf2: %+v %v", res, err)
	}
	audit, err := c.Audit(ctx, 100)
	if err != nil || len(audit) < 5 {
		t.Fatalf("audit: %d entries, %v", len(audit), err)
	}
	answers = append(answers, audit)
	out, _ := json.Marshal(answers)
	for where, text := range map[string]string{"API answers and errors": string(out), "logs": logs.String()} {
		for _, pw := range []string{password, wrong} {
			if strings.Contains(text, pw) {
				t.Errorf("a BMC password shows in the %s", where)
			}
		}
	}
}
