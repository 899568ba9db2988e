package api

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `serve --api-socket FILE` deleted an existing regular file at FILE.
func TestListenNeverRemovesWhatIsNotASocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(file, []byte("precious\n"), 0o644)
	folder := filepath.Join(dir, "folder")
	os.Mkdir(folder, 0o755)
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	for _, tc := range []struct{ path, kind string }{{file, "regular file"}, {folder, "folder"}, {link, "symbolic link"}} {
		ln, err := Listen(tc.path)
		if err == nil {
			ln.Close()
			t.Fatalf("Listen(%s) took over a %s", tc.path, tc.kind)
		}
		if !strings.Contains(err.Error(), "a "+tc.kind+" is there, not a socket") {
			t.Errorf("Listen(%s) = %v", tc.path, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious\n" {
		t.Fatalf("the file was changed: %q %v", b, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was changed: %v", err)
	}

	// A stale socket (nothing answers) is replaced; a live one is not.
	sock := filepath.Join(dir, "api.sock")
	old, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another daemon is answering") {
		t.Fatalf("Listen on a live socket = %v", err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	ln, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen on a stale socket = %v", err)
	}
	ln.Close()
}
