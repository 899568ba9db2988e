// Command netbootui is the cluster boot console and its daemon.
//
//	netbootui serve --inventory nodes.yaml --data /var/lib/netbootui ...
//	netbootui validate nodes.yaml
//	netbootui node list [-o json|wide]
//	netbootui node show NODE
//	netbootui node set NODE key=value ... [--unset key] [--base REV]
//	netbootui group set GROUP key=value ...
//	netbootui boot show NODE [-o ipxe|pxelinux]
//	netbootui boot preview NODE --file OVERRIDE [-o ipxe|pxelinux]
//	netbootui events [-f] [--node NODE] [-n N]
//	netbootui image import NAME --kernel K --initrd I --rootfs R [--publish]
//	netbootui image list
//	netbootui image publish NAME GENERATION
//	netbootui power on|off|soft|cycle|reset|status|bootdev-pxe SELECTION
//	netbootui audit [-n N]
//
// This file only parses flags and wires packages together.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/netbootui/netbootui/internal/apiclient"
)

const usage = `netbootui: a console and boot server for clusters of network-booted nodes

Daemon:
  netbootui serve --inventory FILE --data DIR [--http-listen ADDR] [--tftp-listen ADDR] [--api-socket PATH]
                  [--api-socket-group G] [--viewer-group G] [--operator-group G] [--admin-group G]
                                        API roles from the caller's unix groups (defaults netbootui-viewer,
                                        netbootui-operator, netbootui-admin; root and the daemon's user are admins)
                  [--proxydhcp IFACE [--proxydhcp-known-only] [--proxydhcp-efi-loader snponly.efi]]
                                        also answer PXE clients on IFACE (ports 67, 4011), never giving addresses
                  [--http-max-conns N] [--http-*-timeout D] [--ssh-handshake-timeout D] [--ssh-max-unauthenticated N]
                                        limits (SECURITY.md)

Inventory:
  netbootui validate FILE                      check an inventory; errors as FILE:LINE:COL: message
  netbootui dhcp-config --format dnsmasq|isc|kea --next-server IP --http-base URL [--inventory FILE]
                        [--efi-loader snponly.efi] [--known-only] [SELECTION]   the site DHCP server's entries, to stdout
  netbootui nfs-exports [--inventory FILE]     the site NFS server's (nfs-ganesha) export entries, to stdout
  netbootui nbd-config [--inventory FILE] [--data DIR] [--listen ADDR]
                                               nbd-server's configuration for the nbd images, to stdout

Client verbs (talk to the daemon at --api-socket, default $NETBOOTUI_SOCKET or ` + apiclient.DefaultSocket + `):
  netbootui status
  netbootui node list [-o json|wide]
  netbootui node show NODE [-o json]
  netbootui node set NODE key=value ... [--unset key] [--base REVISION]
  netbootui group set GROUP key=value ... [--unset key] [--base REVISION]
  netbootui boot show NODE [-o ipxe|pxelinux]
  netbootui boot preview NODE --file FILE [-o ipxe|pxelinux]
  netbootui events [-f] [--node NODE] [-n N] [-o json]
  netbootui image list
  netbootui image build NAME [--publish] [--force]   (or --recipe DIR)
  netbootui image show NAME
  netbootui image rollback NAME
  netbootui image gc NAME [--keep N]
  netbootui image import NAME --kernel FILE --initrd FILE --rootfs FILE [--publish]
  netbootui image publish NAME GENERATION
  netbootui image show NAME GENERATION|current [-o json]   manifest and provenance
  netbootui image verify NAME GENERATION           reread every file against the manifest
  netbootui image diff IMAGE[:GEN] IMAGE[:GEN]      (or IMAGE GEN1 GEN2) files, kernel, initramfs, packages
  netbootui image exec NAME [--publish|--commit|--discard] [--save-to-recipe] -- CMD...
  netbootui image shell NAME [--publish|--commit|--discard] [--save-to-recipe]
  netbootui reload
  netbootui power on|off|soft|cycle|reset|status|bootdev-pxe SELECTION [-o json]
  netbootui reboot-clean SELECTION [--timeout 10m] [-o json]
  netbootui audit [-n N] [-o json]
  netbootui console NODE                       the node's serial console (SOL); ~. at line start detaches
  netbootui console --log NODE [-n N] [-o json]  the node's captured console lines
  netbootui stage create|preview SELECTION GENERATION [--wave N|N%] [--max-in-flight N] [--max-failures N] [--timeout D] [--reboot-back]
  netbootui stage run|halt|resume|abort|promote|rollback [ID]
  netbootui stage show [ID] [-f]    stage list

Simulation (everything on loopback high ports, no root, no hardware):
  netbootui demo [--nodes 64] [--no-tui] [--api-socket PATH] [--data DIR] [--image auto|recipe|tiny]
  netbootui bench storm [--nodes 1000] [--timeout 5m] [-o json]

SELECTION is a hostlist (n[01-08],gpu1) or @group; it is never empty.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		fmt.Fprintln(os.Stderr, "netbootui:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a status after the verb printed its own
// message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return cmdConsole(ctx, args)
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "serve":
		return cmdServe(ctx, rest)
	case "validate":
		return cmdValidate(rest)
	case "status":
		return cmdStatus(ctx, rest)
	case "node":
		return cmdNode(ctx, rest)
	case "group":
		return cmdGroup(ctx, rest)
	case "boot":
		return cmdBoot(ctx, rest)
	case "events":
		return cmdEvents(ctx, rest)
	case "image":
		return cmdImage(ctx, rest)
	case "reload":
		return cmdReload(ctx, rest)
	case "power":
		return cmdPower(ctx, rest)
	case "reboot-clean":
		return cmdRebootClean(ctx, rest)
	case "audit":
		return cmdAudit(ctx, rest)
	case "demo":
		return cmdDemo(ctx, rest)
	case "bench":
		return cmdBench(ctx, rest)
	case "stage":
		return cmdStage(ctx, rest)
	case "console":
		return cmdConsoleSOL(ctx, rest)
	case "dhcp-config":
		return cmdDHCPConfig(rest)
	case "nfs-exports":
		return cmdNFSExports(rest)
	case "nbd-config":
		return cmdNBDConfig(rest)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprintf(os.Stderr, "netbootui: unknown verb %q\n\n%s", verb, usage)
	return exitError(2)
}
