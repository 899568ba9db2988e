package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPersistVerbs: persist show lists a node's persisted paths with what
// each holds; persist wipe needs --yes (exit 2, nothing removed), then
// empties them and says how much it removed; for a node with a persist
// disk, show names the partition and wipe records a wipe for its next
// boot.
func TestPersistVerbs(t *testing.T) {
	dir := t.TempDir()
	nfsDir := filepath.Join(dir, "nfs")
	inv := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(inv, []byte(`settings:
  nfs: {server: 10.0.2.2, export: /netbootui, dir: `+nfsDir+`}
images:
  live-nfs: {root: nfs}
  live: {}
groups:
  lab: {image: live-nfs, persist: [/var/log]}
  disk: {image: live, persist: [/var/log], persist_disk: {missing: boot}}
nodes:
  - {name: p1, group: lab, ip: 127.0.0.10, nics: [{mac: "52:54:00:cc:00:01"}]}
  - {name: p2, group: disk, nics: [{mac: "52:54:00:cc:00:02"}]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, inv, filepath.Join(dir, "data"))
	defer p.stop(t)
	sock := "--api-socket=" + p.socket
	syslog := filepath.Join(nfsDir, "nodes", "p1", "var", "log", "syslog")
	if err := os.WriteFile(syslog, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "persist", "show", "p1", sock)
	if code != 0 || !strings.Contains(out, "p1 mounts 10.0.2.2:/netbootui/nodes/p1") || !regexpLine(out, `/var/log\s+1\s+4096`) {
		t.Fatalf("persist show: code %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = runCLI(t, "persist", "wipe", "p1", sock)
	if code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("persist wipe without --yes: code %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(syslog); err != nil {
		t.Fatalf("an unconfirmed wipe removed a file: %v", err)
	}
	out, errOut, code = runCLI(t, "persist", "wipe", "p1", "--yes", sock)
	if code != 0 || !strings.Contains(out, "p1: 1 entries removed") || !regexpLine(out, `/var/log\s+0\s+0`) {
		t.Fatalf("persist wipe --yes: code %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(syslog); !os.IsNotExist(err) {
		t.Fatalf("the wipe left %s: %v", syslog, err)
	}

	// A node that keeps its paths on its own disk: shown, and a wipe is
	// recorded for its next boot.
	out, errOut, code = runCLI(t, "persist", "show", "p2", sock)
	if code != 0 || !strings.Contains(out, "p2 keeps them on its disk: the partition labelled NBUI-PERSIST (missing: boot, format: false)") ||
		!strings.Contains(out, "node says: nothing since the daemon started") || !regexpLine(out, `/var/log\s+-\s+- \(on the node's disk\)`) {
		t.Fatalf("persist show p2: code %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "persist", "wipe", "p2", "--yes", sock)
	if code != 0 || !regexp.MustCompile(`p2: wipe [0-9a-f]{16} recorded; the node empties the paths on its disk at its next boot`).MatchString(out) ||
		!strings.Contains(out, "pending, applied at the node's next boot") {
		t.Fatalf("persist wipe p2 --yes: code %d\n%s%s", code, out, errOut)
	}
	out, _, code = runCLI(t, "audit", sock)
	if code != 0 || !strings.Contains(out, "persist wipe") || !strings.Contains(out, "requested wipe") {
		t.Fatalf("the wipes are not in the audit log:\n%s", out)
	}
}

// regexpLine says whether a line of out matches re.
func regexpLine(out, re string) bool {
	return regexp.MustCompile(`(?m)^` + re + `$`).MatchString(out)
}
