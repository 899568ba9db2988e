package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dhcpTestDir holds the dhcp package's test inventory and goldens; the
// golden tests run the CLI there so that the header names the inventory as
// the goldens do.
const dhcpTestDir = "../../internal/dhcp"

// TestDHCPConfigGolden: the binary writes, for each format and flag set,
// exactly the dhcp package's golden file (which its own tests check with
// the real servers).
func TestDHCPConfigGolden(t *testing.T) {
	variants := []struct {
		name string
		args []string
	}{
		{"default", []string{"--next-server", "10.99.0.1", "--http-base", "http://10.99.0.1:8080"}},
		{"known-only-snponly", []string{"--next-server", "10.99.0.1", "--http-base", "http://10.99.0.1:8080", "--efi-loader", "snponly.efi", "--known-only"}},
	}
	for _, v := range variants {
		for _, f := range []string{"dnsmasq", "isc", "kea"} {
			t.Run(v.name+"/"+f, func(t *testing.T) {
				want, err := os.ReadFile(filepath.Join(dhcpTestDir, "testdata", "golden", v.name+"."+f))
				if err != nil {
					t.Fatal(err)
				}
				t.Chdir(dhcpTestDir)
				args := append([]string{"dhcp-config", "--format", f, "--inventory", "testdata/nodes.yaml"}, v.args...)
				out, errOut, code := runCLI(t, args...)
				if code != 0 || out != string(want) {
					t.Fatalf("code %d, stderr %q; output differs from the golden:\n%s", code, errOut, out)
				}
			})
		}
	}
}

func TestDHCPConfigSelection(t *testing.T) {
	t.Chdir(dhcpTestDir)
	out, errOut, code := runCLI(t, "dhcp-config", "--format", "dnsmasq", "--inventory", "testdata/nodes.yaml",
		"--next-server", "10.99.0.1", "--http-base", "http://10.99.0.1:8080", "n[01-02],pxe1")
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	var hosts []string
	for _, l := range strings.Split(out, "\n") {
		if h, ok := strings.CutPrefix(l, "dhcp-host="); ok {
			hosts = append(hosts, h[strings.LastIndex(h, ",")+1:])
		}
	}
	if strings.Join(hosts, " ") != "n01 n02 pxe1" {
		t.Errorf("hosts %v, want n01 n02 pxe1:\n%s", hosts, out)
	}
	if !strings.Contains(out, "from testdata/nodes.yaml (n[01-02],pxe1)") {
		t.Errorf("header does not name the selection:\n%s", out)
	}
}

func TestDHCPConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	good, err := filepath.Abs(filepath.Join(dhcpTestDir, "testdata", "nodes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	badYAML := write("bad.yaml", "nodes:\n  - name: n1\n    nics: [{mac: \"zz:54:00:00:00:01\"}]\n")
	underscore := write("us.yaml", "nodes:\n  - name: n1\n    nics: [{mac: \"52:54:00:00:00:01\"}]\n  - name: n_2\n    nics: [{mac: \"52:54:00:00:00:02\"}]\n")
	v6 := write("v6.yaml", "nodes:\n  - name: n1\n    ip: fd00::5\n    nics: [{mac: \"52:54:00:00:00:01\"}]\n")
	base := []string{"--next-server", "10.99.0.1", "--http-base", "http://10.99.0.1:8080"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	cases := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no format", with("--inventory", good), 2, `--format "": want dnsmasq, isc or kea`},
		{"unknown format", with("--format", "bind", "--inventory", good), 2, `--format "bind"`},
		{"no next server", []string{"--format", "isc", "--inventory", good, "--http-base", "http://h"}, 2, "--next-server and --http-base are required"},
		{"IPv6 next server", []string{"--format", "isc", "--inventory", good, "--http-base", "http://h", "--next-server", "fd00::1"}, 2, `--next-server "fd00::1": want an IPv4 address`},
		{"two selections", with("--format", "kea", "--inventory", good, "n01", "n02"), 2, "one SELECTION at most"},
		{"bad boot URL", []string{"--format", "kea", "--inventory", good, "--next-server", "10.0.0.1", "--http-base", "http://h/a,b"}, 1, `boot URL "http://h/a,b"`},
		{"bad UEFI loader", with("--format", "dnsmasq", "--inventory", good, "--efi-loader", "grub.efi"), 1, `UEFI loader "grub.efi"`},
		{"unknown node", with("--format", "dnsmasq", "--inventory", good, "n01,nope"), 1, `selection "n01,nope"`},
		{"unknown group", with("--format", "dnsmasq", "--inventory", good, "@nope"), 1, "@nope"},
		{"inventory error", with("--format", "dnsmasq", "--inventory", badYAML), 1, badYAML + ":3:"},
		{"no inventory", with("--format", "dnsmasq", "--inventory", filepath.Join(dir, "none.yaml")), 1, "none.yaml"},
		{"name that is no hostname", with("--format", "isc", "--inventory", underscore), 1, underscore + `:4:11: node "n_2": the name is not a valid DHCP hostname`},
		{"IPv6 node address", with("--format", "kea", "--inventory", v6), 1, v6 + `:2:11: node "n1": ip fd00::5 is not IPv4`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, append([]string{"dhcp-config"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.err) {
				t.Fatalf("code %d, stderr %q; want code %d and %q", code, errOut, tc.code, tc.err)
			}
			if out != "" {
				t.Fatalf("wrote to stdout on error:\n%s", out)
			}
		})
	}
}
