package pxe

import (
	"reflect"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/inventory"
)

// FuzzRenderInjection: whatever node name, kernel arguments, token and URL
// suffix come in, a render either fails or yields exactly the commands
// (iPXE) and directives (pxelinux) of a clean render: no input can add,
// remove or comment out a command, nor a line.
func FuzzRenderInjection(f *testing.F) {
	for _, s := range [][4]string{
		{"n01", "quiet console=ttyS0", "tok", ""},
		{"n01\nshell", "a || shell", "t", "?x=1"},
		{"n 01", "quiet\n#", "t\r\nshell", " ; shell"},
		{"n01", "${shell}", "${a}", "${b}"},
		{"n01", "x \\", "t", "\\"},
		{"n01", `dyndbg="file a.c +p"`, "t", "#frag"},
		{"n01", "a\u2028b", "\u0085", "\xff"},
		{"#n", "&& shell", ";", "||"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	r := mustRenderer(f)
	debug := "#!ipxe\necho {{.Name}}\nkernel {{.KernelURL}} {{.Cmdline}} || goto f\nboot || goto f\n:f\nsleep {{.RetrySeconds}}\nchain {{.ScriptURL}}\n"
	mk := func(name, args, token, suffix string, override bool) BootParams {
		n := testNode(name, inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:01")
		if override {
			n.Override.IPXE = debug
		}
		p := paramsFor(n, testGen)
		p.KernelArgs = args
		p.Token = token
		p.KernelURL += suffix
		p.RootfsURL += suffix
		p.KernelPath += suffix
		return p
	}
	type ref struct{ ipxe, pxl []string }
	refs := map[bool]ref{}
	for _, ov := range []bool{false, true} {
		p := mk("n01", "quiet", "tok", "", ov)
		a, err := r.IPXE(p)
		if err != nil {
			f.Fatal(err)
		}
		b, err := r.Pxelinux(p)
		if err != nil {
			f.Fatal(err)
		}
		refs[ov] = ref{ipxeCommandWords(a), pxelinuxKeywords(b)}
	}
	f.Fuzz(func(t *testing.T, name, args, token, suffix string) {
		for _, ov := range []bool{false, true} {
			p := mk(name, args, token, suffix, ov)
			want := refs[ov]
			if out, err := r.IPXE(p); err == nil {
				if got := ipxeCommandWords(out); !reflect.DeepEqual(got, want.ipxe) {
					t.Fatalf("override=%v: %s: commands %v, want %v:\n%s", ov, describe(p), got, want.ipxe, out)
				}
				if n := strings.Count(out, "\n"); n != strings.Count(mustIPXE(t, r, mk("n01", "quiet", "tok", "", ov)), "\n") {
					t.Fatalf("override=%v: %s: %d lines:\n%s", ov, describe(p), n, out)
				}
				if err := ValidateIPXE(out); err != nil {
					t.Fatalf("rendered script does not validate: %v\n%s", err, out)
				}
			} else if !strings.Contains(err.Error(), "node ") {
				t.Fatalf("error does not name the node: %v", err)
			}
			if ov {
				continue
			}
			if out, err := r.Pxelinux(p); err == nil {
				if got := pxelinuxKeywords(out); !reflect.DeepEqual(got, want.pxl) {
					t.Fatalf("%s: directives %v, want %v:\n%s", describe(p), got, want.pxl, out)
				}
				if err := ValidatePxelinux(out); err != nil {
					t.Fatalf("rendered config does not validate: %v\n%s", err, out)
				}
			}
		}
	})
}

func mustIPXE(t *testing.T, r *Renderer, p BootParams) string {
	t.Helper()
	out, err := r.IPXE(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
