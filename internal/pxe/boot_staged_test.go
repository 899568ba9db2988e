package pxe

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
)

// TestAssignmentStaged: a staged assignment comes before a pin and the
// image's current generation; nodes the hook does not know keep theirs.
func TestAssignmentStaged(t *testing.T) {
	st, err := image.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var gens []string
	for i := range 2 {
		files := map[string]string{}
		for _, name := range image.BootFiles {
			p := filepath.Join(t.TempDir(), name)
			os.WriteFile(p, []byte{byte(i), 1, 2, 3}, 0o644)
			files[name] = p
		}
		m, err := st.Import("compute", files, "test")
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, m.ID)
	}
	if err := st.Publish("compute", gens[0]); err != nil {
		t.Fatal(err)
	}
	staged := map[string]string{"s1": gens[1], "s2": gens[1]}
	hook := func(node string) (string, string, bool) {
		g, ok := staged[node]
		return "compute", g, ok
	}
	tests := []struct {
		name   string
		node   inventory.Node
		hook   bool
		want   string
		hasErr bool
	}{
		{"current", inventory.Node{Name: "a", Image: "compute"}, true, gens[0], false},
		{"pinned", inventory.Node{Name: "b", Image: "compute", Generation: gens[1]}, true, gens[1], false},
		{"staged over current", inventory.Node{Name: "s1", Image: "compute"}, true, gens[1], false},
		{"staged over pin", inventory.Node{Name: "s2", Image: "compute", Generation: gens[0]}, true, gens[1], false},
		{"no hook", inventory.Node{Name: "s1", Image: "compute"}, false, gens[0], false},
		{"no image", inventory.Node{Name: "x"}, true, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &Boot{Images: st}
			if tc.hook {
				b.Staged = hook
			}
			_, gen, err := b.Assignment(&tc.node)
			if (err != nil) != tc.hasErr || gen != tc.want {
				t.Fatalf("got %q, %v; want %q (error %v)", gen, err, tc.want, tc.hasErr)
			}
		})
	}
}
