package liveinit

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/assets"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/u-root/u-root/pkg/cpio"
)

func runWithStdin(tool string, in []byte, args ...string) ([]byte, error) {
	cmd := exec.Command(tool, args...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %v: %v: %s", tool, args, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// timeZero is an arbitrary old time to touch inputs with.
var timeZero = time.Unix(1_000_000, 0)

// busybox returns the static busybox the tests build with.
func busybox(t *testing.T) string {
	t.Helper()
	lab.RequireTools(t, "busybox")
	if _, err := os.Stat(DefaultBusybox); err != nil {
		t.Skipf("no %s (busybox-static): %v", DefaultBusybox, err)
	}
	return DefaultBusybox
}

// readInitramfs decompresses and parses an initramfs with u-root's reader.
func readInitramfs(t *testing.T, data []byte) map[string]cpio.Record {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]cpio.Record{}
	for _, r := range recs {
		if r.Name == cpio.Trailer {
			continue
		}
		if _, dup := out[r.Name]; dup {
			t.Errorf("%s twice in the archive", r.Name)
		}
		out[r.Name] = r
	}
	return out
}

func content(t *testing.T, r cpio.Record) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildInitramfs(t *testing.T) {
	bb := busybox(t)
	mods, plain := fakeModules(t)
	var buf bytes.Buffer
	if err := Build(&buf, Options{Busybox: bb, KernelModulesDir: mods, Modules: []string{"top", "zz", "squashfs"}}); err != nil {
		t.Fatal(err)
	}
	recs := readInitramfs(t, buf.Bytes())

	initSh, _ := fs.ReadFile(assets.FS, "scripts/init.sh")
	checkin, _ := fs.ReadFile(assets.FS, "scripts/checkin.sh")
	udhcpc, _ := fs.ReadFile(assets.FS, "scripts/udhcpc.sh")
	bbData, _ := os.ReadFile(bb)
	const ver = "lib/modules/6.1.0-test/"
	for _, tc := range []struct {
		name string
		mode uint64
		data []byte
	}{
		{"init", cpio.S_IFREG | 0o755, initSh},
		{"bin/busybox", cpio.S_IFREG | 0o755, bbData},
		{"bin/sh", cpio.S_IFLNK | 0o777, []byte("busybox")},
		{"bin/switch_root", cpio.S_IFLNK | 0o777, []byte("busybox")},
		{"bin/udhcpc", cpio.S_IFLNK | 0o777, []byte("busybox")},
		{CheckinPath, cpio.S_IFREG | 0o755, checkin},
		{UdhcpcScriptPath, cpio.S_IFREG | 0o755, udhcpc},
		{"etc/resolv.conf", cpio.S_IFLNK | 0o777, []byte("/run/netbootui/resolv.conf")},
		{ModulesListPath, cpio.S_IFREG | 0o644, []byte("/" + ver + "kernel/lib/base.ko\n/" + ver + "kernel/net/mid.ko\n/" +
			ver + "kernel/fs/top.ko\n/" + ver + "kernel/drivers/zz.ko\n")},
		{ver + "kernel/lib/base.ko", cpio.S_IFREG | 0o644, plain["kernel/lib/base.ko"]},
		{ver + "kernel/net/mid.ko", cpio.S_IFREG | 0o644, plain["kernel/net/mid.ko.gz"]},
		{ver + "kernel/fs/top.ko", cpio.S_IFREG | 0o644, plain["kernel/fs/top.ko.xz"]},
		{ver + "kernel/drivers/zz.ko", cpio.S_IFREG | 0o644, plain["kernel/drivers/zz.ko.zst"]},
		{"dev/console", cpio.S_IFCHR | 0o600, nil},
		{"newroot", cpio.S_IFDIR | 0o755, nil},
		{"run", cpio.S_IFDIR | 0o755, nil},
		{"lib/modules", cpio.S_IFDIR | 0o755, nil},
	} {
		r, ok := recs[tc.name]
		if !ok {
			t.Errorf("%s missing", tc.name)
			continue
		}
		if r.Mode != tc.mode {
			t.Errorf("%s mode %#o, want %#o", tc.name, r.Mode, tc.mode)
		}
		if tc.data != nil && !bytes.Equal(content(t, r), tc.data) {
			t.Errorf("%s content differs (%d bytes, want %d)", tc.name, r.FileSize, len(tc.data))
		}
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("%s not reproducible: %v", tc.name, r.Info)
		}
	}
	if c := recs["dev/console"]; c.Rmajor != 5 || c.Rminor != 1 {
		t.Errorf("dev/console is %d:%d, want 5:1", c.Rmajor, c.Rminor)
	}
	// Every parent directory precedes its children (the kernel needs it).
	zr, _ := gzip.NewReader(bytes.NewReader(buf.Bytes()))
	raw, _ := io.ReadAll(zr)
	all, _ := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	seen := map[string]bool{".": true}
	for _, r := range all {
		if r.Name == cpio.Trailer {
			continue
		}
		if !seen[filepath.Dir(r.Name)] {
			t.Errorf("%s comes before its directory", r.Name)
		}
		seen[r.Name] = true
	}
}

// TestBuildInitramfsGNUCpio reads the archive with GNU cpio, an independent
// reader, and checks the names it lists.
func TestBuildInitramfsGNUCpio(t *testing.T) {
	bb := busybox(t)
	lab.RequireTools(t, "cpio", "gzip")
	var buf bytes.Buffer
	if err := Build(&buf, Options{Busybox: bb}); err != nil {
		t.Fatal(err)
	}
	raw, err := runWithStdin("gzip", buf.Bytes(), "-dc")
	if err != nil {
		t.Fatal(err)
	}
	out, err := runWithStdin("cpio", raw, "-it", "--quiet")
	if err != nil {
		t.Fatalf("GNU cpio rejects the archive: %v", err)
	}
	names := strings.Fields(string(out))
	for _, want := range []string{"init", "bin/busybox", "bin/wget", "etc/netbootui/checkin.sh", "etc/netbootui/modules", "dev/console"} {
		if i := sort.SearchStrings(names, want); i >= len(names) || names[i] != want {
			t.Errorf("GNU cpio does not list %s", want)
		}
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("entries are not sorted")
	}
}

func TestBuildDeterministic(t *testing.T) {
	bb := busybox(t)
	mods, _ := fakeModules(t)
	opt := Options{Busybox: bb, KernelModulesDir: mods, Modules: []string{"top"}}
	var a, b bytes.Buffer
	if err := Build(&a, opt); err != nil {
		t.Fatal(err)
	}
	// Touching the inputs' times must not matter, only their content.
	if err := os.Chtimes(filepath.Join(mods, "kernel/lib/base.ko"), timeZero, timeZero); err != nil {
		t.Fatal(err)
	}
	if err := Build(&b, opt); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two builds with the same inputs differ")
	}
	var c bytes.Buffer
	opt.Modules = []string{"zz"}
	if err := Build(&c, opt); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("different modules gave the same bytes")
	}
}

func TestBuildErrors(t *testing.T) {
	bb := busybox(t)
	mods, _ := fakeModules(t)
	dynamic, err := exec.LookPath("ls")
	if err != nil {
		t.Skip(err)
	}
	notELF := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  Options
		want string
	}{
		{"missing busybox", Options{Busybox: "/nonexistent/busybox"}, "/nonexistent/busybox"},
		{"dynamic busybox", Options{Busybox: dynamic}, "is dynamically linked"},
		{"not ELF", Options{Busybox: notELF}, "is not an ELF binary"},
		{"modules without dir", Options{Busybox: bb, Modules: []string{"loop"}}, "without KernelModulesDir"},
		{"unknown module", Options{Busybox: bb, KernelModulesDir: mods, Modules: []string{"nosuch"}}, `module "nosuch" is neither`},
		{"no modules.dep", Options{Busybox: bb, KernelModulesDir: t.TempDir(), Modules: []string{"x"}}, "modules.dep"},
		{"bad version", Options{Busybox: bb, KernelModulesDir: mods, Modules: []string{"zz"}, KernelVersion: "../x"}, "bad kernel version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "initrd")
			if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := BuildFile(out, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			// A failed build changes nothing: old file intact, no temp left.
			if b, _ := os.ReadFile(out); string(b) != "old" {
				t.Errorf("failed build changed %s", out)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("failed build left files: %v", ents)
			}
		})
	}
}

func TestBuildFile(t *testing.T) {
	bb := busybox(t)
	out := filepath.Join(t.TempDir(), "initrd")
	if err := BuildFile(out, Options{Busybox: bb}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	recs := readInitramfs(t, data)
	if _, ok := recs["init"]; !ok {
		t.Fatal("no /init")
	}
	if r := recs[ModulesListPath]; r.FileSize != 0 {
		t.Fatalf("no modules asked, yet the list has %d bytes", r.FileSize)
	}
}

// TestBuildInitramfsAgent: Options.Agent puts the static node agent at
// NodeAgentPath; without it there is none; a dynamic one is refused.
func TestBuildInitramfsAgent(t *testing.T) {
	bb := busybox(t)
	static := bb // any static ELF program stands in for the agent
	var with, without bytes.Buffer
	if err := Build(&with, Options{Busybox: bb, Agent: static}); err != nil {
		t.Fatal(err)
	}
	if err := Build(&without, Options{Busybox: bb}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(static)
	r, ok := readInitramfs(t, with.Bytes())[NodeAgentPath]
	if !ok || r.Mode != cpio.S_IFREG|0o755 || !bytes.Equal(content(t, r), want) {
		t.Errorf("%s in the initramfs: %v, mode %#o", NodeAgentPath, ok, r.Mode)
	}
	if _, ok := readInitramfs(t, without.Bytes())[NodeAgentPath]; ok {
		t.Errorf("%s without Options.Agent", NodeAgentPath)
	}
	dynamic, err := exec.LookPath("ls")
	if err != nil {
		t.Skip(err)
	}
	if err := Build(io.Discard, Options{Busybox: bb, Agent: dynamic}); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("a dynamic agent: %v", err)
	}
}
