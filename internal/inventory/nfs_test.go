package inventory

import (
	"slices"
	"strings"
	"testing"
)

// TestNFSAndPersist: settings.nfs, an image's root: nfs and a group's
// persist list, and their errors at FILE:LINE:COL.
func TestNFSAndPersist(t *testing.T) {
	const nfsOK = "settings:\n  nfs: {server: 10.1.0.1, port: 20490, export: /netbootui, dir: /srv/netbootui}\n"
	const rest = "images:\n  c: {root: nfs}\ngroups:\n  g: {image: c, persist: [/var/log, /var/lib/ssh]}\nnodes:\n  - {name: a, group: g, nics: [{mac: \"02:00:00:00:00:01\"}]}\n"
	for _, tc := range []struct {
		name, src string
		err       string // first error "LINE:COL: message"; "" = valid
	}{
		{"valid", nfsOK + rest, ""},
		{"nfs root without settings.nfs", rest,
			`2:13: image c: root: nfs needs the site's NFS server: add settings.nfs (server, export, dir)`},
		{"server a name", "settings:\n  nfs: {server: head, export: /x, dir: /d}\n" + rest,
			`2:17: settings.nfs.server: bad server "head": want the IPv4 address nodes reach it at (the live init resolves no names)`},
		{"relative export", "settings:\n  nfs: {server: 10.1.0.1, export: x, dir: /d}\n" + rest,
			`2:35: settings.nfs.export: bad path "x": want an absolute, clean path other than / without ':', ',', '=', quotes or blanks`},
		{"dir with a colon", "settings:\n  nfs: {server: 10.1.0.1, export: /x, dir: \"/a:b\"}\n" + rest,
			`2:44: settings.nfs.dir: bad path "/a:b": want an absolute, clean path other than / without ':', ',', '=', quotes or blanks`},
		{"port range", "settings:\n  nfs: {server: 10.1.0.1, port: 0, export: /x, dir: /d}\n" + rest,
			`2:33: settings.nfs.port must be 1-65535, got 0`},
		{"missing dir", "settings:\n  nfs: {server: 10.1.0.1, export: /x}\n" + rest,
			`2:8: settings.nfs needs server, export and dir`},
		{"unknown nfs key", "settings:\n  nfs: {server: 10.1.0.1, export: /x, dir: /d, path: /y}\n" + rest,
			`2:48: unknown key "path" in settings.nfs (allowed: server, port, export, dir)`},
		{"persist relative", nfsOK + strings.Replace(rest, "/var/lib/ssh", "var/lib", 1),
			`6:37: group g: persist: bad path "var/lib": want an absolute, clean path other than /`},
		{"persist twice", nfsOK + strings.Replace(rest, "/var/lib/ssh", "/var/log", 1),
			`6:37: group g: persist: "/var/log" listed twice`},
		{"persist odd characters", nfsOK + strings.Replace(rest, "/var/lib/ssh", "\"/var/a b\"", 1),
			`6:37: group g: persist: path "/var/a b": use letters, digits, '.', '_', '-' and '/'`},
		{"persist not a list", nfsOK + strings.Replace(rest, "[/var/log, /var/lib/ssh]", "/var/log", 1),
			`6:26: group g: persist must be a list, got a string ("/var/log")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := Parse("t.yaml", []byte(tc.src))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if inv.Settings.NFS != (NFS{Server: "10.1.0.1", Port: 20490, Export: "/netbootui", Dir: "/srv/netbootui"}) ||
					inv.Images["c"].Root != "nfs" || !slices.Equal(inv.Node("a").Persist, []string{"/var/log", "/var/lib/ssh"}) ||
					!slices.Equal(inv.Groups["g"].Persist, inv.Node("a").Persist) {
					t.Errorf("settings %+v, image %+v, node %+v", inv.Settings, *inv.Images["c"], *inv.Node("a"))
				}
				return
			}
			wantFirstError(t, tc.src, err, tc.err)
		})
	}
}

// TestNBDSettings: settings.nbd and an image's root: nbd.
func TestNBDSettings(t *testing.T) {
	const rest = "images:\n  c: {root: nbd}\n"
	for _, tc := range []struct{ name, src, err string }{
		{"valid", "settings:\n  nbd: {server: 10.1.0.1, port: 10810}\n" + rest, ""},
		{"no settings", rest, `2:13: image c: root: nbd needs the site's NBD server: add settings.nbd (server, port)`},
		{"name", "settings:\n  nbd: {server: head}\n" + rest, `2:17: settings.nbd.server: bad server "head": want the IPv4 address nodes reach it at (the live init resolves no names)`},
		{"port", "settings:\n  nbd: {server: 10.1.0.1, port: 70000}\n" + rest, `2:33: settings.nbd.port must be 1-65535, got 70000`},
		{"no server", "settings:\n  nbd: {port: 10810}\n" + rest, `2:8: settings.nbd needs server`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := Parse("t.yaml", []byte(tc.src))
			if tc.err == "" {
				if err != nil || inv.Settings.NBD != (NBD{Server: "10.1.0.1", Port: 10810}) || inv.Images["c"].Root != "nbd" {
					t.Fatalf("%v %+v", err, inv)
				}
				return
			}
			wantFirstError(t, tc.src, err, tc.err)
		})
	}
}

// wantFirstError checks that parsing src (as t.yaml) failed with want as its
// first error ("LINE:COL: message"), every error at a real position.
func wantFirstError(t *testing.T, src string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want %s", want)
	}
	list := err.(ErrorList)
	checkPositions(t, "t.yaml", []byte(src), list)
	if got := strings.TrimPrefix(list[0].Error(), "t.yaml:"); got != want {
		t.Errorf("first error\n got %s\nwant %s", got, want)
	}
}

// TestImageInitramfs: an image's initramfs kind (builtin, the default, or
// dracut) and its error at FILE:LINE:COL.
func TestImageInitramfs(t *testing.T) {
	for _, tc := range []struct {
		name, image string
		dracut      bool
		err         string
	}{
		{"default", "{root: http-live}", false, ""},
		{"builtin", "{initramfs: builtin}", false, ""},
		{"dracut", "{initramfs: dracut}", true, ""},
		{"unknown", "{initramfs: mkinitcpio}", false,
			`3:18: image c: initramfs: "mkinitcpio": want builtin (netbootui's live init, the default) or dracut (the image's own dracut)`},
		{"not a string", "{initramfs: [dracut]}", false, `3:18: image c: initramfs must be a string, got a list`},
		{"dracut on nbd", "{root: nbd, initramfs: dracut}", false,
			`3:29: image c: initramfs: dracut cannot boot root: nbd (dracut would mount the device as the root, with no overlay): use the built-in init`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "settings: {nbd: {server: 10.1.0.1}}\nimages:\n  c: " + tc.image + "\n"
			inv, err := Parse("t.yaml", []byte(src))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := inv.Images["c"].Dracut(); got != tc.dracut {
					t.Errorf("Dracut() = %v, want %v", got, tc.dracut)
				}
				return
			}
			wantFirstError(t, src, err, tc.err)
		})
	}
}
