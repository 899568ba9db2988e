package nfs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

// TestNodeDirUsageAndWipe: the usage counts what a node keeps under each
// persisted path; a wipe empties them, keeps the directories, leaves other
// nodes' directories alone and never follows a link a node left.
func TestNodeDirUsageAndWipe(t *testing.T) {
	site := roottransport.NFSSite{Server: "10.0.2.2", Export: "/netbootui", Dir: t.TempDir()}
	persist := []string{"/var/log", "/var/lib/ssh"}
	for _, n := range []string{"n1", "n2"} {
		if err := nfs.MakeNodeDir(site, n, persist); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	n1 := nfs.NodeDirPath(site, "n1")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(n1, "var/log/journal"), 0o755))
	must(os.WriteFile(filepath.Join(n1, "var/log/journal/a"), make([]byte, 1000), 0o644))
	must(os.WriteFile(filepath.Join(n1, "var/log/syslog"), make([]byte, 24), 0o644))
	must(os.Symlink(filepath.Dir(outside), filepath.Join(n1, "var/log/escape")))
	n2log := filepath.Join(nfs.NodeDirPath(site, "n2"), "var/log/other")
	must(os.WriteFile(n2log, []byte("n2's"), 0o644))

	got, err := nfs.NodeDirUsage(site, "n1", append(persist, "/srv/new"))
	must(err)
	want := []nfs.PathUsage{{Path: "/var/log", Bytes: 1024, Files: 3}, {Path: "/var/lib/ssh"}, {Path: "/srv/new", Missing: true}}
	if len(got) != len(want) {
		t.Fatalf("usage %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("usage[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}

	removed, err := nfs.WipeNodeDir(site, "n1", persist)
	must(err)
	if removed != 3 {
		t.Errorf("wipe removed %d entries, want 3 (journal, syslog, escape)", removed)
	}
	for _, p := range persist {
		ents, err := os.ReadDir(filepath.Join(n1, filepath.FromSlash(p)))
		if err != nil || len(ents) != 0 {
			t.Errorf("%s after the wipe: %d entries, %v; want an empty directory", p, len(ents), err)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "keep" {
		t.Errorf("the wipe followed a node's link out of its directory: %q, %v", b, err)
	}
	if _, err := os.Stat(n2log); err != nil {
		t.Errorf("wiping n1 touched n2: %v", err)
	}

	for _, tc := range []struct{ node, path string }{{"..", "/var/log"}, {"a/b", "/var/log"}, {"n1", "/var/../.."}, {"n1", "var/log"}} {
		if _, err := nfs.NodeDirUsage(site, tc.node, []string{tc.path}); err == nil {
			t.Errorf("usage of node %q path %q: no error", tc.node, tc.path)
		}
		if _, err := nfs.WipeNodeDir(site, tc.node, []string{tc.path}); err == nil {
			t.Errorf("wipe of node %q path %q: no error", tc.node, tc.path)
		}
	}
}
