// Package storm is the boot-storm bench: N simulated nodes (internal/demo's
// cluster, simnode firmware) are switched on at once and boot over TFTP and
// HTTP, once from netbootui's daemon and once from tftpd-hpa + nginx
// serving the same files; it reports the time until every node was done,
// the failures (a run with any prints FAIL and no ratio), the p50/p99 of
// each boot stage as the nodes saw it, and the daemon's goroutines and
// open files before and after.
//
// The nodes run in worker processes of their own (the same program,
// started with WorkerEnv), in both runs, so the servers (the daemon in
// this process, or the peers' processes) and the nodes share the machine
// alike. Power-on is the same in both runs: each worker switches its nodes
// on at once (simnode.Node.PowerOn, no IPMI: bench/ipmi measures that).
// A run ends when every node has checked in or its firmware has given up.
package storm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/demo"
)

// Config sets up a storm.
type Config struct {
	Nodes   int           // default 1000, at most demo.MaxNodes
	Timeout time.Duration // bound of each run; default 5 minutes
	DataDir string        // required; the cluster's files
	// Sizes of the generation's kernel, initrd and rootfs; default 256 KiB,
	// 512 KiB and 2 MiB.
	Sizes [3]int64
	// Workers is the number of node processes; default 2.
	Workers int
	// Out receives progress lines (nil: none).
	Out io.Writer
	// Peers also runs the same storm (same nodes, same files, the entries
	// the daemon renders) against tftpd-hpa and nginx and reports the
	// ratio of the times until all were done.
	Peers bool
	// CPUShares, when positive, runs the server side (the daemon, or
	// tftpd-hpa and nginx) and the node processes in cgroup v1 cpu groups
	// of this weight each (needs root): see cpuGroups.
	CPUShares int

	groups *cpuGroups
}

// Stat is the distribution of one duration over the nodes.
type Stat struct {
	Stage string        `json:"stage"`
	Count int           `json:"count"`
	P50   time.Duration `json:"p50"`
	P99   time.Duration `json:"p99"`
	Max   time.Duration `json:"max"`
}

// Proc is a snapshot of the daemon process's resources.
type Proc struct {
	RSS        int64 `json:"rss_bytes"`
	Goroutines int   `json:"goroutines"`
	OpenFiles  int   `json:"open_files"`
}

// Report is what a storm measured.
type Report struct {
	Server   string   `json:"server"` // "netbootui" or "tftpd-hpa + nginx"
	Nodes    int      `json:"nodes"`
	Booted   int      `json:"booted"`
	Failed   int      `json:"failed"`
	Failures []string `json:"failures,omitempty"` // the first few, naming the node
	// Retried counts the nodes whose firmware had to start its boot over
	// (a TFTP timeout, an HTTP error) and still booted; RetryErrors are
	// the first few errors that made them.
	Retried     int      `json:"retried"`
	RetryErrors []string `json:"retry_errors,omitempty"`
	Bytes       int64    `json:"bytes_per_boot"`
	// AllDone is from the power-on to the last node checking in (or
	// giving up).
	AllDone time.Duration `json:"all_done"`
	// Stages are per node: nbp, script, kernel, initrd, rootfs, checkin
	// (each from request to last byte) and boot (from the power-on to the
	// node's check-in).
	Stages []Stat `json:"stages"`
	// Before and After are the daemon's process (this one), idle before
	// the node processes start and once they have all exited; not taken
	// for the peers.
	Before *Proc `json:"before,omitempty"`
	After  *Proc `json:"after,omitempty"`
	// Peer is the same storm served by tftpd-hpa + nginx (nil when it did
	// not run: PeerSkipped says why); Ratio is its time over netbootui's,
	// given only when neither run had a failure.
	Peer        *Report `json:"peer,omitempty"`
	PeerSkipped string  `json:"peer_skipped,omitempty"`
	Ratio       string  `json:"ratio,omitempty"`
}

// Run runs the storm (and, with Peers, the peers' storm). It returns an
// error only when a storm could not be run; failed boots are in the report.
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
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.CPUShares > 0 && cfg.groups == nil {
		g, err := newCPUGroups(cfg.CPUShares)
		if err != nil {
			return Report{}, fmt.Errorf("storm: %w", err)
		}
		defer g.remove()
		cfg.groups = g
	}
	d, err := demo.Start(ctx, demo.Config{Nodes: cfg.Nodes, DataDir: filepath.Join(cfg.DataDir, "netbootui"), Image: demo.ImageTiny,
		TinySizes: cfg.Sizes, StallNode: "-", StallTimeout: cfg.Timeout, CheckinEvery: -1, PowerPoll: -1, ExternalNodes: true})
	if err != nil {
		return Report{}, err
	}
	defer d.Close()
	specs := demo.Layout(cfg.Nodes)
	rep, err := runOne(ctx, cfg, specs, "http://"+d.Daemon.HTTPAddr().String(), d.Daemon.TFTPAddr().String(), d)
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
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p, err := startPeers(pctx, cfg.DataDir)
	if err != nil {
		return rep, fmt.Errorf("tftpd-hpa + nginx: %w", err)
	}
	defer p.close()
	if err := p.fill(d); err != nil {
		return rep, fmt.Errorf("tftpd-hpa + nginx: %w", err)
	}
	d.Close() // the daemon is done: the peers' storm has the machine to itself
	fmt.Fprintf(cfg.Out, "storm: the same storm against tftpd-hpa (%s) and nginx (%s)\n", p.tftpAddr, p.baseURL)
	peer, err := runOne(ctx, cfg, specs, p.baseURL, p.tftpAddr, nil)
	if err != nil {
		return rep, fmt.Errorf("tftpd-hpa + nginx: %w", err)
	}
	rep.Peer = &peer
	if rep.Failed == 0 && peer.Failed == 0 {
		rep.Ratio = ratio(rep.AllDone, peer.AllDone)
	}
	return rep, nil
}

// runOne is one storm: the nodes boot from baseURL and tftpAddr; d is the
// demo whose daemon serves them (nil for the peers).
func runOne(ctx context.Context, cfg Config, specs []demo.NodeSpec, baseURL, tftpAddr string, d *demo.Demo) (Report, error) {
	rep := Report{Server: "netbootui", Nodes: len(specs), Bytes: cfg.Sizes[0] + cfg.Sizes[1] + cfg.Sizes[2]}
	if d == nil {
		rep.Server = "tftpd-hpa + nginx"
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout+time.Minute)
	defer cancel()
	if d != nil {
		// The daemon idle, before any node process exists (their pipes
		// would count).
		settle()
		b := snapshot()
		rep.Before = &b
	}
	k := min(cfg.Workers, len(specs))
	var workers []*worker
	defer func() {
		for _, w := range workers {
			w.stop()
		}
	}()
	for i := range k {
		part := specs[i*len(specs)/k : (i+1)*len(specs)/k]
		w, err := startWorker(ctx, workerSpec{Nodes: part, BaseURL: baseURL, TFTPAddr: tftpAddr,
			POST: 20 * time.Millisecond, Retries: 3, Timeout: cfg.Timeout})
		if err != nil {
			return rep, err
		}
		workers = append(workers, w)
		if err := cfg.groups.addNodes(w.cmd.Process.Pid); err != nil {
			return rep, fmt.Errorf("storm: %w", err)
		}
	}
	fmt.Fprintf(cfg.Out, "storm: %d nodes ready in %d processes; %s serves; switching all on\n", len(specs), k, rep.Server)
	for _, w := range workers {
		if _, err := io.WriteString(w.in, "go\n"); err != nil {
			return rep, fmt.Errorf("storm: node worker: %w", err)
		}
	}
	var all []nodeResult
	for _, w := range workers {
		res, err := w.results()
		if err != nil {
			return rep, err
		}
		all = append(all, res...)
	}
	workers = nil
	stages := map[string][]time.Duration{}
	for _, r := range all {
		for _, s := range r.Steps {
			stages[s.Step] = append(stages[s.Step], s.Took)
		}
		if r.Booted > 0 {
			rep.Booted++
			rep.AllDone = max(rep.AllDone, r.Booted)
			stages["boot"] = append(stages["boot"], r.Booted)
			if r.Failures > 0 {
				rep.Retried++
				if len(rep.RetryErrors) < 5 {
					rep.RetryErrors = append(rep.RetryErrors, r.Name+": "+r.LastErr)
				}
			}
			continue
		}
		rep.Failed++
		if len(rep.Failures) < 10 {
			rep.Failures = append(rep.Failures, r.Name+": "+r.LastErr)
		}
	}
	if rep.Failed > 0 {
		rep.AllDone = cfg.Timeout // a node that gave up or never finished: no time to compare
	}
	if d != nil {
		// The daemon must agree: every node it served checked in.
		if rep.Failed == 0 {
			st, _ := d.Counts()
			if st[apitype.StageBooted] != len(specs) {
				rep.Failed = len(specs) - st[apitype.StageBooted]
				rep.Failures = append(rep.Failures, fmt.Sprintf("the daemon sees %d booted of %d: %v", st[apitype.StageBooted], len(specs), st))
			}
		}
		// Every node process has exited: the daemon's connections close as
		// it reads their ends.
		a := snapshot()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && (a.OpenFiles > rep.Before.OpenFiles || a.Goroutines > rep.Before.Goroutines); {
			settle()
			a = snapshot()
		}
		rep.After = &a
	}
	for _, name := range []string{"nbp", "script", "kernel", "initrd", "rootfs", "checkin", "boot"} {
		if ds := stages[name]; len(ds) > 0 {
			rep.Stages = append(rep.Stages, distribution(name, ds))
		}
	}
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
	fmt.Fprintf(w, "boot storm: %d simulated nodes (in node processes of their own) switched on at once; %d KiB per boot\n", r.Nodes, r.Bytes>>10)
	r.writeRun(w)
	if r.Peer != nil {
		r.Peer.writeRun(w)
		if r.Ratio != "" {
			fmt.Fprintf(w, "ratio %s (tftpd-hpa + nginx time / netbootui time; above 1: netbootui was faster)\n", r.Ratio)
		} else {
			fmt.Fprintf(w, "FAIL: no ratio, %d nodes of netbootui's run and %d of the peers' failed\n", r.Failed, r.Peer.Failed)
		}
	} else {
		if r.Failed > 0 {
			fmt.Fprintf(w, "FAIL: %d nodes failed\n", r.Failed)
		}
		fmt.Fprintf(w, "tftpd-hpa + nginx comparison: not run: %s\n", r.PeerSkipped)
	}
}

func (r Report) writeRun(w io.Writer) {
	if r.Failed > 0 {
		fmt.Fprintf(w, "%s: FAIL: booted %d, failed %d\n", r.Server, r.Booted, r.Failed)
	} else {
		fmt.Fprintf(w, "%s: booted %d, failed 0; all done after %s\n", r.Server, r.Booted, r.AllDone.Round(time.Millisecond))
	}
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
	if r.Before != nil && r.After != nil {
		fmt.Fprintf(w, "  daemon process      before   after\n")
		fmt.Fprintf(w, "    RSS MiB           %6d  %6d\n", r.Before.RSS>>20, r.After.RSS>>20)
		fmt.Fprintf(w, "    goroutines        %6d  %6d\n", r.Before.Goroutines, r.After.Goroutines)
		fmt.Fprintf(w, "    open files        %6d  %6d\n", r.Before.OpenFiles, r.After.OpenFiles)
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
