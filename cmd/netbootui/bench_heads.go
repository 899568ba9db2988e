package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/bench/storm"
)

// headsVerb is `bench heads`: the same boot storm served by one head, then
// by three `serve --cluster` heads (bench/storm's RunHeads); it prints both
// and the ratio, FAIL and exit 1 on any failed boot.
func headsVerb(fs *pflag.FlagSet) runner {
	var cfg storm.HeadsConfig
	fs.IntVar(&cfg.Nodes, "nodes", 3000, "how many simulated nodes (1..65536)")
	fs.IntVar(&cfg.Workers, "workers", 2, "node processes")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound of each run")
	sizes := fs.String("sizes", "256K,512K,2M", "sizes of the generation's kernel, initrd and rootfs")
	output := fs.StringP("output", "o", "text", "text or json")
	flagWords(fs, "output", "text", "json")
	return func(ctx context.Context, _ []string) error {
		if cfg.Nodes < 1 || cfg.Nodes > 1<<16 {
			return fmt.Errorf("bench heads: --nodes %d: want 1..65536", cfg.Nodes)
		}
		if *output != "text" && *output != "json" {
			return fmt.Errorf("bench heads: -o %q: want text or json", *output)
		}
		var err error
		if cfg.Sizes, err = parseSizes(*sizes); err != nil {
			return fmt.Errorf("bench heads: --sizes %q: %w", *sizes, err)
		}
		dir, err := os.MkdirTemp("", "netbootui-heads-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
		if *output == "text" {
			cfg.Out = os.Stderr
			fmt.Printf("# netbootui bench heads --nodes %d --workers %d, %s, load %s\n", cfg.Nodes, cfg.Workers,
				time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadAverage())
		}
		rep, err := storm.RunHeads(ctx, cfg)
		if err != nil {
			return err
		}
		if *output == "json" {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				return err
			}
		} else {
			var b strings.Builder
			rep.WriteText(&b)
			fmt.Print(b.String())
		}
		if rep.Ratio == "" {
			return exitError(1)
		}
		return nil
	}
}
