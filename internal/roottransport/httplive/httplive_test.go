package httplive_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/builtin"
	"github.com/netbootui/netbootui/internal/roottransport/httplive"
)

func TestHTTPLiveKernelArgs(t *testing.T) {
	var tr httplive.Transport
	args, err := tr.KernelArgs(roottransport.Boot{Node: "n1", RootfsURL: "http://h/images/c/g/rootfs.squashfs?node=n1"})
	if err != nil || !slices.Equal(args, []string{"root=live:http://h/images/c/g/rootfs.squashfs?node=n1"}) {
		t.Fatalf("KernelArgs = %q, %v", args, err)
	}
	if _, err := tr.KernelArgs(roottransport.Boot{Node: "n1"}); err == nil {
		t.Fatal("KernelArgs without a rootfs URL accepted")
	}
	// A dracut image: livenet and dmsquash-live's words, a tmpfs overlayfs.
	dr, err := tr.KernelArgs(roottransport.Boot{Node: "n1", RootfsURL: "http://h/r", Dracut: true})
	if want := []string{"root=live:http://h/r", "rd.live.image", "rd.live.overlay.overlayfs=1", "rd.neednet=1", "ip=dhcp"}; err != nil || !slices.Equal(dr, want) {
		t.Fatalf("dracut KernelArgs = %q, %v; want %q", dr, err, want)
	}
	// What KernelArgs writes, Parse reads back.
	k, v, _ := strings.Cut(args[0], "=")
	c, err := builtin.Registry().Parse(map[string]string{k: v})
	if err != nil || c.Root.Transport != httplive.Name || c.Root.Fetch[0] != "http://h/images/c/g/rootfs.squashfs?node=n1" {
		t.Fatalf("round trip: %+v, %v", c, err)
	}
}

func TestLocate(t *testing.T) {
	var tr httplive.Transport
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"http://10.0.2.2:8080/images/c/g/rootfs.squashfs?node=n1&auth=k", true},
		{"https://head/r.squashfs", true},
		{"ftp://head/r.squashfs", false}, // dracut could, the built-in init cannot
		{"/dev/sda1", false},
		{"http://", false},
		{"", false},
		{"http://h/%zz", false},
	} {
		r, err := tr.Locate(tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("Locate(%q): %v, want ok %v", tc.value, err, tc.ok)
		}
		if tc.ok && !slices.Equal(r.Fetch, []string{tc.value}) {
			t.Errorf("Locate(%q) fetches %v", tc.value, r.Fetch)
		}
	}
}
