package roottransport_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/builtin"
	"github.com/netbootui/netbootui/internal/roottransport/httplive"
	"github.com/netbootui/netbootui/internal/roottransport/nbd"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

// nbdLike is a second transport, registered from this test only: the seam
// takes it with no change elsewhere.
type nbdLike struct{}

func (nbdLike) Name() string   { return "test-nbd" }
func (nbdLike) Scheme() string { return "nbd" }
func (nbdLike) KernelArgs(b roottransport.Boot) ([]string, error) {
	return []string{"root=nbd:head:10809:" + b.Image + "-" + b.Generation, "rd.nbd.ro"}, nil
}
func (nbdLike) Locate(v string) (roottransport.Root, error) {
	if strings.Count(v, ":") != 2 {
		return roottransport.Root{}, errors.New("want HOST:PORT:EXPORT")
	}
	return roottransport.Root{}, nil
}

func TestRegistry(t *testing.T) {
	r, err := roottransport.NewRegistry(httplive.Transport{}, nbdLike{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Default().Name() != httplive.Name || !slices.Equal(r.Names(), []string{"http-live", "test-nbd"}) ||
		!slices.Equal(r.Schemes(), []string{"live", "nbd"}) {
		t.Fatalf("default %s, names %v, schemes %v", r.Default().Name(), r.Names(), r.Schemes())
	}
	for _, tc := range []struct{ name, want, err string }{
		{"", "http-live", ""},
		{"http-live", "http-live", ""},
		{"test-nbd", "test-nbd", ""},
		{"nfs", "", `unknown root transport "nfs" (known: http-live, test-nbd)`},
	} {
		got, err := r.Lookup(tc.name)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("Lookup(%q) error %v, want %q", tc.name, err, tc.err)
		case tc.err == "" && (err != nil || got.Name() != tc.want):
			t.Errorf("Lookup(%q) = %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range [][]roottransport.Transport{
		nil,
		{httplive.Transport{}, httplive.Transport{}},
		{httplive.Transport{}, sameScheme{}},
	} {
		if _, err := roottransport.NewRegistry(bad...); err == nil {
			t.Errorf("NewRegistry(%v) accepted", bad)
		}
	}
	if !slices.Equal(builtin.Registry().Names(), []string{httplive.Name, nbd.Name, nfs.Name}) || builtin.Registry().Default().Name() != httplive.Name {
		t.Errorf("built-in transports %v", builtin.Registry().Names())
	}
}

type sameScheme struct{ nbdLike }

func (sameScheme) Name() string   { return "other" }
func (sameScheme) Scheme() string { return "live" }

func TestParse(t *testing.T) {
	r, _ := roottransport.NewRegistry(httplive.Transport{}, nbdLike{})
	full := map[string]string{
		"root": "live:http://10.0.2.2:8080/images/c/g1/rootfs.squashfs?node=n1&auth=ab", "netbootui.url": "http://10.0.2.2:8080",
		"netbootui.node": "n1", "netbootui.group": "g", "netbootui.token": "tok", "netbootui.gen": "g1",
		"netbootui.checkin": "http://10.0.2.2:8080/checkin", "netbootui.checkin_interval": "7", "quiet": "",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range full {
			m[a] = b
		}
		if v == "-" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name      string
		args      map[string]string
		transport string
		fetch     []string
		err       string
	}{
		{"http-live", full, "http-live", []string{full["root"][len("live:"):]}, ""},
		{"nbd", with("root", "nbd:head:10809:c-g1"), "test-nbd", nil, ""},
		{"no root", with("root", "-"), "", nil, "names no root="},
		{"empty root", with("root", ""), "", nil, "names no root="},
		{"unknown scheme", with("root", "nfs:10.0.0.1:/x"), "", nil, "no transport reads it (schemes: live, nbd)"},
		{"device root", with("root", "/dev/sda1"), "", nil, "no transport reads it"},
		{"live without a URL", with("root", "live:"), "", nil, "http-live: want an http"},
		{"live file URL", with("root", "live:file:///x"), "", nil, "http-live: want an http"},
		{"bad nbd", with("root", "nbd:x"), "", nil, "want HOST:PORT:EXPORT"},
		{"bad interval", with("netbootui.checkin_interval", "0"), "", nil, "positive number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := r.Parse(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Root.Transport != tc.transport || !slices.Equal(c.Root.Fetch, tc.fetch) || c.Node != "n1" ||
				c.Group != "g" || c.Token != "tok" || c.Gen != "g1" || c.Checkin != full["netbootui.checkin"] ||
				c.URL != full["netbootui.url"] || c.CheckinInterval != 7 {
				t.Fatalf("parsed %+v", c)
			}
		})
	}
}

// FuzzParse feeds command lines as a node would see them: Parse never
// panics, and what it accepts names a registered transport.
func FuzzParse(f *testing.F) {
	f.Add("root=live:http://h/r.squashfs netbootui.node=n1 netbootui.checkin_interval=5")
	f.Add("root=live: netbootui.checkin_interval=-1")
	f.Add("root=nfs:h:/x quiet")
	f.Add("root")
	r := builtin.Registry()
	f.Fuzz(func(t *testing.T, line string) {
		args := map[string]string{}
		for _, w := range strings.Fields(line) {
			k, v, _ := strings.Cut(w, "=")
			args[k] = v
		}
		c, err := r.Parse(args)
		if err != nil {
			return
		}
		if _, err := r.Lookup(c.Root.Transport); err != nil || c.Root.Transport == "" {
			t.Fatalf("accepted %q with transport %q", line, c.Root.Transport)
		}
	})
}
