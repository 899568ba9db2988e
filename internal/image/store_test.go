package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, content map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, c := range content {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return out
}

func TestImportPublishCurrent(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	files := writeFiles(t, src, map[string]string{FileKernel: "kernel-1", FileInitrd: "initrd-1", FileRootfs: "rootfs-1"})

	if _, err := s.Current("compute"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Current before publish: err = %v, want ErrNotFound", err)
	}
	m1, err := s.Import("compute", files, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !ValidGenerationID(m1.ID) || len(m1.Files) != 3 {
		t.Fatalf("manifest = %+v", m1)
	}
	if f, _ := m1.File(FileKernel); f.Size != int64(len("kernel-1")) {
		t.Fatalf("kernel size = %d", f.Size)
	}
	// Same content, same generation, nothing new on disk.
	again, err := s.Import("compute", files, "test")
	if err != nil || again.ID != m1.ID {
		t.Fatalf("re-import = %v, %v; want same id %s", again, err, m1.ID)
	}
	if err := s.Publish("compute", m1.ID); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current("compute"); err != nil || cur != m1.ID {
		t.Fatalf("Current = %q, %v", cur, err)
	}
	if err := s.Verify("compute", m1.ID); err != nil {
		t.Fatal(err)
	}

	// A second generation; publish moves the pointer, the old one stays intact.
	files2 := writeFiles(t, t.TempDir(), map[string]string{FileKernel: "kernel-2", FileInitrd: "initrd-1", FileRootfs: "rootfs-2"})
	m2, err := s.Import("compute", files2, "test")
	if err != nil || m2.ID == m1.ID {
		t.Fatalf("second import: %v, id %v", err, m2)
	}
	if err := s.Publish("compute", m2.ID); err != nil {
		t.Fatal(err)
	}
	if cur, _ := s.Current("compute"); cur != m2.ID {
		t.Fatalf("Current = %q, want %q", cur, m2.ID)
	}
	gens, err := s.Generations("compute")
	if err != nil || len(gens) != 2 {
		t.Fatalf("Generations = %v, %v", gens, err)
	}
	f, err := s.Open("compute", m1.ID, FileKernel)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, _ := f.Read(b)
	f.Close()
	if string(b[:n]) != "kernel-1" {
		t.Fatalf("old generation kernel = %q", b[:n])
	}
	// Files are read-only on disk.
	p, _ := s.Path("compute", m1.ID, FileKernel)
	if st, _ := os.Stat(p); st.Mode().Perm()&0o222 != 0 {
		t.Fatalf("%s mode %v is writable", p, st.Mode())
	}
	if imgs, _ := s.Images(); len(imgs) != 1 || imgs[0] != "compute" {
		t.Fatalf("Images = %v", imgs)
	}
}

func TestStoreRejects(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := writeFiles(t, t.TempDir(), map[string]string{FileKernel: "k", FileInitrd: "i", FileRootfs: "r"})
	cases := []struct {
		name string
		fn   func() error
	}{
		{"bad image name", func() error { _, err := s.Import("../x", files, ""); return err }},
		{"missing rootfs", func() error {
			_, err := s.Import("a", map[string]string{FileKernel: files[FileKernel], FileInitrd: files[FileInitrd]}, "")
			return err
		}},
		{"unknown role", func() error {
			f := map[string]string{"evil": "/etc/passwd"}
			for k, v := range files {
				f[k] = v
			}
			_, err := s.Import("a", f, "")
			return err
		}},
		{"source is a directory", func() error {
			_, err := s.Import("a", map[string]string{FileKernel: t.TempDir(), FileInitrd: files[FileInitrd], FileRootfs: files[FileRootfs]}, "")
			return err
		}},
		{"publish unknown generation", func() error { return s.Publish("a", "0123456789abcdef") }},
		{"open traversal", func() error { _, err := s.Open("a", "..", FileKernel); return err }},
		{"open unknown file", func() error { _, err := s.Open("a", "abc", "passwd"); return err }},
	}
	for _, c := range cases {
		if err := c.fn(); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if gens, _ := s.Generations("a"); len(gens) != 0 {
		t.Fatalf("failed imports left generations: %v", gens)
	}
	// Failed imports leave no temp directories behind.
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), "a", "generations"))
	if len(ents) != 0 {
		t.Fatalf("leftovers: %v", ents)
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	s, _ := OpenStore(t.TempDir())
	files := writeFiles(t, t.TempDir(), map[string]string{FileKernel: "k", FileInitrd: "i", FileRootfs: "r"})
	m, err := s.Import("a", files, "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path("a", m.ID, FileRootfs)
	os.Chmod(filepath.Dir(p), 0o755)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("tampered"), 0o644)
	if err := s.Verify("a", m.ID); err == nil {
		t.Fatal("Verify accepted a changed file")
	}
	// CheckFiles says which file differs, and only that one.
	checks, err := s.CheckFiles("a", m.ID)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, c := range checks {
		if !c.OK() {
			bad = append(bad, c.Name)
			if c.Size != int64(len("tampered")) || c.SHA256 == c.Want.SHA256 {
				t.Errorf("check of %s: %+v", c.Name, c)
			}
		}
	}
	if len(checks) != 3 || len(bad) != 1 || bad[0] != FileRootfs {
		t.Fatalf("CheckFiles: %d files, differing %v; want 3 and only %s", len(checks), bad, FileRootfs)
	}
	// A file gone is reported, not an error of the whole check.
	os.Remove(p)
	checks, err = s.CheckFiles("a", m.ID)
	if err != nil || checks[2].OK() || checks[2].Err == "" || checks[2].Size != -1 {
		t.Fatalf("CheckFiles of a missing file: %+v, %v", checks, err)
	}
}

// streamOf returns a next function for ImportStream over parts (name,
// content), then err (io.EOF: the end).
func streamOf(end error, parts ...string) func() (string, io.Reader, error) {
	i := 0
	return func() (string, io.Reader, error) {
		if i+1 >= len(parts) {
			return "", nil, end
		}
		name, content := parts[i], parts[i+1]
		i += 2
		return name, strings.NewReader(content), nil
	}
}

// TestImportStream: content streamed in any order makes the generation the
// same files would make from paths; a missing, repeated or unknown part, or
// a failing stream, leaves nothing behind.
func TestImportStream(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := writeFiles(t, t.TempDir(), map[string]string{FileKernel: "k1", FileInitrd: "i1", FileRootfs: "r1"})
	fromPaths, err := s.Import("a", files, "paths")
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := s.ImportStream("b", "stream", streamOf(io.EOF, FileRootfs, "r1", FileKernel, "k1", FileInitrd, "i1"))
	if err != nil {
		t.Fatal(err)
	}
	if streamed.ID != fromPaths.ID || streamed.Source != "stream" || len(streamed.Files) != 3 || streamed.Files[0].Name != FileKernel ||
		streamed.Size() != fromPaths.Size() {
		t.Fatalf("streamed %+v, from paths %+v", streamed, fromPaths)
	}
	if got, err := s.Generation("b", streamed.ID); err != nil || got.ID != streamed.ID {
		t.Fatalf("stored generation: %+v %v", got, err)
	}
	for _, tc := range []struct {
		name string
		next func() (string, io.Reader, error)
		want string
	}{
		{"missing", streamOf(io.EOF, FileKernel, "k", FileInitrd, "i"), "missing " + FileRootfs},
		{"twice", streamOf(io.EOF, FileKernel, "k", FileKernel, "k"), FileKernel + " given twice"},
		{"unknown", streamOf(io.EOF, "passwd", "x"), `unknown file role "passwd"`},
		{"stream fails", streamOf(errors.New("connection reset"), FileKernel, "k"), "connection reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.ImportStream("c", "", tc.next); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if gens, _ := s.Generations("c"); len(gens) != 0 {
				t.Fatalf("generations left: %+v", gens)
			}
			left, _ := filepath.Glob(filepath.Join(s.dir, "c", "generations", ".import-*"))
			if len(left) != 0 {
				t.Fatalf("temporary folders left: %v", left)
			}
		})
	}
}

// TestOldManifestLoads: a manifest written before provenance existed
// loads, with no provenance, and its files still verify.
func TestOldManifestLoads(t *testing.T) {
	s, _ := OpenStore(t.TempDir())
	files := writeFiles(t, t.TempDir(), map[string]string{FileKernel: "k", FileInitrd: "i", FileRootfs: "r"})
	m, err := s.Import("old", files, "import")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path("old", m.ID, FileManifest)
	os.Chmod(filepath.Dir(p), 0o755)
	os.Chmod(p, 0o644)
	legacy := `{"image":"old","id":"` + m.ID + `","created":"2026-01-02T03:04:05Z","source":"recipe /r/image.yaml",
 "files":[` + fmt.Sprintf(`{"name":"vmlinuz","size":1,"sha256":%q},{"name":"initrd","size":1,"sha256":%q},{"name":"rootfs.squashfs","size":1,"sha256":%q}`,
		m.Files[0].SHA256, m.Files[1].SHA256, m.Files[2].SHA256) + `],
 "source_hash":"abc","log":"build.log","build_seconds":2.5}`
	if err := os.WriteFile(p, []byte(legacy), 0o444); err != nil {
		t.Fatal(err)
	}
	s2, _ := OpenStore(s.Dir())
	got, err := s2.Generation("old", m.ID)
	if err != nil || got.Provenance != nil || got.SourceHash != "abc" || got.BuildSeconds != 2.5 {
		t.Fatalf("legacy manifest: %+v, %v", got, err)
	}
	if err := s2.Verify("old", m.ID); err != nil {
		t.Fatal(err)
	}
}
