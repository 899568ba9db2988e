package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate refuses what the daemon would refuse when it renders a node's
// entry (it answered HTTP 500 for such a node), and the inventory rules of
// issue 13: one BMC per node, IPMI's 20-byte passwords (at the password's
// reference, FILE:LINE:COL).
func TestValidateRefusesWhatTheDaemonRefuses(t *testing.T) {
	const head = "images:\n  compute: {}\nnodes:\n"
	for _, tc := range []struct{ name, inv, want string }{
		{"kernel_args with a newline", head + "  - {name: n1, image: compute, kernel_args: \"quiet\\nshell\", nics: [{mac: '52:54:00:00:00:01'}]}\n",
			":4:12: node n1: kernel_args: control character U+000A"},
		{"invalid ipxe override", head + "  - {name: n1, image: compute, nics: [{mac: '52:54:00:00:00:01'}], boot_override: {ipxe: \"#!ipxe\\nchain\\n\"}}\n",
			":4:12: node n1: boot_override.ipxe: ipxe:2:1: chain needs"},
		{"two nodes on one BMC", head + "  - {name: a, image: compute, nics: [{mac: '52:54:00:00:00:01'}], bmc: {host: 10.0.0.9}}\n  - {name: b, image: compute, nics: [{mac: '52:54:00:00:00:02'}], bmc: {host: 10.0.0.9}}\n",
			":5:79: duplicate BMC 10.0.0.9:623: node a has it too"},
		{"IPMI password over 20 bytes", "settings:\n  secrets: secrets.yaml\n" + head + "  - {name: n1, image: compute, nics: [{mac: '52:54:00:00:00:01'}], bmc: {host: 10.0.0.9, password: long}}\n",
			":6:100: password \"long\" (from secrets.yaml or NETBOOTUI_BMC_PASSWORD_LONG): 21 bytes, longer than the 20 bytes IPMI allows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "nodes.yaml")
			if err := os.WriteFile(p, []byte(tc.inv), 0o644); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(filepath.Dir(p), "secrets.yaml"), []byte("bmc_passwords:\n  long: \"123456789012345678901\"\n"), 0o600)
			_, errOut, code := runCLI(t, "validate", p)
			if code != 1 || !strings.HasPrefix(errOut, p+tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("code %d, stderr %q, want %s%s…", code, errOut, p, tc.want)
			}
		})
	}
}
