// Package dhcp tells network-booting nodes where their boot server is: which
// boot file a PXE client gets for its firmware architecture and bootloader,
// generated host and boot entries for the site's DHCP server (dnsmasq, ISC
// dhcpd, Kea), and a proxyDHCP responder that answers PXE clients without
// handing out addresses.
//
// Choose is the one place that maps a client to its boot file; the config
// generators and the responder both use it, so a node boots the same way
// whichever of them answers it.
package dhcp

import (
	"fmt"
	"slices"
	"strings"

	"github.com/netbootui/netbootui/internal/inventory"
)

// Arch is a client system architecture, DHCP option 93 (RFC 4578, with the
// IANA registry's later values for UEFI HTTP boot).
type Arch uint16

// Architectures a client reports. Only the x86 ones have a bootloader here.
const (
	ArchBIOS        Arch = 0  // x86 BIOS (legacy PXE)
	ArchEFIIA32     Arch = 6  // x86 UEFI, 32-bit
	ArchEFIBC       Arch = 7  // x86-64 UEFI ("EFI BC")
	ArchEFIx64      Arch = 9  // x86-64 UEFI
	ArchEFIARM32    Arch = 10 // ARM 32-bit UEFI
	ArchEFIARM64    Arch = 11 // ARM 64-bit UEFI
	ArchEFIx86HTTP  Arch = 15 // x86 UEFI HTTP boot
	ArchEFIx64HTTP  Arch = 16 // x86-64 UEFI HTTP boot
	ArchEFIARM64HTP Arch = 19 // ARM 64-bit UEFI HTTP boot
)

var archNames = map[Arch]string{
	ArchBIOS:        "bios",
	ArchEFIIA32:     "efi-ia32",
	ArchEFIBC:       "efi-bc",
	ArchEFIx64:      "efi-x64",
	ArchEFIARM32:    "efi-arm32",
	ArchEFIARM64:    "efi-arm64",
	ArchEFIx86HTTP:  "efi-x86-http",
	ArchEFIx64HTTP:  "efi-x64-http",
	ArchEFIARM64HTP: "efi-arm64-http",
}

// String names the architecture ("efi-x64 (9)"), or gives its number.
func (a Arch) String() string {
	if n, ok := archNames[a]; ok {
		return fmt.Sprintf("%s (%d)", n, uint16(a))
	}
	return fmt.Sprintf("arch %d", uint16(a))
}

// HTTPBoot reports whether the architecture is a UEFI HTTP boot client: it
// takes an http:// URL as its boot file and expects option 60 "HTTPClient"
// in the answer.
func (a Arch) HTTPBoot() bool {
	return a == ArchEFIx86HTTP || a == ArchEFIx64HTTP || a == ArchEFIARM64HTP
}

// Client is what a DHCP request says about the booting client.
type Client struct {
	// Arch is option 93; ArchKnown is false when the request had none (then
	// the node's inventory arch decides, and BIOS for an unknown node).
	Arch      Arch
	ArchKnown bool
	// IPXE is true when the client is already iPXE: user class (option 77)
	// "iPXE" or iPXE's encapsulated options (175) present.
	IPXE bool
}

// Options are the site's choices that shape every answer.
type Options struct {
	// HTTPBase is the daemon's boot URL as nodes reach it, without a
	// trailing slash, e.g. "http://10.0.0.1:8080".
	HTTPBase string
	// EFILoader is the iPXE build UEFI x86-64 clients get over TFTP:
	// "ipxe.efi" (default, its own drivers) or "snponly.efi" (the firmware's
	// network driver).
	EFILoader string
}

// Validate checks the options once, before any answer is made.
func (o Options) Validate() error {
	if !strings.HasPrefix(o.HTTPBase, "http://") && !strings.HasPrefix(o.HTTPBase, "https://") {
		return fmt.Errorf("dhcp: boot URL %q: must start with http:// or https://", o.HTTPBase)
	}
	if strings.HasSuffix(o.HTTPBase, "/") {
		return fmt.Errorf("dhcp: boot URL %q: no trailing slash", o.HTTPBase)
	}
	switch o.EFILoader {
	case "", "ipxe.efi", "snponly.efi":
	default:
		return fmt.Errorf("dhcp: UEFI loader %q: want ipxe.efi or snponly.efi", o.EFILoader)
	}
	return nil
}

// Boot is the answer for one client.
type Boot struct {
	// File is the boot file: a TFTP file name relative to the boot root, or
	// an http:// URL when HTTP is true.
	File string
	// HTTP is true for URLs: an iPXE chain or a UEFI HTTP boot loader.
	HTTP bool
	// HTTPClient is true when the answer must carry option 60 "HTTPClient"
	// (UEFI HTTP boot).
	HTTPClient bool
}

// IPXEScriptURL is what a client that is already iPXE gets: its own script,
// named by the MAC iPXE expands in ${mac}. macExpr is either a literal MAC
// (aa:bb:cc:dd:ee:ff) or "${mac}".
func IPXEScriptURL(base, macExpr string) string {
	return base + "/boot/" + macExpr + ".ipxe"
}

// Choose picks the boot file for a client. loader is the node's bootloader
// from the inventory ("" for an unknown node: iPXE, so that it reaches the
// daemon's unknown-node script and is reported), arch the inventory's
// firmware type used when the request names none. macExpr is as for
// IPXEScriptURL. A client that is already iPXE is always chained to its
// script over HTTP, so a node never loops through its loader. An
// architecture without a bootloader here is an error that names it.
func Choose(c Client, loader inventory.Loader, arch inventory.Arch, macExpr string, o Options) (Boot, error) {
	if c.IPXE {
		return Boot{File: IPXEScriptURL(o.HTTPBase, macExpr), HTTP: true}, nil
	}
	a := c.Arch
	if !c.ArchKnown {
		a = ArchBIOS
		if arch == inventory.ArchUEFI {
			a = ArchEFIx64
		}
	}
	efi := o.EFILoader
	if efi == "" {
		efi = "ipxe.efi"
	}
	pxelinux := loader == inventory.LoaderPxelinux
	switch a {
	case ArchBIOS:
		if pxelinux {
			return Boot{File: "pxelinux.0"}, nil
		}
		return Boot{File: "undionly.kpxe"}, nil
	case ArchEFIBC, ArchEFIx64:
		if pxelinux {
			return Boot{File: "efi64/syslinux.efi"}, nil
		}
		return Boot{File: efi}, nil
	case ArchEFIx64HTTP:
		// The firmware's HTTP stack fetches iPXE; iPXE then asks again as
		// iPXE and is chained to its script. pxelinux has no HTTP boot.
		return Boot{File: o.HTTPBase + "/loaders/ipxe.efi", HTTP: true, HTTPClient: true}, nil
	}
	return Boot{}, fmt.Errorf("no bootloader for client architecture %s", a)
}

// Arches returns every architecture this package names, in ascending order:
// the ones the config generators ask Choose about.
func Arches() []Arch {
	out := make([]Arch, 0, len(archNames))
	for a := range archNames {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}
