package simnode

import (
	"strings"
	"testing"
)

// parseCase is one boot entry a simulated firmware parses: what it should
// boot, or the error it should give.
type parseCase struct {
	name, in              string
	kernel, initrd, token string
	errHas                string
}

func runParseCases(t *testing.T, parse func(string) (Boot, error), tests []parseCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := parse(tc.in)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %v, want %q", err, tc.errHas)
				}
				return
			}
			if err != nil || b.Kernel != tc.kernel || b.Initrd != tc.initrd || b.Args["netbootui.token"] != tc.token {
				t.Fatalf("%+v %v", b, err)
			}
		})
	}
}

func TestParseIPXE(t *testing.T) {
	runParseCases(t, ParseIPXE, []parseCase{
		{name: "netbootui script", in: "#!ipxe\nkernel --name vmlinuz http://h/k?node=n1 root=live:http://h/r netbootui.token=abc quiet || goto failed\ninitrd --name initrd http://h/i || goto failed\nboot\n",
			kernel: "http://h/k?node=n1", initrd: "http://h/i", token: "abc"},
		{name: "no options", in: "kernel http://h/k a=b\ninitrd http://h/i\n", kernel: "http://h/k", initrd: "http://h/i"},
		{name: "no kernel", in: "#!ipxe\nsleep 5\nchain http://h/boot\n", errHas: "no kernel line"},
		{name: "kernel without URL", in: "#!ipxe\nkernel --name vmlinuz || goto failed\n", errHas: "line 2: kernel without a URL"},
	})
}

// TestParseIPXEChain: the retry line of a script rendered for several heads
// gives its chain URLs in order; other commands of the line are skipped.
func TestParseIPXEChain(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       []string
	}{
		{"one head", "chain --replace --autofree http://a/boot/m.ipxe || goto failed", []string{"http://a/boot/m.ipxe"}},
		{"three heads", "chain --replace --autofree http://a/b || chain --autofree http://b/b || chain http://c/b || goto failed",
			[]string{"http://a/b", "http://b/b", "http://c/b"}},
		{"no URL", "chain --replace || goto failed", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseIPXE("#!ipxe\nkernel http://a/k x=y || goto failed\n:failed\n" + tc.line + "\n")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(b.Chain, " ") != strings.Join(tc.want, " ") {
				t.Errorf("chain %q, want %q", b.Chain, tc.want)
			}
		})
	}
}

func FuzzParseIPXE(f *testing.F) {
	f.Add("#!ipxe\nkernel --name vmlinuz http://h/k root=live:x || goto f\ninitrd http://h/i\n")
	f.Add("kernel --name")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseIPXE(s)
		if err == nil && b.Kernel == "" {
			t.Fatal("no error and no kernel")
		}
	})
}

func TestParsePxelinux(t *testing.T) {
	runParseCases(t, ParsePxelinux, []parseCase{
		{name: "netbootui entry", in: "# netbootui\nDEFAULT netbootui\nPROMPT 0\nLABEL netbootui\n  KERNEL images/d/g/vmlinuz\n  INITRD images/d/g/initrd\n  APPEND root=live:http://h/r netbootui.token=t1 quiet\n",
			kernel: "images/d/g/vmlinuz", initrd: "images/d/g/initrd", token: "t1"},
		{name: "second label is the default", in: "default b\nlabel a\n kernel ka\nlabel b\n linux kb\n append initrd=i1,i2 netbootui.token=t2\n",
			kernel: "kb", initrd: "i1", token: "t2"},
		{name: "first label without DEFAULT", in: "LABEL x\nKERNEL k\nINITRD i\n", kernel: "k", initrd: "i"},
		{name: "retry config", in: "DEFAULT retry\nPROMPT 1\nLABEL retry\n  CONFIG pxelinux.cfg/01-aa\n", errHas: `label "retry" boots no kernel`},
		{name: "kernel outside label", in: "KERNEL k\n", errHas: "line 1: KERNEL outside a LABEL"},
		{name: "label without name", in: "DEFAULT x\nLABEL\n", errHas: "line 2: LABEL without a name"},
	})
}

func FuzzParsePxelinux(f *testing.F) {
	f.Add("DEFAULT a\nLABEL a\n KERNEL k\n INITRD i\n APPEND root=live:x\n")
	f.Add("LABEL\n")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParsePxelinux(s)
		if err == nil && b.Kernel == "" {
			t.Fatal("no error and no kernel")
		}
	})
}
