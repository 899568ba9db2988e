package dhcp

import (
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/inventory"
)

func TestChoose(t *testing.T) {
	o := Options{HTTPBase: "http://10.99.0.1:8080"}
	snp := Options{HTTPBase: o.HTTPBase, EFILoader: "snponly.efi"}
	known := func(a Arch) Client { return Client{Arch: a, ArchKnown: true} }
	cases := []struct {
		name   string
		c      Client
		loader inventory.Loader
		arch   inventory.Arch
		o      Options
		want   Boot
		err    string
	}{
		{"bios ipxe", known(ArchBIOS), inventory.LoaderIPXE, "", o, Boot{File: "undionly.kpxe"}, ""},
		{"bios pxelinux", known(ArchBIOS), inventory.LoaderPxelinux, "", o, Boot{File: "pxelinux.0"}, ""},
		{"efi-bc ipxe", known(ArchEFIBC), inventory.LoaderIPXE, "", o, Boot{File: "ipxe.efi"}, ""},
		{"efi-x64 ipxe", known(ArchEFIx64), "", "", o, Boot{File: "ipxe.efi"}, ""},
		{"efi-x64 snponly", known(ArchEFIx64), inventory.LoaderIPXE, "", snp, Boot{File: "snponly.efi"}, ""},
		{"efi-x64 pxelinux", known(ArchEFIx64), inventory.LoaderPxelinux, "", o, Boot{File: "efi64/syslinux.efi"}, ""},
		{"uefi http boot", known(ArchEFIx64HTTP), inventory.LoaderIPXE, "", o,
			Boot{File: "http://10.99.0.1:8080/loaders/ipxe.efi", HTTP: true, HTTPClient: true}, ""},
		{"already ipxe chains to its script", Client{IPXE: true, Arch: ArchBIOS, ArchKnown: true}, inventory.LoaderIPXE, "", o,
			Boot{File: "http://10.99.0.1:8080/boot/${mac}.ipxe", HTTP: true}, ""},
		{"already ipxe on efi chains too", Client{IPXE: true, Arch: ArchEFIx64, ArchKnown: true}, inventory.LoaderPxelinux, "", o,
			Boot{File: "http://10.99.0.1:8080/boot/${mac}.ipxe", HTTP: true}, ""},
		{"no option 93, inventory says uefi", Client{}, inventory.LoaderIPXE, inventory.ArchUEFI, o, Boot{File: "ipxe.efi"}, ""},
		{"no option 93, unknown node", Client{}, "", "", o, Boot{File: "undionly.kpxe"}, ""},
		{"arm64 has no loader", known(ArchEFIARM64), inventory.LoaderIPXE, "", o, Boot{}, "efi-arm64 (11)"},
		{"ia32 has no loader", known(ArchEFIIA32), inventory.LoaderIPXE, "", o, Boot{}, "efi-ia32 (6)"},
		{"unregistered arch", known(Arch(4242)), inventory.LoaderIPXE, "", o, Boot{}, "arch 4242"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Choose(tc.c, tc.loader, tc.arch, "${mac}", tc.o)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o   Options
		err string
	}{
		{Options{HTTPBase: "http://h:8080"}, ""},
		{Options{HTTPBase: "https://h", EFILoader: "snponly.efi"}, ""},
		{Options{HTTPBase: "h:8080"}, "must start with http://"},
		{Options{HTTPBase: "http://h/"}, "no trailing slash"},
		{Options{HTTPBase: "http://h", EFILoader: "grub.efi"}, `"grub.efi"`},
	} {
		err := tc.o.Validate()
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: err = %v, want %q", tc.o, err, tc.err)
		}
	}
}
