package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/lab"
)

// imagesInventory names the default recipe (copied next to it) for image
// default.
const imagesInventory = `images:
  default: {recipe: recipes/default, description: the default recipe}
groups:
  compute: {image: default}
nodes:
  - name: n[01-04]
    group: compute
    ip: 10.1.0.11
    nics:
      - {mac: "52:54:00:00:05:01", boot: true}
`

// defaultRecipeLab makes a folder holding the default recipe (with one
// initramfs module) at recipes/default and nodes.yaml (imagesInventory)
// naming it for image default, and sets serve's --kernel-dir default.
func defaultRecipeLab(t *testing.T) string {
	t.Helper()
	kernel, err := lab.KernelDir()
	if err != nil {
		lab.Kernel(t) // skips, or fails under NETBOOTUI_REQUIRE_TOOLS
		t.Fatal(err)
	}
	t.Setenv(lab.KernelDirEnv, kernel) // serve's --kernel-dir default
	dir := t.TempDir()
	recipe := filepath.Join(dir, "recipes", "default")
	if err := os.CopyFS(recipe, os.DirFS("../../assets/recipes/default")); err != nil {
		t.Fatal(err)
	}
	// The default recipe with one initramfs module: the race-built daemon
	// packs the built-in init's modules slowly (9 s for the six), and the
	// tests using it are not about booting the result.
	y, err := os.ReadFile(filepath.Join(recipe, "image.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fewer := regexp.MustCompile(`(?m)^(\s+modules: )\[.*\]$`).ReplaceAll(y, []byte("${1}[loop]"))
	if string(fewer) == string(y) {
		t.Fatalf("the default recipe has no initramfs modules line:\n%s", y)
	}
	if err := os.WriteFile(filepath.Join(recipe, "image.yaml"), fewer, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nodes.yaml"), []byte(imagesInventory), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestConsoleImagesInTmux drives :images of the real console against a real
// daemon that builds the default recipe: b builds the first generation
// (progress bar and build log while it runs) and publishes it only after a
// confirmation, b again says nothing changed, a changed recipe gives a
// second generation left unpublished by the default No (published by the
// next b's yes), and r with its confirmation
// rolls the image back; the screen's generations, sizes and sha256 are the
// daemon's, and `netbootui image list` agrees.
func TestConsoleImagesInTmux(t *testing.T) {
	lab.RequireTools(t, "tmux", "mksquashfs")
	dir := defaultRecipeLab(t)
	p := startServe(t, filepath.Join(dir, "nodes.yaml"), dir)
	defer p.stop(t)
	cl := apiclient.New(p.socket)

	start := time.Now()
	c := startConsole(t, p.socket, "TERM=xterm-256color")
	c.waitFor("start", regexp.MustCompile(`4 nodes · 0 marked`))
	c.keys(":", "i", "m", "a", "g", "e", "s", "Enter")
	c.waitFor("images view", regexp.MustCompile(`(?s)default .*no generations`))

	// b: the first build, with its progress bar (at a step the daemon
	// reported) and log while it runs
	c.keys("b")
	s := c.waitFor("progress bar", regexp.MustCompile(`build default: (hash|rootfs|overlay|agent|kernel|initramfs|squashfs|checksums) +[█░]{20} +\d+%`))
	if !strings.Contains(s, "BUILD LOG") {
		t.Errorf("no build log panel while building:\n%s", s)
	}
	// the build publishes nothing by itself: a confirmation (default No)
	// says who would follow the new generation
	s = c.waitForWithin("first generation", 3*time.Minute, regexp.MustCompile(`Publish default@(\S+)\?`))
	first := regexp.MustCompile(`Publish default@(\S+)\?`).FindStringSubmatch(s)[1]
	if !strings.Contains(s, "4 nodes that follow the image") || !strings.Contains(s, "[ No ]") {
		t.Errorf("the publish confirmation does not say who follows the image:\n%s", s)
	}
	if ims := images(t, cl); ims[0].Current != "" {
		t.Fatalf("the build published %s before the confirmation", ims[0].Current)
	}
	time.Sleep(300 * time.Millisecond) // the dialog ignores keys typed as it appears
	c.keys("y")
	c.waitFor("first generation published", regexp.MustCompile(`build default: generation `+regexp.QuoteMeta(first)+` published: 4 nodes follow it`))
	t.Logf("first generation %s after %s", first, time.Since(start))
	g1 := currentGeneration(t, cl, "default", first)
	s = c.waitFor("first generation's row", generationRow(t, g1, true))
	if !regexp.MustCompile(`(?s)BUILD LOG\n.*\n  (generation|published) ` + regexp.QuoteMeta(first) + `\n`).MatchString(s) {
		t.Errorf("build log lacks the build's lines:\n%s", s)
	}

	// b again, nothing changed: no new generation, and the panel says so
	c.keys("b")
	s = c.waitForWithin("no-op rebuild", time.Minute, regexp.MustCompile(`unchanged, nothing built: generation `+regexp.QuoteMeta(first)))
	t.Logf("no-op rebuild done after %s", time.Since(start))
	if ims := images(t, cl); len(ims[0].Generations) != 1 {
		t.Fatalf("an unchanged rebuild made a generation: %+v", ims[0].Generations)
	}

	// a changed recipe: a second generation becomes current
	if err := os.WriteFile(filepath.Join(dir, "recipes", "default", "overlay", "etc", "motd"), []byte("changed by the console test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.keys("b")
	s = c.waitForWithin("second generation", 3*time.Minute, regexp.MustCompile(`Publish default@(\S+)\?`))
	second := regexp.MustCompile(`Publish default@(\S+)\?`).FindStringSubmatch(s)[1]
	if second == first {
		t.Fatalf("the changed recipe built the same generation %s", first)
	}
	// no (the default): built, not published; the nodes keep the first
	time.Sleep(300 * time.Millisecond)
	c.keys("Enter")
	c.waitFor("left unpublished", regexp.MustCompile(`generation `+regexp.QuoteMeta(second)+` built, not published`))
	currentGeneration(t, cl, "default", first)
	// b again: nothing to build, and the generation with these inputs is
	// not current, so it asks again; yes publishes it
	c.keys("b")
	c.waitForWithin("publish asked again", time.Minute, regexp.MustCompile(`Publish default@`+regexp.QuoteMeta(second)+`\?`))
	time.Sleep(300 * time.Millisecond)
	c.keys("y")
	c.waitFor("second published", regexp.MustCompile(`generation `+regexp.QuoteMeta(second)+` published: 4 nodes follow it`))
	t.Logf("second generation %s after %s", second, time.Since(start))
	g2 := currentGeneration(t, cl, "default", second)
	s = c.waitFor("both generations", regexp.MustCompile(`(?m)^\s+\* `+regexp.QuoteMeta(truncID(second))+`.*\n\s+`+regexp.QuoteMeta(truncID(first))))
	if re := generationRow(t, g2, true); !re.MatchString(s) {
		t.Errorf("no row %s:\n%s", re, s)
	}
	if re := generationRow(t, g1, false); !re.MatchString(s) {
		t.Errorf("no row %s:\n%s", re, s)
	}

	// r: the confirmation (default No, shows the move), then the pointer moves back
	c.keys("r")
	s = c.waitFor("rollback dialog", regexp.MustCompile(`Roll back image default\?`))
	if !strings.Contains(s, "current "+second+" → "+first) || !strings.Contains(s, "[ No ]") {
		t.Errorf("dialog does not show the move:\n%s", s)
	}
	time.Sleep(300 * time.Millisecond) // the dialog ignores keys typed as it appears
	c.keys("y")
	c.waitFor("rolled back", regexp.MustCompile(`rolled back: current generation is `+regexp.QuoteMeta(first)))
	c.waitFor("pointer moved", regexp.MustCompile(`(?m)^\s+`+regexp.QuoteMeta(truncID(second))+`.*\n\s+\* `+regexp.QuoteMeta(truncID(first))))
	currentGeneration(t, cl, "default", first)
	t.Logf("rolled back after %s", time.Since(start))
	out, errOut, code := runCLI(t, "image", "list", "--api-socket", p.socket)
	if code != 0 {
		t.Fatalf("image list: %d %s", code, errOut)
	}
	for gen, cur := range map[string]string{first: "yes", second: "no"} {
		if !regexp.MustCompile(`(?m)^default\s+` + regexp.QuoteMeta(gen) + `\s+` + cur + `\s`).MatchString(out) {
			t.Errorf("image list: %s should have current=%s:\n%s", gen, cur, out)
		}
	}

	// s on n01 (assigned the current generation, the first): staging the
	// second shows what it changes, the daemon's diff, in the preview and
	// in the confirmation, before anything is staged.
	c.keys("Escape")
	c.waitFor("nodes view", regexp.MustCompile(`netbootui nodes .*4 nodes · 0 marked`))
	c.keys("s")
	c.waitFor("stage: pick a generation", regexp.MustCompile(regexp.QuoteMeta(truncID(second))))
	c.keys("Enter")
	diffLine := regexp.MustCompile(`from ` + regexp.QuoteMeta(first) + ` \(1 node\): \+0 -0 ~1 files \(kernel, initramfs same\)`)
	c.waitFor("stage preview with the diff", diffLine)
	c.keys("Enter")
	s = c.waitFor("stage confirmation", regexp.MustCompile(`Stage default@`+regexp.QuoteMeta(second)+` on 1 node\?`))
	// (the dialog wraps its body at its width: the summary's start)
	if !regexp.MustCompile(`from ` + regexp.QuoteMeta(first) + ` \(1 node\): \+0 -0 ~1 files`).MatchString(s) {
		t.Errorf("the confirmation lacks the diff:\n%s", s)
	}
	time.Sleep(300 * time.Millisecond) // the dialog ignores keys typed as it appears
	c.keys("Enter")                    // No, the default
	c.waitFor("staging cancelled", regexp.MustCompile(`staging cancelled; nothing changed`))

	// S in :images: the terminal goes to `netbootui image shell default`
	// (a shell the daemon runs in a working copy); on exit the change is
	// shown and, answered c, committed as a child of the current
	// generation; the console comes back.
	c.keys("Escape") // the preview, back to the generations
	c.waitFor("stage generations", regexp.MustCompile(`choose a generation`))
	c.keys("Escape")
	c.waitFor("nodes view again", regexp.MustCompile(`netbootui nodes `))
	c.keys(":", "i", "m", "a", "g", "e", "s", "Enter")
	c.waitFor("images view again", regexp.MustCompile(`netbootui images `))
	c.keys("S")
	c.waitForWithin("the image shell", time.Minute, regexp.MustCompile(`shell in a working copy of image default`))
	c.keys("echo from-tmux > /etc/tmux-file", "Enter")
	c.keys("exit", "Enter")
	s = c.waitForWithin("the shell's change", time.Minute, regexp.MustCompile(`p: publish as a new generation, c: commit it unpublished`))
	if !strings.Contains(s, "+ /etc/tmux-file") {
		t.Errorf("the shell's diff lacks the new file:\n%s", s)
	}
	c.keys("c", "Enter")
	c.waitForWithin("back in the console", time.Minute, regexp.MustCompile(`image shell of default ended`))
	var child *apitype.Manifest
	for _, g := range images(t, cl)[0].Generations {
		if p := g.Provenance; p != nil && p.Parent == first && p.Change != nil && p.Change.Command == "interactive shell" {
			child = g
		}
	}
	if child == nil || !strings.Contains(child.Provenance.Change.Summary, "+1 -0 ~") {
		t.Fatalf("no committed child of %s made by the shell: %+v", first, images(t, cl)[0].Generations)
	}
	currentGeneration(t, cl, "default", first) // committed, not published
	c.keys("C-c")
}

func images(t *testing.T, cl *apiclient.Client) []apitype.ImageInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ims, err := cl.Images(ctx)
	if err != nil || len(ims) != 1 {
		t.Fatalf("images: %+v %v", ims, err)
	}
	return ims
}

// currentGeneration checks through the API that gen is image's current
// generation and returns its manifest.
func currentGeneration(t *testing.T, cl *apiclient.Client, name, gen string) *apitype.Manifest {
	t.Helper()
	im := images(t, cl)[0]
	if im.Name != name || im.Current != gen {
		t.Fatalf("image %s: current %q, want %q", im.Name, im.Current, gen)
	}
	for i := range im.Generations {
		if im.Generations[i].ID == gen {
			return im.Generations[i]
		}
	}
	t.Fatalf("generation %s not listed", gen)
	return nil
}

// truncID is a generation id as the images view's 22-cell column shows it.
func truncID(id string) string {
	if r := []rune(id); len(r) > 22 {
		return string(r[:22])
	}
	return id
}

// generationRow matches the images view's row of generation m: its id, the
// current marker, a size in the unit the daemon's byte count calls for, and
// the first 12 hex digits of its rootfs sha256.
func generationRow(t *testing.T, m *apitype.Manifest, current bool) *regexp.Regexp {
	t.Helper()
	f, ok := m.File(apitype.FileRootfs)
	if !ok {
		t.Fatalf("generation %s has no rootfs", m.ID)
	}
	mark := " "
	if current {
		mark = `\*`
	}
	unit := map[bool]string{true: "MiB", false: "KiB"}[m.Size() >= 1<<20]
	return regexp.MustCompile(`(?m)^\s*` + mark + ` ` + regexp.QuoteMeta(truncID(m.ID)) + ` +\d+\.\d` + unit + ` .* ` + f.SHA256[:12] + ` `)
}
