package inventory

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and every error it returns is an ErrorList
// whose positions lie inside the file.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(examplePath); err == nil {
		f.Add(data)
	}
	bad, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, b := range bad {
		if data, err := os.ReadFile(b); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(base + "  - {name: \"n[1-3]\", ip: 10.0.0.1, nics: [{mac: \"02:00:00:00:00:01\"}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.yaml"
		inv, err := Parse(file, data, withIPMI())
		if err == nil {
			if inv == nil || inv.Revision != Revision(data) {
				t.Fatal("no inventory or wrong revision without an error")
			}
			for _, n := range inv.Nodes {
				if inv.Node(n.Name) == nil {
					t.Fatalf("node %s not indexed", n.Name)
				}
			}
			return
		}
		if inv != nil {
			t.Fatal("inventory returned with an error")
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
		}
		lines := strings.Split(string(data), "\n")
		for _, e := range list {
			if e.Pos.File != file || e.Pos.Line < 1 || e.Pos.Line > len(lines) || e.Pos.Col < 1 {
				t.Fatalf("error outside the file (%d lines): %v", len(lines), e)
			}
		}
	})
}

// genInventory returns an inventory of n nodes, half of them in ranges of 16.
func genInventory(n int) []byte {
	var b strings.Builder
	b.WriteString(`images:
  compute: {recipe: images/compute}
groups:
  compute:
    image: compute
    kernel_args: console=ttyS0,115200
    bmc: {user: admin, password: compute-bmc}
nodes:
`)
	i := 0
	for i < n/2 {
		fmt.Fprintf(&b, "  - name: r%d-n[01-16]\n    group: compute\n    ip: 10.%d.%d.1\n    nics:\n      - {mac: \"52:54:00:%02x:%02x:01\", boot: true}\n    bmc: {host: 10.200.%d.%d}\n",
			i/16, 1+i/16/256, i/16%256, i/16>>8, i/16&0xff, i/16/16, i/16%16*16)
		i += 16
	}
	for ; i < n; i++ {
		fmt.Fprintf(&b, "  - name: node%05d\n    group: compute\n    ip: 10.100.%d.%d\n    nics:\n      - {mac: \"52:55:00:00:%02x:%02x\", boot: true}\n    bmc: {host: 10.201.%d.%d}\n",
			i, i/256, i%256, i>>8&0xff, i&0xff, i/256, i%256)
	}
	return []byte(b.String())
}

func TestGeneratedInventory(t *testing.T) {
	data := genInventory(10000)
	inv, err := Parse("big.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Nodes) != 10000 {
		t.Fatalf("%d nodes", len(inv.Nodes))
	}
}

// BenchmarkParse10k parses a generated 10,000-node inventory.
func BenchmarkParse10k(b *testing.B) {
	data := genInventory(10000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		inv, err := Parse("big.yaml", data, withIPMI())
		if err != nil {
			b.Fatal(err)
		}
		if len(inv.Nodes) != 10000 {
			b.Fatalf("%d nodes", len(inv.Nodes))
		}
	}
}
