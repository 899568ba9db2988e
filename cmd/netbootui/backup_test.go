package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// backup and restore through the binary: the file is 0600 and its
// summary names what it holds but never the token key; restore refuses a
// used folder (exit 1, nothing changed) and fills an empty one that a
// daemon then serves.
func TestBackupRestoreVerbs(t *testing.T) {
	inv := copyExample(t)
	data := filepath.Join(t.TempDir(), "data")
	p := startServe(t, inv, data)
	sock := "--api-socket=" + p.socket
	if _, errOut, code := runCLI(t, "node", "set", "login1", "kernel_args=from-backup", sock); code != 0 {
		t.Fatalf("node set: %d %s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "site.backup")
	out, errOut, code := runCLI(t, "backup", file, sock)
	p.stop(t)
	if code != 0 || !strings.Contains(out, "inventory nodes.yaml") || !strings.Contains(out, "audit entries") {
		t.Fatalf("backup: %d\n%s%s", code, out, errOut)
	}
	key, err := os.ReadFile(filepath.Join(data, "token.key"))
	if err != nil || len(strings.TrimSpace(string(key))) < 32 {
		t.Fatalf("token key: %v", err)
	}
	if strings.Contains(out+errOut, strings.TrimSpace(string(key))) {
		t.Fatal("backup printed the token key")
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", st, err)
	}

	// A used data folder is refused and left alone.
	dir := t.TempDir()
	_, errOut, code = runCLI(t, "restore", file, "--data", data, "--inventory", filepath.Join(dir, "nodes.yaml"))
	if code != 1 || !strings.Contains(errOut, "not empty") {
		t.Fatalf("restore into a used folder: %d %s", code, errOut)
	}
	if _, _, code := runCLI(t, "restore", file); code != 2 {
		t.Fatalf("restore without --data: exit %d, want 2", code)
	}
	// A truncated file is refused.
	b, _ := os.ReadFile(file)
	cut := filepath.Join(dir, "cut.backup")
	os.WriteFile(cut, b[:len(b)*2/3], 0o600)
	_, errOut, code = runCLI(t, "restore", cut, "--data", filepath.Join(dir, "data"), "--inventory", filepath.Join(dir, "nodes.yaml"))
	if code != 1 || !strings.Contains(errOut, "truncated") || !strings.Contains(errOut, "nothing was restored") {
		t.Fatalf("restore of a truncated file: %d %s", code, errOut)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 { // the cut backup
		t.Fatalf("a refused restore left files: %v", ents)
	}

	out, errOut, code = runCLI(t, "restore", file, "--data", filepath.Join(dir, "data"), "--inventory", filepath.Join(dir, "nodes.yaml"))
	if code != 0 || !strings.Contains(out, "secrets file") {
		t.Fatalf("restore: %d\n%s%s", code, out, errOut)
	}
	s, _ := os.ReadFile("../../examples/secrets.yaml")
	os.WriteFile(filepath.Join(dir, "secrets.yaml"), s, 0o600)
	p = startServe(t, filepath.Join(dir, "nodes.yaml"), filepath.Join(dir, "data"))
	defer p.stop(t)
	out, errOut, code = runCLI(t, "node", "show", "login1", "--api-socket="+p.socket)
	if code != 0 || !strings.Contains(out, "from-backup") {
		t.Fatalf("node show on the restored daemon: %d\n%s%s", code, out, errOut)
	}
	out, _, _ = runCLI(t, "audit", "--api-socket="+p.socket)
	if !strings.Contains(out, "edit node login1") {
		t.Fatalf("restored audit log:\n%s", out)
	}
}
