package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/netbootui/netbootui/assets"
	"github.com/netbootui/netbootui/internal/lab"
)

const goodRecipe = `name: web
rootfs:
  dir: ${kernel_dir}/root
kernel:
  file: vmlinuz
  modules: mods
initramfs:
  builtin:
    modules: [virtio_net, loop]
compression_level: 5
`

func TestParseRecipeGood(t *testing.T) {
	r, err := ParseRecipe("/r/web/image.yaml", []byte(goodRecipe), map[string]string{"kernel_dir": "/k"})
	if err != nil {
		t.Fatal(err)
	}
	want := Recipe{File: "/r/web/image.yaml", Dir: "/r/web", Name: "web", Compression: "zstd", CompressionLevel: 5,
		Rootfs:    RootfsSpec{Kind: RootfsDir, Pos: Pos{"/r/web/image.yaml", 3, 8}, Path: "/k/root"},
		Kernel:    KernelSpec{Pos: Pos{"/r/web/image.yaml", 5, 3}, File: "/r/web/vmlinuz", Modules: "/r/web/mods"},
		Initramfs: InitramfsSpec{Kind: InitramfsBuiltin, Pos: Pos{"/r/web/image.yaml", 9, 5}, Modules: []string{"virtio_net", "loop"}},
	}
	if !reflect.DeepEqual(*r, want) {
		t.Fatalf("got  %+v\nwant %+v", *r, want)
	}
}

func TestParseRecipeErrors(t *testing.T) {
	const f = "/r/x/image.yaml"
	cases := []struct {
		name, text, pos, msg string
	}{
		{"empty", "", "1:1", "empty recipe"},
		{"syntax", "rootfs: {busybox: {}}\nkernel: {file: k}\n  bad: indent\n", "2:1", "YAML syntax"},
		{"not a mapping", "- a\n", "1:1", "want a mapping"},
		{"unknown key", "rootfs: {busybox: {}}\nkernal: {file: k}\n", "2:1", `unknown key "kernal"`},
		{"missing kernel", "rootfs: {busybox: {}}\ninitramfs: {builtin: {}}\n", "1:1", `missing "kernel"`},
		{"two rootfs kinds", "rootfs: {dir: a, tar: b}\nkernel: {file: k}\ninitramfs: {builtin: {}}\n", "1:9", "exactly one"},
		{"unknown rootfs kind", "rootfs: {zip: a}\nkernel: {file: k}\ninitramfs: {builtin: {}}\n", "1:10", `unknown key "zip"`},
		{"bad name", "name: Web!\nrootfs: {busybox: {}}\nkernel: {file: k}\ninitramfs: {builtin: {}}\n", "1:7", "image name"},
		{"unknown variable", "rootfs:\n  dir: ${nope}/r\nkernel: {file: k}\ninitramfs: {builtin: {}}\n", "2:8", "unknown variable ${nope}"},
		{"duplicate key", "rootfs: {busybox: {}}\nrootfs: {busybox: {}}\nkernel: {file: k}\ninitramfs: {builtin: {}}\n", "2:1", "given twice"},
		{"from_rootfs not bool", "rootfs: {dir: r}\nkernel: {from_rootfs: yes please}\ninitramfs: {builtin: {}}\n", "2:23", "true or false"},
		{"from_rootfs and file", "rootfs: {dir: r}\nkernel: {from_rootfs: true, file: k}\ninitramfs: {builtin: {}}\n", "2:9", "no file or modules"},
		{"bad module name", "rootfs: {busybox: {}}\nkernel: {file: k, modules: m}\ninitramfs: {builtin: {modules: [virtio_net, ../evil]}}\n", "3:45", "not a valid name"},
		{"modules without dir", "rootfs: {busybox: {}}\nkernel: {file: k}\ninitramfs: {builtin: {modules: [loop]}}\n", "3:12", "no modules: folder"},
		{"bad compression", "rootfs: {busybox: {}}\nkernel: {file: k}\ninitramfs: {builtin: {}}\ncompression: bzip9\n", "4:14", "compression"},
		{"zstd level too high", "rootfs: {busybox: {}}\nkernel: {file: k}\ninitramfs: {builtin: {}}\ncompression_level: 23\n", "4:20", "want 1-22 for zstd"},
		{"level not a number", "rootfs: {busybox: {}}\nkernel: {file: k}\ninitramfs: {builtin: {}}\ncompression: gzip\ncompression_level: high\n", "5:20", "want 1-9 for gzip"},
		{"bad dracut compress", "rootfs: {dir: r}\nkernel: {from_rootfs: true}\ninitramfs: {dracut: {compress: \"zstd; rm -rf /\"}}\n", "3:32", "want a program and its options"},
		{"xz takes no level", "rootfs: {busybox: {}}\nkernel: {file: k}\ninitramfs: {builtin: {}}\ncompression: xz\ncompression_level: 3\n", "5:20", "xz takes no level"},
		{"debootstrap no suite", "rootfs: {debootstrap: {packages: [vim]}}\nkernel: {from_rootfs: true}\ninitramfs: {dracut: {}}\n", "1:23", `missing "suite"`},
		{"debootstrap bad mirror", "rootfs: {debootstrap: {suite: bookworm, mirror: ftp://x}}\nkernel: {from_rootfs: true}\ninitramfs: {dracut: {}}\n", "1:49", "mirror"},
		{"dracut on busybox", "rootfs: {busybox: {}}\nkernel: {file: k}\ninitramfs: {dracut: {}}\n", "3:12", "busybox root has none"},
		{"two documents", "rootfs: {busybox: {}}\nkernel: {file: k}\ninitramfs: {builtin: {}}\n---\na: b\n", "4:1", "one YAML document"},
		{"path is a list", "rootfs: {tar: [a]}\nkernel: {file: k}\ninitramfs: {builtin: {}}\n", "1:15", "want a string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRecipe(f, []byte(c.text), nil)
			var re *RecipeError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a RecipeError", err)
			}
			if !strings.HasPrefix(err.Error(), f+":"+c.pos+": ") || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %q, want %s:%s: ...%s...", err, f, c.pos, c.msg)
			}
		})
	}
}

func FuzzParseRecipe(f *testing.F) {
	f.Add([]byte(goodRecipe))
	f.Add([]byte("rootfs: {debootstrap: {suite: bookworm, packages: [a, b]}}\nkernel: {from_rootfs: true}\ninitramfs: {dracut: {}}\n"))
	f.Add([]byte("rootfs: {oci: x}\nkernel: {file: ${kernel_dir}/k}\ninitramfs: {builtin: {}}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("rootfs: {debootstrap: {suite: bookworm}}\nkernel: {from_rootfs: true}\ninitramfs: {dracut: {modules: [livenet], compress: zstd -3 -q -T0}}\ncompression: gzip\ncompression_level: 9\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecipe("/f/x/image.yaml", data, map[string]string{"kernel_dir": "/k"})
		if err != nil {
			var re *RecipeError
			if !errors.As(err, &re) || re.Line < 1 || re.Col < 1 {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		if !ValidImageName(r.Name) || r.Rootfs.Kind == "" || r.Initramfs.Kind == "" {
			t.Fatalf("accepted an incomplete recipe: %+v", r)
		}
		for _, p := range []string{r.Rootfs.Path, r.Kernel.File, r.Kernel.Modules, r.Overlay} {
			if p != "" && !filepath.IsAbs(p) {
				t.Fatalf("relative path %q", p)
			}
		}
	})
}

func TestDebootstrapAndDracutArgs(t *testing.T) {
	r, err := ParseRecipe("/r/d/image.yaml", []byte("rootfs:\n  debootstrap: {suite: bookworm, packages: [linux-image-amd64, dracut-live]}\nkernel: {from_rootfs: true}\ninitramfs: {dracut: {}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := DebootstrapArgs(r.Rootfs.Debootstrap, "/w/root")
	want := []string{"debootstrap", "--variant=minbase", "bookworm", "/w/root", "http://deb.debian.org/debian"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("debootstrap args %q, want %q", got, want)
	}
	got = AptArgs(r.Rootfs.Debootstrap.Packages)
	want = []string{"apt-get", "install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "linux-image-amd64", "dracut-live"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("apt args %q, want %q", got, want)
	}
	got = DracutArgs(r.Initramfs, "6.1.0-1-amd64", "/tmp/i")
	want = []string{"dracut", "--no-hostonly", "--no-hostonly-cmdline", "--force", "--add", "dmsquash-live livenet netbootui", "--kver", "6.1.0-1-amd64", "/tmp/i"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dracut args %q, want %q", got, want)
	}
	got = DracutArgs(InitramfsSpec{DracutModules: []string{"livenet"}, DracutCompress: "zstd -3 -q -T0"}, "6.1.0-1-amd64", "/tmp/i")
	want = []string{"dracut", "--no-hostonly", "--no-hostonly-cmdline", "--force", "--add", "livenet netbootui", "--compress", "zstd -3 -q -T0", "--kver", "6.1.0-1-amd64", "/tmp/i"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dracut args %q, want %q", got, want)
	}
	// A recipe that names netbootui's module itself gets it once.
	mods := []string{"netbootui", "livenet"}
	got = DracutArgs(InitramfsSpec{DracutModules: mods}, "6.1.0-1-amd64", "/tmp/i")
	want = []string{"dracut", "--no-hostonly", "--no-hostonly-cmdline", "--force", "--add", "netbootui livenet", "--kver", "6.1.0-1-amd64", "/tmp/i"}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(mods, []string{"netbootui", "livenet"}) {
		t.Errorf("dracut args %q, want %q (modules now %q)", got, want, mods)
	}
	got = ChrootArgs("/w/root", "apt-get", "clean")
	if len(got) != 7 || got[0] != "/bin/sh" || got[4] != "/w/root" || got[5] != "apt-get" || got[6] != "clean" {
		t.Errorf("chroot args %q", got)
	}
	// No debootstrap on PATH: a clear error naming the recipe position.
	t.Setenv("PATH", t.TempDir())
	err = makeRootfs(context.Background(), r, filepath.Join(t.TempDir(), "root"), t.TempDir(), "", &Provenance{}, &buildLog{})
	if err == nil || !strings.Contains(err.Error(), "/r/d/image.yaml:2:16") || !strings.Contains(err.Error(), "debootstrap not found") {
		t.Fatalf("err = %v", err)
	}
}

func TestSquashfsProgress(t *testing.T) {
	cases := []struct {
		in   string
		want float64
		ok   bool
	}{
		{`[=====\     ]  300/12924   2%`, 100 * 300.0 / 12924, true},
		{`[==========]  12924/12924 100%`, 100, true},
		{`57`, 57, true},
		{`Parallel mksquashfs: Using 2 processors`, 0, false},
		{`101`, 0, false},
		{`[==] 5/0 1%`, 0, false},
	}
	for _, c := range cases {
		got, ok := ParseSquashfsProgress(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("%q: %v %v, want %v %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

type tarEnt struct {
	name, body, link string
	typ              byte
}

func mkTar(t *testing.T, ents []tarEnt) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

func TestExtractTarStaysInside(t *testing.T) {
	dst := t.TempDir()
	outside := t.TempDir()
	data := mkTar(t, []tarEnt{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/hostname", body: "n1", typ: tar.TypeReg},
		{name: "../../escape", body: "x", typ: tar.TypeReg},
		{name: "/abs", body: "y", typ: tar.TypeReg},
		{name: "out", link: outside, typ: tar.TypeSymlink},
	})
	if err := extractTar(context.Background(), bytes.NewReader(data), dst); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"etc/hostname": "n1", "escape": "x", "abs": "y"} {
		if b, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v", p, b, err)
		}
	}
	// Writing through the symlink is refused.
	bad := mkTar(t, []tarEnt{{name: "out", link: outside, typ: tar.TypeSymlink}, {name: "out/pwned", body: "z", typ: tar.TypeReg}})
	if err := extractTar(context.Background(), bytes.NewReader(bad), t.TempDir()); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("write through a symlink: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "pwned")); err == nil {
		t.Fatal("file written outside the root")
	}
}

// ociLayout writes an OCI image layout of the layers into a temp folder.
func ociLayout(t *testing.T, layers ...v1.Layer) (string, v1.Image) {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir, img
}

func TestOCILayoutFlattened(t *testing.T) {
	layer := func(ents []tarEnt) *bytes.Reader { return bytes.NewReader(mkTar(t, ents)) }
	l1, err := tarball.LayerFromReader(layer([]tarEnt{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/keep", body: "keep", typ: tar.TypeReg},
		{name: "etc/gone", body: "gone", typ: tar.TypeReg},
		{name: "opt/old/", typ: tar.TypeDir},
		{name: "opt/old/f", body: "f", typ: tar.TypeReg},
	}))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := tarball.LayerFromReader(layer([]tarEnt{
		{name: "etc/.wh.gone", typ: tar.TypeReg},
		{name: "opt/.wh.old", typ: tar.TypeReg},
		{name: "etc/keep", body: "new", typ: tar.TypeReg},
	}))
	if err != nil {
		t.Fatal(err)
	}
	dir, img := ociLayout(t, l1, l2)
	root := t.TempDir()
	digest, err := extractOCI(context.Background(), dir, root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.Digest(); digest != want.String() || !strings.HasPrefix(digest, "sha256:") {
		t.Errorf("extractOCI digest %q, want the image's %q", digest, want)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/keep")); string(b) != "new" {
		t.Errorf("etc/keep = %q, want the upper layer's", b)
	}
	for _, gone := range []string{"etc/gone", "opt/old", "etc/.wh.gone"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s survived its whiteout", gone)
		}
	}
	if _, err := extractOCI(context.Background(), t.TempDir(), root, t.TempDir()); err == nil {
		t.Error("an empty folder was taken for an OCI layout")
	}
}

// TestInstallDracutModule installs netbootui's dracut module into a root
// (over a stale copy, and refusing a symlinked modules folder) and checks
// the installed scripts: the embedded bytes, executable, and clean for
// dash -n and shellcheck (module-setup.sh is bash, sourced by dracut; the
// hook is sh, sourced by dracut's init or dracut-pre-pivot).
func TestInstallDracutModule(t *testing.T) {
	lab.RequireTools(t, "shellcheck", "dash")
	root := t.TempDir()
	dir := filepath.Join(root, filepath.FromSlash(dracutModuleDir))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "module-setup.sh"), []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	var lines []string
	lg := &buildLog{cb: func(p Progress) { lines = append(lines, p.Line) }}
	if err := installDracutModule(root, lg); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "/"+dracutModuleDir) {
		t.Errorf("build log %q, want one line naming /%s", lines, dracutModuleDir)
	}
	shells := map[string]string{"module-setup.sh": "bash", "netbootui-variants.sh": "sh", "netbootui-nfs-overlay.sh": "sh", "netbootui-lib.sh": "sh"}
	ents, err := fs.ReadDir(assets.FS, "dracut/90"+DracutModule)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(shells) {
		t.Errorf("the module has %d files, want %d (%v)", len(ents), len(shells), shells)
	}
	for _, e := range ents {
		want, _ := fs.ReadFile(assets.FS, "dracut/90"+DracutModule+"/"+e.Name())
		p := filepath.Join(dir, e.Name())
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: installed %d bytes (%v), want the embedded %d", p, len(got), err, len(want))
			continue
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v (%v), want 0755", p, fi.Mode(), err)
		}
		shell, ok := shells[e.Name()]
		if !ok {
			t.Errorf("%s: not a file this test knows", e.Name())
			continue
		}
		checks := [][]string{{"shellcheck", "-s", shell, "-S", "style", p}}
		if shell == "sh" {
			checks = append(checks, []string{"dash", "-n", p})
		}
		for _, argv := range checks {
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				t.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
			}
		}
	}

	// A root whose modules.d is a symlink (out of the root) is refused.
	evil := t.TempDir()
	link := filepath.Join(evil, "usr", "lib", "dracut")
	if err := os.MkdirAll(link, 0o755); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := os.Symlink(out, filepath.Join(link, "modules.d")); err != nil {
		t.Fatal(err)
	}
	if err := installDracutModule(evil, &buildLog{}); err == nil {
		t.Errorf("installed the module through a symlinked modules.d")
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("the symlink's target got %d entries", len(ents))
	}
}
