package lab

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a program a test started in the background (a DHCP server,
// the daemon binary). Its output is kept in Out.
type Process struct {
	// Out holds what the program wrote to stdout and stderr.
	Out *Buffer
	// Exited is closed when the program has exited.
	Exited <-chan struct{}

	stop func()
}

// StartProcess starts cmd with its output in a buffer. It is stopped by Stop
// or when the test ends (SIGTERM, SIGKILL after 10 s), and killed with the
// test process. If the test failed, the last 60 lines of its output are
// logged under name.
func StartProcess(tb testing.TB, name string, cmd *exec.Cmd) *Process {
	tb.Helper()
	out := &Buffer{}
	exited := make(chan struct{})
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("lab: starting %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(exited) }()
	var once sync.Once
	p := &Process{Out: out, Exited: exited}
	p.stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
			if tb.Failed() {
				tb.Logf("%s output:\n%s", name, Tail(out.String(), 60))
			}
		})
	}
	tb.Cleanup(p.stop)
	return p
}

// Stop ends the program (SIGTERM, SIGKILL after 10 s) and waits for it.
func (p *Process) Stop() { p.stop() }
