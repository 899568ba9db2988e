package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// A write to a symbolic link replaces the link's target and keeps the link.
func TestWriteThroughSymlinkKeepsTheLink(t *testing.T) {
	checkout := t.TempDir() // say, a git checkout
	etc := t.TempDir()
	target := filepath.Join(checkout, "cluster.yaml")
	if err := os.WriteFile(target, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	mid := filepath.Join(etc, "current.yaml")
	link := filepath.Join(etc, "nodes.yaml")
	if err := os.Symlink(target, mid); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("current.yaml", link); err != nil { // a relative link to a link
		t.Fatal(err)
	}
	if err := Write(link, []byte("new\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{link, mid} {
		fi, err := os.Lstat(l)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s is no longer a symbolic link: %v %v", l, fi.Mode(), err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "new\n" {
		t.Errorf("target holds %q, want the new content", b)
	}
	for _, dir := range []string{checkout, etc} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if IsTemp(e.Name()) {
				t.Errorf("temp file left: %s", filepath.Join(dir, e.Name()))
			}
		}
	}
	// A link to nothing is an error, and stays as it was.
	dangling := filepath.Join(etc, "gone.yaml")
	os.Symlink(filepath.Join(checkout, "missing.yaml"), dangling)
	if err := Write(dangling, []byte("x"), 0o600); err == nil {
		t.Error("a write through a dangling link succeeded")
	}
	if fi, err := os.Lstat(dangling); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("dangling link replaced: %v", err)
	}
}
