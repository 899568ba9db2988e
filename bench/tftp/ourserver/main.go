// Command ourserver runs netbootui's embedded TFTP server (package tftp,
// behind pxe.CleanName as the daemon runs it) over one directory, for bench/tftp/run.sh to compare with tftpd-hpa. The
// package's bootloaders (pxe.DefaultLoaders) are served as aliases, so
// ipxe.efi is there too. It runs until SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/tftp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:16970", "UDP address to listen on (loopback only for benchmarks)")
	dir := flag.String("dir", "", "directory to serve (required)")
	blksize := flag.Int("blksize", tftp.DefaultBlockSize, "largest block size a client may negotiate")
	window := flag.Int("windowsize", 0, "largest RFC 7440 window a client may negotiate (0: the server's default)")
	loops := flag.Int("loops", 0, "transfer loops (0: the server's default)")
	timeout := flag.Duration("timeout", time.Second, "per-block retransmit timeout")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	verbose := flag.Bool("v", false, "log every transfer")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "ourserver: -dir is required")
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ourserver:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "ourserver:", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	root := &pxe.FileRoot{Dir: *dir, Aliases: pxe.DefaultLoaders()}
	if err := root.Check(); err != nil {
		fmt.Fprintln(os.Stderr, "ourserver:", err)
		os.Exit(1)
	}
	srv := pxe.NewTFTPServer(pxe.FileRootSource{Root: root}, nil)
	srv.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv.Timeout = *timeout
	srv.MaxBlockSize = *blksize
	if *loops > 0 {
		srv.Loops = *loops
	}
	if *window > 0 {
		srv.MaxWindowSize = *window
	}
	if err := srv.Listen(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "ourserver:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "ourserver: serving %s on %s\n", *dir, srv.LocalAddr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; srv.Close() }()
	if err := srv.Serve(); err != nil {
		fmt.Fprintln(os.Stderr, "ourserver:", err)
		os.Exit(1)
	}
}
