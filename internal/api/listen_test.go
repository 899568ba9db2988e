package api

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/netlimit"
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

// The socket closes keep-alive connections left idle and requests whose
// headers never end.
func TestSocketTimeouts(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Limits: netlimit.Limits{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}}
	go s.Serve(ln)
	defer s.Close()
	for _, tc := range []struct {
		name string
		send string
	}{
		{"idle keep-alive", "GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"headers never end", "GET /v1/nope HTTP/1.1\r\nHost: x\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.send)
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatalf("connection still open after 3 s: %v", err)
			}
		})
	}
}
