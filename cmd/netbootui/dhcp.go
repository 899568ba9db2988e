package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/netbootui/netbootui/internal/dhcp"
	"github.com/netbootui/netbootui/internal/inventory"
)

// dhcpConfigCmd writes the site DHCP server's host entries and boot options
// for the inventory's nodes (or a selection) to stdout.
func dhcpConfigCmd() *cobra.Command {
	c := &cobra.Command{Use: "dhcp-config --format dnsmasq|isc|kea --next-server IP --http-base URL [SELECTION]",
		Short: "the site DHCP server's entries for the inventory's nodes, to stdout", Args: cobra.ArbitraryArgs}
	fs := c.Flags()
	format := fs.String("format", "", "configuration `format`: dnsmasq, isc or kea")
	invPath := fs.String("inventory", "/etc/netbootui/nodes.yaml", "inventory `file`")
	next := fs.String("next-server", "", "IPv4 `address` of the TFTP server (netbootui serve --tftp-listen)")
	base := fs.String("http-base", "", "boot `URL` nodes reach the daemon's HTTP server at, e.g. http://10.0.0.1:8080")
	efi := fs.String("efi-loader", "ipxe.efi", "iPXE build UEFI x86-64 clients get over TFTP: ipxe.efi or snponly.efi")
	knownOnly := fs.Bool("known-only", false, "answer only the inventory's nodes (default: any PXE client, so that unknown nodes are reported)")
	c.RunE = func(c *cobra.Command, pos []string) error {
		return dhcpConfig(c, pos, dhcpOptions{format: *format, inventory: *invPath, next: *next, base: *base, efi: *efi, knownOnly: *knownOnly})
	}
	c.RegisterFlagCompletionFunc("format", fixedWords(string(dhcp.FormatDnsmasq), string(dhcp.FormatISC), string(dhcp.FormatKea)))
	c.RegisterFlagCompletionFunc("efi-loader", fixedWords("ipxe.efi", "snponly.efi"))
	return c
}

// dhcpOptions are dhcp-config's flags.
type dhcpOptions struct {
	format, inventory, next, base, efi string
	knownOnly                          bool
}

func dhcpConfig(c *cobra.Command, pos []string, o dhcpOptions) error {
	if len(pos) > 1 {
		return dhcpUsageErrorf(c, "one SELECTION at most, got %q", strings.Join(pos, " "))
	}
	f := dhcp.Format(o.format)
	if !validFormat(f) {
		return dhcpUsageErrorf(c, "--format %q: want dnsmasq, isc or kea", o.format)
	}
	if o.next == "" || o.base == "" {
		return dhcpUsageErrorf(c, "--next-server and --http-base are required")
	}
	ns, err := netip.ParseAddr(o.next)
	if err != nil || !ns.Is4() {
		return dhcpUsageErrorf(c, "--next-server %q: want an IPv4 address", o.next)
	}
	inv, err := inventory.Load(o.inventory)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError(1)
	}
	nodes := inv.Nodes
	sel := ""
	if len(pos) == 1 {
		sel = pos[0]
		if nodes, err = inv.Select(sel); err != nil {
			return fmt.Errorf("dhcp-config: selection %q: %w", sel, err)
		}
	}
	var out bytes.Buffer
	err = dhcp.Generate(&out, f, nodes, dhcp.Config{
		Options:    dhcp.Options{HTTPBase: o.base, EFILoader: o.efi},
		NextServer: ns,
		Source:     o.inventory,
		Selection:  sel,
		KnownOnly:  o.knownOnly,
	})
	if err != nil {
		return err // names the node and its place in the inventory
	}
	_, err = stdout.Write(out.Bytes())
	return err
}

func validFormat(f dhcp.Format) bool {
	for _, k := range dhcp.Formats {
		if f == k {
			return true
		}
	}
	return false
}

// dhcpUsageErrorf reports a command-line mistake with the verb's usage (exit 2).
func dhcpUsageErrorf(c *cobra.Command, format string, a ...any) error {
	return usageError{cmd: c, msg: fmt.Sprintf(format, a...)}
}
