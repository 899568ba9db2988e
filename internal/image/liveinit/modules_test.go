package liveinit

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/lab"
)

func TestModuleName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kernel/fs/overlayfs/overlay.ko", "overlay"},
		{"kernel/fs/overlayfs/overlay.ko.xz", "overlay"},
		{"kernel/drivers/net/virtio_net.ko.zst", "virtio_net"},
		{"kernel/arch/x86/crypto/twofish-x86_64.ko.gz", "twofish_x86_64"},
		{"virtio-net", "virtio_net"},
		{"e1000", "e1000"},
	} {
		if got := ModuleName(tc.in); got != tc.want {
			t.Errorf("ModuleName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

const sampleDep = `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/overlayfs/overlay.ko:

kernel/drivers/block/loop.ko:
`

func TestParseModulesDepErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"no colon", "kernel/a.ko\n", "modules.dep:1:1: missing ':'"},
		{"absolute", "kernel/a.ko:\n/lib/modules/x/b.ko:\n", "modules.dep:2:1: module path \"/lib/modules/x/b.ko\" is absolute"},
		{"dotdot dep", "kernel/a.ko: ../b.ko\n", "modules.dep:1:14: module path \"../b.ko\" is not a clean"},
		{"not a ko", "kernel/a.txt:\n", "modules.dep:1:1: module path \"kernel/a.txt\" does not name a .ko"},
		{"twice", "kernel/a.ko:\nkernel/a.ko:\n", "modules.dep:2:1: module kernel/a.ko listed twice"},
		{"empty path", ": kernel/a.ko\n", "modules.dep:1:1: empty module path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseModulesDep(strings.NewReader(tc.text), "modules.dep")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	deps, err := ParseModulesDep(strings.NewReader(sampleDep), "modules.dep")
	if err != nil {
		t.Fatal(err)
	}
	builtin := map[string]bool{"squashfs": true, "loop": true}
	for _, tc := range []struct {
		name    string
		in      []string
		want    []string // module names in load order
		wantErr string
	}{
		{"virtio_net alone", []string{"virtio_net"},
			[]string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"}, ""},
		{"pci then net, shared deps once", []string{"virtio_pci", "virtio-net"},
			[]string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "failover", "net_failover", "virtio_net"}, ""},
		{"builtin skipped, module kept", []string{"squashfs", "loop", "overlay"},
			[]string{"loop", "overlay"}, ""},
		{"repeat", []string{"overlay", "overlay"}, []string{"overlay"}, ""},
		{"unknown", []string{"overlay", "nosuch"}, nil, `module "nosuch" is neither in modules.dep nor built into the kernel`},
		{"empty name", []string{""}, nil, "empty module name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := deps.Resolve(tc.in, builtin)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range got {
				names = append(names, ModuleName(p))
			}
			if !reflect.DeepEqual(names, tc.want) {
				t.Fatalf("order %v, want %v", names, tc.want)
			}
		})
	}
}

func TestResolveCycleAndDangling(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"cycle", "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n", "module dependency cycle: a -> b -> a"},
		{"dangling", "kernel/a.ko: kernel/gone.ko\n", "module a needs kernel/gone.ko, which modules.dep does not list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deps, err := ParseModulesDep(strings.NewReader(tc.text), "modules.dep")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := deps.Resolve([]string{"a"}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestResolveDebianKernel resolves the boot modules against the fetched
// Debian kernel: every module comes after all the modules it depends on.
func TestResolveDebianKernel(t *testing.T) {
	_, dir := lab.Kernel(t)
	order, err := ResolveModules(dir, []string{"virtio_pci", "virtio_net", "e1000", "loop", "squashfs", "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deps, err := ParseModulesDep(f, "modules.dep")
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, p := range order {
		pos[p] = i
	}
	for _, p := range order {
		for _, d := range deps.deps[p] {
			if j, ok := pos[d]; !ok || j > pos[p] {
				t.Errorf("%s is loaded before its dependency %s (order %v)", p, d, order)
			}
		}
	}
	for _, want := range []string{"virtio_net", "virtio_pci", "failover", "e1000", "overlay"} {
		if _, ok := deps.Path(want); !ok {
			t.Errorf("%s missing from modules.dep", want)
		}
		found := false
		for _, p := range order {
			found = found || ModuleName(p) == want
		}
		if !found {
			t.Errorf("%s not in the load order %v", want, order)
		}
	}
}

func FuzzParseModulesDep(f *testing.F) {
	f.Add(sampleDep, "virtio_net")
	f.Add("kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n", "a")
	f.Add("x", "")
	f.Fuzz(func(t *testing.T, text, name string) {
		deps, err := ParseModulesDep(strings.NewReader(text), "modules.dep")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "modules.dep:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		order, err := deps.Resolve([]string{name}, nil)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, p := range order {
			if seen[p] {
				t.Fatalf("%s twice in %v", p, order)
			}
			seen[p] = true
			if checkModulePath(p) != nil {
				t.Fatalf("unsafe path %q resolved", p)
			}
			for _, d := range deps.deps[p] {
				if !seen[d] {
					t.Fatalf("%s before its dependency %s", p, d)
				}
			}
		}
	})
}

func FuzzParseModulesBuiltin(f *testing.F) {
	f.Add("kernel/fs/ext4/ext4.ko\nkernel/net/unix/unix.ko\n")
	f.Add("/abs.ko\n")
	f.Fuzz(func(t *testing.T, text string) {
		set, err := ParseModulesBuiltin(strings.NewReader(text), "modules.builtin")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "modules.builtin:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		for name := range set {
			if strings.Contains(name, "/") || strings.Contains(name, "-") {
				t.Fatalf("name %q not normalised", name)
			}
		}
	})
}

func TestVermagic(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"\x7fELF...\x00license=GPL\x00vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \x00name=x", "6.1.0-56-amd64", true},
		{"vermagic=6.1 at start is not after a NUL", "", false},
		{"\x00vermagic=\x00", "", false},
		{"", "", false},
	} {
		got, ok := vermagic([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("vermagic(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// fakeModules writes a modules directory whose .ko files are tiny blobs with
// a vermagic, some compressed the ways distributions ship them.
func fakeModules(t *testing.T) (dir string, plain map[string][]byte) {
	t.Helper()
	dir = t.TempDir()
	plain = map[string][]byte{}
	files := map[string]string{ // path -> compression
		"kernel/lib/base.ko":       "",
		"kernel/net/mid.ko.gz":     "gzip",
		"kernel/fs/top.ko.xz":      "xz",
		"kernel/drivers/zz.ko.zst": "zstd",
	}
	for p, comp := range files {
		body := []byte("\x7fELF\x00vermagic=6.1.0-test SMP mod_unload \x00name=" + ModuleName(p) + "\x00")
		plain[p] = body
		data := body
		if comp != "" {
			data = compress(t, comp, body)
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dep := "kernel/lib/base.ko:\nkernel/net/mid.ko.gz: kernel/lib/base.ko\n" +
		"kernel/fs/top.ko.xz: kernel/net/mid.ko.gz kernel/lib/base.ko\nkernel/drivers/zz.ko.zst:\n"
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/squashfs/squashfs.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, plain
}

func compress(t *testing.T, tool string, data []byte) []byte {
	t.Helper()
	lab.RequireTools(t, tool)
	out, err := runWithStdin(tool, data, "-c")
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if bytes.Equal(out, data) {
		t.Fatalf("%s did not compress", tool)
	}
	return out
}
