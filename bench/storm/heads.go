package storm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/demo"
)

// HeadsConfig sets up the heads bench: the same storm served by one head,
// then by three (`serve --cluster` processes), each node booting from one
// head with the others offered as DHCP would.
type HeadsConfig struct {
	Nodes   int           // default 3000
	Workers int           // node processes; default 2
	Timeout time.Duration // bound of each run; default 5 minutes
	DataDir string        // required: the heads' folders
	Sizes   [3]int64      // the generation's kernel, initrd and rootfs (default 256 KiB, 512 KiB, 2 MiB)
	// Exe is the netbootui program the heads run (`serve`) and the node
	// workers (`bench storm-worker`); default os.Executable().
	Exe string
	Out io.Writer // progress lines (nil: none)
}

// HeadsRun is one run of the heads bench.
type HeadsRun struct {
	Heads   int           `json:"heads"`
	Nodes   int           `json:"nodes"`
	Booted  int           `json:"booted"`
	Failed  int           `json:"failed"`
	Errors  []string      `json:"errors,omitempty"` // the first few failures, naming the node
	Retried int           `json:"retried"`          // nodes whose firmware started over and still booted
	AllDone time.Duration `json:"all_done"`         // power-on to the last check-in
	Boot    Stat          `json:"boot"`             // power-on to check-in, per node
	Stages  []Stat        `json:"stages"`           // script, kernel, initrd, rootfs, checkin: request to last byte, per node
}

// HeadsReport is the bench's result: Ratio is the one head's time over
// the three heads' (above 1: three heads were faster), given only when
// neither run had a failure.
type HeadsReport struct {
	One, Three HeadsRun
	Ratio      string `json:"ratio,omitempty"`
}

// RunHeads runs the storm against one head, then against three. It
// returns an error when a run could not be set up; failed boots are in
// the report.
func RunHeads(ctx context.Context, cfg HeadsConfig) (HeadsReport, error) {
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
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
	if cfg.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return HeadsReport{}, err
		}
		cfg.Exe = exe
	}
	var rep HeadsReport
	var err error
	if rep.One, err = headsRun(ctx, cfg, 1); err != nil {
		return rep, err
	}
	if rep.Three, err = headsRun(ctx, cfg, 3); err != nil {
		return rep, err
	}
	if rep.One.Failed == 0 && rep.Three.Failed == 0 && rep.Three.AllDone > 0 {
		rep.Ratio = fmt.Sprintf("%.2f", rep.One.AllDone.Seconds()/rep.Three.AllDone.Seconds())
	}
	return rep, nil
}

// WriteText prints the report for a person.
func (r HeadsReport) WriteText(w io.Writer) {
	for _, run := range []HeadsRun{r.One, r.Three} {
		fmt.Fprintf(w, "%d head(s): %d nodes, %d booted, %d failed, %d started over; all done in %s; boot p50 %s p99 %s max %s\n",
			run.Heads, run.Nodes, run.Booted, run.Failed, run.Retried, round(run.AllDone), round(run.Boot.P50), round(run.Boot.P99), round(run.Boot.Max))
		for _, st := range run.Stages {
			fmt.Fprintf(w, "  %-8s p50 %s p99 %s max %s\n", st.Stage, round(st.P50), round(st.P99), round(st.Max))
		}
		for _, e := range run.Errors {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if r.Ratio == "" {
		fmt.Fprintln(w, "FAIL: failed boots, no ratio")
		return
	}
	fmt.Fprintf(w, "ratio %s (one head's time over three heads'; above 1: three heads were faster)\n", r.Ratio)
}

// headsInventory is n nodes of group g (image img) and their MACs.
func headsInventory(n int) (string, []demo.NodeSpec) {
	var b strings.Builder
	b.WriteString("images:\n  img: {}\ngroups:\n  g: {image: img}\nnodes:\n")
	specs := make([]demo.NodeSpec, n)
	for i := range n {
		specs[i] = demo.NodeSpec{Name: fmt.Sprintf("b%04d", i), Group: "g", MAC: fmt.Sprintf("52:54:00:cc:%02x:%02x", i/256, i%256)}
		fmt.Fprintf(&b, "  - {name: %s, group: g, nics: [{mac: %q}]}\n", specs[i].Name, specs[i].MAC)
	}
	return b.String(), specs
}

// benchHead is one `netbootui serve` process of the bench.
type benchHead struct {
	cmd    *exec.Cmd
	socket string
	base   string // boot HTTP base URL
}

// headsRun starts k heads (k > 1: a cluster), gives the first a generation,
// waits until every head serves it, and runs the storm over them.
func headsRun(ctx context.Context, cfg HeadsConfig, k int) (HeadsRun, error) {
	run := HeadsRun{Heads: k, Nodes: cfg.Nodes}
	dir := filepath.Join(cfg.DataDir, fmt.Sprintf("heads-%d", k))
	inv, specs := headsInventory(cfg.Nodes)
	heads, err := startHeads(ctx, cfg, dir, inv, k)
	defer func() {
		var wg sync.WaitGroup
		for _, h := range heads {
			wg.Go(h.stop)
		}
		wg.Wait()
	}()
	if err != nil {
		return run, err
	}
	gen, err := importFiles(ctx, heads[0].socket, dir, cfg.Sizes)
	if err != nil {
		return run, err
	}
	for i, h := range heads {
		if err := waitServes(ctx, h.base+"/boot/"+specs[0].MAC+".ipxe", gen, k); err != nil {
			return run, fmt.Errorf("head %d: %w", i+1, err)
		}
	}
	fmt.Fprintf(cfg.Out, "heads bench: %d head(s) serve generation %s\n", k, gen)

	w := min(cfg.Workers, len(specs))
	var workers []*worker
	defer func() {
		for _, wk := range workers {
			wk.stop()
		}
	}()
	for i := range w {
		// Each node boots from one head (node j from head j%k), the others
		// as its other offers: the worker's nodes keep their order.
		lo, hi := i*len(specs)/w, (i+1)*len(specs)/w
		spec := workerSpec{Nodes: specs[lo:hi], POST: 20 * time.Millisecond, Retries: 3, Timeout: cfg.Timeout, CheckinRetries: 10, First: lo}
		for _, h := range heads {
			spec.Heads = append(spec.Heads, h.base)
		}
		wk, err := startWorkerOf(ctx, cfg.Exe, spec)
		if err != nil {
			return run, err
		}
		workers = append(workers, wk)
	}
	fmt.Fprintf(cfg.Out, "heads bench: %d nodes ready in %d processes; switching all on\n", len(specs), w)
	for _, wk := range workers {
		if _, err := io.WriteString(wk.in, "go\n"); err != nil {
			return run, fmt.Errorf("heads bench: node worker: %w", err)
		}
	}
	var boots []time.Duration
	stages := map[string][]time.Duration{}
	for _, wk := range workers {
		res, err := wk.results()
		if err != nil {
			return run, err
		}
		for _, r := range res {
			for _, st := range r.Steps {
				stages[st.Step] = append(stages[st.Step], st.Took)
			}
			if r.Booted <= 0 {
				run.Failed++
				if len(run.Errors) < 10 {
					run.Errors = append(run.Errors, r.Name+": "+r.LastErr)
				}
				continue
			}
			run.Booted++
			boots = append(boots, r.Booted)
			run.AllDone = max(run.AllDone, r.Booted)
			if r.Failures > 0 {
				run.Retried++
			}
		}
	}
	workers = nil
	if len(boots) > 0 {
		run.Boot = distribution("boot", boots)
	}
	for _, name := range []string{"script", "kernel", "initrd", "rootfs", "checkin"} {
		if ds := stages[name]; len(ds) > 0 {
			run.Stages = append(run.Stages, distribution(name, ds))
		}
	}
	if run.Failed > 0 {
		run.AllDone = cfg.Timeout
	}
	return run, nil
}

// startHeads starts k `netbootui serve` processes on loopback (k > 1: with
// --cluster), the first with the inventory, and waits for their APIs.
func startHeads(ctx context.Context, cfg HeadsConfig, dir, inv string, k int) ([]*benchHead, error) {
	ports, err := freeLoopbackPorts(3 * k)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := range k {
		initial = append(initial, fmt.Sprintf("h%d=http://127.0.0.1:%d", i+1, ports[3*i]))
	}
	heads := make([]*benchHead, k)
	for i := range k {
		hdir := filepath.Join(dir, fmt.Sprintf("h%d", i+1))
		if err := os.MkdirAll(hdir, 0o755); err != nil {
			return heads[:i], err
		}
		if i == 0 {
			if err := os.WriteFile(filepath.Join(hdir, "nodes.yaml"), []byte(inv), 0o644); err != nil {
				return heads[:i], err
			}
		}
		h := &benchHead{socket: filepath.Join(hdir, "api.sock"), base: fmt.Sprintf("http://127.0.0.1:%d", ports[3*i+2])}
		args := []string{"serve", "--inventory", filepath.Join(hdir, "nodes.yaml"), "--data", filepath.Join(hdir, "data"),
			"--api-socket", h.socket, "--http-listen", strings.TrimPrefix(h.base, "http://"), "--tftp-listen", "",
			"--power-poll", "0", "--log-level", "error", "--stall-timeout", cfg.Timeout.String()}
		if k > 1 {
			args = append(args, "--cluster", strings.Join(initial, ","), "--cluster-name", fmt.Sprintf("h%d", i+1),
				"--cluster-client-url", fmt.Sprintf("http://127.0.0.1:%d", ports[3*i+1]))
		}
		h.cmd = exec.CommandContext(ctx, cfg.Exe, args...)
		h.cmd.Stderr = os.Stderr
		h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := h.cmd.Start(); err != nil {
			return heads[:i], err
		}
		heads[i] = h
	}
	for i, h := range heads {
		c := apiclient.New(h.socket)
		deadline := time.Now().Add(90 * time.Second)
		for {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := c.Status(cctx)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return heads, fmt.Errorf("head %d did not come up: %w", i+1, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return heads, nil
}

// stop ends the head with SIGTERM (SIGKILL after 15 s).
func (h *benchHead) stop() {
	if h == nil || h.cmd.Process == nil {
		return
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}

// importFiles imports and publishes a generation of image img of the given
// sizes through the head at socket.
func importFiles(ctx context.Context, socket, dir string, sizes [3]int64) (string, error) {
	files := map[string]string{}
	for i, f := range []string{"kernel", "initrd", "rootfs"} {
		files[f] = filepath.Join(dir, f)
		if err := os.WriteFile(files[f], bytes.Repeat([]byte{byte('k' + i)}, int(sizes[i])), 0o644); err != nil {
			return "", err
		}
	}
	m, err := apiclient.New(socket).Import(ctx, apitype.ImportRequest{Image: "img", Publish: true},
		apiclient.ImportFiles{Kernel: files["kernel"], Initrd: files["initrd"], Rootfs: files["rootfs"]})
	if err != nil {
		return "", err
	}
	return m.ID, nil
}

// waitServes waits (up to 90 s) until the boot script at u names gen and
// lists heads retry lines (every live head).
func waitServes(ctx context.Context, u, gen string, heads int) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		var body []byte
		if resp, err := http.Get(u); err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if bytes.Contains(body, []byte(gen)) && (heads == 1 || bytes.Count(body, []byte("chain --replace --autofree ")) == heads) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("its boot script does not serve generation %s on %d heads after 90 s", gen, heads)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freeLoopbackPorts returns n TCP ports the kernel had free on 127.0.0.1.
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
