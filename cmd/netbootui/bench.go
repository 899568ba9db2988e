package main

import (
	"context"
	"encoding/json"
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
	heads := newVerb("heads", "the same boot storm served by one head, then by three serve --cluster heads: the ratio", exactArgs(0), headsVerb)
	return newGroup("bench", "benches on simulated nodes", stormCmd, heads, worker)
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
	fs.IntVar(&cfg.CPUShares, "cpu-shares", 0, "run the server side and the node processes in cgroup v1 cpu groups of this weight each, so that other work on the machine takes the same share from netbootui and from the peers (needs root; 0: off)")
	rounds := fs.Int("rounds", 1, "run the storm (netbootui's run, then the peers') this many times; with more than one, a summary with the median and spread of the ratios follows")
	return func(ctx context.Context, _ []string) error { return runStorm(ctx, cfg, *sizes, *output, *rounds) }
}

func runStorm(ctx context.Context, cfg storm.Config, sizes, output string, rounds int) error {
	if cfg.Nodes < 1 || cfg.Nodes > demo.MaxNodes {
		return fmt.Errorf("bench storm: --nodes %d: want 1..%d", cfg.Nodes, demo.MaxNodes)
	}
	var err error
	if cfg.Sizes, err = parseSizes(sizes); err != nil {
		return fmt.Errorf("bench storm: --sizes %q: %w", sizes, err)
	}
	if rounds < 1 || rounds > 100 {
		return fmt.Errorf("bench storm: --rounds %d: want 1..100", rounds)
	}
	if output != "text" && output != "json" {
		return fmt.Errorf("bench storm: -o %q: want text or json", output)
	}
	if output == "text" {
		cfg.Out = os.Stderr
	}
	var reps []storm.Report
	failed := false
	for i := range rounds {
		if rounds > 1 && output == "text" {
			fmt.Printf("# round %d of %d, %s, load %s\n", i+1, rounds, time.Now().UTC().Format("2006-01-02 15:04:05 UTC"), loadAverage())
		}
		rep, err := stormRound(ctx, cfg)
		if err != nil {
			return err
		}
		if output == "json" && rounds == 1 {
			if err := rep.WriteJSON(os.Stdout); err != nil {
				return err
			}
		} else if output == "text" {
			rep.WriteText(os.Stdout)
		}
		failed = failed || rep.Failed > 0 || rep.Peer != nil && rep.Peer.Failed > 0
		reps = append(reps, rep)
	}
	if rounds > 1 {
		sum := storm.Summarize(reps)
		if output == "json" {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(struct {
				Summary storm.Summary  `json:"summary"`
				Reports []storm.Report `json:"reports"`
			}{sum, reps}); err != nil {
				return err
			}
		} else {
			sum.WriteText(os.Stdout)
		}
	}
	if failed {
		return exitError(1)
	}
	return nil
}

// stormRound runs one storm in a data folder of its own.
func stormRound(ctx context.Context, cfg storm.Config) (storm.Report, error) {
	dir, err := os.MkdirTemp("", "netbootui-storm-")
	if err != nil {
		return storm.Report{}, err
	}
	defer os.RemoveAll(dir)
	cfg.DataDir = dir
	return storm.Run(ctx, cfg)
}

// loadAverage is the machine's load average (1, 5, 15 minutes), or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
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
