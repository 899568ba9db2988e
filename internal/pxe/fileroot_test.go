package pxe

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
)

// tftpRequireTool skips the test when an external tool (a command name, or an
// absolute path to a file a package installs) is missing (fails under
// NETBOOTUI_REQUIRE_TOOLS=1).
func tftpRequireTool(t testing.TB, tool string) {
	t.Helper()
	lab.RequireTools(t, tool)
}

// tftpSecretMarker is planted in files outside every served root; it must never
// come back from a server.
const tftpSecretMarker = "NETBOOTUI-SECRET-7f3a9c1e-do-not-serve"

// frTestRoot builds a served directory next to a secret one:
//
//	base/secret/passwd          (contains tftpSecretMarker)
//	base/root/a.txt             "hello a"
//	base/root/sub/b.bin         "bee"
//	base/root/link-in           -> a.txt            (stays inside: allowed)
//	base/root/sub/link-up       -> ../a.txt         (stays inside: allowed)
//	base/root/passwd-abs        -> base/secret/passwd
//	base/root/passwd-rel        -> ../secret/passwd
//	base/root/sub/deep-rel      -> ../../secret/passwd
//	base/root/secretdir         -> base/secret      (directory outside)
//	base/root/etc-link          -> /etc
//	base/root/loop              -> loop
//	base/root/dangling          -> nowhere
//	base/root/dir/              (a directory)
//	base/root/fifo              (a FIFO)
//	base/root/sock              (a unix socket)
func frTestRoot(t *testing.T) (root, secretDir string) {
	t.Helper()
	base := t.TempDir()
	secretDir = filepath.Join(base, "secret")
	root = filepath.Join(base, "root")
	for _, d := range []string{secretDir, root, filepath.Join(root, "sub"), filepath.Join(root, "dir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(secretDir, "passwd"), tftpSecretMarker+"\n")
	write(filepath.Join(secretDir, "a.txt"), tftpSecretMarker+"\n")
	write(filepath.Join(root, "a.txt"), "hello a")
	write(filepath.Join(root, "sub", "b.bin"), "bee")
	links := map[string]string{
		"link-in":      "a.txt",
		"sub/link-up":  "../a.txt",
		"passwd-abs":   filepath.Join(secretDir, "passwd"),
		"passwd-rel":   "../secret/passwd",
		"sub/deep-rel": "../../secret/passwd",
		"secretdir":    secretDir,
		"etc-link":     "/etc",
		"loop":         "loop",
		"dangling":     "nowhere",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return root, secretDir
}

func TestFileRootOpen(t *testing.T) {
	root, secretDir := frTestRoot(t)
	aliasTarget := filepath.Join(t.TempDir(), "loader.bin")
	if err := os.WriteFile(aliasTarget, []byte("loader bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	fr := &FileRoot{Dir: root, Aliases: map[string]string{
		"loader.0":      aliasTarget,
		"a.txt":         aliasTarget, // shadowed by root/a.txt
		"relative.0":    "loader.bin",
		"aliased-dir":   secretDir,
		"missing.0":     filepath.Join(secretDir, "no-such-file"),
		"efi64/boot.ef": aliasTarget,
	}}
	tests := []struct {
		name string
		want string // content, when the open succeeds
		err  error  // nil, ErrNotFound or ErrAccessDenied
	}{
		{"a.txt", "hello a", nil},
		{"sub/b.bin", "bee", nil},
		{"link-in", "hello a", nil},
		{"sub/link-up", "hello a", nil},
		{"loader.0", "loader bytes", nil},
		{"efi64/boot.ef", "loader bytes", nil},
		{"nope", "", ErrNotFound},
		{"sub/nope", "", ErrNotFound},
		{"a.txt/x", "", ErrNotFound}, // ENOTDIR
		{"missing.0", "", ErrNotFound},
		{"passwd", "", ErrNotFound},
		{"etc/passwd", "", ErrNotFound}, // "/etc/passwd" after CleanName: not the host's
		{"passwd-abs", "", ErrAccessDenied},
		{"passwd-rel", "", ErrAccessDenied},
		{"sub/deep-rel", "", ErrAccessDenied},
		{"secretdir/passwd", "", ErrAccessDenied},
		{"secretdir", "", ErrAccessDenied},
		{"etc-link/passwd", "", ErrAccessDenied},
		{"etc-link/hostname", "", ErrAccessDenied},
		{"loop", "", ErrAccessDenied},
		{"dir", "", ErrAccessDenied},
		{"sub", "", ErrAccessDenied},
		{"fifo", "", ErrAccessDenied},
		{"sock", "", ErrAccessDenied},
		{"aliased-dir", "", ErrAccessDenied},
		{"relative.0", "", ErrAccessDenied},
		{"dangling", "", ErrNotFound},
		{"/a.txt", "", ErrAccessDenied}, // not clean: callers pass CleanName's result
		{"sub//b.bin", "", ErrAccessDenied},
		{"../secret/passwd", "", ErrAccessDenied},
		{"sub/../a.txt", "", ErrAccessDenied},
		{"", "", ErrAccessDenied},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, "/", "|"), func(t *testing.T) {
			done := make(chan struct{})
			var (
				f    *os.File
				size int64
				err  error
			)
			go func() { defer close(done); f, size, err = fr.Open(tt.name) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("Open(%q) blocked", tt.name)
			}
			if tt.err != nil {
				if err == nil {
					b, _ := io.ReadAll(f)
					f.Close()
					t.Fatalf("Open(%q) = %q, want %v", tt.name, b, tt.err)
				}
				if !errors.Is(err, tt.err) {
					t.Fatalf("Open(%q) error %v, want %v", tt.name, err, tt.err)
				}
				if strings.Contains(err.Error(), secretDir) {
					t.Errorf("Open(%q) error %q leaks a host path", tt.name, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.name, err)
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want || size != int64(len(tt.want)) {
				t.Fatalf("Open(%q) = %q (size %d), want %q", tt.name, b, size, tt.want)
			}
		})
	}
}

// TestFileRootDeviceNode checks that a device node inside the root is refused.
func TestFileRootDeviceNode(t *testing.T) {
	dir := t.TempDir()
	// /dev/null's numbers: 1:3.
	if err := syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Skipf("cannot create a device node here: %v", err)
	}
	fr := &FileRoot{Dir: dir}
	if f, _, err := fr.Open("null"); !errors.Is(err, ErrAccessDenied) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("Open(device) error %v, want ErrAccessDenied", err)
	}
}

// TestFileRootSwappedSymlink replaces a file by a symlink to the secret after
// a first open; the next open must refuse it.
func TestFileRootSwappedSymlink(t *testing.T) {
	root, secretDir := frTestRoot(t)
	fr := &FileRoot{Dir: root}
	f, _, err := fr.Open("a.txt")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	tmp := filepath.Join(root, "swap.tmp")
	if err := os.Symlink(filepath.Join(secretDir, "a.txt"), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "a.txt")); err != nil {
		t.Fatal(err)
	}
	if f, _, err := fr.Open("a.txt"); !errors.Is(err, ErrAccessDenied) {
		if f != nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Fatalf("swapped symlink served %q", b)
		}
		t.Fatalf("error %v, want ErrAccessDenied", err)
	}
}

func TestFileRootZero(t *testing.T) {
	var fr FileRoot
	if _, _, err := fr.Open("a.txt"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("zero FileRoot: error %v, want ErrNotFound", err)
	}
	fr.Dir = filepath.Join(t.TempDir(), "gone")
	if _, _, err := fr.Open("a.txt"); err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrAccessDenied) {
		t.Fatalf("missing Dir: error %v, want a plain error", err)
	}
}

func TestFileRootCheck(t *testing.T) {
	root, secretDir := frTestRoot(t)
	file := filepath.Join(root, "a.txt")
	tests := []struct {
		name    string
		fr      FileRoot
		wantErr string // "" for no error
	}{
		{"ok", FileRoot{Dir: root, Aliases: map[string]string{"x.0": file, "efi64/x.efi": file}}, ""},
		{"no dir", FileRoot{Aliases: map[string]string{"x.0": file}}, ""},
		{"missing dir", FileRoot{Dir: filepath.Join(root, "nope")}, "boot root"},
		{"dir is a file", FileRoot{Dir: file}, "not a directory"},
		{"unclean alias", FileRoot{Dir: root, Aliases: map[string]string{"/x.0": file}}, `alias "/x.0": served name is not clean`},
		{"dotdot alias", FileRoot{Dir: root, Aliases: map[string]string{"../x": file}}, `alias "../x"`},
		{"relative target", FileRoot{Dir: root, Aliases: map[string]string{"x.0": "a.txt"}}, "not an absolute path"},
		{"missing target", FileRoot{Dir: root, Aliases: map[string]string{"x.0": filepath.Join(secretDir, "nope")}}, `alias "x.0"`},
		{"dir target", FileRoot{Dir: root, Aliases: map[string]string{"x.0": secretDir}}, "not a regular file (directory)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fr.Check()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Check: no error, want %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Check: %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultLoaders(t *testing.T) {
	for _, p := range []string{
		"/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/ipxe.efi", "/usr/lib/ipxe/snponly.efi",
		"/usr/lib/PXELINUX/pxelinux.0", "/usr/lib/syslinux/modules/bios/ldlinux.c32",
		"/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi",
	} {
		tftpRequireTool(t, p)
	}
	got := DefaultLoaders()
	want := map[string]string{
		"undionly.kpxe":     "/usr/lib/ipxe/undionly.kpxe",
		"ipxe.efi":          "/usr/lib/ipxe/ipxe.efi",
		"snponly.efi":       "/usr/lib/ipxe/snponly.efi",
		"pxelinux.0":        "/usr/lib/PXELINUX/pxelinux.0",
		"ldlinux.c32":       "/usr/lib/syslinux/modules/bios/ldlinux.c32",
		"menu.c32":          "/usr/lib/syslinux/modules/bios/menu.c32",
		"vesamenu.c32":      "/usr/lib/syslinux/modules/bios/vesamenu.c32",
		"libutil.c32":       "/usr/lib/syslinux/modules/bios/libutil.c32",
		"libcom32.c32":      "/usr/lib/syslinux/modules/bios/libcom32.c32",
		"chain.c32":         "/usr/lib/syslinux/modules/bios/chain.c32",
		"syslinux.efi":      "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi",
		"efi64/ldlinux.e64": "/usr/lib/syslinux/modules/efi64/ldlinux.e64",
		"efi64/menu.c32":    "/usr/lib/syslinux/modules/efi64/menu.c32",
	}
	for name, p := range want {
		if got[name] != p {
			t.Errorf("DefaultLoaders()[%q] = %q, want %q", name, got[name], p)
		}
	}
	// Every entry is usable as an alias: clean name, regular file.
	if err := (&FileRoot{Aliases: got}).Check(); err != nil {
		t.Fatal(err)
	}
	// An entry whose file is missing is left out.
	for name, p := range defaultLoaderPaths() {
		if _, err := os.Stat(p); err != nil {
			if _, ok := got[name]; ok {
				t.Errorf("DefaultLoaders() lists %q although %s is missing", name, p)
			}
		}
	}
	// Served through a FileRoot with an empty Dir, the bytes are the package's.
	fr := &FileRoot{Aliases: got}
	f, size, err := fr.Open("undionly.kpxe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	orig, _ := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
	if int64(len(b)) != size || string(b) != string(orig) {
		t.Fatalf("undionly.kpxe through FileRoot differs from the package file")
	}
}
