package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/ipmi/ipmisim"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/power"
)

// TestConsoleViews reads a group, previews node and group edits (valid,
// invalid, stale) without changing the file, and reads the BMC facts of a
// node behind ipmi_sim and of one without a BMC: never a password, never an
// audit entry.
func TestConsoleViews(t *testing.T) {
	lab.RequireTools(t, "ipmi_sim")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const password = "pw-views-7"
	sim, err := ipmisim.Start(ctx, ipmisim.Options{Dir: t.TempDir(), Password: password})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop()
	dir := t.TempDir()
	e := daemontest.Start(t, daemontest.Options{Dir: dir, Inventory: fmt.Sprintf(`settings:
  secrets: secrets.yaml
images:
  img: {}
groups:
  g:
    image: img
    kernel_args: console=ttyS0
    bmc: {user: admin, password: lab, cipher_suites: [3]}
nodes:
  - name: b1
    group: g
    nics: [{mac: "52:54:00:ee:00:01"}]
    bmc: {host: 127.0.0.1, port: %d}
  - name: nobmc
    group: g
    kernel_args: quiet
    nics: [{mac: "52:54:00:ee:00:02"}]
`, sim.Port()), Secrets: "bmc_passwords:\n  lab: " + password + "\n", API: func(d *daemon.Daemon) daemontest.APIServer { return &Server{D: d} },
		Config: daemon.Config{PowerPoll: time.Hour, Power: power.Config{CallTimeout: 3 * time.Second}}})
	defer e.Stop()
	d, c := e.D, e.Client
	src := map[string]string{}
	for _, name := range image.BootFiles {
		src[name] = filepath.Join(dir, name)
		os.WriteFile(src[name], []byte("generation file "+name), 0o644)
	}
	if _, err := d.ImportImage(daemon.ImportRequest{Image: "img", Kernel: src[apitype.FileKernel], Initrd: src[apitype.FileInitrd],
		Rootfs: src[apitype.FileRootfs], Publish: true}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(e.InventoryPath)

	g, err := c.Group(ctx, "g")
	if err != nil || g.KernelArgs != "console=ttyS0" || strings.Join(g.Nodes, ",") != "b1,nobmc" || g.Image != "img" {
		t.Fatalf("group: %+v %v", g, err)
	}
	var ae *apitype.Error
	if _, err := c.Group(ctx, "nosuch"); !errors.As(err, &ae) || ae.Code != apitype.CodeNotFound {
		t.Errorf("unknown group: %v", err)
	}

	rev := d.Inventory().Revision
	tests := []struct {
		name    string
		p       apitype.EditPreview
		want    string // in the rendered entry
		errHas  string
		errCode string
	}{
		{"group kernel args", apitype.EditPreview{Node: "nobmc", Group: "g", Format: "ipxe",
			Edit: apitype.Edit{BaseRevision: rev, Set: map[string]any{"kernel_args": "console=ttyS1 nomodeset"}}}, "console=ttyS1 nomodeset quiet", "", ""},
		{"node kernel args", apitype.EditPreview{Node: "nobmc", Edit: apitype.Edit{Set: map[string]any{"kernel_args": "loglevel=7"}}},
			"console=ttyS0 loglevel=7", "", ""},
		{"group override", apitype.EditPreview{Node: "b1", Group: "g", Format: "ipxe",
			Edit: apitype.Edit{Set: map[string]any{"boot_override.ipxe": "#!ipxe\necho group {{.Group}} node {{.Name}}\n"}}}, "echo group g node b1", "", ""},
		{"unset the node's args", apitype.EditPreview{Node: "nobmc", Edit: apitype.Edit{Unset: []string{"kernel_args"}}}, "console=ttyS0", "", ""},
		{"reserved argument", apitype.EditPreview{Node: "b1", Group: "g",
			Edit: apitype.Edit{Set: map[string]any{"kernel_args": "netbootui.token=x"}}}, "", "netbootui.* arguments", apitype.CodeInvalid},
		{"broken override", apitype.EditPreview{Node: "b1", Format: "ipxe",
			Edit: apitype.Edit{Set: map[string]any{"boot_override.ipxe": "#!ipxe\n{{ .Broken\n"}}}, "", "boot_override.ipxe", apitype.CodeInvalid},
		{"not in the group", apitype.EditPreview{Node: "b1", Group: "nosuch", Edit: apitype.Edit{Set: map[string]any{"kernel_args": "x"}}},
			"", "nosuch", apitype.CodeInvalid},
		{"unknown node", apitype.EditPreview{Node: "zz", Edit: apitype.Edit{Set: map[string]any{"kernel_args": "x"}}}, "", "zz", apitype.CodeNotFound},
		{"ip is not a group key", apitype.EditPreview{Node: "b1", Group: "g", Edit: apitype.Edit{Set: map[string]any{"ip": "10.0.0.1"}}},
			"", `key "ip" cannot be edited here`, apitype.CodeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text, err := c.PreviewEdit(ctx, tc.p)
			if tc.errHas != "" {
				if !errors.As(err, &ae) || ae.Code != tc.errCode || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %v, want %s with %q", err, tc.errCode, tc.errHas)
				}
				return
			}
			if err != nil || !strings.Contains(text, tc.want) {
				t.Fatalf("%v\n%s\nwant %q", err, text, tc.want)
			}
		})
	}
	stale := apitype.EditPreview{Node: "b1", Group: "g", Edit: apitype.Edit{BaseRevision: "0000", Set: map[string]any{"kernel_args": "x"}}}
	if _, err := c.PreviewEdit(ctx, stale); !errors.Is(err, apiclient.ErrConflict) {
		t.Errorf("stale preview: %v, want a conflict", err)
	}
	if after, _ := os.ReadFile(e.InventoryPath); string(after) != string(before) || d.Inventory().Revision != rev {
		t.Fatalf("a preview changed the inventory:\n%s", after)
	}

	f, err := c.NodeBMC(ctx, "b1")
	if err != nil || f.BMC != sim.Addr() || !strings.Contains(f.Device, "manufacturer") || !strings.Contains(f.Device, "firmware") ||
		(f.Power != "on" && f.Power != "off") || f.ReadAt.IsZero() || f.PollEvery != time.Hour {
		t.Fatalf("b1 facts: %+v %v", f, err)
	}
	if st, _ := d.NodeState("b1"); st.Power != f.Power {
		t.Errorf("the read power %q is not recorded: tracker says %q", f.Power, st.Power)
	}
	nb, err := c.NodeBMC(ctx, "nobmc")
	if err != nil || nb.Device != "" || !strings.Contains(nb.DeviceError, "no BMC host") {
		t.Errorf("nobmc facts: %+v %v", nb, err)
	}
	if _, err := c.NodeBMC(ctx, "zz"); !errors.As(err, &ae) || ae.Code != apitype.CodeNotFound {
		t.Errorf("unknown node: %v", err)
	}
	for _, v := range []any{f, nb, g} {
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), password) {
			t.Errorf("the password is in %s", b)
		}
	}
	for _, e := range d.Audit(0) {
		if e.Action != "image import" {
			t.Errorf("a read was audited: %+v", e)
		}
	}
}
