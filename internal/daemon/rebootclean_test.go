package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/workflow"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

const rebootPassword = "Reb00t-s3cret"

// rebootLab is a daemon on loopback with a published generation and three
// simulated nodes r1..r3 behind in-process BMCs; r3's firmware stops after
// the kernel.
type rebootLab struct {
	d     *Daemon
	dir   string // the daemon's folder (nodes.yaml, data/)
	gen   string
	nodes map[string]*simnode.Node
	inv   string
}

func startRebootLab(t *testing.T, stopAfter map[string]string) *rebootLab {
	t.Helper()
	return startRebootLabWith(t, func(name string, o *simnode.Options) { o.StopAfter = stopAfter[name] })
}

// startRebootLabWith is startRebootLab with each node's options set by opt.
func startRebootLabWith(t *testing.T, opt func(name string, o *simnode.Options)) *rebootLab {
	t.Helper()
	dir := t.TempDir()
	d := daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{InventoryPath: writeRebootInventory(t, dir, nil),
		StallTimeout: 500 * time.Millisecond, ReloadInterval: 50 * time.Millisecond,
		Power: power.Config{CallTimeout: 3 * time.Second}}}).D
	src := map[string]string{}
	for i, name := range image.BootFiles {
		p := filepath.Join(dir, name)
		os.WriteFile(p, bytes.Repeat([]byte{byte('k' + i)}, 32<<10), 0o644)
		src[name] = p
	}
	m, err := d.ImportImage(ImportRequest{Image: "compute", Kernel: src[image.FileKernel], Initrd: src[image.FileInitrd],
		Rootfs: src[image.FileRootfs], Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	l := &rebootLab{d: d, dir: dir, gen: m.ID, nodes: map[string]*simnode.Node{}}
	ports := map[string]int{}
	for i, name := range []string{"r1", "r2", "r3"} {
		o := simnode.Options{MAC: fmt.Sprintf("52:54:00:ee:00:%02x", i+1), Password: rebootPassword,
			BaseURL: "http://" + d.HTTPAddr().String()}
		opt(name, &o)
		n, err := simnode.Start(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		l.nodes[name] = n
		ports[name] = n.Port()
	}
	// Now that the BMC ports are known, point the inventory at them.
	l.inv = writeRebootInventory(t, dir, ports)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	return l
}

func writeRebootInventory(t *testing.T, dir string, ports map[string]int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(`settings:
  secrets: secrets.yaml
  overlay_dirty_bytes: 1048576
images:
  compute: {}
  empty: {}
groups:
  g:
    image: compute
    bmc: {user: admin, password: lab}
nodes:
`)
	for i, name := range []string{"r1", "r2", "r3"} {
		fmt.Fprintf(&b, "  - name: %s\n    group: g\n    nics: [{mac: \"52:54:00:ee:00:%02x\"}]\n", name, i+1)
		if p := ports[name]; p != 0 {
			fmt.Fprintf(&b, "    bmc: {host: 127.0.0.1, port: %d}\n", p)
		}
	}
	b.WriteString("  - name: e1\n    group: g\n    image: empty\n    nics: [{mac: \"52:54:00:ee:01:01\"}]\n    bmc: {host: 127.0.0.1, port: 9}\n")
	p := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("bmc_passwords:\n  lab: "+rebootPassword+"\n"), 0o600)
	return p
}

// TestRebootCleanSimulatedNodes: r1 runs dirty (overlay above the
// threshold), r2 is off, r3's firmware hangs after the kernel. reboot-clean
// sets PXE on each BMC, cycles them, and follows the real HTTP boots: r1 and
// r2 end clean with the assigned generation, r3 fails naming the kernel
// stage, e1 (no published generation) fails the render check without its BMC
// being touched. One audit entry covers the run.
func TestRebootCleanSimulatedNodes(t *testing.T) {
	l := startRebootLab(t, map[string]string{"r3": "kernel"})
	d := l.d
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// r1 first runs dirty: a boot (by a second firmware with the same
	// MAC, on its own BMC) that reports 5 MiB of overlay writes.
	dirtyBoot, err := simnode.Start(simnode.Options{MAC: "52:54:00:ee:00:01", Password: rebootPassword,
		BaseURL: "http://" + d.HTTPAddr().String(), OverlayBytes: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer dirtyBoot.Close()
	l.powerOnDirty(t, dirtyBoot)

	var mu sync.Mutex
	var progress []workflow.Progress
	res, err := d.RebootClean(ctx, RebootRequest{Selection: "r[1-3],e1", Timeout: 3 * time.Second, Who: "tester"},
		func(p RebootProgress) {
			mu.Lock()
			progress = append(progress, p)
			mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	byNode := map[string]RebootResult{}
	for _, r := range res {
		byNode[r.Node] = r
	}
	for _, n := range []string{"r1", "r2"} {
		r := byNode[n]
		if !r.OK || r.Generation != l.gen || r.Step != workflow.StepClean {
			t.Errorf("%s: %+v", n, r)
		}
		st, _ := d.NodeState(n)
		if st.Stage != bootstate.StageBooted || st.Generation != l.gen || st.OverlayBytes != 0 {
			t.Errorf("%s state after the run: %+v", n, st)
		}
		s := l.nodes[n].Stats()
		if s.NetBoots != 1 || s.Checkins != 1 || s.BootFlagsPXE || !s.Power || s.LastError != nil {
			t.Errorf("%s firmware: %+v", n, s)
		}
		want := []string{"/boot/" + macOf(n) + ".ipxe", "/images/compute/" + l.gen + "/vmlinuz",
			"/images/compute/" + l.gen + "/initrd", "/images/compute/" + l.gen + "/rootfs.squashfs"}
		if !slices.Equal(s.Fetched, want) {
			t.Errorf("%s fetched %v, want %v", n, s.Fetched, want)
		}
	}
	r3 := byNode["r3"]
	if r3.OK || !strings.Contains(r3.Error, "r3: no check-in within 3s: stalled in stage kernel since ") {
		t.Errorf("r3: %+v", r3)
	}
	e1 := byNode["e1"]
	if e1.OK || e1.Error != "node e1: image empty has no published generation" {
		t.Errorf("e1: %+v", e1)
	}
	// Progress: every stage of r2's boot, in order. (A BMC answer slower
	// than the simulated POST lets the script fetch come before the cycle
	// is recorded, which starts the timeline anew: config may be missing.)
	mu.Lock()
	var r2 []string
	for _, p := range progress {
		if p.Node == "r2" && p.Stage != bootstate.StageConfig {
			r2 = append(r2, string(p.Step)+"/"+string(p.Stage))
		}
	}
	mu.Unlock()
	want := []string{"render/", "bootdev/", "cycle/", "boot/powering-on", "boot/kernel", "boot/initrd",
		"boot/rootfs", "boot/booted", "clean/booted"}
	if !slices.Equal(r2, want) {
		t.Errorf("r2 progress %v\nwant %v", r2, want)
	}
	// The history shows the workflow.
	var infos []string
	for _, ev := range d.History("r2", 100) {
		if ev.Kind == bootstate.KindInfo && strings.HasPrefix(ev.Message, "reboot-clean") {
			infos = append(infos, ev.Message)
		}
	}
	if w := []string{"reboot-clean: bootdev pxe set", "reboot-clean: power cycle sent", "reboot-clean: clean, generation " + l.gen}; !slices.Equal(infos, w) {
		t.Errorf("r2 history %q, want %q", infos, w)
	}
	// One audit entry for the run.
	var entries []string
	for _, e := range d.Audit(10) {
		if e.Action == "reboot-clean" {
			entries = append(entries, fmt.Sprintf("%s %s %d %s %q", e.Who, e.Target, e.Nodes, e.Result, e.Details))
		}
	}
	if len(entries) != 1 || !strings.HasPrefix(entries[0], "tester r[1-3],e1 4 2 ok, 2 failed ") ||
		!strings.Contains(entries[0], "stalled in stage kernel") || !strings.Contains(entries[0], "image empty") {
		t.Errorf("audit: %q", entries)
	}
	// e1's BMC (port 9, nothing there) was never contacted: no power event.
	for _, ev := range d.History("e1", 100) {
		if ev.Kind == bootstate.KindPower || ev.Proto == "ipmi" {
			t.Errorf("e1 has a BMC event: %+v", ev)
		}
	}
	if _, err := d.RebootClean(ctx, RebootRequest{Selection: "nosuch"}, nil); err == nil {
		t.Error("unknown selection accepted")
	}
	if _, err := d.RebootClean(ctx, RebootRequest{Selection: "r1", Timeout: -time.Second}, nil); err == nil {
		t.Error("negative timeout accepted")
	}
}

func macOf(node string) string {
	return "52:54:00:ee:00:0" + strings.TrimPrefix(node, "r")
}

// powerOnDirty plays r1's first boot with a second firmware that reports a
// dirty overlay, and waits until the daemon sees r1 dirty.
func (l *rebootLab) powerOnDirty(t *testing.T, fw *simnode.Node) {
	t.Helper()
	// The second firmware boots on its own BMC: give it PXE flags and power.
	tgt := power.Target{Node: "r1", Protocol: "ipmi", Host: "127.0.0.1", Port: fw.Port(), User: "admin", Password: power.NewSecret(rebootPassword)}
	pool := power.New(power.Config{CallTimeout: 3 * time.Second}, backends.Registry())
	defer pool.Close()
	for _, op := range []power.Op{power.OpBootdevPXE, power.OpOn} {
		if r := pool.Do(context.Background(), tgt, op); r.Err != nil {
			t.Fatalf("dirty boot %s: %v", op, r.Err)
		}
	}
	if !simnode.WaitFor(10*time.Second, func() bool { v, _ := l.d.Node("r1"); return v.Dirty }) {
		v, _ := l.d.Node("r1")
		t.Fatalf("r1 not dirty after its first boot: %+v", v)
	}
}
