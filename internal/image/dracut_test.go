package image

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
	shells := map[string]string{"module-setup.sh": "bash", "netbootui-variants.sh": "sh"}
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
