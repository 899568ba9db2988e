package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `serve --api-socket FILE` deleted an existing regular file at FILE; it now
// refuses to start and leaves the file alone.
func TestServeKeepsAFileAtTheSocketPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "serve", "--inventory", "../../examples/nodes.yaml", "--data", filepath.Join(dir, "data"),
		"--http-listen", "127.0.0.1:0", "--tftp-listen", "127.0.0.1:0", "--power-poll", "0", "--api-socket", file)
	if code == 0 || !strings.Contains(errOut, "a regular file is there, not a socket") {
		t.Errorf("serve: code %d, stderr %q", code, errOut)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious\n" {
		t.Fatalf("the file at --api-socket was changed: %q %v", b, err)
	}
}
