package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

// cpioArchive is a newc archive of the records, with its trailer.
func cpioArchive(t testing.TB, recs ...cpio.Record) []byte {
	t.Helper()
	var b bytes.Buffer
	w := cpio.Newc.Writer(&b)
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gzipped(t testing.TB, p []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

func zstded(t testing.TB, p []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(p, nil)
}

// listing renders entries as the tests compare them.
func listing(ents []TreeEntry) string {
	var b strings.Builder
	for _, e := range ents {
		fmt.Fprintf(&b, "%s %v %d:%d", e.Path, e.Mode, e.UID, e.GID)
		if e.Mode.IsRegular() {
			fmt.Fprintf(&b, " %d %.8s", e.Size, e.SHA256)
		}
		if e.Link != "" {
			fmt.Fprintf(&b, " -> %s", e.Link)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestReadInitramfs(t *testing.T) {
	early := cpioArchive(t, cpio.Directory("kernel", 0o755), cpio.StaticFile("kernel/ucode.bin", "microcode", 0o644))
	main := cpioArchive(t, cpio.StaticFile("init", "#!/bin/sh\n", 0o755), cpio.Symlink("bin/sh", "busybox"),
		cpio.StaticFile("kernel/ucode.bin", "newer", 0o600))
	// WriteRecordsAndDirs adds "." and the parent folders (mode 0777); a
	// path given again in a later archive wins, listed where it first came.
	ucode, init := "kernel/ucode.bin -rw------- 0:0 5 "+sumOf("newer")[:8]+"\n", "init -rwxr-xr-x 0:0 10 "+sumOf("#!/bin/sh\n")[:8]+"\n"
	both := ". drwxrwxrwx 0:0\nkernel drwxrwxrwx 0:0\n" + ucode + init + "bin drwxrwxrwx 0:0\nbin/sh Lrwxrwxrwx 0:0 -> busybox\n"
	mainOnly := ". drwxrwxrwx 0:0\n" + init + "bin drwxrwxrwx 0:0\nbin/sh Lrwxrwxrwx 0:0 -> busybox\nkernel drwxrwxrwx 0:0\n" + ucode
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		err  string
	}{
		{"plain, padded, then gzip", append(append(early, make([]byte, 512)...), gzipped(t, main)...), both, ""},
		{"plain, then zstd", append(early, zstded(t, main)...), both, ""},
		{"gzip only", gzipped(t, main), mainOnly, ""},
		{"empty", nil, "", ""},
		{"xz is not read", []byte("\xfd7zXZ\x00rest"), "", "unknown archive format"},
		{"truncated", early[:len(early)-20], "", "unexpected EOF"},
		{"bad header", append([]byte("070701zzzzzzzz"), make([]byte, 200)...), "", "field 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ents, err := ReadInitramfs(bytes.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := listing(ents); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func FuzzReadInitramfs(f *testing.F) {
	a := cpioArchive(f, cpio.StaticFile("init", "x", 0o755), cpio.Symlink("sh", "busybox"))
	f.Add(a)
	f.Add(gzipped(f, a))
	f.Add(append(append([]byte{}, a...), zstded(f, a)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		ents, err := ReadInitramfs(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Path, "/") || strings.Contains("/"+e.Path+"/", "/../") {
				t.Fatalf("entry path %q leaves the archive", e.Path)
			}
		}
	})
}

// TestDiffListsInitramfsChanges imports two generations whose initramfs
// differ (and whose roots do not): the diff says the initramfs changed
// and which of its files.
func TestDiffListsInitramfsChanges(t *testing.T) {
	requireTool(t, "mksquashfs", "unsquashfs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc", "motd"), []byte("same\n"), 0o644)
	sq := filepath.Join(dir, "root.sqfs")
	if b, err := exec.Command("mksquashfs", tree, sq, "-noappend", "-quiet", "-comp", "gzip").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v %s", err, b)
	}
	k := filepath.Join(dir, "vmlinuz")
	os.WriteFile(k, []byte("kernel"), 0o644)
	s, _ := OpenStore(filepath.Join(dir, "store"))
	var gens []string
	for i, recs := range [][]cpio.Record{
		{cpio.StaticFile("init", "v1", 0o755), cpio.StaticFile("etc/gone", "x", 0o644)},
		{cpio.StaticFile("init", "v2", 0o755), cpio.StaticFile("etc/new", "y", 0o644)},
	} {
		ird := filepath.Join(dir, fmt.Sprintf("initrd%d", i))
		os.WriteFile(ird, gzipped(t, cpioArchive(t, recs...)), 0o644)
		m, err := s.Import("img", map[string]string{FileKernel: k, FileInitrd: ird, FileRootfs: sq}, "")
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, m.ID)
	}
	d, err := s.Diff(context.Background(), GenRef{"img", gens[0]}, GenRef{"img", gens[1]})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range d.InitrdFiles {
		got = append(got, f.Kind+" "+f.Path+" "+strings.Join(f.What, ","))
	}
	want := "removed /etc/gone ;added /etc/new ;changed /init content"
	if strings.Join(got, ";") != want || len(d.Files) != 0 || d.Summary() != "initramfs changed" || d.InitrdError != "" {
		t.Fatalf("initramfs changes %q (error %q), files %v, summary %q; want %q", got, d.InitrdError, d.Files, d.Summary(), want)
	}
}
