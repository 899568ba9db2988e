package roottransport_test

import (
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/roottransport"
)

// TestPersistDiskArgs: the words of a persist disk, and what is refused
// before it reaches a command line.
func TestPersistDiskArgs(t *testing.T) {
	ok := roottransport.PersistDisk{Paths: []string{"/var/log", "/var/lib/x"}, Label: "NBUI-PERSIST", Missing: "fail"}
	for _, tc := range []struct {
		name string
		edit func(*roottransport.PersistDisk)
		want string // words joined by blanks; "" with err
		err  string
	}{
		{"defaults", func(*roottransport.PersistDisk) {},
			"netbootui.persist=/var/log,/var/lib/x netbootui.persist_disk=NBUI-PERSIST:fail", ""},
		{"boot and format", func(d *roottransport.PersistDisk) { d.Missing, d.Format = "boot", true },
			"netbootui.persist=/var/log,/var/lib/x netbootui.persist_disk=NBUI-PERSIST:boot:format", ""},
		{"a wipe", func(d *roottransport.PersistDisk) { d.Wipe = "0123456789abcdef" },
			"netbootui.persist=/var/log,/var/lib/x netbootui.persist_disk=NBUI-PERSIST:fail netbootui.persist_wipe=0123456789abcdef", ""},
		{"no paths", func(d *roottransport.PersistDisk) { d.Paths = nil }, "", "no persisted paths"},
		{"relative path", func(d *roottransport.PersistDisk) { d.Paths = []string{"var"} }, "", `persist path "var"`},
		{"path with a comma", func(d *roottransport.PersistDisk) { d.Paths = []string{"/a,b"} }, "", `persist path "/a,b"`},
		{"root", func(d *roottransport.PersistDisk) { d.Paths = []string{"/"} }, "", `persist path "/"`},
		{"label with a colon", func(d *roottransport.PersistDisk) { d.Label = "A:B" }, "", `label "A:B"`},
		{"label too long", func(d *roottransport.PersistDisk) { d.Label = "NETBOOTUI-PERSIST" }, "", `label "NETBOOTUI-PERSIST"`},
		{"no label", func(d *roottransport.PersistDisk) { d.Label = "" }, "", `label ""`},
		{"bad missing", func(d *roottransport.PersistDisk) { d.Missing = "" }, "", `missing ""`},
		{"bad wipe id", func(d *roottransport.PersistDisk) { d.Wipe = "../x" }, "", `wipe id "../x"`},
		{"upper-case wipe id", func(d *roottransport.PersistDisk) { d.Wipe = "0123456789ABCDEF" }, "", `wipe id`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := ok
			d.Paths = append([]string(nil), ok.Paths...)
			tc.edit(&d)
			words, err := roottransport.PersistDiskArgs(d)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("words %q, err %v; want an error with %q", words, err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(words, " ") != tc.want {
				t.Fatalf("words %q, err %v; want %q", words, err, tc.want)
			}
		})
	}
}
