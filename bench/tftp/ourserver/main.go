// Command ourserver runs netbootui's embedded TFTP server (package tftp,
// behind pxe.CleanName as the daemon runs it) over one directory, for bench/tftp/run.sh to compare with tftpd-hpa. The
// package's bootloaders (pxe.DefaultLoaders) are served as aliases, so
// ipxe.efi is there too. It runs until SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/metrics"
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
	direct := flag.Int("direct", 0, "transfers at a time on goroutines of their own (0: the server's default, -1: none)")
	schedstats := flag.Bool("schedstats", false, "print how long goroutines waited for a processor, at exit")
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
	if *direct != 0 {
		srv.DirectTransfers = *direct
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
	if *schedstats {
		printSchedLatencies()
	}
}

// printSchedLatencies prints the runtime's histogram of how long
// goroutines waited runnable before they ran (runtime/metrics
// /sched/latencies:seconds): the total, and the count and sum above 10us,
// 100us and 1ms.
func printSchedLatencies() {
	m := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(m)
	h := m[0].Value.Float64Histogram()
	var total uint64
	var sum float64
	above := map[float64][2]float64{1e-5: {}, 1e-4: {}, 1e-3: {}}
	for i, c := range h.Counts {
		lo, hi := h.Buckets[i], h.Buckets[i+1]
		mid := lo
		if !math.IsInf(hi, 1) && !math.IsInf(lo, -1) {
			mid = (lo + hi) / 2
		}
		total += c
		sum += float64(c) * mid
		for th, v := range above {
			if lo >= th {
				above[th] = [2]float64{v[0] + float64(c), v[1] + float64(c)*mid}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "ourserver: sched latencies: %d waits, %.3fs in all; >10us %.0f (%.3fs), >100us %.0f (%.3fs), >1ms %.0f (%.3fs)\n",
		total, sum, above[1e-5][0], above[1e-5][1], above[1e-4][0], above[1e-4][1], above[1e-3][0], above[1e-3][1])
}
