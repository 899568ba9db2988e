package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/lab"
)

// debianExecPackage is what TestImageExecAptInstallDebian installs: a
// small package the debian-builtin recipe does not have, depending on
// nothing the root lacks.
const debianExecPackage = "hello"

// TestImageExecAptInstallDebian builds the documented debian-builtin
// recipe for real (debootstrap of bookworm and apt from the Debian mirror,
// or the debootstrap cache the Debian QEMU tests fill at
// .cache/debootstrap), and checks the provenance its manifest records
// against the built root: the recipe hash against the recipe file, the
// suite and mirror against the root's apt sources, the package list
// against what dpkg-query (not netbootui's own parser) reads from the
// root's dpkg database, and every file's checksum against the store's
// bytes. Then, through a real `netbootui serve`, `netbootui image exec`
// runs apt-get install of a package in a working copy and publishes it:
// the new generation's provenance (checked the same way), `image show` and
// `image diff` name the package, and the package's program is in the new
// root and not in the parent's.
func TestImageExecAptInstallDebian(t *testing.T) {
	lab.RequireTools(t, "debootstrap", "chroot", "mksquashfs", "unsquashfs", "busybox", "dpkg-query", "mount")
	if os.Geteuid() != 0 {
		lab.RequireTools(t, "root privileges (debootstrap and chroot need them)")
	}
	modroot, err := lab.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	recipe := filepath.Join(dir, "recipes", "deb")
	y, err := os.ReadFile(filepath.Join(modroot, "assets", "recipes", "examples", "debian-builtin", "image.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// A lighter squashfs (the test is not about its size); the root's
	// settings stay the example's, so the debootstrap cache serves it.
	yaml := strings.Replace(string(y), "compression_level: 9", "compression_level: 3", 1)
	yaml = strings.Replace(yaml, "name: debian-builtin", "name: deb", 1)
	if !strings.Contains(yaml, "compression_level: 3") || !strings.Contains(yaml, "name: deb\n") {
		t.Fatalf("the debian-builtin recipe changed: no compression_level: 9 to lower or name to change:\n%s", y)
	}
	if err := os.MkdirAll(recipe, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(recipe, "image.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nodes.yaml"), []byte("images:\n  deb: {recipe: recipes/deb}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The build, into the store serve opens next (serve builds without a
	// debootstrap cache: CI's builds come from the mirror either way).
	store, err := image.OpenStore(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := image.NewBuilder(store)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	var tail []string
	t0 := time.Now()
	first, err := b.Build(ctx, recipe, image.BuildOptions{Publish: true, RootCache: filepath.Join(modroot, ".cache", "debootstrap"),
		Progress: func(p image.Progress) {
			if p.Line != "" {
				if tail = append(tail, p.Step+": "+p.Line); len(tail) > 30 {
					tail = tail[1:]
				}
			}
		}})
	if err != nil {
		t.Fatalf("build: %v\nlog ends:\n%s", err, strings.Join(tail, "\n"))
	}
	t.Logf("built deb generation %s in %v", first.ID, time.Since(t0).Round(time.Second))
	recipeSum := sha256.Sum256([]byte(yaml))
	if got := first.Provenance.RecipeHash; got != hex.EncodeToString(recipeSum[:]) {
		t.Errorf("provenance recipe hash %s, the recipe file's sha256 is %x", got, recipeSum)
	}
	checkDebianProvenance(t, store, "deb", first)

	p := startServe(t, filepath.Join(dir, "nodes.yaml"), dir)
	defer p.stop(t)
	sock := "--api-socket=" + p.socket
	run := func(args ...string) (string, string) {
		t.Helper()
		// apt-get from the mirror, then a squashfs of a whole Debian root.
		out, errOut, code := runCLIWithin(t, 8*time.Minute, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out, errOut
	}
	t0 = time.Now()
	out, errOut := run("image", "exec", "deb", "--publish", sock, "--",
		"apt-get update -q && apt-get install -y --no-install-recommends "+debianExecPackage+
			" && apt-get clean && find /var/lib/apt/lists -maxdepth 1 -type f ! -name lock -delete")
	t.Logf("image exec apt-get install %s, published: %v", debianExecPackage, time.Since(t0).Round(time.Second))
	if !strings.Contains(out, "Setting up "+debianExecPackage+" ") || !strings.Contains(errOut, "+ /usr/bin/"+debianExecPackage+"\n") ||
		!regexp.MustCompile(`\+ package `+debianExecPackage+` \S+\n`).MatchString(errOut) {
		t.Fatalf("image exec:\n%s%s", out, errOut)
	}
	m := regexp.MustCompile(`generation ([0-9a-f]{16}) \(parent ` + first.ID + `\), published`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("image exec did not publish a child of %s:\n%s", first.ID, out)
	}
	second, err := store.Generation("deb", m[1])
	if err != nil {
		t.Fatal(err)
	}
	pv := second.Provenance
	version := pv.Packages[debianExecPackage]
	if version == "" || first.Provenance.Packages[debianExecPackage] != "" || pv.Parent != first.ID ||
		pv.Debootstrap == nil || *pv.Debootstrap != *first.Provenance.Debootstrap || pv.RecipeHash != first.Provenance.RecipeHash ||
		pv.Change == nil || !strings.Contains(pv.Change.Command, "apt-get install") {
		t.Fatalf("provenance of the exec's generation: %+v (parent's %+v)", pv, first.Provenance)
	}
	checkDebianProvenance(t, store, "deb", second)

	out, _ = run("image", "show", "deb", second.ID, sock)
	for _, want := range []string{"(current)", "parent    " + first.ID, "change    /bin/sh -c apt-get update",
		"suite     bookworm from " + pv.Debootstrap.Mirror, "\n  " + debianExecPackage + " " + version + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("image show of the exec's generation lacks %q:\n%s", want, out)
		}
	}
	out, _ = run("image", "diff", "deb", first.ID, second.ID, sock)
	for _, want := range []string{"+ /usr/bin/" + debianExecPackage + "\n", "+ package " + debianExecPackage + " " + version + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("image diff lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, " package "); n != 1 {
		t.Errorf("image diff lists %d package changes, want the one installed:\n%s", n, out)
	}
	if out, _ := run("image", "verify", "deb", second.ID, sock); strings.Count(out, "ok ") != 3 {
		t.Errorf("image verify:\n%s", out)
	}
}

// checkDebianProvenance checks what m's provenance says against the
// generation in the store: every file's sha256 and size (read here), the
// suite and mirror against the root's /etc/apt/sources.list, and the
// package list against dpkg-query run on the root's dpkg database.
func checkDebianProvenance(t *testing.T, store *image.Store, name string, m *image.Manifest) {
	t.Helper()
	p := m.Provenance
	if p == nil || p.Debootstrap == nil || p.Builder == "" || p.RecipeHash == "" || len(p.Packages) == 0 {
		t.Fatalf("generation %s: provenance %+v", m.ID, p)
	}
	for _, fi := range m.Files {
		f, err := store.Open(name, m.ID, fi.Name)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil || n != fi.Size || hex.EncodeToString(h.Sum(nil)) != fi.SHA256 {
			t.Errorf("generation %s: %s has %d bytes sha256 %x (%v), the manifest says %d bytes %s", m.ID, fi.Name, n, h.Sum(nil), err, fi.Size, fi.SHA256)
		}
	}
	sq, err := store.Path(name, m.ID, image.FileRootfs)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	// Only what the checks read: apt's sources and dpkg's database.
	cmd := exec.Command("unsquashfs", "-no-progress", "-f", "-d", root, sq, "etc/apt", "var/lib/dpkg")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs %s: %v\n%s", sq, err, b)
	}
	sources, err := os.ReadFile(filepath.Join(root, "etc", "apt", "sources.list"))
	if err != nil {
		t.Fatal(err)
	}
	mirror := strings.TrimSuffix(p.Debootstrap.Mirror, "/")
	if !regexp.MustCompile(`(?m)^deb ` + regexp.QuoteMeta(mirror) + `/? ` + regexp.QuoteMeta(p.Debootstrap.Suite) + ` `).Match(sources) {
		t.Errorf("generation %s: provenance says %s from %s; the root's sources.list:\n%s", m.ID, p.Debootstrap.Suite, p.Debootstrap.Mirror, sources)
	}
	b, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var", "lib", "dpkg"), "-W",
		"-f=${db:Status-Status} ${Package} ${Version}\n").Output()
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	var got, want []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "installed" {
			got = append(got, f[1]+" "+f[2])
		}
	}
	for n, v := range p.Packages {
		want = append(want, n+" "+v)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("generation %s: provenance lists %d packages, dpkg-query %d installed in the root:\nprovenance: %v\ndpkg-query: %v", m.ID, len(want), len(got), want, got)
	}
	t.Logf("generation %s: %d packages, %s from %s, checked against the root", m.ID, len(got), p.Debootstrap.Suite, p.Debootstrap.Mirror)
}
