package dhcp

import (
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/netbootui/netbootui/internal/inventory"
)

// Format is a DHCP server whose configuration Generate writes.
type Format string

// The formats Generate writes.
const (
	FormatDnsmasq Format = "dnsmasq" // a dnsmasq conf-file fragment
	FormatISC     Format = "isc"     // an ISC dhcpd include file
	FormatKea     Format = "kea"     // members of Kea's "Dhcp4" object, for <?include?>
)

// Formats lists the formats in the order help texts name them.
var Formats = []Format{FormatDnsmasq, FormatISC, FormatKea}

// Config is what a generated configuration needs beside the nodes.
type Config struct {
	// Options shape every boot answer (Choose); HTTPBase is required.
	Options
	// NextServer is the TFTP server's IPv4 address (siaddr, "next-server").
	NextServer netip.Addr
	// Source names the inventory in the header comment, e.g. its path.
	Source string
	// Selection is the node selection the entries were made for ("" for
	// every node), named in the header.
	Selection string
	// KnownOnly restricts boot answers to the nodes in the file. By default
	// (false) any PXE client gets boot options too: an unknown node then
	// loads iPXE, asks the daemon for its script and is reported as an
	// unknown node with its MAC, the first step of adding it.
	KnownOnly bool
}

// Generate writes the configuration of format f for nodes: one host entry
// per node (boot MAC, fixed IPv4 address when the inventory has one,
// hostname) and the boot-file rules derived from Choose. Output is sorted by
// node name and otherwise fixed, so the same input gives the same bytes.
// Nothing is written when the input is refused; errors name the node and its
// place in the inventory.
func Generate(w io.Writer, f Format, nodes []*inventory.Node, c Config) error {
	var gen func(io.Writer, *plan) error
	switch f {
	case FormatDnsmasq:
		gen = writeDnsmasq
	case FormatISC:
		gen = writeISC
	case FormatKea:
		gen = writeKea
	default:
		return fmt.Errorf("dhcp: unknown config format %q: want dnsmasq, isc or kea", f)
	}
	p, err := newPlan(nodes, c)
	if err != nil {
		return err
	}
	var b strings.Builder
	if err := gen(&b, p); err != nil {
		return err
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// Dnsmasq writes a dnsmasq configuration fragment (conf-file=) for nodes.
func Dnsmasq(w io.Writer, nodes []*inventory.Node, c Config) error {
	return Generate(w, FormatDnsmasq, nodes, c)
}

// ISC writes an ISC dhcpd include file for nodes.
func ISC(w io.Writer, nodes []*inventory.Node, c Config) error {
	return Generate(w, FormatISC, nodes, c)
}

// Kea writes the members of Kea's "Dhcp4" object ("client-classes",
// "reservations" and the settings global reservations need) for nodes, to
// be included with <?include "FILE"?> inside the site's Dhcp4 object.
func Kea(w io.Writer, nodes []*inventory.Node, c Config) error {
	return Generate(w, FormatKea, nodes, c)
}

// host is one node's entry.
type host struct {
	name     string
	mac      string // aa:bb:cc:dd:ee:ff
	ip       netip.Addr
	pxelinux bool
}

// rule is one boot answer: for clients that are already iPXE, or for one
// architecture and loader.
type rule struct {
	ipxe     bool
	arch     Arch
	pxelinux bool // only for nodes whose loader is pxelinux
	boot     Boot
}

// plan is what every format writes, validated once.
type plan struct {
	c     Config
	hosts []host
	rules []rule
	// pxelinux is true when some host uses pxelinux (its class is needed).
	pxelinux bool
}

// hostnameRe is an RFC 1123 host label: safe in every format unquoted.
var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// urlRe are the characters a boot URL may carry into a configuration: no
// quotes, commas, spaces, comment or escape characters in any format.
var urlRe = regexp.MustCompile(`^https?://[A-Za-z0-9._~:/@%+\[\]-]+$`)

func newPlan(nodes []*inventory.Node, c Config) (*plan, error) {
	if err := c.Options.Validate(); err != nil {
		return nil, err
	}
	if !urlRe.MatchString(c.HTTPBase) {
		return nil, fmt.Errorf("dhcp: boot URL %q: only letters, digits and ._~:/@%%+[]- may follow the scheme in a generated config", c.HTTPBase)
	}
	if !c.NextServer.Is4() {
		return nil, fmt.Errorf("dhcp: next server %q: want an IPv4 address", c.NextServer)
	}
	if c.Source == "" || strings.ContainsAny(c.Source, "\n\r") || !printable(c.Source) {
		return nil, fmt.Errorf("dhcp: inventory name %q: want a printable one-line name for the header", c.Source)
	}
	if !printable(c.Selection) || strings.ContainsAny(c.Selection, "\n\r") {
		return nil, fmt.Errorf("dhcp: selection %q: want a printable one-line expression", c.Selection)
	}
	p := &plan{c: c}
	seenMAC := map[string]string{}
	seenName := map[string]bool{}
	seenIP := map[netip.Addr]string{}
	for _, n := range nodes {
		at := fmt.Sprintf("node %q", n.Name)
		if n.Defined.File != "" {
			at = n.Defined.String() + ": " + at
		}
		if !hostnameRe.MatchString(n.Name) {
			return nil, fmt.Errorf("dhcp: %s: the name is not a valid DHCP hostname (letters, digits and inner hyphens, at most 63)", at)
		}
		if seenName[n.Name] {
			return nil, fmt.Errorf("dhcp: %s: the name is given twice", at)
		}
		seenName[n.Name] = true
		mac := n.BootMAC()
		if len(mac) != 6 {
			return nil, fmt.Errorf("dhcp: %s: no boot NIC with a 6-byte MAC", at)
		}
		h := host{name: n.Name, mac: mac.String(), pxelinux: n.Loader == inventory.LoaderPxelinux}
		if prev, dup := seenMAC[h.mac]; dup {
			return nil, fmt.Errorf("dhcp: %s: MAC %s is node %s's too", at, h.mac, prev)
		}
		seenMAC[h.mac] = n.Name
		if n.IP.IsValid() {
			ip := n.IP.Unmap()
			if !ip.Is4() {
				return nil, fmt.Errorf("dhcp: %s: ip %s is not IPv4: a DHCPv4 fixed address needs one", at, n.IP)
			}
			if !ip.IsGlobalUnicast() {
				return nil, fmt.Errorf("dhcp: %s: ip %s is not a unicast host address", at, ip)
			}
			if prev, dup := seenIP[ip]; dup {
				return nil, fmt.Errorf("dhcp: %s: ip %s is node %s's too", at, ip, prev)
			}
			seenIP[ip] = n.Name
			h.ip = ip
		}
		p.pxelinux = p.pxelinux || h.pxelinux
		p.hosts = append(p.hosts, h)
	}
	sort.Slice(p.hosts, func(i, j int) bool { return p.hosts[i].name < p.hosts[j].name })
	var err error
	if p.rules, err = rules(c.Options, p.pxelinux); err != nil {
		return nil, err
	}
	return p, nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// rules derives the boot answers from Choose: one for clients that are
// already iPXE, then one per architecture Choose has a loader for, and for
// pxelinux nodes one per architecture where their answer differs.
func rules(o Options, pxelinux bool) ([]rule, error) {
	b, err := Choose(Client{IPXE: true}, "", "", "${mac}", o)
	if err != nil {
		return nil, err
	}
	out := []rule{{ipxe: true, boot: b}}
	for _, a := range Arches() {
		def, err := Choose(Client{Arch: a, ArchKnown: true}, inventory.LoaderIPXE, "", "${mac}", o)
		if err != nil {
			continue // no loader for this architecture: no rule, no answer
		}
		out = append(out, rule{arch: a, boot: def})
		if !pxelinux {
			continue
		}
		if pb, err := Choose(Client{Arch: a, ArchKnown: true}, inventory.LoaderPxelinux, "", "${mac}", o); err == nil && pb != def {
			out = append(out, rule{arch: a, pxelinux: true, boot: pb})
		}
	}
	for _, r := range out {
		if strings.ContainsAny(r.boot.File, "\"',#; \\\n") {
			return nil, fmt.Errorf("dhcp: boot file %q cannot go into a generated config", r.boot.File)
		}
	}
	return out, nil
}

// pxelinuxArches are the architectures with a pxelinux-specific rule.
func (p *plan) pxelinuxArches() map[Arch]bool {
	m := map[Arch]bool{}
	for _, r := range p.rules {
		if r.pxelinux {
			m[r.arch] = true
		}
	}
	return m
}

// header is the generated-file comment, each line prefixed by mark.
func (p *plan) header(mark string) string {
	sel := p.c.Selection
	if sel == "" {
		sel = "all nodes"
	}
	unknown := "every PXE client gets boot options (unknown ones are reported by the daemon)"
	if p.c.KnownOnly {
		unknown = "only the nodes below get boot options"
	}
	lines := []string{
		"Generated by netbootui dhcp-config from " + p.c.Source + " (" + sel + "). Do not edit: regenerate.",
		fmt.Sprintf("%d node(s); TFTP server %s, HTTP %s; %s.", len(p.hosts), p.c.NextServer, p.c.HTTPBase, unknown),
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(mark + " " + l + "\n")
	}
	return b.String()
}

// describe says in words which clients a rule answers, for comments.
func (r rule) describe() string {
	if r.ipxe {
		return "clients that are already iPXE: their script"
	}
	s := "arch " + r.arch.String()
	if r.pxelinux {
		s += ", pxelinux nodes"
	}
	return s
}
