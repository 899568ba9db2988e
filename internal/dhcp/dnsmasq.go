package dhcp

import (
	"fmt"
	"io"
	"strings"
)

// dnsmasq tags the generated fragment sets. "known" is dnsmasq's own: set
// when a dhcp-host line matches the client.
const (
	dnsmasqIPXE     = "nb-ipxe"
	dnsmasqPxelinux = "nb-pxelinux"
)

func dnsmasqArchTag(a Arch) string { return fmt.Sprintf("nb-arch-%d", uint16(a)) }

// writeDnsmasq writes tags for the client classes, one dhcp-host line per
// node and one dhcp-boot line per rule. The boot lines' tag sets exclude one
// another, so their order does not matter to dnsmasq.
func writeDnsmasq(w io.Writer, p *plan) error {
	var b strings.Builder
	b.WriteString(p.header("#"))
	b.WriteString("\n# Client classes: already iPXE (user class \"iPXE\" or iPXE's option 175), and\n# the architecture (option 93) of PXE clients.\n")
	fmt.Fprintf(&b, "dhcp-userclass=set:%s,iPXE\n", dnsmasqIPXE)
	fmt.Fprintf(&b, "dhcp-match=set:%s,175\n", dnsmasqIPXE)
	seen := map[Arch]bool{}
	for _, r := range p.rules {
		if !r.ipxe && !seen[r.arch] {
			seen[r.arch] = true
			fmt.Fprintf(&b, "dhcp-match=set:%s,option:client-arch,%d\n", dnsmasqArchTag(r.arch), uint16(r.arch))
		}
	}
	b.WriteString("\n# Nodes: boot MAC, fixed address when the inventory has one, hostname.\n")
	for _, h := range p.hosts {
		fields := []string{h.mac}
		if h.pxelinux {
			fields = append(fields, "set:"+dnsmasqPxelinux)
		}
		if h.ip.IsValid() {
			fields = append(fields, h.ip.String())
		}
		fields = append(fields, h.name)
		fmt.Fprintf(&b, "dhcp-host=%s\n", strings.Join(fields, ","))
	}
	b.WriteString("\n# Boot files.\n")
	pxeArches := p.pxelinuxArches()
	for _, r := range p.rules {
		var tags []string
		if r.ipxe {
			tags = append(tags, dnsmasqIPXE)
		} else {
			tags = append(tags, "!"+dnsmasqIPXE, dnsmasqArchTag(r.arch))
			switch {
			case r.pxelinux:
				tags = append(tags, dnsmasqPxelinux)
			case pxeArches[r.arch]:
				tags = append(tags, "!"+dnsmasqPxelinux)
			}
		}
		if p.c.KnownOnly {
			tags = append(tags, "known")
		}
		sel := "tag:" + strings.Join(tags, ",tag:")
		fmt.Fprintf(&b, "# %s\n", r.describe())
		if r.boot.HTTP {
			fmt.Fprintf(&b, "dhcp-boot=%s,%s\n", sel, r.boot.File)
		} else {
			fmt.Fprintf(&b, "dhcp-boot=%s,%s,,%s\n", sel, r.boot.File, p.c.NextServer)
		}
		if r.boot.HTTPClient {
			fmt.Fprintf(&b, "dhcp-option-force=%s,60,HTTPClient\n", sel)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
