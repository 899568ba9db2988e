package storm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// cpuRoot is where cgroup v1 mounts its cpu controller.
const cpuRoot = "/sys/fs/cgroup/cpu"

// cpuGroups puts a storm's two sides in cgroup v1 cpu groups of equal
// weight: the server side (this process, which runs the daemon, and the
// peers it starts, which inherit its group) and the node processes. On a
// machine that other work shares, the scheduler's fairness is then between
// groups rather than threads: tftpd-hpa's process per request and the
// daemon's few threads get the same share, as do the nodes in both runs.
type cpuGroups struct {
	server, nodes string
}

// newCPUGroups makes the groups with weight shares and moves this process
// into the server group.
func newCPUGroups(shares int) (*cpuGroups, error) {
	if _, err := os.Stat(filepath.Join(cpuRoot, "cpu.shares")); err != nil {
		return nil, fmt.Errorf("--cpu-shares needs cgroup v1's cpu controller at %s: %w", cpuRoot, err)
	}
	prefix := filepath.Join(cpuRoot, "netbootui-storm-"+strconv.Itoa(os.Getpid()))
	g := &cpuGroups{server: prefix + "-server", nodes: prefix + "-nodes"}
	for _, dir := range []string{g.server, g.nodes} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			g.remove()
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "cpu.shares"), []byte(strconv.Itoa(shares)), 0o644); err != nil {
			g.remove()
			return nil, fmt.Errorf("cpu.shares %d: %w", shares, err)
		}
	}
	if err := g.join(g.server, os.Getpid()); err != nil {
		g.remove()
		return nil, err
	}
	return g, nil
}

// join moves process pid (all its threads) into group dir.
func (g *cpuGroups) join(dir string, pid int) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("cgroup %s: %w", filepath.Base(dir), err)
	}
	return nil
}

// addNodes moves a node process into the nodes' group; nil g does nothing.
func (g *cpuGroups) addNodes(pid int) error {
	if g == nil {
		return nil
	}
	return g.join(g.nodes, pid)
}

// remove moves this process back to the root group and removes the groups
// (a group still holding a process stays; the kernel refuses to remove it).
func (g *cpuGroups) remove() {
	os.WriteFile(filepath.Join(cpuRoot, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	os.Remove(g.nodes)
	os.Remove(g.server)
}
