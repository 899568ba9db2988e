package nfs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/builtin"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

var site = roottransport.NFSSite{Server: "10.0.2.2", Port: 20490, Export: "/netbootui", Dir: "/srv/netbootui"}

func TestKernelArgs(t *testing.T) {
	var tr nfs.Transport
	for _, tc := range []struct {
		name string
		b    roottransport.Boot
		want string // "" = an error
		// more are the words after root=
		more []string
	}{
		{"site port", roottransport.Boot{Node: "n1", Image: "c", Generation: "g1", NFS: site},
			"root=nfs:10.0.2.2:/netbootui/images/c/g1:vers=4.1,port=20490", nil},
		{"default port", roottransport.Boot{Image: "c", Generation: "g1", NFS: roottransport.NFSSite{Server: "10.1.0.1", Export: "/x", Dir: "/d"}},
			"root=nfs:10.1.0.1:/x/images/c/g1:vers=4.1,port=2049", nil},
		{"no site", roottransport.Boot{Image: "c", Generation: "g1"}, "", nil},
		{"no generation", roottransport.Boot{Image: "c", NFS: site}, "", nil},
		{"name, not address", roottransport.Boot{Image: "c", Generation: "g1", NFS: roottransport.NFSSite{Server: "head", Export: "/x", Dir: "/d"}}, "", nil},
		{"ipv6", roottransport.Boot{Image: "c", Generation: "g1", NFS: roottransport.NFSSite{Server: "fd00::1", Export: "/x", Dir: "/d"}}, "", nil},
		{"dracut", roottransport.Boot{Node: "n1", Image: "c", Generation: "g1", NFS: site, Dracut: true},
			"root=nfs:10.0.2.2:/netbootui/images/c/g1:vers=4.1,port=20490", []string{"rd.neednet=1", "ip=dhcp"}},
		// netbootui's dracut module does not mount persisted paths: refused
		// when rendered, not a node that silently keeps nothing.
		{"dracut with persist", roottransport.Boot{Node: "n1", Image: "c", Generation: "g1", NFS: site, Dracut: true, Persist: []string{"/var/log"}}, "", nil},
	} {
		args, err := tr.KernelArgs(tc.b)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: KernelArgs = %q, want an error", tc.name, args)
			}
			continue
		}
		if err != nil || !slices.Equal(args, append([]string{tc.want}, tc.more...)) {
			t.Errorf("%s: KernelArgs = %q, %v; want %s", tc.name, args, err, tc.want)
			continue
		}
		// What KernelArgs writes, Parse reads back.
		k, v, _ := strings.Cut(args[0], "=")
		c, err := builtin.Registry().Parse(map[string]string{k: v})
		if err != nil || c.Root.Transport != nfs.Name || len(c.Root.Fetch) != 0 ||
			c.Root.Mount != tc.b.NFS.Server+":"+nfs.TreePath(tc.b.NFS, "c", "g1") || !strings.HasPrefix(c.Root.MountOptions, "vers=4.1,port=") {
			t.Errorf("%s: round trip %+v, %v", tc.name, c.Root, err)
		}
	}
}

func TestLocate(t *testing.T) {
	var tr nfs.Transport
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"10.0.2.2:/netbootui/images/c/g", true},
		{"10.0.2.2:/netbootui/images/c/g:vers=4.1,port=20490", true},
		{"10.0.2.2:/a:ro", true},
		{"head:/a", false},
		{"10.0.2.2", false},
		{"10.0.2.2:relative", false},
		{"10.0.2.2:/a/../b", false},
		{"10.0.2.2:/a/", false},
		{"10.0.2.2:/a b", false},
		{"10.0.2.2:/a,b", false},
		{"10.0.2.2:/a:vers=4,,port=1", false},
		{"10.0.2.2:/a:x'y", false},
		{"", false},
	} {
		r, err := tr.Locate(tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("Locate(%q): %v, want ok %v", tc.value, err, tc.ok)
		}
		if tc.ok && !strings.HasPrefix(tc.value, r.Mount) {
			t.Errorf("Locate(%q) mounts %q", tc.value, r.Mount)
		}
	}
}

// FuzzLocate: any value Locate accepts names an IPv4 server and an
// absolute path, and carries nothing the init's word splitting or mount
// options would misread.
func FuzzLocate(f *testing.F) {
	for _, s := range []string{"10.0.2.2:/netbootui/images/c/g:vers=4.1,port=20490", "1.2.3.4:/", "x:/y", ":::", "10.0.2.2:/a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, err := nfs.Transport{}.Locate(v)
		if err != nil {
			return
		}
		server, p, ok := strings.Cut(r.Mount, ":")
		if !ok || !strings.HasPrefix(p, "/") || strings.ContainsAny(p, ":, \t\n") || strings.ContainsAny(r.MountOptions, ": \t\n") || server == "" {
			t.Fatalf("Locate(%q) = %+v", v, r)
		}
	})
}

func TestGaneshaExports(t *testing.T) {
	out := nfs.GaneshaExports(site, []nfs.NodeDir{{Node: "n01", Client: "10.1.0.11"}, {Node: "n02", Client: "10.1.0.12"}})
	for _, want := range []string{
		"Export_Id = 1;\n\tPath = \"/srv/netbootui/images\";\n\tPseudo = \"/netbootui/images\";\n\tAccess_Type = RO;",
		"Export_Id = 2;\n\tPath = \"/srv/netbootui/nodes/n01\";\n\tPseudo = \"/netbootui/nodes/n01\";\n\tAccess_Type = None;",
		"CLIENT { Clients = 10.1.0.11; Access_Type = RW; }",
		"Export_Id = 3;",
		"CLIENT { Clients = 10.1.0.12; Access_Type = RW; }",
		"Only_Numeric_Owners = true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exports lack %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "EXPORT {") != 3 || strings.Count(out, "{") != strings.Count(out, "}") {
		t.Errorf("exports:\n%s", out)
	}
}

// TestPublishTree unpacks a real squashfs once and never rewrites it.
func TestPublishTree(t *testing.T) {
	for _, tool := range []string{"mksquashfs", "unsquashfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("NETBOOTUI_REQUIRE_TOOLS") != "" {
				t.Fatalf("%s is missing", tool)
			}
			t.Skipf("%s is missing (package squashfs-tools)", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("one\n"), 0o644)
	os.Symlink("hostname", filepath.Join(src, "etc", "link"))
	os.Symlink("var/run", filepath.Join(src, "run"))
	sq := filepath.Join(dir, "rootfs.squashfs")
	if out, err := exec.Command("mksquashfs", src, sq, "-all-root", "-quiet", "-no-progress").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	dst := filepath.Join(dir, "export", "images", "c", "g1")
	made, err := nfs.PublishTree(sq, dst)
	if err != nil || !made {
		t.Fatalf("PublishTree = %v, %v", made, err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "etc", "link")); err != nil || string(b) != "one\n" {
		t.Fatalf("tree: %q, %v", b, err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o755 {
		t.Errorf("tree root mode %v", fi.Mode())
	}
	// The source has no /proc, /sys, /dev, /run: the tree gets them (dracut
	// waits for $NEWROOT/proc); /run, a link in the source, stays a link.
	for _, d := range nfs.MountPoints {
		fi, err := os.Lstat(filepath.Join(dst, d))
		switch {
		case err != nil:
			t.Errorf("tree has no /%s: %v", d, err)
		case d == "run" && fi.Mode()&os.ModeSymlink == 0:
			t.Errorf("tree /run: %v, want the source's link kept", fi.Mode())
		case d != "run" && (!fi.IsDir() || fi.Mode().Perm() != 0o755):
			t.Errorf("tree /%s: %v, want a 0755 directory", d, fi.Mode())
		}
	}
	// A second publish leaves the tree as it is, even if the squashfs
	// behind it were different.
	os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("two\n"), 0o644)
	os.Remove(sq)
	exec.Command("mksquashfs", src, sq, "-all-root", "-quiet", "-no-progress").Run()
	if made, err := nfs.PublishTree(sq, dst); err != nil || made {
		t.Fatalf("second PublishTree = %v, %v", made, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "etc", "hostname")); string(b) != "one\n" {
		t.Fatalf("tree rewritten: %q", b)
	}
	ents, _ := os.ReadDir(filepath.Dir(dst))
	if len(ents) != 1 {
		t.Errorf("temporary directories left: %v", ents)
	}
	// A broken squashfs leaves no tree.
	os.WriteFile(filepath.Join(dir, "bad.squashfs"), []byte("not a squashfs"), 0o644)
	if _, err := nfs.PublishTree(filepath.Join(dir, "bad.squashfs"), filepath.Join(dir, "export", "images", "c", "g2")); err == nil {
		t.Fatal("a broken squashfs published")
	}
	if _, err := os.Stat(filepath.Join(dir, "export", "images", "c", "g2")); err == nil {
		t.Fatal("a broken squashfs left a tree")
	}
}
