package main

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/netbootui/netbootui/internal/dhcp"
	"github.com/netbootui/netbootui/internal/inventory"
)

// cmdDHCPConfig writes the site DHCP server's host entries and boot options
// for the inventory's nodes (or a selection) to stdout.
func cmdDHCPConfig(args []string) error {
	fs := flag.NewFlagSet("dhcp-config", flag.ContinueOnError)
	format := fs.String("format", "", "configuration `format`: dnsmasq, isc or kea")
	invPath := fs.String("inventory", "/etc/netbootui/nodes.yaml", "inventory `file`")
	next := fs.String("next-server", "", "IPv4 `address` of the TFTP server (netbootui serve --tftp-listen)")
	base := fs.String("http-base", "", "boot `URL` nodes reach the daemon's HTTP server at, e.g. http://10.0.0.1:8080")
	efi := fs.String("efi-loader", "ipxe.efi", "iPXE build UEFI x86-64 clients get over TFTP: ipxe.efi or snponly.efi")
	knownOnly := fs.Bool("known-only", false, "answer only the inventory's nodes (default: any PXE client, so that unknown nodes are reported)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: netbootui dhcp-config --format dnsmasq|isc|kea --next-server IP --http-base URL [--inventory FILE] [--efi-loader snponly.efi] [--known-only] [SELECTION]")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 0)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return dhcpUsageErrorf(fs, "one SELECTION at most, got %q", strings.Join(pos, " "))
	}
	f := dhcp.Format(*format)
	if !validFormat(f) {
		return dhcpUsageErrorf(fs, "--format %q: want dnsmasq, isc or kea", *format)
	}
	if *next == "" || *base == "" {
		return dhcpUsageErrorf(fs, "--next-server and --http-base are required")
	}
	ns, err := netip.ParseAddr(*next)
	if err != nil || !ns.Is4() {
		return dhcpUsageErrorf(fs, "--next-server %q: want an IPv4 address", *next)
	}
	inv, err := inventory.Load(*invPath)
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
		Options:    dhcp.Options{HTTPBase: *base, EFILoader: *efi},
		NextServer: ns,
		Source:     *invPath,
		Selection:  sel,
		KnownOnly:  *knownOnly,
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
func dhcpUsageErrorf(fs *flag.FlagSet, format string, a ...any) error {
	fmt.Fprintf(os.Stderr, "netbootui %s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return exitError(2)
}
