package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/roottransport"
)

// cmdNFSExports prints the nfs-ganesha EXPORT entries the site's NFS server
// needs for the inventory's settings.nfs: the generations' trees and the
// nodes' persistent directories.
func cmdNFSExports(args []string) error {
	inv, err := inventoryVerb("nfs-exports", "usage: netbootui nfs-exports [--inventory FILE]", args, nil)
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

// cmdNBDConfig prints the nbd-server configuration that serves the
// generations of the inventory's nbd images from the daemon's image store.
func cmdNBDConfig(args []string) error {
	var dataDir, listen *string
	inv, err := inventoryVerb("nbd-config", "usage: netbootui nbd-config [--inventory FILE] [--data DIR] [--listen ADDR]   (the port is settings.nbd.port)", args,
		func(fs *flag.FlagSet) {
			dataDir = fs.String("data", "/var/lib/netbootui", "the daemon's data `dir` (its image store is DIR/images)")
			listen = fs.String("listen", "0.0.0.0", "`address` nbd-server listens on")
		})
	if err != nil {
		return err
	}
	if inv.Settings.NBD.Server == "" {
		return errors.New("the inventory has no settings.nbd (server, port)")
	}
	store, err := image.OpenStore(filepath.Join(*dataDir, "images"))
	if err != nil {
		return err
	}
	port := roottransport.NBDSite{Server: inv.Settings.NBD.Server, Port: inv.Settings.NBD.Port}.PortOrDefault()
	out, err := daemon.NBDServerConfigFor(inv, store, *listen, port)
	if err != nil {
		return err
	}
	fmt.Print(out)
	return nil
}

// inventoryVerb parses the flags of a verb that reads the inventory file
// (--inventory, and those flags adds) and loads it.
func inventoryVerb(name, usage string, args []string, flags func(*flag.FlagSet)) (*inventory.Inventory, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	invPath := fs.String("inventory", "/etc/netbootui/nodes.yaml", "inventory `file`")
	if flags != nil {
		flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, usage)
		fs.PrintDefaults()
	}
	if _, err := parseArgs(fs, args, 0); err != nil {
		return nil, err
	}
	return inventory.Load(*invPath)
}
