package pxe

import (
	"bytes"
	"errors"
	"github.com/netbootui/netbootui/internal/golden"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"text/template"

	"github.com/netbootui/netbootui/internal/inventory"
)

const testGen = "g7c1e0a9b3d52"

// goldenCases are the entries pinned in testdata/render/*.golden.
func goldenCases() []struct {
	name, format string
	p            BootParams
} {
	bios := testNode("n01", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:01")
	uefi := testNode("n02", inventory.ArchUEFI, inventory.LoaderIPXE, "52:54:00:00:00:02")
	pxl := testNode("n03", inventory.ArchBIOS, inventory.LoaderPxelinux, "52:54:00:00:00:03")
	ov := testNode("n04", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:04")
	ov.Override = inventory.Override{
		IPXE: "#!ipxe\n# debug kernel for n04\n" +
			"kernel {{.KernelURL}} {{.Cmdline}} debug ignore_loglevel || goto fail\n" +
			"initrd --name initrd {{.InitrdURL}} || goto fail\n" +
			"boot || goto fail\n" +
			":fail\nshell\n",
		Pxelinux: "DEFAULT debug\nLABEL debug\n  KERNEL {{.KernelPath}}\n  APPEND {{.Cmdline}} debug\n",
	}
	nogen := testNode("n05", inventory.ArchUEFI, inventory.LoaderIPXE, "52:54:00:00:00:05")
	noimg := testNode("n06", inventory.ArchBIOS, inventory.LoaderPxelinux, "52:54:00:00:00:06")
	noimg.Image = ""
	// Several heads: a retry tries the node's script on the other heads.
	heads := paramsFor(bios, testGen)
	heads.FallbackBaseURLs = []string{"http://10.0.2.3:8080", "http://10.0.2.4:8080/"}
	headsNogen := paramsFor(nogen, "")
	headsNogen.FallbackBaseURLs = []string{"http://10.0.2.3:8080"}
	return []struct {
		name, format string
		p            BootParams
	}{
		{"bios-ipxe", FormatIPXE, paramsFor(bios, testGen)},
		{"uefi-ipxe", FormatIPXE, paramsFor(uefi, testGen)},
		{"bios-pxelinux", FormatPxelinux, paramsFor(pxl, testGen)},
		{"override-ipxe", FormatIPXE, paramsFor(ov, testGen)},
		{"override-pxelinux", FormatPxelinux, paramsFor(ov, testGen)},
		{"nogen-ipxe", FormatIPXE, paramsFor(nogen, "")},
		{"nogen-pxelinux", FormatPxelinux, paramsFor(nogen, "")},
		{"noimage-pxelinux", FormatPxelinux, paramsFor(noimg, "")},
		{"heads-ipxe", FormatIPXE, heads},
		{"heads-nogen-ipxe", FormatIPXE, headsNogen},
		{"heads-pxelinux", FormatPxelinux, func() BootParams { p := paramsFor(pxl, testGen); p.FallbackBaseURLs = heads.FallbackBaseURLs; return p }()},
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", "render", name+".golden"), got, updatingGoldens(), "go test ./internal/pxe -run Golden -update")
}

func TestRenderGolden(t *testing.T) {
	r := mustRenderer(t)
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			got, err := r.Render(c.format, c.p)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, c.name, got)
			// Everything rendered must pass the validators (a config with
			// no generation has no kernel by design).
			var verr error
			if c.format == FormatIPXE {
				verr = ValidateIPXE(got)
			} else {
				verr = validatePxelinux(got, c.p.Generation != "")
			}
			if verr != nil {
				t.Errorf("rendered entry does not validate: %v\n%s", verr, got)
			}
		})
	}
	t.Run("unknown-ipxe", func(t *testing.T) {
		got := UnknownIPXE("52:54:00:AB:CD:EF", "http://10.0.2.2:8080/boot/52:54:00:ab:cd:ef.ipxe")
		checkGolden(t, "unknown-ipxe", got)
		if err := ValidateIPXE(got); err != nil {
			t.Error(err)
		}
	})
	t.Run("chain-ipxe", func(t *testing.T) {
		got := ChainIPXE("http://10.0.2.2:8080/")
		checkGolden(t, "chain-ipxe", got)
		if err := ValidateIPXE(got); err != nil {
			t.Error(err)
		}
	})
	t.Run("default-pxelinux", func(t *testing.T) {
		got := DefaultPxelinux("")
		checkGolden(t, "default-pxelinux", got)
		if err := validatePxelinux(got, false); err != nil {
			t.Error(err)
		}
	})
}

func TestKernelCmdline(t *testing.T) {
	n := testNode("n01", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:01")
	p := paramsFor(n, testGen)
	p.KernelArgs = "  quiet   console=ttyS0  "
	for _, tc := range []struct{ group, want string }{
		{"compute", "root=live:http://10.0.2.2:8080/images/rocky9/" + testGen + "/rootfs.squashfs?node=n01" +
			" netbootui.url=http://10.0.2.2:8080 netbootui.node=n01 netbootui.group=compute netbootui.token=tok-n01-5f2a9c" +
			" netbootui.gen=" + testGen + " netbootui.checkin=http://10.0.2.2:8080/checkin" +
			" initrd=initrd quiet console=ttyS0"},
		// No group: no netbootui.group= at all (not an empty one).
		{"", "root=live:http://10.0.2.2:8080/images/rocky9/" + testGen + "/rootfs.squashfs?node=n01" +
			" netbootui.url=http://10.0.2.2:8080 netbootui.node=n01 netbootui.token=tok-n01-5f2a9c" +
			" netbootui.gen=" + testGen + " netbootui.checkin=http://10.0.2.2:8080/checkin" +
			" initrd=initrd quiet console=ttyS0"},
	} {
		p.Node.Group = tc.group
		if err := p.Validate(); err != nil {
			t.Fatalf("group %q: %v", tc.group, err)
		}
		if got := KernelCmdline(p); got != tc.want {
			t.Errorf("KernelCmdline, group %q:\n got %s\nwant %s", tc.group, got, tc.want)
		}
	}
	p.Node.Group = "compute"
	p.KernelArgs = ""
	if got := KernelCmdline(p); !strings.HasSuffix(got, " initrd=initrd") {
		t.Errorf("no args: %q does not end with initrd=initrd", got)
	}
	// Both formats carry the same line; pxelinux names its initrd by path.
	r := mustRenderer(t)
	p.KernelArgs = "quiet"
	ip, err := r.IPXE(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ip, " "+KernelCmdline(p)+" || goto failed\n") {
		t.Errorf("iPXE kernel line does not carry KernelCmdline:\n%s", ip)
	}
	px, err := r.Pxelinux(p)
	if err != nil {
		t.Fatal(err)
	}
	wantAppend := "APPEND " + strings.Replace(KernelCmdline(p), "initrd=initrd", "initrd="+p.InitrdPath, 1) + "\n"
	if !strings.Contains(px, wantAppend) {
		t.Errorf("pxelinux APPEND is not %q:\n%s", wantAppend, px)
	}
}

// TestInjection feeds hostile names, arguments and URLs: each must be
// refused with an error naming the node and the field, or (for the ones
// that are harmless) render a script whose commands are exactly those of a
// clean render.
func TestInjection(t *testing.T) {
	r := mustRenderer(t)
	cases := []struct {
		name      string
		mutate    func(p *BootParams)
		wantField string // "" = must render, with the clean command list
	}{
		{"newline in args", func(p *BootParams) { p.KernelArgs = "quiet\nshell" }, "kernel args"},
		{"CR in args", func(p *BootParams) { p.KernelArgs = "quiet\rshell" }, "kernel args"},
		{"tab in args", func(p *BootParams) { p.KernelArgs = "quiet\tx=1" }, "kernel args"},
		{"NUL in args", func(p *BootParams) { p.KernelArgs = "quiet\x00" }, "kernel args"},
		{"DEL in args", func(p *BootParams) { p.KernelArgs = "a\x7f" }, "kernel args"},
		{"C1 control in args", func(p *BootParams) { p.KernelArgs = "a\u0085b" }, "kernel args"},
		{"line separator in args", func(p *BootParams) { p.KernelArgs = "a\u2028b" }, "kernel args"},
		{"invalid UTF-8 in args", func(p *BootParams) { p.KernelArgs = "a\xffb" }, "kernel args"},
		{"|| in args", func(p *BootParams) { p.KernelArgs = "quiet || shell" }, "kernel args"},
		{"&& in args", func(p *BootParams) { p.KernelArgs = "quiet && shell" }, "kernel args"},
		{"; in args", func(p *BootParams) { p.KernelArgs = "quiet ; shell" }, "kernel args"},
		{"# in args", func(p *BootParams) { p.KernelArgs = "quiet #comment" }, "kernel args"},
		{"${} in args", func(p *BootParams) { p.KernelArgs = "ip=${net0/ip}" }, "kernel args"},
		{"trailing backslash", func(p *BootParams) { p.KernelArgs = `quiet x\` }, "kernel args"},
		{"netbootui arg", func(p *BootParams) { p.KernelArgs = "netbootui.node=n99" }, "kernel args"},
		{"node args newline", func(p *BootParams) { p.Node.KernelArgs = "x\nshell" }, "node kernel args"},
		{"newline in name", func(p *BootParams) { p.Node.Name = "n01\nshell" }, "name"},
		{"space in name", func(p *BootParams) { p.Node.Name = "n01 || shell" }, "name"},
		{"${} in name", func(p *BootParams) { p.Node.Name = "n${x}" }, "name"},
		{"# name", func(p *BootParams) { p.Node.Name = "#n01" }, "name"},
		{"space in kernel URL", func(p *BootParams) { p.KernelURL += " || shell" }, "kernel URL"},
		{"${} in rootfs URL", func(p *BootParams) { p.RootfsURL += "${x}" }, "rootfs URL"},
		{"newline in token", func(p *BootParams) { p.Token = "t\nshell" }, "token"},
		{"space in generation", func(p *BootParams) { p.Generation = "g1 x" }, "generation"},
		{"newline in image", func(p *BootParams) { p.Image = "a\nb" }, "image"},
		{"&& in script URL", func(p *BootParams) { p.ScriptURL = "&&" }, "script URL"},
		{"newline in group", func(p *BootParams) { p.Node.Group = "g\nshell" }, "group"},
		{"space in group", func(p *BootParams) { p.Node.Group = "g netbootui.node=n99" }, "group"},
		{"iPXE variable in group", func(p *BootParams) { p.Node.Group = "g${net0/ip}" }, "group"},
		{"missing token", func(p *BootParams) { p.Token = "" }, "token"},
		{"missing rootfs", func(p *BootParams) { p.RootfsURL = "" }, "rootfs URL"},
		{"too long", func(p *BootParams) { p.KernelArgs = strings.Repeat("x", MaxCmdline) }, "kernel command line"},
		// Harmless: not separate words, or quoted for the kernel.
		{"embedded ||", func(p *BootParams) { p.KernelArgs = "a=b||c x=y&&z" }, ""},
		{"kernel quotes", func(p *BootParams) { p.KernelArgs = `dyndbg="file foo.c +p"` }, ""},
		{"embedded # and $", func(p *BootParams) { p.KernelArgs = "a=#b c=$d e=$" }, ""},
		{"unicode", func(p *BootParams) { p.KernelArgs = "x=héllo" }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clean := paramsFor(testNode("n01", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:01"), testGen)
			ref, err := r.IPXE(clean)
			if err != nil {
				t.Fatal(err)
			}
			refPx, err := r.Pxelinux(clean)
			if err != nil {
				t.Fatal(err)
			}
			p := paramsFor(testNode("n01", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:01"), testGen)
			c.mutate(&p)
			for _, format := range []string{FormatIPXE, FormatPxelinux} {
				out, err := r.Render(format, p)
				if c.wantField != "" {
					if err == nil {
						t.Fatalf("%s: %s rendered:\n%s", describe(p), format, out)
					}
					if !strings.Contains(err.Error(), "node ") || !strings.Contains(err.Error(), c.wantField) {
						t.Errorf("%s: error %q does not name the node and %q", format, err, c.wantField)
					}
					if !strings.Contains(err.Error(), strings.SplitN(p.Node.Name, "\n", 2)[0]) {
						t.Errorf("%s: error %q does not name node %q", format, err, p.Node.Name)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", format, err)
				}
				if format == FormatIPXE {
					if got, want := ipxeCommandWords(out), ipxeCommandWords(ref); !reflect.DeepEqual(got, want) {
						t.Errorf("commands %v, want %v:\n%s", got, want, out)
					}
					if err := ValidateIPXE(out); err != nil {
						t.Error(err)
					}
				} else {
					if got, want := pxelinuxKeywords(out), pxelinuxKeywords(refPx); !reflect.DeepEqual(got, want) {
						t.Errorf("directives %v, want %v:\n%s", got, want, out)
					}
				}
			}
		})
	}
}

func TestNoGeneration(t *testing.T) {
	r := mustRenderer(t)
	n := testNode("n07", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:07")
	p := paramsFor(n, "")
	p.ScriptURL = "http://10.0.2.2:8080/boot/n07.ipxe"
	out, err := r.IPXE(p)
	if err != nil {
		t.Fatal(err)
	}
	cmds := ipxeCommandWords(out)
	for _, c := range cmds {
		if c == "kernel" || c == "boot" || c == "initrd" || c == "shell" {
			t.Errorf("entry without generation runs %q:\n%s", c, out)
		}
	}
	if !strings.Contains(out, "chain --replace --autofree http://10.0.2.2:8080/boot/n07.ipxe || goto retry") ||
		!strings.Contains(out, "sleep ") || !strings.Contains(out, "no published generation") {
		t.Errorf("entry does not explain, wait and retry:\n%s", out)
	}
	p.ConfigPath = "pxelinux.cfg/n07"
	px, err := r.Pxelinux(p)
	if err != nil {
		t.Fatal(err)
	}
	if kw := pxelinuxKeywords(px); contains(kw, "KERNEL") || !contains(kw, "CONFIG") {
		t.Errorf("pxelinux entry without generation: %v\n%s", kw, px)
	}
	if !strings.Contains(px, "CONFIG pxelinux.cfg/n07\n") || !strings.Contains(px, "PROMPT 1\nTIMEOUT 100\n") {
		t.Errorf("pxelinux entry does not wait and reload its config:\n%s", px)
	}
	// An override that needs the generation's URLs gets the waiting entry
	// too; one that does not (local disk) is served as written.
	n.Override.IPXE = "#!ipxe\nkernel {{.KernelURL}} {{.Cmdline}}\nboot\n"
	p = paramsFor(n, "")
	if got, err := r.IPXE(p); err != nil || !strings.Contains(got, "no published generation") {
		t.Errorf("override without generation: %v\n%s", err, got)
	}
	n.Override.IPXE = "#!ipxe\nsanboot --no-describe --drive 0x80\n"
	if got, err := r.IPXE(p); err != nil || got != n.Override.IPXE {
		t.Errorf("local-disk override without generation: %v\n%s", err, got)
	}
	n.Override.IPXE = "#!ipxe\n{{if .Generation}}\nkernel {{.KernelURL}}\nboot\n{{else}}\nsanboot --drive 0x80\n{{end}}\n"
	if got, err := r.IPXE(p); err != nil || !strings.Contains(got, "sanboot") {
		t.Errorf("override that tests .Generation: %v\n%s", err, got)
	}
	n.Override.IPXE = "#!ipxe\nkernl x\n"
	if _, err := r.IPXE(p); err == nil {
		t.Error("invalid override rendered")
	}
	n.Override.IPXE = ""
	// A node with no NIC falls back to iPXE's own ${mac} and the default config.
	n.NICs = nil
	p = paramsFor(n, "")
	if out, _ := r.IPXE(p); !strings.Contains(out, "/boot/${mac}.ipxe") {
		t.Errorf("no-NIC retry URL:\n%s", out)
	}
	if out, _ := r.Pxelinux(p); !strings.Contains(out, "CONFIG pxelinux.cfg/default") {
		t.Errorf("no-NIC retry config:\n%s", out)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestFallbackURLChecked: another head's URL is checked as every URL is.
func TestFallbackURLChecked(t *testing.T) {
	r := mustRenderer(t)
	p := paramsFor(testNode("n01", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:01"), testGen)
	for _, bad := range []string{"http://10.0.2.3:8080 || shell", "http://h/${x}", ""} {
		p.FallbackBaseURLs = []string{bad}
		if out, err := r.IPXE(p); err == nil {
			t.Errorf("fallback %q accepted:\n%s", bad, out)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	r := mustRenderer(t)
	p := paramsFor(testNode("n01", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:01"), testGen)
	if _, err := r.Render("grub", p); err == nil || !strings.Contains(err.Error(), `"grub"`) {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := r.IPXE(BootParams{}); err == nil {
		t.Error("nil node rendered")
	}
	p.Node.Name = ""
	if _, err := r.IPXE(p); err == nil {
		t.Error("nameless node rendered")
	}
}

func TestOverrides(t *testing.T) {
	r := mustRenderer(t)
	n := testNode("n04", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:04")
	p := paramsFor(n, testGen)
	cases := []struct {
		name, format, text string
		want               []string // substrings of the output
		wantErr            string   // substring of the error ("" = ok)
		line, col          int
	}{
		{"ipxe urls", FormatIPXE, "#!ipxe\nchain {{.KernelURL}}\n", []string{"chain " + p.KernelURL + "\n"}, "", 0, 0},
		{"ipxe node fields", FormatIPXE, "#!ipxe\necho {{.Name}} {{.MAC}} {{.Group}} {{.Generation}}\nexit\n",
			[]string{"echo n04 52:54:00:00:00:04 compute " + testGen}, "", 0, 0},
		{"ipxe if", FormatIPXE, "#!ipxe\n{{if .Generation}}\nchain {{.KernelURL}}\n{{end}}\n", []string{"chain http"}, "", 0, 0},
		{"pxelinux paths", FormatPxelinux, "DEFAULT a\nLABEL a\n KERNEL {{.KernelPath}}\n APPEND {{.Cmdline}}\n",
			[]string{"KERNEL images/rocky9/" + testGen + "/vmlinuz", "initrd=images/rocky9/"}, "", 0, 0},
		{"ipxe typo", FormatIPXE, "#!ipxe\necho hi\n  kernl {{.KernelURL}}\n", nil, `unknown command "kernl" (did you mean "kernel"?)`, 3, 3},
		{"ipxe unknown field", FormatIPXE, "#!ipxe\nchain {{.KernelUrl}}\n", nil, "can't evaluate field KernelUrl", 2, 9},
		{"ipxe template syntax", FormatIPXE, "#!ipxe\necho ok\nchain {{.KernelURL}\n", nil, "template:", 3, 7},
		{"ipxe expansion drops goto label", FormatIPXE, "#!ipxe\n{{if .Token}}\n:x\n{{end}}\ngoto x\n", []string{"goto x"}, "", 0, 0},
		{"ipxe expansion yields bad command", FormatIPXE, "#!ipxe\n{{if .Token}}kernl{{end}} x\n", nil, "after template expansion: unknown command", 2, 1},
		{"pxelinux bad default", FormatPxelinux, "DEFAULT b\nLABEL a\n KERNEL {{.KernelPath}}\n", nil, `DEFAULT "b" is not a LABEL`, 1, 9},
		{"control char", FormatIPXE, "#!ipxe\necho \x1b[2J\n", nil, "control character U+001B", 2, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Through Preview, then as a node's override through Render:
			// both must agree.
			for _, via := range []string{"preview", "render"} {
				var out string
				var err error
				if via == "preview" {
					out, err = r.Preview(c.format, c.text, p)
				} else {
					nn := *n
					nn.Override = inventory.Override{}
					if c.format == FormatIPXE {
						nn.Override.IPXE = c.text
					} else {
						nn.Override.Pxelinux = c.text
					}
					pp := p
					pp.Node = &nn
					out, err = r.Render(c.format, pp)
				}
				if c.wantErr == "" {
					if err != nil {
						t.Fatalf("%s: %v", via, err)
					}
					for _, w := range c.want {
						if !strings.Contains(out, w) {
							t.Errorf("%s: output lacks %q:\n%s", via, w, out)
						}
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("%s: error %v, want %q", via, err, c.wantErr)
				}
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("%s: %T is not a *ValidationError", via, err)
				}
				if ve.Line != c.line || ve.Col != c.col {
					t.Errorf("%s: error at %d:%d, want %d:%d (%v)", via, ve.Line, ve.Col, c.line, c.col, err)
				}
			}
		})
	}
}

func TestPreview(t *testing.T) {
	p := paramsFor(testNode("n01", inventory.ArchUEFI, inventory.LoaderIPXE, "52:54:00:00:00:01"), testGen)
	r := mustRenderer(t)
	// Empty override previews the template.
	got, err := Preview(FormatIPXE, "", p)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := r.IPXE(p)
	if got != want {
		t.Errorf("empty override preview differs from the template render")
	}
	if _, err := Preview("efi", "x", p); err == nil {
		t.Error("unknown format previewed")
	}
	bad := p
	bad.KernelArgs = "a\nb"
	if _, err := Preview(FormatIPXE, "#!ipxe\nexit\n", bad); err == nil {
		t.Error("preview ignored bad params")
	}
	// Preview applies nothing: the node keeps rendering its template.
	if _, err := r.Preview(FormatIPXE, "#!ipxe\nshell\n", p); err != nil {
		t.Fatal(err)
	}
	if again, _ := r.IPXE(p); again != want {
		t.Error("preview changed the node's entry")
	}
	if err := ValidateOverride(FormatPxelinux, "DEFAULT x\nLABEL x\nKERNEL {{.KernelPath}}\n"); err != nil {
		t.Error(err)
	}
	if err := ValidateOverride(FormatPxelinux, "DEFAULT x\nLABEL x\nKERNL {{.KernelPath}}\n"); err == nil {
		t.Error("ValidateOverride accepted KERNL")
	}
}

func TestNewRendererDir(t *testing.T) {
	write := func(t *testing.T, dir, name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := paramsFor(testNode("n01", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:01"), testGen)
	t.Run("custom ipxe, embedded pxelinux", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, IPXETemplateName, "#!ipxe\necho site template {{.Name}}\nchain {{.ScriptURL}}\n")
		r, err := NewRenderer(dir)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.IPXE(p)
		if err != nil || !strings.Contains(out, "echo site template n01\n") {
			t.Errorf("custom template not used: %v\n%s", err, out)
		}
		def := mustRenderer(t)
		a, _ := r.Pxelinux(p)
		b, _ := def.Pxelinux(p)
		if a != b {
			t.Error("missing pxelinux.tmpl did not fall back to the embedded one")
		}
	})
	for _, c := range []struct{ name, file, text, want string }{
		{"syntax", IPXETemplateName, "#!ipxe\n{{if}}\n", "ipxe.tmpl"},
		{"invalid output", IPXETemplateName, "#!ipxe\nkernal x\n", `ipxe:2:1: unknown command "kernal"`},
		{"no magic", IPXETemplateName, "echo hi\n", `first line must be "#!ipxe"`},
		{"bad field", PxelinuxTemplateName, "{{.Kernel}}", "Kernel"},
		{"pxelinux no label", PxelinuxTemplateName, "DEFAULT a\nSAY hi\n", "pxelinux:1:1: no LABEL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, c.file, c.text)
			_, err := NewRenderer(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
	if _, err := NewRenderer(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing template directory accepted")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRenderer(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file as template directory: %v", err)
	}
}

func TestBootloaderFor(t *testing.T) {
	for _, c := range []struct {
		arch   inventory.Arch
		loader inventory.Loader
		want   string
		format string
	}{
		{inventory.ArchBIOS, inventory.LoaderIPXE, "undionly.kpxe", FormatIPXE},
		{inventory.ArchBIOS, inventory.LoaderPxelinux, "pxelinux.0", FormatPxelinux},
		{inventory.ArchUEFI, inventory.LoaderIPXE, "ipxe.efi", FormatIPXE},
		{inventory.ArchUEFI, inventory.LoaderPxelinux, "syslinux.efi", FormatPxelinux},
		{"", "", "undionly.kpxe", FormatIPXE},
		{inventory.ArchUEFI, "", "ipxe.efi", FormatIPXE},
	} {
		n := &inventory.Node{Name: "x", Arch: c.arch, Loader: c.loader}
		if got := BootloaderFor(n); got != c.want {
			t.Errorf("BootloaderFor(%s, %s) = %s, want %s", c.arch, c.loader, got, c.want)
		}
		if got := FormatFor(n); got != c.format {
			t.Errorf("FormatFor(%s, %s) = %s, want %s", c.arch, c.loader, got, c.format)
		}
	}
	if BootloaderFor(nil) != BootloaderUndionly {
		t.Error("nil node")
	}
	// Every name must be a file Debian's packages ship.
	for _, f := range []string{"/usr/lib/ipxe/" + BootloaderUndionly, "/usr/lib/ipxe/" + BootloaderIPXEEFI,
		"/usr/lib/ipxe/" + BootloaderSnponlyEFI, "/usr/lib/PXELINUX/" + BootloaderPxelinux,
		"/usr/lib/SYSLINUX.EFI/efi64/" + BootloaderSyslinuxEFI} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("NETBOOTUI_REQUIRE_TOOLS") == "1" {
				t.Errorf("bootloader missing: %v", err)
			} else {
				t.Logf("bootloader not installed here: %v", err)
			}
		}
	}
}

func TestUnknownAndChain(t *testing.T) {
	for _, c := range []struct{ mac, url, wantMAC string }{
		{"52-54-00-ab-cd-ef", "http://h/boot/x.ipxe", "52:54:00:ab:cd:ef"},
		{"aa:bb\n|| shell", "http://h/x", "aa:bbe"},
		{"", "http://h/x", "(none)"},
		{"${net0/mac}", "http://h/${x} || shell\n#", "e0ac"},
	} {
		out := UnknownIPXE(c.mac, c.url)
		if err := ValidateIPXE(out); err != nil {
			t.Errorf("UnknownIPXE(%q, %q) does not validate: %v\n%s", c.mac, c.url, err, out)
		}
		want := []string{"echo", "echo", "echo", "sleep", "chain", "goto", "goto"}
		if got := ipxeCommandWords(out); !reflect.DeepEqual(got, want) {
			t.Errorf("UnknownIPXE(%q, %q) commands %v, want %v:\n%s", c.mac, c.url, got, want, out)
		}
		if !strings.Contains(out, "MAC "+c.wantMAC+"\n") {
			t.Errorf("UnknownIPXE(%q) does not show MAC %q:\n%s", c.mac, c.wantMAC, out)
		}
		if strings.Contains(out, "${net0") {
			t.Errorf("UnknownIPXE let a ${} expansion through from the MAC:\n%s", out)
		}
	}
	// The daemon's retry URL uses iPXE's ${mac}: it must survive.
	out := UnknownIPXE("52:54:00:00:00:01", "http://h:1/boot/${mac}.ipxe")
	if !strings.Contains(out, "chain --replace --autofree http://h:1/boot/${mac}.ipxe || goto retry\n") {
		t.Errorf("UnknownIPXE mangled the retry URL:\n%s", out)
	}
	out = ChainIPXE("http://h:1/a b\n|| shell")
	if err := ValidateIPXE(out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "chain --replace --autofree http://h:1/a%20b%0A||%20shell/boot/${mac}.ipxe || goto failed\n") {
		t.Errorf("ChainIPXE:\n%s", out)
	}
	d := DefaultPxelinux("line one\nLABEL evil\x00\n  KERNEL evil")
	if got, want := pxelinuxKeywords(d), []string{"DEFAULT", "PROMPT", "TIMEOUT", "SAY", "SAY", "SAY", "SAY", "LABEL", "LOCALBOOT"}; !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultPxelinux directives %v, want %v:\n%s", got, want, d)
	}
	if err := validatePxelinux(d, false); err != nil {
		t.Error(err)
	}
}

// TestConcurrentRender renders from many goroutines (run with -race).
func TestConcurrentRender(t *testing.T) {
	r := mustRenderer(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			n := testNode("n1", inventory.ArchBIOS, inventory.LoaderIPXE, "52:54:00:00:00:01")
			if g%2 == 0 {
				n.Override.IPXE = "#!ipxe\nchain {{.KernelURL}}\n"
			}
			p := paramsFor(n, testGen)
			want, err := r.IPXE(p)
			if err != nil {
				errs <- err
				return
			}
			for i := 0; i < 200; i++ {
				got, err := r.Render(FormatIPXE, p)
				if err != nil || got != want {
					errs <- errors.New("concurrent render differs")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCompiledMatchesTemplate: the compiled fast path gives the same bytes
// as text/template for every golden case, and templates outside its subset
// are left to text/template.
func TestCompiledMatchesTemplate(t *testing.T) {
	r := mustRenderer(t)
	if r.ipxeProg == nil || r.pxelinuxProg == nil {
		t.Fatal("embedded templates did not compile to the fast path")
	}
	for _, c := range goldenCases() {
		tmpl, prog := r.ipxe, r.ipxeProg
		if c.format == FormatPxelinux {
			tmpl, prog = r.pxelinux, r.pxelinuxProg
		}
		if ov := overrideText(c.format, c.p.Node); ov != "" {
			var err error
			if tmpl, err = parseOverride(c.format, ov); err != nil {
				t.Fatal(err)
			}
			if prog = compileTemplate(tmpl); prog == nil {
				t.Fatalf("%s: override did not compile", c.name)
			}
		}
		d := newTemplateData(c.format, c.p)
		var slow strings.Builder
		var fast bytes.Buffer
		if err := tmpl.Execute(&slow, d); err != nil {
			t.Fatal(err)
		}
		prog.run(&fast, d)
		if slow.String() != fast.String() {
			t.Errorf("%s: compiled output differs:\n--- text/template\n%s\n--- compiled\n%s", c.name, slow.String(), fast.String())
		}
	}
	for _, src := range []string{
		`{{.Name | printf "%s"}}`, `{{range .Name}}{{end}}`, `{{with .Name}}{{.}}{{end}}`,
		`{{$x := .Name}}{{$x}}`, `{{if eq .Arch "uefi"}}x{{end}}`, `{{.Nope}}`, `{{template "a"}}{{define "a"}}{{end}}`,
	} {
		tt, err := template.New("x").Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		if compileTemplate(tt) != nil {
			t.Errorf("%s compiled, want the text/template fallback", src)
		}
	}
	// A site template outside the subset still renders, through text/template.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, IPXETemplateName),
		[]byte("#!ipxe\n{{if eq .Arch \"uefi\"}}echo efi{{else}}echo bios{{end}} {{printf \"%s\" .Name}}\nchain {{.ScriptURL}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sr, err := NewRenderer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if sr.ipxeProg != nil {
		t.Fatal("site template with functions compiled")
	}
	p := paramsFor(testNode("n09", inventory.ArchUEFI, inventory.LoaderIPXE, "52:54:00:00:00:09"), testGen)
	if out, err := sr.IPXE(p); err != nil || !strings.Contains(out, "echo efi n09\n") {
		t.Errorf("fallback render: %v\n%s", err, out)
	}
}
