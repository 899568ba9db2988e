package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/bench/storm"
	"github.com/netbootui/netbootui/internal/demo"
)

// benchCmd holds the benches: `bench storm` switches N simulated nodes on at
// once and reports how their boots went (bench/storm); `bench storm-worker`
// (hidden) is the storm's node process, started by the storm itself.
func benchCmd() *cobra.Command {
	stormCmd := newVerb("storm", "switch N simulated nodes on at once and report how their boots went", exactArgs(0), stormVerb)
	worker := &cobra.Command{Use: "storm-worker", Hidden: true, Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if os.Getenv(storm.WorkerEnv) != "1" {
				return usageError{cmd: c.Parent(), msg: `unknown verb "storm-worker"`}
			}
			return storm.RunWorker(os.Stdin, os.Stdout)
		}}
	return newGroup("bench", "benches on simulated nodes", stormCmd, worker)
}

func stormVerb(fs *pflag.FlagSet) runner {
	var cfg storm.Config
	fs.IntVar(&cfg.Nodes, "nodes", 1000, "how many simulated nodes (1.."+strconv.Itoa(demo.MaxNodes)+")")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound of each run (netbootui's, the peers')")
	fs.IntVar(&cfg.Workers, "workers", 2, "node processes")
	sizes := fs.String("sizes", "256K,512K,2M", "sizes of the generation's kernel, initrd and rootfs")
	output := fs.StringP("output", "o", "text", "text or json")
	flagWords(fs, "output", "text", "json")
	fs.BoolVar(&cfg.Peers, "peers", true, "also run the same storm against tftpd-hpa + nginx (needs root, in.tftpd and nginx) and print the ratio")
	return func(ctx context.Context, _ []string) error { return runStorm(ctx, cfg, *sizes, *output) }
}

func runStorm(ctx context.Context, cfg storm.Config, sizes, output string) error {
	if cfg.Nodes < 1 || cfg.Nodes > demo.MaxNodes {
		return fmt.Errorf("bench storm: --nodes %d: want 1..%d", cfg.Nodes, demo.MaxNodes)
	}
	var err error
	if cfg.Sizes, err = parseSizes(sizes); err != nil {
		return fmt.Errorf("bench storm: --sizes %q: %w", sizes, err)
	}
	if output != "text" && output != "json" {
		return fmt.Errorf("bench storm: -o %q: want text or json", output)
	}
	dir, err := os.MkdirTemp("", "netbootui-storm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg.DataDir = dir
	if output == "text" {
		cfg.Out = os.Stderr
	}
	rep, err := storm.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if output == "json" {
		if err := rep.WriteJSON(os.Stdout); err != nil {
			return err
		}
	} else {
		rep.WriteText(os.Stdout)
	}
	if rep.Failed > 0 || rep.Peer != nil && rep.Peer.Failed > 0 {
		return exitError(1)
	}
	return nil
}

// parseSizes reads "256K,512K,2M" (suffixes K, M, G are powers of 1024).
func parseSizes(s string) ([3]int64, error) {
	var out [3]int64
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return out, fmt.Errorf("want three sizes, got %d", len(parts))
	}
	for i, p := range parts {
		p = strings.TrimSpace(p)
		mult := int64(1)
		switch {
		case strings.HasSuffix(p, "K"):
			mult, p = 1<<10, strings.TrimSuffix(p, "K")
		case strings.HasSuffix(p, "M"):
			mult, p = 1<<20, strings.TrimSuffix(p, "M")
		case strings.HasSuffix(p, "G"):
			mult, p = 1<<30, strings.TrimSuffix(p, "G")
		}
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 1 || n > (1<<30)/mult {
			return out, fmt.Errorf("size %d %q: want 1 byte to 1G", i+1, parts[i])
		}
		out[i] = n * mult
	}
	return out, nil
}
