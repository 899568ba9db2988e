package inventory

import (
	"strings"
	"testing"
)

// TestPersistDisk: a group's persist_disk (persisted paths on a local
// partition found by label, for RAM roots), its defaults, and its errors at
// FILE:LINE:COL.
func TestPersistDisk(t *testing.T) {
	const head = "settings:\n  nfs: {server: 10.1.0.1, export: /netbootui, dir: /srv/netbootui}\nimages:\n  c: {}\n  n: {root: nfs}\ngroups:\n"
	const node = "nodes:\n  - {name: a, group: g, nics: [{mac: \"02:00:00:00:00:01\"}]}\n"
	for _, tc := range []struct {
		name, group string
		want        *PersistDisk // when valid
		err         string       // first error "LINE:COL: message"
	}{
		{"defaults", "  g: {image: c, persist: [/var/log], persist_disk: {}}\n",
			&PersistDisk{Label: DefaultPersistLabel, Missing: PersistMissingFail}, ""},
		{"null takes the defaults", "  g: {image: c, persist: [/var/log], persist_disk: }\n",
			&PersistDisk{Label: DefaultPersistLabel, Missing: PersistMissingFail}, ""},
		{"all set", "  g: {image: c, persist: [/var/log], persist_disk: {label: SCRATCH-1, missing: boot, format: true}}\n",
			&PersistDisk{Label: "SCRATCH-1", Missing: PersistMissingBoot, Format: true}, ""},
		{"none", "  g: {image: c, persist: [/var/log]}\n", nil, ""},
		{"label too long", "  g: {image: c, persist: [/var/log], persist_disk: {label: NETBOOTUI-PERSIST}}\n", nil,
			`7:60: group g: persist_disk: bad label "NETBOOTUI-PERSIST": want 1 to 16 letters, digits, '.', '_' or '-', starting with a letter or digit (an ext4 label)`},
		{"label with a blank", "  g: {image: c, persist: [/var/log], persist_disk: {label: \"a b\"}}\n", nil,
			`7:60: group g: persist_disk: bad label "a b": want 1 to 16 letters, digits, '.', '_' or '-', starting with a letter or digit (an ext4 label)`},
		{"bad missing", "  g: {image: c, persist: [/var/log], persist_disk: {missing: ignore}}\n", nil,
			`7:62: group g: persist_disk: bad missing "ignore": want fail (the boot fails at stage persist) or boot (it goes on with the paths in RAM)`},
		{"format not a bool", "  g: {image: c, persist: [/var/log], persist_disk: {format: yes please}}\n", nil,
			`7:61: group g: persist_disk: format must be true or false, got a string ("yes please")`},
		{"unknown key", "  g: {image: c, persist: [/var/log], persist_disk: {device: /dev/vdb}}\n", nil,
			`7:53: unknown key "device" in group g: persist_disk (allowed: label, missing, format)`},
		{"not a mapping", "  g: {image: c, persist: [/var/log], persist_disk: true}\n", nil,
			`7:52: group g: persist_disk must be a mapping ({} for the defaults: label NBUI-PERSIST, missing fail, format false), got a boolean (true)`},
		{"without persist", "  g: {image: c, persist_disk: {}}\n", nil,
			`7:17: group g: persist_disk without persist: name the paths it keeps`},
		{"on an nfs root", "  g: {image: n, persist: [/var/log], persist_disk: {}}\n", nil,
			`7:38: group g: persist_disk: node a boots image n, an nfs root, whose persisted paths live on the NFS server: persist_disk is for RAM roots (http-live, nbd)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := head + tc.group + node
			inv, err := Parse("t.yaml", []byte(src))
			if tc.err != "" {
				wantFirstError(t, src, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := inv.Node("a").PersistDisk
			if (got == nil) != (tc.want == nil) {
				t.Fatalf("node's persist_disk %+v, want %+v", got, tc.want)
			}
			if got == nil {
				return
			}
			if got.Label != tc.want.Label || got.Missing != tc.want.Missing || got.Format != tc.want.Format ||
				got.Defined.Line != 7 || inv.Groups["g"].PersistDisk != got {
				t.Errorf("persist_disk %+v, want %+v at line 7, the group's", *got, *tc.want)
			}
			if !strings.HasSuffix(got.Defined.File, "t.yaml") {
				t.Errorf("defined at %v", got.Defined)
			}
		})
	}
}
