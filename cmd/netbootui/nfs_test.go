package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNFSExports: the verb prints the trees' export and one per node that
// persists paths, restricted to its address; without settings.nfs it fails.
func TestNFSExports(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(inv, []byte(`settings:
  nfs: {server: 10.1.0.1, export: /netbootui, dir: /srv/netbootui}
images:
  c: {root: nfs}
groups:
  g: {image: c, persist: [/var/log]}
nodes:
  - {name: "n[1-2]", group: g, ip: 10.1.0.11, nics: [{mac: "02:00:00:00:00:01"}]}
  - {name: other, image: c, ip: 10.1.0.20, nics: [{mac: "02:00:00:00:01:01"}]}
`), 0o644)
	out, errOut, code := runCLI(t, "nfs-exports", "--inventory", inv)
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	for _, want := range []string{
		"Path = \"/srv/netbootui/images\";\n\tPseudo = \"/netbootui/images\";\n\tAccess_Type = RO;",
		"Path = \"/srv/netbootui/nodes/n1\";", "CLIENT { Clients = 10.1.0.11; Access_Type = RW; }",
		"Path = \"/srv/netbootui/nodes/n2\";", "CLIENT { Clients = 10.1.0.12; Access_Type = RW; }",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "EXPORT {") != 3 || strings.Contains(out, "nodes/other") {
		t.Errorf("want the trees and n1, n2 only:\n%s", out)
	}
	os.WriteFile(inv, []byte("images:\n  c: {}\n"), 0o644)
	if _, errOut, code := runCLI(t, "nfs-exports", "--inventory", inv); code == 0 || !strings.Contains(errOut, "settings.nfs") {
		t.Errorf("without settings.nfs: code %d, %q", code, errOut)
	}
}
