package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/roottransport"
)

// nfsExportsCmd prints the nfs-ganesha EXPORT entries the site's NFS
// server needs for the inventory's settings.nfs: the generations' trees and
// the nodes' persistent directories.
func nfsExportsCmd() *cobra.Command {
	return newVerb("nfs-exports [--inventory FILE]", "the site NFS server's (nfs-ganesha) export entries, to stdout", exactArgs(0), func(fs *pflag.FlagSet) runner {
		invPath := inventoryFlag(fs)
		return func(context.Context, []string) error {
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
	})
}

// nbdConfigCmd prints the nbd-server configuration that serves the
// generations of the inventory's nbd images from the daemon's image store.
func nbdConfigCmd() *cobra.Command {
	c := newVerb("nbd-config [--inventory FILE] [--data DIR] [--listen ADDR]", "nbd-server's configuration for the nbd images, to stdout", exactArgs(0), func(fs *pflag.FlagSet) runner {
		invPath := inventoryFlag(fs)
		dataDir := fs.String("data", "/var/lib/netbootui", "the daemon's data `dir` (its image store is DIR/images)")
		listen := fs.String("listen", "0.0.0.0", "`address` nbd-server listens on")
		return func(context.Context, []string) error {
			inv, err := inventory.Load(*invPath)
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
	})
	c.Long = "nbd-server's configuration for the inventory's nbd images; the port is settings.nbd.port."
	return c
}

// inventoryFlag declares --inventory on a verb that reads the inventory file.
func inventoryFlag(fs *pflag.FlagSet) *string {
	return fs.String("inventory", "/etc/netbootui/nodes.yaml", "inventory `file`")
}
