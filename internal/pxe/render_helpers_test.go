package pxe

import (
	"flag"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/lab"
)

// The -update flag regenerates testdata/render/*.golden. It is registered
// only if no other test file of the package registered it first.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func updatingGoldens() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// renderRequireTool returns the path of a program the test needs (skipped,
// or failed under NETBOOTUI_REQUIRE_TOOLS=1, without it).
func renderRequireTool(t testing.TB, tool string) string {
	t.Helper()
	lab.RequireTools(t, tool)
	p, _ := exec.LookPath(tool)
	return p
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// testNode builds a node the way the inventory loader would.
func testNode(name string, arch inventory.Arch, loader inventory.Loader, mac string) *inventory.Node {
	return &inventory.Node{
		Name: name, Group: "compute", Arch: arch, Loader: loader,
		NICs:       []inventory.NIC{{Name: "eno1", MAC: mustMAC(mac), Boot: true}},
		Image:      "rocky9",
		KernelArgs: "console=ttyS0,115200n8",
	}
}

// paramsFor fills BootParams as the boot server does.
func paramsFor(n *inventory.Node, gen string) BootParams {
	base := "http://10.0.2.2:8080"
	q := "?node=" + n.Name
	dir := "/images/" + n.Image + "/" + gen + "/"
	p := BootParams{
		Node: n, Image: n.Image, Generation: gen, BaseURL: base,
		CheckinURL: base + "/checkin", Token: "tok-" + n.Name + "-5f2a9c",
		KernelArgs: "quiet rd.live.overlay.overlayfs=1 " + n.KernelArgs,
	}
	if gen != "" {
		p.KernelURL = base + dir + "vmlinuz" + q
		p.InitrdURL = base + dir + "initrd" + q
		p.RootfsURL = base + dir + "rootfs.squashfs" + q
		p.KernelPath = strings.TrimPrefix(dir, "/") + "vmlinuz"
		p.InitrdPath = strings.TrimPrefix(dir, "/") + "initrd"
	}
	return p
}

func mustRenderer(t testing.TB) *Renderer {
	t.Helper()
	r, err := NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ipxeCommandWords lists, in order, the command words iPXE would execute
// from script (ignoring flow control): it splits like iPXE does (lines,
// backslash continuation, words, "#" comments, ":label" prefix, "||", "&&"
// and ";"). The result is how the tests see what a script does.
func ipxeCommandWords(script string) []string {
	var out []string
	lines := splitLines(script)
	for i := 0; i < len(lines); i++ {
		pieces := []srcLine{lines[i]}
		for strings.HasSuffix(pieces[len(pieces)-1].text, `\`) && i+1 < len(lines) {
			pieces[len(pieces)-1].text = strings.TrimSuffix(pieces[len(pieces)-1].text, `\`)
			i++
			pieces = append(pieces, lines[i])
		}
		words := splitWords(pieces)
		if len(words) > 0 && strings.HasPrefix(words[0].s, ":") {
			words = words[1:]
		}
		start := true
		for _, w := range words {
			if strings.HasPrefix(w.s, "#") {
				break
			}
			if w.s == "||" || w.s == "&&" || w.s == ";" {
				start = true
				continue
			}
			if start {
				out = append(out, w.s)
				start = false
			}
		}
	}
	return out
}

// pxelinuxKeywords lists the directive of every non-comment line.
func pxelinuxKeywords(cfg string) []string {
	var out []string
	for _, l := range splitLines(cfg) {
		f := strings.Fields(l.text)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		out = append(out, strings.ToUpper(f[0]))
	}
	return out
}

func describe(p BootParams) string {
	return fmt.Sprintf("node=%q args=%q", p.Node.Name, p.KernelArgs)
}
