// Command kexec-bench measures reboot-clean by kexec against reboot-clean by
// power cycle on the same TCG QEMU node (internal/lab/kexeclab): with QEMU's
// firmware as it is, then with a simulated long POST (SeaBIOS waiting at
// its boot menu). Run it through run.sh; see README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/demo/qemubmc"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/lab/kexeclab"
	"github.com/netbootui/netbootui/internal/lab/labbuild"
	"github.com/netbootui/netbootui/internal/power"
)

func main() {
	rounds := flag.Int("rounds", 2, "reboot-cleans of each path per firmware setting")
	post := flag.Duration("post", 20*time.Second, "the simulated long POST: SeaBIOS's boot menu wait (at most 65s)")
	limit := flag.Duration("limit", 40*time.Minute, "bound on the whole run")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	defer cancel()
	ok, err := run(ctx, *rounds, *post)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kexec-bench:", err)
		fmt.Println("FAIL")
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// setting is one firmware configuration the node is measured under.
type setting struct {
	name string
	post time.Duration
}

func run(ctx context.Context, rounds int, post time.Duration) (bool, error) {
	work, err := os.MkdirTemp("", "nbkxb-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(work)
	defer labbuild.Cleanup()
	kdir, err := lab.KernelDir()
	if err != nil {
		return false, err
	}
	t0 := time.Now()
	agent, err := labbuild.BuildAgent(work)
	if err != nil {
		return false, err
	}
	files, err := labbuild.BuildGeneration(kdir, agent)
	if err != nil {
		return false, err
	}
	fmt.Printf("built the agent and the default generation with it in %v\n", time.Since(t0).Round(100*time.Millisecond))

	dir := filepath.Join(work, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return false, err
	}
	mac := lab.MAC(47)
	inv, err := kexeclab.WriteInventory(dir, mac, 623)
	if err != nil {
		return false, err
	}
	d, err := daemon.New(daemon.Config{InventoryPath: inv, DataDir: filepath.Join(dir, "data"), HTTPListen: "127.0.0.1:0",
		StallTimeout: 3 * time.Minute, Power: power.Config{CallTimeout: 10 * time.Second},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return false, err
	}
	if err := d.Listen(); err != nil {
		d.Close()
		return false, err
	}
	dctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx) }()
	defer func() { stop(); <-done }()
	l, err := kexeclab.Start(d, kexeclab.Options{Dir: dir, VMDir: filepath.Join(work, "vm"), MAC: mac, Files: files})
	if err != nil {
		return false, err
	}
	defer l.Close()
	if err := l.PowerOn(ctx); err != nil {
		return false, err
	}
	if _, err := l.Booted(ctx, true); err != nil {
		return false, err
	}

	fmt.Printf("\n%-24s %-6s %10s %10s %10s\n", "firmware", "path", "min", "median", "max")
	allOK := true
	for _, s := range []setting{{"QEMU (SeaBIOS, iPXE)", 0}, {fmt.Sprintf("long POST (+%v menu)", post), post}} {
		o := l.VM.Options()
		o.BootMenu = s.post
		if err := qemubmc.WriteChassisControl(filepath.Join(o.Dir, "chassis_control"), o); err != nil {
			return false, err
		}
		times := map[string][]time.Duration{}
		failed := false
		for i := 0; i < rounds && !failed; i++ {
			for _, via := range []string{"kexec", "power"} {
				took, err := clean(ctx, l, via)
				if err != nil {
					fmt.Printf("%-24s %-6s FAIL: %v\n", s.name, via, err)
					failed = true
					break
				}
				times[via] = append(times[via], took)
			}
		}
		if failed {
			allOK = false
			fmt.Printf("%-24s FAIL\n", s.name)
			continue
		}
		for _, via := range []string{"kexec", "power"} {
			ts := times[via]
			slices.Sort(ts)
			fmt.Printf("%-24s %-6s %10v %10v %10v\n", s.name, via, r(ts[0]), r(ts[len(ts)/2]), r(ts[len(ts)-1]))
		}
		k, p := median(times["kexec"]), median(times["power"])
		fmt.Printf("%-24s power/kexec = %.2fx (median %v vs %v)\n", s.name, float64(p)/float64(k), r(p), r(k))
	}
	return allOK, nil
}

// clean dirties the node, then reboot-cleans it by via, and returns the
// time from the request to the clean check-in.
func clean(ctx context.Context, l *kexeclab.Lab, via string) (time.Duration, error) {
	if _, err := l.Booted(ctx, via == "kexec"); err != nil {
		return 0, err
	}
	if err := l.Dirty(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	res, err := l.D.RebootClean(ctx, daemon.RebootRequest{Selection: kexeclab.Node, Via: via, Timeout: 5 * time.Minute,
		Who: "kexec-bench"}, nil)
	took := time.Since(start)
	switch {
	case err != nil:
		return 0, err
	case len(res) != 1 || !res[0].OK:
		return 0, fmt.Errorf("%+v", res)
	case res[0].Via != via:
		return 0, errors.New("ran by " + res[0].Via + ": " + res[0].Why)
	}
	return took, nil
}

func median(ts []time.Duration) time.Duration {
	s := slices.Clone(ts)
	slices.Sort(s)
	return s[len(s)/2]
}

func r(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
