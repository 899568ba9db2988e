package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/atomicfile"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/demo/qemubmc"
	"github.com/netbootui/netbootui/internal/power"
)

// MaxLab bounds Config.Lab: every QEMU node under TCG takes about one core
// while it boots and 512 MiB.
const MaxLab = 16

// LabTools are the programs --lab needs besides the default recipe's.
var LabTools = []string{"qemu-system-x86_64", "ipmi_sim"}

// labName is the name of lab node i (0-based): lab01, lab02, ...
func labName(i int) string { return fmt.Sprintf("lab%02d", i+1) }

// labMAC is lab node i's MAC: the same as lab.MAC(i) (the test helpers'
// QEMU MACs, 52:54:00:6e:XX:YY), without linking that test-support package
// (and "testing") into the command.
func labMAC(i int) string { return fmt.Sprintf("52:54:00:6e:%02x:%02x", (i>>8)&0xff, i&0xff) }

// checkLab says what --lab is missing, before anything is started.
func checkLab(cfg Config) error {
	for _, tool := range LabTools {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := map[string]string{"qemu-system-x86_64": "qemu-system-x86", "ipmi_sim": "openipmi"}[tool]
			return fmt.Errorf("demo: --lab needs %s, which is not installed (apt-get install %s)", tool, pkg)
		}
	}
	if _, _, reason := findRecipe(cfg.RecipeDir, cfg.KernelDir); reason != "" {
		return fmt.Errorf("demo: --lab boots the default-recipe image, which cannot be built: %s", reason)
	}
	return nil
}

// writeLabInventory writes the lab's inventory: group "lab" on iPXE/BIOS,
// its BMCs ipmi_sim on 127.0.0.1 with cipher suite 3; ports maps node names
// to BMC ports (absent before the BMCs run).
func writeLabInventory(path, recipe string, names, macs []string, ports map[string]int) error {
	var b strings.Builder
	b.WriteString(`# netbootui demo --lab: QEMU nodes (TCG), each powered by an ipmi_sim BMC
# of its own on 127.0.0.1.
settings:
  secrets: secrets.yaml
  overlay_dirty_bytes: ` + fmt.Sprint(DirtyThreshold) + `
images:
  default: {description: "demo lab image (default recipe)"` + recipeKey(recipe) + `}
groups:
  lab:
    image: default
    arch: bios
    loader: ipxe
    kernel_args: console=ttyS0 panic=-1
    bmc: {protocol: ipmi, user: admin, password: demo, ipmi: {cipher_suites: [3]}}
nodes:
`)
	for i, name := range names {
		fmt.Fprintf(&b, "  - name: %s\n    group: lab\n    nics: [{mac: \"%s\", boot: true}]\n", name, macs[i])
		if p := ports[name]; p != 0 {
			fmt.Fprintf(&b, "    bmc: {host: 127.0.0.1, port: %d}\n", p)
		}
	}
	return atomicfile.Write(path, []byte(b.String()), 0o644)
}

// startLab is Start with Config.Lab: the daemon, one qemubmc node per lab
// node (BMC running, VM off), the default-recipe generation.
func startLab(ctx context.Context, cfg Config) (_ *Demo, err error) {
	if err := checkLab(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	d := &Demo{cfg: cfg, Groups: map[string][]string{}, LabNodes: map[string]*qemubmc.Node{},
		InventoryPath: filepath.Join(cfg.DataDir, "nodes.yaml"), SecretsPath: filepath.Join(cfg.DataDir, "secrets.yaml")}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	var names, macs []string
	for i := 0; i < cfg.Lab; i++ {
		names = append(names, labName(i))
		macs = append(macs, labMAC(i))
	}
	if err := writeLabInventory(d.InventoryPath, cfg.RecipeDir, names, macs, nil); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	pw := make([]byte, 8)
	rand.Read(pw)
	password := hex.EncodeToString(pw)
	if err := atomicfile.Write(d.SecretsPath, []byte("bmc_passwords:\n  demo: \""+password+"\"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	dd, err := d.newDaemon(daemon.Config{InventoryPath: d.InventoryPath, DataDir: filepath.Join(cfg.DataDir, "daemon"),
		HTTPListen: cfg.HTTPListen, TFTPListen: cfg.TFTPListen, StallTimeout: max(cfg.StallTimeout, 2*time.Minute),
		ReloadInterval: time.Second, KernelDir: cfg.KernelDir, PowerPoll: max(cfg.PowerPoll, 0),
		Power: power.Config{CallTimeout: 10 * time.Second}, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	// The guests reach the host's loopback at 10.0.2.2 (QEMU user-mode
	// networking): the scripts the daemon renders must point there.
	_, httpPort, err := net.SplitHostPort(dd.HTTPAddr().String())
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	dd.SetAdvertiseURL("http://10.0.2.2:" + httpPort)
	// The nodes' folders: their paths go into a shell script and QEMU's
	// command line, so keep them short and plain.
	if d.LabDir, err = os.MkdirTemp("", "nbdemo-lab-"); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	ports := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := qemubmc.Start(qemubmc.Options{Dir: filepath.Join(d.LabDir, name), Name: name, MAC: macs[i],
				BootURL: "http://10.0.2.2:" + httpPort + "/boot/" + macs[i] + ".ipxe", User: "admin", Password: password})
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			d.LabNodes[name] = n
			ports[name] = n.Port()
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	d.Names = names
	d.Groups["lab"] = names
	if err := writeLabInventory(d.InventoryPath, cfg.RecipeDir, names, macs, ports); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := d.serve(ctx, dd); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Out, "lab: %d QEMU nodes (TCG) with their ipmi_sim BMCs in %s\n", len(names), d.LabDir)
	return d, nil
}
