package storm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netbootui/netbootui/internal/demo"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// WorkerEnv, set to "1" in a process's environment, makes it a node
// worker: the storm starts os.Executable() with it, and the program (the
// netbootui binary, or a test binary through TestMain) calls RunWorker.
const WorkerEnv = "NETBOOTUI_STORM_WORKER"

// workerSpec is what a worker reads first: the nodes it runs and where
// they boot from.
type workerSpec struct {
	Nodes    []demo.NodeSpec `json:"nodes"`
	BaseURL  string          `json:"base_url"`
	TFTPAddr string          `json:"tftp_addr"`
	POST     time.Duration   `json:"post"`
	Retries  int             `json:"retries"`
	Timeout  time.Duration   `json:"timeout"`
	// Heads (several heads, the heads bench): node First+i boots from
	// Heads[(First+i)%len(Heads)], the others offered as DHCP would,
	// instead of BaseURL; its agent tries a failed first check-in
	// CheckinRetries more times.
	Heads          []string `json:"heads,omitempty"`
	First          int      `json:"first,omitempty"`
	CheckinRetries int      `json:"checkin_retries,omitempty"`
}

// base returns node i's boot HTTP server and the other heads.
func (s workerSpec) base(i int) (string, []string) {
	if len(s.Heads) == 0 {
		return s.BaseURL, nil
	}
	k := len(s.Heads)
	first := (s.First + i) % k
	var others []string
	for j := 1; j < k; j++ {
		others = append(others, s.Heads[(first+j)%k])
	}
	return s.Heads[first], others
}

// nodeResult is what a worker reports for each node.
type nodeResult struct {
	Name     string             `json:"name"`
	Booted   time.Duration      `json:"booted"` // from the power-on to the check-in; 0: did not boot
	Failures int                `json:"failures"`
	LastErr  string             `json:"last_error,omitempty"`
	Steps    []simnode.StepTime `json:"steps"`
}

// RunWorker is a node worker's main: it reads a workerSpec line from in,
// starts the nodes and answers "ready"; on the line "go" it powers every
// node on at once, waits until each has checked in or given up (its
// firmware out of retries) or the timeout passed, writes one JSON line of
// results and returns.
func RunWorker(in io.Reader, out io.Writer) error {
	r := bufio.NewReader(in)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("storm worker: spec: %w", err)
	}
	var spec workerSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fmt.Errorf("storm worker: spec: %w", err)
	}
	nodes := make([]*simnode.Node, len(spec.Nodes))
	defer func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			if n != nil {
				wg.Go(n.Close)
			}
		}
		wg.Wait()
	}()
	for i, s := range spec.Nodes {
		base, others := spec.base(i)
		n, err := simnode.Start(simnode.Options{MAC: s.MAC, Password: "storm", BaseURL: base, OtherHeads: others, TFTPAddr: spec.TFTPAddr,
			Loader: s.Loader, UEFI: s.UEFI, SourceIP: s.IP, PXEFirst: true, CheckinEvery: -1,
			POST: spec.POST, Retries: spec.Retries, CheckinRetries: spec.CheckinRetries})
		if err != nil {
			return fmt.Errorf("storm worker: node %s: %w", s.Name, err)
		}
		nodes[i] = n
	}
	fmt.Fprintln(out, "ready")
	if line, err = r.ReadBytes('\n'); err != nil || strings.TrimSpace(string(line)) != "go" {
		return fmt.Errorf("storm worker: want go, got %q (%v)", line, err)
	}
	start := time.Now()
	for _, n := range nodes {
		if err := n.PowerOn(); err != nil {
			return fmt.Errorf("storm worker: power on: %w", err)
		}
	}
	res := make([]nodeResult, len(nodes))
	deadline := start.Add(spec.Timeout)
	for {
		pending := 0
		for i, n := range nodes {
			if res[i].Name != "" {
				continue
			}
			st := n.Stats()
			switch {
			case st.Checkins > 0:
				res[i] = nodeResult{Name: spec.Nodes[i].Name, Booted: time.Since(start), Failures: st.Failures, Steps: st.Steps,
					LastErr: errString(st.LastError)}
				n.CloseIdle() // a booted node keeps no connection open
			case st.Failures > spec.Retries: // its firmware gave up
				res[i] = nodeResult{Name: spec.Nodes[i].Name, Failures: st.Failures, LastErr: errString(st.LastError), Steps: st.Steps}
			default:
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, n := range nodes {
		if res[i].Name == "" {
			st := n.Stats()
			res[i] = nodeResult{Name: spec.Nodes[i].Name, Failures: st.Failures, Steps: st.Steps,
				LastErr: "not done within " + spec.Timeout.String() + ": " + errString(st.LastError)}
		}
	}
	return json.NewEncoder(out).Encode(res)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// worker is a running node worker process.
type worker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startWorker starts a node worker for nodes and waits until it is ready.
func startWorker(ctx context.Context, spec workerSpec) (*worker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startWorkerOf(ctx, exe, spec)
}

// startWorkerOf is startWorker running the program exe.
func startWorkerOf(ctx context.Context, exe string, spec workerSpec) (*worker, error) {
	var err error
	cmd := exec.CommandContext(ctx, exe, "bench", "storm-worker")
	cmd.Env = append(os.Environ(), WorkerEnv+"=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	w := &worker{cmd: cmd}
	if w.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w.out = bufio.NewReaderSize(stdout, 1<<20)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("storm: node worker: %w", err)
	}
	b, _ := json.Marshal(spec)
	if _, err := w.in.Write(append(b, '\n')); err != nil {
		w.stop()
		return nil, fmt.Errorf("storm: node worker: %w", err)
	}
	line, err := w.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		w.stop()
		return nil, fmt.Errorf("storm: node worker did not start: %q %v", line, err)
	}
	return w, nil
}

// results waits for the worker's report and its exit.
func (w *worker) results() ([]nodeResult, error) {
	line, err := w.out.ReadBytes('\n')
	if err != nil {
		w.stop()
		return nil, fmt.Errorf("storm: node worker: %w", err)
	}
	var res []nodeResult
	if err := json.Unmarshal(line, &res); err != nil {
		w.stop()
		return nil, fmt.Errorf("storm: node worker: %w", err)
	}
	w.in.Close()
	if err := w.cmd.Wait(); err != nil {
		return res, fmt.Errorf("storm: node worker: %w", err)
	}
	return res, nil
}

func (w *worker) stop() {
	w.in.Close()
	if w.cmd.Process != nil {
		w.cmd.Process.Kill()
	}
	if err := w.cmd.Wait(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = err // killed on purpose
	}
}
