package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/pxe"
)

// cmdNFSExports prints the nfs-ganesha EXPORT entries the site's NFS server
// needs for the inventory's settings.nfs: the generations' trees and the
// nodes' persistent directories.
func cmdNFSExports(args []string) error {
	fs := flag.NewFlagSet("nfs-exports", flag.ContinueOnError)
	invPath := fs.String("inventory", "/etc/netbootui/nodes.yaml", "inventory `file`")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: netbootui nfs-exports [--inventory FILE]")
		fs.PrintDefaults()
	}
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	inv, err := inventory.Load(*invPath)
	if err != nil {
		return err
	}
	out := pxe.NFSExports(inv)
	if out == "" {
		return errors.New("the inventory has no settings.nfs (server, export, dir)")
	}
	fmt.Print(out)
	return nil
}
