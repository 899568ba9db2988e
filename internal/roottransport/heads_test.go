package roottransport_test

import (
	"slices"
	"testing"

	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/builtin"
)

// TestOnHeads: netbootui.heads= is read into Cmdline.Heads; OnHeads gives a
// URL under netbootui.url then the same path on each other head, and a URL
// elsewhere alone.
func TestOnHeads(t *testing.T) {
	args := map[string]string{"root": "live:http://a:1/r.squashfs?node=n1", "netbootui.url": "http://a:1/",
		"netbootui.heads": "http://b:2,http://c:3/,"}
	cl, err := builtin.Registry().Parse(args)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://b:2", "http://c:3/"}; !slices.Equal(cl.Heads, want) {
		t.Fatalf("heads %q, want %q", cl.Heads, want)
	}
	for _, tc := range []struct {
		name, u string
		want    []string
	}{
		{"under the head", "http://a:1/r.squashfs?node=n1", []string{"http://a:1/r.squashfs?node=n1", "http://b:2/r.squashfs?node=n1", "http://c:3/r.squashfs?node=n1"}},
		{"check-in", "http://a:1/checkin", []string{"http://a:1/checkin", "http://b:2/checkin", "http://c:3/checkin"}},
		{"another host", "http://x:1/r", []string{"http://x:1/r"}},
		{"a longer port", "http://a:10/r", []string{"http://a:10/r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cl.OnHeads(tc.u); !slices.Equal(got, tc.want) {
				t.Errorf("OnHeads(%q) = %q, want %q", tc.u, got, tc.want)
			}
		})
	}
	alone := roottransport.Cmdline{URL: "http://a:1"}
	if got := alone.OnHeads("http://a:1/r"); !slices.Equal(got, []string{"http://a:1/r"}) {
		t.Errorf("one head: %q", got)
	}
}
