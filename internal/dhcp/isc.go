package dhcp

import (
	"fmt"
	"io"
	"strings"
)

// iscIPXE is the condition for a client that is already iPXE. iPXE's
// encapsulated options (175) get a name of their own; ISC dhcpd knows
// option 93 as pxe-system-type.
const iscIPXE = `((exists user-class and option user-class = "iPXE") or exists nb-ipxe-encap)`

func iscArchTest(a Arch) string {
	return fmt.Sprintf("substring(option pxe-system-type, 0, 2) = %02x:%02x", byte(a>>8), byte(a))
}

// writeISC writes option definitions, one host declaration per node and the
// boot rules as if/elsif chains: in global scope for every client (inside
// "if known" with KnownOnly), and inside the host declaration of a pxelinux
// node, whose host scope overrides the global answer.
func writeISC(w io.Writer, p *plan) error {
	var b strings.Builder
	b.WriteString(p.header("#"))
	b.WriteString("\noption nb-ipxe-encap code 175 = string;\n")
	fmt.Fprintf(&b, "next-server %s;\n", p.c.NextServer)

	b.WriteString("\n# Boot files for clients that are already iPXE and by client architecture.\n")
	var global []rule
	for _, r := range p.rules {
		if !r.pxelinux {
			global = append(global, r)
		}
	}
	indent := ""
	if p.c.KnownOnly {
		b.WriteString("if known {\n")
		indent = "  "
	}
	iscChain(&b, indent, global)
	if p.c.KnownOnly {
		b.WriteString("}\n")
	}

	b.WriteString("\n# Nodes: boot MAC, fixed address when the inventory has one, hostname.\n")
	for _, h := range p.hosts {
		fmt.Fprintf(&b, "host %s {\n  hardware ethernet %s;\n", h.name, h.mac)
		if h.ip.IsValid() {
			fmt.Fprintf(&b, "  fixed-address %s;\n", h.ip)
		}
		fmt.Fprintf(&b, "  option host-name \"%s\";\n", h.name)
		if h.pxelinux {
			// The node's own answers where pxelinux differs; the
			// architectures it shares fall through to the global ones.
			var own []rule
			for _, r := range p.rules {
				if r.pxelinux {
					own = append(own, r)
				}
			}
			b.WriteString("  # pxelinux node\n")
			fmt.Fprintf(&b, "  if not %s {\n", iscIPXE)
			iscChain(&b, "    ", own)
			b.WriteString("  }\n")
		}
		b.WriteString("}\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// iscChain writes rules as one if/elsif chain in their order: the iPXE rule
// comes first, so the architecture tests only see other clients.
func iscChain(b *strings.Builder, indent string, rs []rule) {
	for i, r := range rs {
		kw := "} elsif"
		if i == 0 {
			kw = "if"
		}
		fmt.Fprintf(b, "%s%s ", indent, kw)
		if r.ipxe {
			b.WriteString(iscIPXE)
		} else {
			b.WriteString(iscArchTest(r.arch))
		}
		fmt.Fprintf(b, " {\n%s  # %s\n%s  filename \"%s\";\n", indent, r.describe(), indent, r.boot.File)
		if r.boot.HTTPClient {
			// dhcpd sends only what the client asked for: add option 60
			// to the parameter request list so that it is always sent.
			fmt.Fprintf(b, "%s  option vendor-class-identifier \"HTTPClient\";\n", indent)
			fmt.Fprintf(b, "%s  option dhcp-parameter-request-list = concat(option dhcp-parameter-request-list, 3c);\n", indent)
		}
	}
	if len(rs) > 0 {
		fmt.Fprintf(b, "%s}\n", indent)
	}
}
