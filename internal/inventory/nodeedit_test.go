package inventory

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// nodeFacts is what a node is on the network, which a split must not change.
func nodeFacts(n *Node) string {
	var macs []string
	for _, nic := range n.NICs {
		macs = append(macs, nic.MAC.String())
	}
	return fmt.Sprintf("%s ip=%s bmc=%s macs=%v group=%s", n.Name, n.IP, n.BMC.Host, macs, n.Group)
}

func factsOf(inv *Inventory, skip ...string) map[string]string {
	out := map[string]string{}
	for _, n := range inv.Nodes {
		if !slices.Contains(skip, n.Name) {
			out[n.Name] = nodeFacts(n)
		}
	}
	return out
}

// commentLines are the file's comment lines, which every edit keeps.
func commentLines(data []byte) []string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "#") {
			out = append(out, t)
		}
	}
	return out
}

func TestNodeEdits(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(d *Document) error
		changed  []string // nodes whose facts may differ (gone, renamed, edited)
		entries  []string // node entry names expected in the result, in order (prefix)
		check    func(t *testing.T, inv *Inventory)
		wantLine string // a line the result has
	}{
		{name: "edit a node in the middle of a range",
			edit: func(d *Document) error {
				if _, err := d.SplitNode("n04"); err != nil {
					return err
				}
				return d.SetNodeField("n04", "kernel_args", "debug")
			},
			changed: []string{"n04"},
			entries: []string{"n[01-03]", "n04", "n[05-08]", "login1"},
			check: func(t *testing.T, inv *Inventory) {
				n := inv.Node("n04")
				if n.IP.String() != "10.1.0.14" || n.BMC.Host != "10.2.0.14" || n.NICs[0].MAC.String() != "52:54:00:00:01:04" ||
					n.NICs[1].MAC.String() != "52:54:00:00:02:04" || !strings.HasSuffix(n.KernelArgs, "debug") {
					t.Errorf("n04 after the split: %s %q", nodeFacts(n), n.KernelArgs)
				}
			}},
		{name: "remove the first node of a range",
			edit:    func(d *Document) error { return d.RemoveNode("n01") },
			changed: []string{"n01"},
			entries: []string{"n[02-08]", "login1"},
			check: func(t *testing.T, inv *Inventory) {
				if inv.Node("n01") != nil || len(inv.Nodes) != 11 {
					t.Errorf("n01 still there, %d nodes", len(inv.Nodes))
				}
			}},
		{name: "remove the last node of a range",
			edit:    func(d *Document) error { return d.RemoveNode("n08") },
			changed: []string{"n08"},
			entries: []string{"n[01-07]", "login1"}},
		{name: "remove a node with its own entry",
			edit:     func(d *Document) error { return d.RemoveNode("login1") },
			changed:  []string{"login1"},
			entries:  []string{"n[01-08]", "gpu1"},
			wantLine: "  # text is written as a literal block (|)."},
		{name: "rename a range node",
			edit:    func(d *Document) error { return d.RenameNode("n05", "spare1") },
			changed: []string{"n05", "spare1"},
			entries: []string{"n[01-04]", "spare1", "n[06-08]"},
			check: func(t *testing.T, inv *Inventory) {
				if n := inv.Node("spare1"); n == nil || n.IP.String() != "10.1.0.15" || n.Range != "" {
					t.Errorf("spare1: %+v", n)
				}
			}},
		{name: "add a node after its group",
			edit: func(d *Document) error {
				return d.AddNode("gpu3", map[string]any{"mac": "52:54:00:00:03:03", "ip": "10.1.0.103", "group": "gpu", "bmc.host": "10.2.0.103"})
			},
			changed: []string{"gpu3"},
			entries: []string{"n[01-08]", "login1", "gpu1", "gpu2", "gpu3", "storage1"},
			check: func(t *testing.T, inv *Inventory) {
				n := inv.Node("gpu3")
				if n == nil || nodeFacts(n) != "gpu3 ip=10.1.0.103 bmc=10.2.0.103 macs=[52:54:00:00:03:03] group=gpu" || n.BootMAC().String() != "52:54:00:00:03:03" {
					t.Errorf("gpu3: %+v", n)
				}
			},
			wantLine: `      - {mac: "52:54:00:00:03:03", boot: true}`},
		{name: "add a node with every NIC its BMC reports",
			edit: func(d *Document) error {
				return d.AddNode("gpu3", map[string]any{"mac": []string{"52:54:00:00:03:04", "52:54:00:00:03:03"}, "group": "gpu", "bmc.host": "10.2.0.103", "bmc.port": 8443})
			},
			changed: []string{"gpu3"},
			entries: []string{"n[01-08]", "login1", "gpu1", "gpu2", "gpu3", "storage1"},
			check: func(t *testing.T, inv *Inventory) {
				n := inv.Node("gpu3")
				if n == nil || nodeFacts(n) != "gpu3 ip=invalid IP bmc=10.2.0.103 macs=[52:54:00:00:03:04 52:54:00:00:03:03] group=gpu" ||
					n.BootMAC().String() != "52:54:00:00:03:04" || n.BMC.Port != 8443 || n.NICs[1].Boot {
					t.Errorf("gpu3: %s boot %v port %d", nodeFacts(n), n.BootMAC(), n.BMC.Port)
				}
			},
			wantLine: `      - {mac: "52:54:00:00:03:03"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := copyExample(t)
			orig, _ := os.ReadFile(path)
			before, err := Parse(path, orig)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Update(path, Revision(orig), tc.edit); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			after, err := Parse(path, data)
			if err != nil {
				t.Fatalf("result does not parse: %v\n%s", err, data)
			}
			if a, b := factsOf(before, tc.changed...), factsOf(after, tc.changed...); fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("other nodes changed:\n%v\n%v", a, b)
			}
			if a, b := commentLines(orig), commentLines(data); !slices.Equal(a, b) {
				t.Errorf("comments changed:\n%q\n%q", a, b)
			}
			var entries []string
			for _, l := range strings.Split(string(data), "\n") {
				if name, ok := strings.CutPrefix(l, "  - name: "); ok {
					entries = append(entries, name)
				}
			}
			if !containsRun(entries, tc.entries) {
				t.Errorf("entries %v, want the run %v", entries, tc.entries)
			}
			if tc.wantLine != "" && !strings.Contains(string(data), tc.wantLine+"\n") {
				t.Errorf("result lacks %q:\n%s", tc.wantLine, data)
			}
			if tc.check != nil {
				tc.check(t, after)
			}
		})
	}
}

// containsRun reports whether run appears in s as consecutive elements.
func containsRun(s, run []string) bool {
	for i := 0; i+len(run) <= len(s); i++ {
		if slices.Equal(s[i:i+len(run)], run) {
			return true
		}
	}
	return false
}

// TestNodeEditRefusals: a refused edit leaves the file as it was and says
// where the problem is.
func TestNodeEditRefusals(t *testing.T) {
	tests := []struct {
		name string
		edit func(d *Document) error
		want string
	}{
		{"rename onto an existing node", func(d *Document) error { return d.RenameNode("n03", "gpu1") },
			`nodes.yaml:`},
		{"rename to a range", func(d *Document) error { return d.RenameNode("n03", "x[1-2]") }, `bad node name "x[1-2]"`},
		{"add a taken MAC", func(d *Document) error {
			return d.AddNode("new1", map[string]any{"mac": "52:54:00:00:01:03", "group": "compute"})
		}, "52:54:00:00:01:03"},
		{"add a bad MAC", func(d *Document) error { return d.AddNode("new1", map[string]any{"mac": "zz", "group": "compute"}) }, `bad mac "zz"`},
		{"add without a MAC", func(d *Document) error { return d.AddNode("new1", map[string]any{"group": "compute"}) }, "has no nics"},
		{"add an empty MAC list", func(d *Document) error {
			return d.AddNode("new1", map[string]any{"mac": []string{}, "group": "compute"})
		}, "mac must be a string or a list of them"},
		{"add a taken MAC among others", func(d *Document) error {
			return d.AddNode("new1", map[string]any{"mac": []string{"52:54:00:00:09:09", "52:54:00:00:01:03"}, "group": "compute"})
		}, "52:54:00:00:01:03"},
		{"add an unknown group", func(d *Document) error {
			return d.AddNode("new1", map[string]any{"mac": "52:54:00:00:09:09", "group": "nosuch"})
		}, `unknown group "nosuch"`},
		{"remove an unknown node", func(d *Document) error { return d.RemoveNode("n99") }, "no node n99"},
		{"rename an unknown node", func(d *Document) error { return d.RenameNode("n99", "n100") }, "no node n99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := copyExample(t)
			orig, _ := os.ReadFile(path)
			_, err := Update(path, "", tc.edit)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if now, _ := os.ReadFile(path); string(now) != string(orig) {
				t.Fatal("a refused edit changed the file")
			}
		})
	}
}

func TestRangeName(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"n01", "n02", "n03"}, "n[01-03]"},
		{[]string{"n05"}, "n05"},
		{[]string{"r1-n16", "r2-n01"}, "r1-n16,r2-n01"},
		{[]string{"n3", "n1"}, "n3,n1"},
	} {
		got := rangeName(tc.names)
		if got != tc.want {
			t.Errorf("rangeName(%v) = %q, want %q", tc.names, got, tc.want)
		}
	}
}

// TestUpdateLeavesNoLock: concurrent writers are still serialized (every
// edit lands) and no ".NAME.lock" stays beside the inventory.
func TestUpdateLeavesNoLock(t *testing.T) {
	path := copyExample(t)
	const writers = 8
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			_, err := Update(path, "", func(d *Document) error {
				return d.AddNode(fmt.Sprintf("extra%d", i), map[string]any{"mac": fmt.Sprintf("52:54:00:99:00:%02x", i)})
			})
			errs <- err
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	inv, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range writers {
		if inv.Node(fmt.Sprintf("extra%d", i)) == nil {
			t.Errorf("extra%d lost: writers were not serialized", i)
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("%s left beside the inventory", e.Name())
		}
	}
}
