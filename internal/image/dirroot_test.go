package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDirRootLinkedNotTouched builds a directory root (which the pipeline
// hard-links instead of copying) whose overlay replaces one of its files:
// the image has the overlay's content, the source tree keeps its own bytes,
// modes and link count, and an unchanged rebuild is a no-op.
func TestDirRootLinkedNotTouched(t *testing.T) {
	requireTool(t, "mksquashfs", "unsquashfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := map[string]string{"etc/motd": "from the tree\n", "etc/hostname": "tree\n", "usr/bin/tool": "#!/bin/sh\n"}
	for p, c := range files {
		f := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(c), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	recipe := filepath.Join(dir, "recipe")
	if err := os.MkdirAll(filepath.Join(recipe, "overlay", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(recipe, "overlay", "etc", "motd"), []byte("from the overlay\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not really a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf("name: linked\nrootfs: {dir: %q}\nkernel: {file: %q}\ninitramfs: {builtin: {}}\n", src, kernel)
	if err := os.WriteFile(filepath.Join(recipe, RecipeFile), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newBuilder(t, filepath.Join(dir, "store"))
	m, err := b.Build(context.Background(), recipe, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range files {
		f := filepath.Join(src, p)
		got, err := os.ReadFile(f)
		if err != nil || string(got) != c {
			t.Errorf("source %s now %q (%v), want %q", p, got, err, c)
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 || fi.Sys().(*syscall.Stat_t).Nlink != 1 {
			t.Errorf("source %s: mode %v, %d links after the build", p, fi.Mode(), fi.Sys().(*syscall.Stat_t).Nlink)
		}
	}
	sq, err := b.Store().Path("linked", m.ID, FileRootfs)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if msg, err := exec.Command("unsquashfs", "-d", out, sq).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v: %s", err, msg)
	}
	for p, want := range map[string]string{"etc/motd": "from the overlay\n", "etc/hostname": "tree\n", "usr/bin/tool": "#!/bin/sh\n"} {
		got, err := os.ReadFile(filepath.Join(out, p))
		if err != nil || string(got) != want {
			t.Errorf("image %s = %q (%v), want %q", p, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "usr", "sbin", "netbootui-checkin")); err != nil {
		t.Errorf("image has no agent: %v", err)
	}
	var noop bool
	m2, err := b.Build(context.Background(), recipe, BuildOptions{Progress: func(p Progress) {
		noop = noop || p.Step == StepUnchanged
	}})
	if err != nil || m2.ID != m.ID || !noop {
		t.Fatalf("rebuild: %v, generation %v (want %s), no-op %v", err, m2, m.ID, noop)
	}
	// A changed file in the tree is a new generation.
	if err := os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("changed\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	m3, err := b.Build(context.Background(), recipe, BuildOptions{})
	if err != nil || m3.ID == m.ID {
		t.Fatalf("build after a change: %v, generation %v", err, m3)
	}
	if log, _ := os.ReadFile(filepath.Join(filepath.Dir(sq), FileLog)); !strings.Contains(string(log), "dir root") {
		t.Errorf("build log does not name the dir root:\n%s", log)
	}
}

// TestHashCacheSkipsUnchangedFiles: the second hash of an unchanged tree
// reads no file (every sum from the cache), and a file rewritten with the
// same size but a new mtime is read again and makes a new generation.
func TestHashCacheSkipsUnchangedFiles(t *testing.T) {
	requireTool(t, "mksquashfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	old := time.Now().Add(-time.Hour)
	for i := range 20 {
		f := filepath.Join(src, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%d", i))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(fmt.Sprintf("file %02d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		// Older than the cache's horizon: a fresh file is never cached.
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, []byte("kernel"), 0o644)
	os.Chtimes(kernel, old, old)
	recipe := filepath.Join(dir, "recipe")
	os.Mkdir(recipe, 0o755)
	y := fmt.Sprintf("name: cached\nrootfs: {dir: %q}\nkernel: {file: %q}\ninitramfs: {builtin: {}}\n", src, kernel)
	if err := os.WriteFile(filepath.Join(recipe, RecipeFile), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(recipe, RecipeFile), old, old)
	b := newBuilder(t, filepath.Join(dir, "store"))
	hashed := func(opts BuildOptions) (*Manifest, string) {
		t.Helper()
		var line string
		opts.Progress = func(p Progress) {
			if strings.HasPrefix(p.Line, "hashed ") {
				line = p.Line
			}
		}
		m, err := b.Build(context.Background(), recipe, opts)
		if err != nil {
			t.Fatal(err)
		}
		return m, line
	}
	m1, l1 := hashed(BuildOptions{})
	if !strings.Contains(l1, "(0 from the cache") {
		t.Errorf("first build: %q", l1)
	}
	m2, l2 := hashed(BuildOptions{})
	// The recipe, 20 tree files, the kernel, the busybox binary.
	if m2.ID != m1.ID || !strings.Contains(l2, "hashed 23 files (23 from the cache") {
		t.Errorf("second build: generation %s (want %s), %q", m2.ID, m1.ID, l2)
	}
	f := filepath.Join(src, "d1", "f1")
	if err := os.WriteFile(f, []byte("FILE 01\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := old.Add(time.Minute)
	os.Chtimes(f, later, later)
	m3, l3 := hashed(BuildOptions{})
	if m3.ID == m1.ID || !strings.Contains(l3, "hashed 23 files (22 from the cache") {
		t.Errorf("after a same-size rewrite: generation %s (old %s), %q", m3.ID, m1.ID, l3)
	}
}
