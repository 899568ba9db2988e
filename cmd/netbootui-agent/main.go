// Command netbootui-agent is the node agent of netbootui: a small static
// program in the live initramfs (copied to /run/netbootui/netbootui-agent
// by the live init, started by the check-in agent) that long-polls the
// daemon and, told to, reboots the node clean by kexec: it checks the
// instruction's ed25519 signature and its binding to this node, boot and
// poll, fetches the generation's kernel and initrd, checks their sha256
// against the manifest's and kexecs into them, skipping the firmware's
// POST. See internal/nodeagent and internal/agentproto.
//
// Usage: netbootui-agent [-env FILE] [-pidfile FILE]
//
// It exits 2 when it has nothing to talk to (no netbootui.url, node, token
// or netbootui.agent_key: a daemon too old to sign instructions), and 1
// when another agent already runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/netbootui/netbootui/internal/nodeagent"
)

func main() {
	env := flag.String("env", "/run/netbootui.env", "the live init's parameter `file`")
	pidfile := flag.String("pidfile", "/run/netbootui/agent.pid", "`file` holding the agent's pid (and its lock: one agent per node)")
	flag.Parse()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "netbootui-agent: "+format+"\n", args...) }

	cfg, err := nodeagent.LoadConfig(*env, "/proc/cmdline", "/proc/sys/kernel/random/boot_id")
	if err != nil {
		logf("%v", err)
		os.Exit(2)
	}
	cfg.Logf = logf
	a, err := nodeagent.New(cfg)
	if err != nil {
		logf("%v: not polling", err)
		os.Exit(2)
	}
	if err := lock(*pidfile); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf("polling %s as %s (boot %s; other heads: %d)", cfg.URL, cfg.Node, cfg.BootID, len(cfg.Heads))
	a.Run(ctx)
}

// lock takes an exclusive lock on pidfile and writes the pid into it; the
// lock lasts as long as the process.
func lock(pidfile string) error {
	if err := os.MkdirAll(filepath.Dir(pidfile), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(pidfile, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("another agent holds %s", pidfile)
	}
	f.Truncate(0)
	f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return nil // f stays open: the lock goes with the process
}
