// Command netbootui is the cluster boot console and its daemon.
//
//	netbootui serve --inventory nodes.yaml --data /var/lib/netbootui ...
//	netbootui validate nodes.yaml
//	netbootui node list [SELECTION] [--dirty] [--stage S] [-o json|wide]
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
//	netbootui completion bash|zsh|fish
//	netbootui version
//
// `netbootui help VERB` and `netbootui VERB --help` describe each verb. The
// command tree is built on github.com/spf13/cobra (cli.go); this package
// only parses flags and wires packages together.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

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
