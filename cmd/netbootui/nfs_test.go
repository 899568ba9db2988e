package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/image"
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

// TestNBDConfig: the verb serves the current generation of each nbd image
// from the store, read-only, on settings.nbd.port.
func TestNBDConfig(t *testing.T) {
	dir := t.TempDir()
	st, err := image.OpenStore(filepath.Join(dir, "data", "images"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, name := range image.BootFiles {
		files[name] = filepath.Join(dir, name)
		os.WriteFile(files[name], []byte("x"), 0o644)
	}
	m, err := st.Import("c", files, "test")
	if err != nil || st.Publish("c", m.ID) != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(inv, []byte("settings:\n  nbd: {server: 10.1.0.1, port: 10810}\nimages:\n  c: {root: nbd}\n  h: {}\n"), 0o644)
	out, errOut, code := runCLI(t, "nbd-config", "--inventory", inv, "--data", filepath.Join(dir, "data"), "--listen", "10.1.0.1")
	sq, _ := st.Path("c", m.ID, image.FileRootfs)
	want := "listenaddr = 10.1.0.1\n\tport = 10810\n"
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "[c."+m.ID+"]\n\texportname = "+sq+"\n\treadonly = true\n") || strings.Count(out, "[") != 2 {
		t.Fatalf("code %d, stderr %q, output:\n%s", code, errOut, out)
	}
}
