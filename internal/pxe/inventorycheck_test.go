package pxe

import (
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/inventory"
)

func TestCheckInventory(t *testing.T) {
	const head = "images:\n  compute: {}\ngroups:\n  g: {image: compute}\nnodes:\n"
	for _, tc := range []struct{ name, inv, want string }{
		{"clean", head + "  - {name: n1, group: g, kernel_args: 'console=ttyS0 quiet', nics: [{mac: '52:54:00:00:00:01'}]}\n", ""},
		{"newline in kernel_args", head + "  - {name: n1, group: g, kernel_args: \"quiet\\nimgfetch http://x/y\", nics: [{mac: '52:54:00:00:00:01'}]}\n",
			`nodes.yaml:6:12: node n1: kernel_args: control character U+000A at byte 6`},
		{"iPXE expansion in an image's args", "images:\n  compute: {kernel_args: 'a=${net0/ip}'}\nnodes:\n  - {name: n1, image: compute, nics: [{mac: '52:54:00:00:00:01'}]}\n",
			`nodes.yaml:2:3: image compute: kernel_args: argument "a=${net0/ip}": contains "${", which iPXE expands`},
		{"bad override on a range", head + "  - name: n[1-4]\n    group: g\n    nics: [{mac: '52:54:00:00:00:01'}]\n    boot_override: {ipxe: \"#!ipxe\\nkernel\\n\"}\n",
			`nodes.yaml:6:11: node n[1-4]: boot_override.ipxe: `},
		{"bad group override reported once", "images:\n  compute: {}\ngroups:\n  g: {image: compute, boot_override: {pxelinux: \"DEFAULT x\\n\"}}\nnodes:\n  - {name: a, group: g, nics: [{mac: '52:54:00:00:00:01'}]}\n  - {name: b, group: g, nics: [{mac: '52:54:00:00:00:02'}]}\n",
			`nodes.yaml:4:3: group g: boot_override.pxelinux: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := inventory.Parse("nodes.yaml", []byte(tc.inv))
			if err != nil {
				t.Fatal(err)
			}
			err = CheckInventory(inv)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v, want %s…", err, tc.want)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("%d errors, want 1:\n%v", n, err)
			}
			// The daemon refuses to render what CheckInventory refuses.
			if !strings.Contains(tc.name, "image") {
				n := inv.Nodes[0]
				p := BootParams{Node: n, Image: "compute", Generation: "", BaseURL: "http://h", KernelArgs: n.KernelArgs}
				r, rerr := NewRenderer("")
				if rerr != nil {
					t.Fatal(rerr)
				}
				f := FormatIPXE
				if strings.Contains(tc.want, "pxelinux") {
					f = FormatPxelinux
				}
				if _, rerr := r.Render(f, p); rerr == nil {
					t.Errorf("the renderer accepts what CheckInventory refuses")
				}
			}
		})
	}
}
