package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	goldenfile "github.com/netbootui/netbootui/internal/golden"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/netbootui/netbootui/internal/lab"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// renderDiff is a diff as the golden files hold it.
func renderDiff(d *Diff) string {
	var b strings.Builder
	fmt.Fprintf(&b, "summary: %s\n", d.Summary())
	for _, f := range d.Files {
		fmt.Fprintf(&b, "%s %s", f.Kind, f.Path)
		if len(f.What) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(f.What, ", "))
		}
		b.WriteString("\n")
	}
	for _, x := range d.Boot {
		fmt.Fprintf(&b, "boot %s %d -> %d\n", x.Name, x.Old.Size, x.New.Size)
	}
	for _, p := range d.Packages {
		fmt.Fprintf(&b, "package %s %q -> %q\n", p.Name, p.Old, p.New)
	}
	return b.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got, *update, "go test ./internal/image -update")
}

func sumOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func entryOf(tr *GenTree, path string) *TreeEntry {
	for i := range tr.Entries {
		if tr.Entries[i].Path == path {
			return &tr.Entries[i]
		}
	}
	return nil
}

// noStaleWork fails when anything is mounted below the store or a work
// directory is left in the image's generations.
func noStaleWork(t *testing.T, s *Store, image string) {
	t.Helper()
	if m := mountsBelow(t, s.Dir()); len(m) > 0 {
		t.Errorf("mounts left below the store: %v", m)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), image, "generations"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("work directory left: %s", e.Name())
		}
	}
}

// TestProvenanceDiffAndSession builds the default recipe twice with the
// real pipeline (the second time with a changed overlay), checks the
// provenance of both, diffs them against a golden file, then changes the
// current generation through a session (exec of a shell command in the
// chroot), commits it and checks the new generation's tree, provenance
// and diff; a second session is discarded and leaves nothing.
func TestProvenanceDiffAndSession(t *testing.T) {
	requireTool(t, "mksquashfs", "unsquashfs", "busybox", "chroot", "mount")
	if os.Geteuid() != 0 {
		requireTool(t, "root privileges (chroot and mount need them)")
	}
	vmlinuz, _ := lab.Kernel(t)
	recipe := defaultRecipe(t)
	dir := t.TempDir()
	t.Cleanup(func() { unmountBelow(dir) })
	b := newBuilder(t, dir)
	s := b.Store()
	ctx := context.Background()
	opts := BuildOptions{KernelDir: filepath.Dir(vmlinuz), Publish: true}
	m1, err := b.Build(ctx, recipe, opts)
	if err != nil {
		t.Fatal(err)
	}
	yaml, _ := os.ReadFile(filepath.Join(recipe, RecipeFile))
	p := m1.Provenance
	if p == nil || p.RecipeHash != sumOf(string(yaml)) || !strings.Contains(p.Builder, buildVersion) ||
		p.Parent != "" || p.Change != nil || p.Packages != nil || p.Debootstrap != nil || p.OCIDigest != "" {
		t.Fatalf("provenance of a busybox build: %+v", p)
	}
	// The manifest on disk says the same (not only the one in memory).
	s2, _ := OpenStore(dir)
	if m, err := s2.Generation("default", m1.ID); err != nil || m.Provenance == nil || m.Provenance.RecipeHash != p.RecipeHash {
		t.Fatalf("stored manifest: %+v, %v", m, err)
	}

	overlay := filepath.Join(recipe, "overlay")
	if err := os.WriteFile(filepath.Join(overlay, "etc", "added-by-overlay"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(overlay, "etc", "motd"), []byte("a changed motd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m2, err := b.Build(ctx, recipe, opts)
	if err != nil {
		t.Fatal(err)
	}
	if m2.ID == m1.ID || m2.Provenance.RecipeHash != p.RecipeHash {
		t.Fatalf("second build %s (first %s), provenance %+v", m2.ID, m1.ID, m2.Provenance)
	}
	d, err := s.Diff(ctx, GenRef{"default", m1.ID}, GenRef{"default", m2.ID})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "diff-default-overlay.golden", renderDiff(d))
	// Diffing a generation with itself finds nothing.
	if d, err := s.Diff(ctx, GenRef{"default", m2.ID}, GenRef{"default", m2.ID}); err != nil || !d.Empty() || d.Summary() != "no change" {
		t.Fatalf("diff with itself: %+v, %v", d, err)
	}
	noStaleWork(t, s, "default")

	// exec: a file added, one removed, one's mode changed, a package
	// recorded in a dpkg database (a busybox root has no dpkg: the
	// command writes the stanza an install would).
	x, err := s.OpenSession(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if x.Parent() != m2.ID {
		t.Fatalf("session parent %s, want current %s", x.Parent(), m2.ID)
	}
	var out bytes.Buffer
	cmd := ExecCommand([]string{"echo hello > /etc/exec-added; rm /etc/added-by-overlay; chmod 600 /etc/motd; " +
		"mkdir -p /var/lib/dpkg; printf 'Package: hello\\nStatus: install ok installed\\nVersion: 2.10-3\\n\\n' > /var/lib/dpkg/status; " +
		"[ -e /proc/self/status ] && [ -c /dev/null ] && echo proc and dev are there"})
	if err := x.Run(ctx, cmd, "", Stdio{Out: &out, Err: &out}); err != nil {
		t.Fatalf("run: %v: %s", err, out.String())
	}
	if !strings.Contains(out.String(), "proc and dev are there") {
		t.Errorf("command output %q", out.String())
	}
	if m := mountsBelow(t, dir); len(m) > 0 {
		t.Fatalf("the command's mounts outlived it: %v", m)
	}
	sd, err := x.Diff(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m3, cd, err := x.Commit(ctx, "tester")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "diff-default-exec.golden", renderDiff(cd))
	if renderDiff(sd) != renderDiff(cd) {
		t.Errorf("the diff before commit differs from the committed one:\n%s\n%s", renderDiff(sd), renderDiff(cd))
	}
	p3 := m3.Provenance
	if p3 == nil || p3.Parent != m2.ID || p3.Change == nil || p3.Change.Who != "tester" ||
		!strings.Contains(p3.Change.Command, "echo hello > /etc/exec-added") || p3.Change.Summary != cd.Summary() ||
		p3.RecipeHash != p.RecipeHash || p3.Packages["hello"] != "2.10-3" {
		t.Fatalf("provenance of the session's generation: %+v (change %+v)", p3, p3.Change)
	}
	if cur, _ := s.Current("default"); cur != m2.ID {
		t.Fatalf("a commit published: current %s", cur)
	}
	for _, f := range []string{FileKernel, FileInitrd} {
		a, _ := m2.File(f)
		c, _ := m3.File(f)
		if a != c {
			t.Errorf("%s changed: %+v -> %+v", f, a, c)
		}
	}
	if err := s.Verify("default", m3.ID); err != nil {
		t.Fatal(err)
	}
	d3, err := s.Diff(ctx, GenRef{"default", m2.ID}, GenRef{"default", m3.ID})
	if err != nil {
		t.Fatal(err)
	}
	if renderDiff(d3) != renderDiff(cd) {
		t.Errorf("diff of the stored generations:\n%s\nwant the session's:\n%s", renderDiff(d3), renderDiff(cd))
	}
	tr, err := s.Tree(ctx, "default", m3.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e := entryOf(tr, "etc/exec-added"); e == nil || e.SHA256 != sumOf("hello\n") {
		t.Errorf("etc/exec-added in the new generation: %+v", e)
	}
	if tr.Packages["hello"] != "2.10-3" {
		t.Errorf("packages of the new generation: %v", tr.Packages)
	}
	if _, _, err := x.Commit(ctx, "tester"); err == nil {
		t.Error("a session committed twice")
	}
	noStaleWork(t, s, "default")

	// Discard leaves nothing: no generation, no work directory, no mount.
	before, _ := s.Generations("default")
	x, err = s.OpenSession(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Run(ctx, []string{"/bin/sh", "-c", "echo gone > /etc/discarded"}, "", Stdio{}); err != nil {
		t.Fatal(err)
	}
	if d, err := x.Diff(ctx); err != nil || d.Added != 1 {
		t.Fatalf("diff before discard: %+v, %v", d, err)
	}
	x.Discard()
	after, _ := s.Generations("default")
	if len(after) != len(before) {
		t.Errorf("discard made a generation: %d -> %d", len(before), len(after))
	}
	if err := x.Run(ctx, []string{"true"}, "", Stdio{}); err != ErrSessionClosed {
		t.Errorf("run after discard: %v", err)
	}
	noStaleWork(t, s, "default")
}

const sessionHelperEnv = "NETBOOTUI_SESSION_TEST_HELPER"

// TestHelperSession is the child of TestSIGKILLMidSession: it opens a
// session on the image in the store named by its environment and runs a
// command that sleeps in the chroot.
func TestHelperSession(t *testing.T) {
	store := os.Getenv(sessionHelperEnv)
	if store == "" {
		t.Skip("helper process only")
	}
	s, err := OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	x, err := s.OpenSession(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	err = x.Run(context.Background(), []string{"/bin/sh", "-c", "echo x > /etc/half; echo SLEEPING; exec sleep 120"}, "", Stdio{Out: os.Stdout})
	t.Fatalf("the session should have been killed; it returned %v", err)
}

// TestSIGKILLMidSession kills a process while its session's command runs
// chrooted (with /proc, /sys and /dev mounted): no mount is left, no
// generation appears, and CleanStale removes the working copy.
func TestSIGKILLMidSession(t *testing.T) {
	requireTool(t, "mksquashfs", "unsquashfs", "busybox", "chroot", "mount")
	if os.Geteuid() != 0 {
		requireTool(t, "root privileges (chroot and mount need them)")
	}
	vmlinuz, _ := lab.Kernel(t)
	dir := t.TempDir()
	t.Cleanup(func() { unmountBelow(dir) })
	b := newBuilder(t, dir)
	m, err := b.Build(context.Background(), defaultRecipe(t), BuildOptions{KernelDir: filepath.Dir(vmlinuz), Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSession$", "-test.v")
	cmd.Env = append(os.Environ(), sessionHelperEnv+"="+dir)
	var out lab.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(120 * time.Second)
	for !strings.Contains(out.String(), "SLEEPING") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the helper's command never ran: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	time.Sleep(300 * time.Millisecond) // the chrooted command dies with it (Pdeathsig)
	if mm := mountsBelow(t, dir); len(mm) > 0 {
		t.Fatalf("mounts left after SIGKILL: %v", mm)
	}
	s2, _ := OpenStore(dir)
	gens, _ := s2.Generations("default")
	if len(gens) != 1 || gens[0].ID != m.ID {
		t.Fatalf("generations after SIGKILL: %d", len(gens))
	}
	var removed []string
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		removed, err = s2.CleanStale()
		if (err == nil && len(removed) == 1) || time.Now().After(end) {
			break
		}
	}
	if err != nil || len(removed) != 1 || !strings.Contains(removed[0], ".build-session-") {
		t.Fatalf("CleanStale removed %v, %v; want the killed session's working copy", removed, err)
	}
	noStaleWork(t, s2, "default")
}

func TestReadDpkgStatus(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]string
		err      bool
	}{
		{"empty", "", map[string]string{}, false},
		{"installed and not", "Package: a\nStatus: install ok installed\nVersion: 1.0\nDescription: x\n more\n\n" +
			"Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\nPackage: c\nVersion: 3:1.2-1\nStatus: install ok installed\n",
			map[string]string{"a": "1.0", "c": "3:1.2-1"}, false},
		{"multiarch", "Package: libc6\nArchitecture: amd64\nStatus: install ok installed\nVersion: 2.36\n\n" +
			"Package: libc6\nArchitecture: i386\nStatus: install ok installed\nVersion: 2.36\n",
			map[string]string{"libc6:amd64": "2.36", "libc6:i386": "2.36"}, false},
		{"malformed", "Package a\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadDpkgStatus(strings.NewReader(tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("err %v", err)
			}
			if !tc.err && fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzReadDpkgStatus(f *testing.F) {
	f.Add("Package: a\nStatus: install ok installed\nVersion: 1\n\n")
	f.Add("Package: libc6\nArchitecture: i386\nStatus: install ok installed\n\nPackage: libc6\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ReadDpkgStatus(strings.NewReader(s))
		if err == nil && m == nil {
			t.Fatal("nil map without an error")
		}
	})
}

func TestSquashfsCompression(t *testing.T) {
	requireTool(t, "mksquashfs")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	for _, tc := range []struct {
		comp  string
		level int // 0: mksquashfs's default, which the file does not record
	}{
		{"gzip", 0}, {"gzip", 4}, {"zstd", 0}, {"zstd", 3}, {"zstd", 19}, {"xz", 0},
	} {
		out := filepath.Join(t.TempDir(), "fs")
		args := []string{dir, out, "-comp", tc.comp, "-noappend", "-quiet"}
		if tc.level != 0 {
			args = append(args, "-Xcompression-level", strconv.Itoa(tc.level))
		}
		if b, err := exec.Command("mksquashfs", args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %d: %v %s", tc.comp, tc.level, err, b)
		}
		if got, level, err := squashfsCompression(out); err != nil || got != tc.comp || level != tc.level {
			t.Errorf("squashfsCompression = %q %d, %v; want %q %d", got, level, err, tc.comp, tc.level)
		}
	}
	if _, _, err := squashfsCompression(filepath.Join(dir, "f")); err == nil {
		t.Error("a one-byte file read as a squashfs")
	}
}

// TestProvenanceOfSources builds an OCI-layout root whose tree carries a
// dpkg database: the manifest records the OCI image's digest and the
// packages installed in the built root.
func TestProvenanceOfSources(t *testing.T) {
	requireTool(t, "mksquashfs")
	status := "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\n\n" +
		"Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n" +
		"Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\n"
	l, err := tarball.LayerFromReader(bytes.NewReader(mkTar(t, []tarEnt{
		{name: "var/", typ: tar.TypeDir}, {name: "var/lib/", typ: tar.TypeDir}, {name: "var/lib/dpkg/", typ: tar.TypeDir},
		{name: "var/lib/dpkg/status", body: status, typ: tar.TypeReg},
		{name: "etc/", typ: tar.TypeDir}, {name: "etc/motd", body: "oci\n", typ: tar.TypeReg},
	})))
	if err != nil {
		t.Fatal(err)
	}
	layoutDir, img := ociLayout(t, l)
	digest, _ := img.Digest()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, []byte("not really a kernel"), 0o644)
	recipe := filepath.Join(dir, "recipe")
	os.Mkdir(recipe, 0o755)
	y := fmt.Sprintf("name: oci\nrootfs: {oci: %q}\nkernel: {file: %q}\ninitramfs: {builtin: {}}\n", layoutDir, kernel)
	if err := os.WriteFile(filepath.Join(recipe, RecipeFile), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := newBuilder(t, filepath.Join(dir, "store")).Build(context.Background(), recipe, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := m.Provenance
	if p == nil || p.OCIDigest != digest.String() || p.RecipeHash != sumOf(y) || p.Debootstrap != nil ||
		fmt.Sprint(p.Packages) != "map[base-files:12.4+deb12u5 hello:2.10-3]" {
		t.Fatalf("provenance %+v, want digest %s and the two installed packages", p, digest)
	}
}
