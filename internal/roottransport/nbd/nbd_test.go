package nbd_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/builtin"
	"github.com/netbootui/netbootui/internal/roottransport/nbd"
)

func TestKernelArgs(t *testing.T) {
	var tr nbd.Transport
	for _, tc := range []struct {
		name string
		b    roottransport.Boot
		want string // "" = an error
	}{
		{"site port", roottransport.Boot{Image: "c", Generation: "g1", NBD: roottransport.NBDSite{Server: "10.0.2.2", Port: 10810}}, "root=nbd:10.0.2.2:10810/c.g1"},
		{"default port", roottransport.Boot{Image: "c", Generation: "g1", NBD: roottransport.NBDSite{Server: "10.0.2.2"}}, "root=nbd:10.0.2.2:10809/c.g1"},
		{"no site", roottransport.Boot{Image: "c", Generation: "g1"}, ""},
		{"no generation", roottransport.Boot{Image: "c", NBD: roottransport.NBDSite{Server: "10.0.2.2"}}, ""},
		{"name", roottransport.Boot{Image: "c", Generation: "g1", NBD: roottransport.NBDSite{Server: "head"}}, ""},
		// dracut would mount the squashfs device as the root, no overlay.
		{"dracut", roottransport.Boot{Image: "c", Generation: "g1", NBD: roottransport.NBDSite{Server: "10.0.2.2"}, Dracut: true}, ""},
	} {
		args, err := tr.KernelArgs(tc.b)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: %q, want an error", tc.name, args)
			}
			continue
		}
		if err != nil || !slices.Equal(args, []string{tc.want}) {
			t.Errorf("%s: %q, %v; want %s", tc.name, args, err, tc.want)
			continue
		}
		k, v, _ := strings.Cut(args[0], "=")
		c, err := builtin.Registry().Parse(map[string]string{k: v})
		if err != nil || c.Root.Transport != nbd.Name || c.Root.Mount != strings.TrimPrefix(tc.want, "root=nbd:") || len(c.Root.Fetch) != 0 {
			t.Errorf("%s: round trip %+v, %v", tc.name, c.Root, err)
		}
	}
}

func TestLocate(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"10.0.2.2:10809/live.abc", true},
		{"10.0.2.2:10809/", false},
		{"10.0.2.2/live", false},
		{"10.0.2.2:0/live", false},
		{"10.0.2.2:010809/live", false},
		{"10.0.2.2:70000/live", false},
		{"head:10809/live", false},
		{"10.0.2.2:10809/a b", false},
		{"10.0.2.2:10809/../x", false},
		{"10.0.2.2:10809/a:ext4", false},
	} {
		if _, err := (nbd.Transport{}).Locate(tc.v); (err == nil) != tc.ok {
			t.Errorf("Locate(%q): %v, want ok %v", tc.v, err, tc.ok)
		}
	}
}

// FuzzLocate: an accepted value splits into an IPv4 server, a port and an
// export the init passes as single words.
func FuzzLocate(f *testing.F) {
	for _, s := range []string{"10.0.2.2:10809/live.abc", "1.2.3.4:1/x", ":/", "a:b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, err := nbd.Transport{}.Locate(v)
		if err != nil {
			return
		}
		if strings.ContainsAny(r.Mount, " \t\n'\"\\$`;") || strings.Count(r.Mount, ":") != 1 || strings.Count(r.Mount, "/") != 1 {
			t.Fatalf("Locate(%q) = %+v", v, r)
		}
	})
}

func TestServerConfig(t *testing.T) {
	got := nbd.ServerConfig("127.0.0.1", 10809, []nbd.Export{{Name: nbd.ExportName("c", "g1"), File: "/store/c/generations/g1/rootfs.squashfs"}})
	want := "# nbd-server configuration written by netbootui\n[generic]\n\tlistenaddr = 127.0.0.1\n\tport = 10809\n\tallowlist = false\n" +
		"[c.g1]\n\texportname = /store/c/generations/g1/rootfs.squashfs\n\treadonly = true\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
