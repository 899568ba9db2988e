// Package storm is the boot-storm bench: it starts a simulated cluster
// (internal/demo), powers every node on at once through its BMC (real IPMI
// on loopback), and measures how long until every node has booted over the
// daemon's TFTP and HTTP servers and checked in, the failures, the p50/p99
// of each boot stage as the nodes saw it, and the process's RSS, goroutines
// and open files before and after the storm (before: idle, with the
// daemon's IPMI session to every BMC open, as after its first power poll).
//
// The daemon and the simulated nodes share one process, so the resource
// figures are the whole process's; the before/after difference is what the
// storm left behind.
package storm

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/netbootui/netbootui/internal/apitype"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/demo"
)

// Config sets up a storm.
type Config struct {
	Nodes   int           // default 1000, at most demo.MaxNodes
	Timeout time.Duration // the whole storm's bound; default 5 minutes
	DataDir string        // required; the cluster's files
	// Sizes of the generation's kernel, initrd and rootfs; default 256 KiB,
	// 512 KiB and 2 MiB.
	Sizes [3]int64
	// Out receives progress lines (nil: none).
	Out io.Writer
	// Peers also runs the same storm (same simulated nodes, same files,
	// the entries the daemon renders) against tftpd-hpa and nginx and
	// reports the ratio of the times until all booted.
	Peers bool
}

// Stat is the distribution of one duration over the nodes.
type Stat struct {
	Stage string        `json:"stage"`
	Count int           `json:"count"`
	P50   time.Duration `json:"p50"`
	P99   time.Duration `json:"p99"`
	Max   time.Duration `json:"max"`
}

// Proc is a snapshot of the process's resources.
type Proc struct {
	RSS        int64 `json:"rss_bytes"`
	Goroutines int   `json:"goroutines"`
	OpenFiles  int   `json:"open_files"`
}

// Report is what a storm measured.
type Report struct {
	Nodes    int      `json:"nodes"`
	Booted   int      `json:"booted"`
	Failed   int      `json:"failed"`
	Failures []string `json:"failures,omitempty"` // the first few, naming the node
	// Retried counts the nodes whose firmware had to start its boot over
	// (a TFTP timeout, an HTTP error) and still booted; RetryErrors are
	// the first few errors that made them.
	Retried     int           `json:"retried"`
	RetryErrors []string      `json:"retry_errors,omitempty"`
	Bytes       int64         `json:"bytes_per_boot"`
	PowerOn     time.Duration `json:"power_on"`   // the IPMI power-on of all nodes
	AllBooted   time.Duration `json:"all_booted"` // from the power-on to the last check-in
	// Stages are per node: power (the IPMI call), nbp, script, kernel,
	// initrd, rootfs, checkin (each from request to last byte) and boot
	// (from the start of the power-on to the node's check-in).
	Stages []Stat `json:"stages"`
	Before Proc   `json:"before"`
	After  Proc   `json:"after"`
	// Peer is the same storm served by tftpd-hpa + nginx (nil when it did
	// not run: PeerSkipped says why); Ratio is its all-booted time over
	// netbootui's.
	Peer        *Report `json:"peer,omitempty"`
	PeerSkipped string  `json:"peer_skipped,omitempty"`
	Ratio       string  `json:"ratio,omitempty"`
}

// Run runs one storm. It returns an error only when the storm could not be
// run; failed boots are in the report.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 1000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.Sizes == ([3]int64{}) {
		cfg.Sizes = [3]int64{256 << 10, 512 << 10, 2 << 20}
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	rep, err := runOne(ctx, cfg, nil)
	if err != nil || !cfg.Peers {
		if err == nil {
			rep.PeerSkipped = "not asked for (--peers)"
		}
		return rep, err
	}
	if why := checkPeers(); why != "" {
		rep.PeerSkipped = why
		return rep, nil
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	p, err := startPeers(pctx, cfg.DataDir)
	if err != nil {
		return rep, fmt.Errorf("tftpd-hpa + nginx: %w", err)
	}
	defer p.close()
	fmt.Fprintf(cfg.Out, "storm: the same storm against tftpd-hpa (%s) and nginx (%s)\n", p.tftpAddr, p.baseURL)
	peer, err := runOne(ctx, cfg, p)
	if err != nil {
		return rep, fmt.Errorf("tftpd-hpa + nginx: %w", err)
	}
	rep.Peer = &peer
	rep.Ratio = ratio(rep.AllBooted, peer.AllBooted)
	return rep, nil
}

// runOne is one storm on a fresh cluster; with p the nodes boot from the
// peers instead of the daemon.
func runOne(ctx context.Context, cfg Config, p *peers) (Report, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	rep := Report{Nodes: cfg.Nodes, Bytes: cfg.Sizes[0] + cfg.Sizes[1] + cfg.Sizes[2]}
	dcfg := demo.Config{Nodes: cfg.Nodes, DataDir: filepath.Join(cfg.DataDir, "netbootui"), Image: demo.ImageTiny, TinySizes: cfg.Sizes,
		StallNode: "-", StallTimeout: cfg.Timeout, POST: 20 * time.Millisecond, CheckinEvery: -1, PowerPoll: -1}
	if p != nil {
		dcfg.DataDir = filepath.Join(cfg.DataDir, "peer-cluster")
		dcfg.NodeBaseURL, dcfg.NodeTFTPAddr = p.baseURL, p.tftpAddr
	}
	d, err := demo.Start(ctx, dcfg)
	if err != nil {
		return rep, err
	}
	defer d.Close()
	if p != nil {
		if err := p.fill(d); err != nil {
			return rep, err
		}
	}
	// The daemon keeps one IPMI session per BMC (as after its first power
	// poll): open them first, so that before and after compare like with
	// like and the storm's own leftovers show.
	if _, err := d.Daemon.Power(ctx, daemon.PowerRequest{Selection: d.Selection(), Op: "status", Who: "bench"}, nil); err != nil {
		return rep, err
	}
	settle()
	rep.Before = snapshot()
	fmt.Fprintf(cfg.Out, "storm: %d nodes ready (%d MiB RSS, %d goroutines, %d open files); powering all on\n",
		cfg.Nodes, rep.Before.RSS>>20, rep.Before.Goroutines, rep.Before.OpenFiles)

	start := time.Now()
	booted := map[string]time.Duration{}
	res, err := d.PowerOnAll(ctx)
	rep.PowerOn = time.Since(start)
	stages := map[string][]time.Duration{}
	for _, r := range res {
		if r.Error == "" {
			stages["power"] = append(stages["power"], r.Duration)
		}
	}
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
	}
	lastReport := time.Now()
	for len(booted) < cfg.Nodes && ctx.Err() == nil {
		for name, n := range d.Nodes {
			if _, ok := booted[name]; ok {
				continue
			}
			if n.Stats().Checkins > 0 {
				booted[name] = time.Since(start)
			}
		}
		if time.Since(lastReport) > 5*time.Second {
			lastReport = time.Now()
			failing, last := 0, ""
			for _, n := range d.Nodes {
				if st := n.Stats(); st.Failures > 0 && st.Checkins == 0 {
					failing++
					last = st.LastError.Error()
				}
			}
			fmt.Fprintf(cfg.Out, "storm: %s: %d of %d booted", time.Since(start).Round(time.Millisecond), len(booted), cfg.Nodes)
			if failing > 0 {
				fmt.Fprintf(cfg.Out, "; %d failed a boot and retry (%s)", failing, last)
			}
			fmt.Fprintln(cfg.Out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep.Booted = len(booted)
	for _, t := range booted {
		rep.AllBooted = max(rep.AllBooted, t)
		stages["boot"] = append(stages["boot"], t)
	}
	for _, name := range d.Names {
		st := d.Nodes[name].Stats()
		for _, s := range st.Steps {
			stages[s.Step] = append(stages[s.Step], s.Took)
		}
		if _, ok := booted[name]; ok && st.Failures > 0 {
			rep.Retried++
			if len(rep.RetryErrors) < 5 {
				rep.RetryErrors = append(rep.RetryErrors, name+": "+st.LastError.Error())
			}
		}
		if _, ok := booted[name]; !ok {
			rep.Failed++
			why := "not booted within " + cfg.Timeout.String()
			if st.LastError != nil {
				why = st.LastError.Error()
			} else if v, err := d.Daemon.Node(name); err == nil && v.State.Stage != apitype.StageUnknown {
				why += " (daemon sees stage " + string(v.State.Stage) + ")"
			}
			if len(rep.Failures) < 10 {
				rep.Failures = append(rep.Failures, name+": "+why)
			}
		}
	}
	// The daemon must agree: every node it serves checked in.
	if rep.Failed == 0 && p == nil {
		st, _ := d.Counts()
		if st[apitype.StageBooted] != cfg.Nodes {
			rep.Failed = cfg.Nodes - st[apitype.StageBooted]
			rep.Failures = append(rep.Failures, fmt.Sprintf("the daemon sees %d booted of %d: %v", st[apitype.StageBooted], cfg.Nodes, st))
		}
	}
	for _, name := range []string{"power", "nbp", "script", "kernel", "initrd", "rootfs", "checkin", "boot"} {
		if ds := stages[name]; len(ds) > 0 {
			rep.Stages = append(rep.Stages, distribution(name, ds))
		}
	}
	for _, n := range d.Nodes {
		n.CloseIdle()
	}
	settle()
	rep.After = snapshot()
	return rep, nil
}

// settle lets closed connections finish closing and collects garbage, so
// that snapshots compare like with like.
func settle() {
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	time.Sleep(100 * time.Millisecond)
}

func distribution(name string, ds []time.Duration) Stat {
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(ds))+0.5) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return Stat{Stage: name, Count: len(ds), P50: at(0.50), P99: at(0.99), Max: ds[len(ds)-1]}
}

func snapshot() Proc {
	p := Proc{Goroutines: runtime.NumGoroutine()}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		p.OpenFiles = len(ents)
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				p.RSS = kb << 10
			}
		}
	}
	return p
}

// WriteText prints the report for a person.
func (r Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "boot storm: %d simulated nodes powered on at once through their BMCs\n", r.Nodes)
	fmt.Fprintf(w, "  booted %d, failed %d; all booted after %s (IPMI power-on of all: %s); %d KiB per boot\n",
		r.Booted, r.Failed, r.AllBooted.Round(time.Millisecond), r.PowerOn.Round(time.Millisecond), r.Bytes>>10)
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  failure: %s\n", f)
	}
	if r.Retried > 0 {
		fmt.Fprintf(w, "  %d nodes booted only after their firmware retried: %s\n", r.Retried, strings.Join(r.RetryErrors, "; "))
	}
	fmt.Fprintf(w, "  %-8s %6s %10s %10s %10s\n", "stage", "nodes", "p50", "p99", "max")
	for _, s := range r.Stages {
		fmt.Fprintf(w, "  %-8s %6d %10s %10s %10s\n", s.Stage, s.Count, round(s.P50), round(s.P99), round(s.Max))
	}
	fmt.Fprintf(w, "  process (daemon + simulated nodes)  before   after\n")
	fmt.Fprintf(w, "    RSS MiB                          %6d  %6d\n", r.Before.RSS>>20, r.After.RSS>>20)
	fmt.Fprintf(w, "    goroutines                       %6d  %6d\n", r.Before.Goroutines, r.After.Goroutines)
	fmt.Fprintf(w, "    open files                       %6d  %6d\n", r.Before.OpenFiles, r.After.OpenFiles)
	if r.Peer != nil {
		fmt.Fprintf(w, "  the same storm served by tftpd-hpa + nginx: booted %d, failed %d; all booted after %s; ratio %s (tftpd-hpa+nginx time / netbootui time)\n",
			r.Peer.Booted, r.Peer.Failed, r.Peer.AllBooted.Round(time.Millisecond), r.Ratio)
		for _, f := range r.Peer.Failures {
			fmt.Fprintf(w, "    failure: %s\n", f)
		}
		for _, s := range r.Peer.Stages {
			fmt.Fprintf(w, "    %-8s %6d %10s %10s %10s\n", s.Stage, s.Count, round(s.P50), round(s.P99), round(s.Max))
		}
	} else {
		fmt.Fprintf(w, "  tftpd-hpa + nginx comparison: not run: %s\n", r.PeerSkipped)
	}
}

// WriteJSON prints the report as JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// sortedStages is for tests: stage names in report order.
func (r Report) stageNames() []string {
	var out []string
	for _, s := range r.Stages {
		out = append(out, s.Stage)
	}
	sort.Strings(out)
	return out
}
