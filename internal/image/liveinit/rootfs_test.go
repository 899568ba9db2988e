package liveinit

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/assets"
	"github.com/netbootui/netbootui/internal/lab"
)

func TestBuildRootfs(t *testing.T) {
	bb := busybox(t)
	root := filepath.Join(t.TempDir(), "root")
	if err := BuildRootfs(root, RootfsOptions{Busybox: bb, Name: "lab image 3"}); err != nil {
		t.Fatal(err)
	}
	agent, _ := fs.ReadFile(assets.FS, "scripts/checkin.sh")
	rcS, _ := fs.ReadFile(assets.FS, "scripts/rootfs-rcS.sh")
	for _, tc := range []struct {
		path   string
		mode   fs.FileMode
		link   string // symlink target
		data   []byte
		substr string
	}{
		{path: "sbin/init", link: "/bin/busybox"},
		{path: "bin/sh", link: "busybox"},
		{path: "bin/getty", link: "busybox"},
		{path: "etc/resolv.conf", link: "/run/netbootui/resolv.conf"},
		{path: "var/run", link: "/run"},
		{path: "bin/busybox", mode: 0o755},
		{path: AgentPath, mode: 0o755, data: agent},
		{path: "etc/init.d/rcS", mode: 0o755, data: rcS},
		{path: "etc/inittab", mode: 0o644, substr: "::once:/usr/sbin/netbootui-checkin\n"},
		{path: "etc/os-release", mode: 0o644, substr: `PRETTY_NAME="lab image 3"`},
		{path: "etc/passwd", mode: 0o644, substr: "root:x:0:0:"},
		{path: "tmp", mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{path: "root", mode: fs.ModeDir | 0o700},
		{path: "proc", mode: fs.ModeDir | 0o755},
	} {
		p := filepath.Join(root, tc.path)
		if tc.link != "" {
			got, err := os.Readlink(p)
			if err != nil || got != tc.link {
				t.Errorf("%s -> %q (%v), want -> %q", tc.path, got, err, tc.link)
			}
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if fi.Mode() != tc.mode {
			t.Errorf("%s mode %v, want %v", tc.path, fi.Mode(), tc.mode)
		}
		if tc.data != nil || tc.substr != "" {
			b, _ := os.ReadFile(p)
			if tc.data != nil && !bytes.Equal(b, tc.data) {
				t.Errorf("%s content differs", tc.path)
			}
			if !strings.Contains(string(b), tc.substr) {
				t.Errorf("%s lacks %q", tc.path, tc.substr)
			}
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(root)); len(ents) != 1 {
		t.Errorf("staging directory left behind: %v", ents)
	}
}

func TestBuildRootfsErrors(t *testing.T) {
	bb := busybox(t)
	for _, tc := range []struct {
		name     string
		nonEmpty bool
		opt      RootfsOptions
		want     string
	}{
		{"not empty", true, RootfsOptions{Busybox: bb}, "is not empty"},
		{"bad name", false, RootfsOptions{Busybox: bb, Name: `a"b`}, "os-release cannot hold"},
		{"no busybox", false, RootfsOptions{Busybox: "/nonexistent"}, "/nonexistent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "root")
			want := 0
			if tc.nonEmpty {
				want = 1
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := BuildRootfs(dir, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != want {
				t.Errorf("failed build left files: %v", ents)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != want {
				t.Errorf("failed build changed %s: %v", dir, ents)
			}
		})
	}
}

func TestMakeSquashfs(t *testing.T) {
	bb := busybox(t)
	lab.RequireTools(t, "mksquashfs", "unsquashfs")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := BuildRootfs(root, RootfsOptions{Busybox: bb}); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "a.squashfs"), filepath.Join(dir, "b.squashfs")
	for _, out := range []string{a, b} {
		if err := MakeSquashfs(root, out); err != nil {
			t.Fatal(err)
		}
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if len(da) == 0 || !bytes.Equal(da, db) {
		t.Fatalf("two images of one tree differ (%d and %d bytes)", len(da), len(db))
	}
	// unsquashfs, an independent reader, sees the tree owned by root.
	out, err := exec.Command("unsquashfs", "-lls", a).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	list := string(out)
	for _, want := range []string{"squashfs-root/sbin/init -> /bin/busybox", "squashfs-root/usr/sbin/netbootui-checkin", "squashfs-root/etc/inittab"} {
		if !strings.Contains(list, want) {
			t.Errorf("unsquashfs does not list %q", want)
		}
	}
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, "squashfs-root") && !strings.Contains(l, " root/root ") {
			t.Errorf("not owned by root: %s", l)
		}
	}
	sb, _ := exec.Command("unsquashfs", "-s", a).CombinedOutput()
	t.Logf("rootfs squashfs %d bytes; %s", len(da), firstLine(string(sb), "Compression"))
}

func firstLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestMakeSquashfsErrors(t *testing.T) {
	lab.RequireTools(t, "mksquashfs")
	dir := t.TempDir()
	out := filepath.Join(dir, "out.squashfs")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, src, out, want string }{
		{"missing source", filepath.Join(dir, "nosuch"), out, "squashfs source"},
		{"source is a file", file, out, "is not a directory"},
		{"no output dir", dir, filepath.Join(dir, "nosuch", "x.squashfs"), "nosuch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := MakeSquashfs(tc.src, tc.out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if b, _ := os.ReadFile(out); string(b) != "old" {
				t.Error("failed run changed the existing image")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 2 {
				t.Errorf("failed run left files: %v", ents)
			}
		})
	}
}
