package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/demo"
	"github.com/netbootui/netbootui/internal/ui"
)

// cmdDemo runs a simulated cluster in this process (internal/demo), serves
// the API on a socket of its own and opens the console on it, or runs
// headless until SIGINT/SIGTERM with --no-tui.
func demoCmd() *cobra.Command {
	return newVerb("demo", "run a simulated cluster in this process and open the console on it", exactArgs(0), demoVerb)
}

func demoVerb(fs *pflag.FlagSet) runner {
	var cfg demo.Config
	fs.IntVar(&cfg.Nodes, "nodes", 64, "how many simulated nodes (1.."+fmt.Sprint(demo.MaxNodes)+")")
	fs.IntVar(&cfg.Lab, "lab", 0, "run `N` QEMU VMs (TCG, 1.."+fmt.Sprint(demo.MaxLab)+"), each behind its own ipmi_sim BMC, instead of the simulated nodes")
	noTUI := fs.Bool("no-tui", false, "run headless until SIGINT/SIGTERM instead of opening the console")
	socket := fs.String("api-socket", "", "unix socket `path` of the demo's API (default DATA/api.sock)")
	data := fs.String("data", "", "data `dir` (default: a temporary folder removed on exit)")
	fs.StringVar(&cfg.HTTPListen, "http-listen", "127.0.0.1:0", "HTTP boot server `address` (loopback only)")
	fs.StringVar(&cfg.TFTPListen, "tftp-listen", "127.0.0.1:0", "TFTP server `address` (loopback only)")
	fs.StringVar(&cfg.Image, "image", demo.ImageAuto, "generation to boot: auto, recipe (the default recipe) or tiny (made in Go)")
	fs.StringVar(&cfg.KernelDir, "kernel-dir", "", "`dir` with vmlinuz and modules/ for the default recipe (default $NETBOOTUI_KERNEL_DIR or .cache/kernel)")
	fs.StringVar(&cfg.StallNode, "stall-node", "", "`node` whose boot stalls (default cn013; - for none)")
	fs.StringVar(&cfg.StallAt, "stall-at", "kernel", "`stage` after which it stalls: nbp, script, kernel, initrd or rootfs")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", 20*time.Second, "a boot stage with no progress for this long is stalled")
	fs.DurationVar(&cfg.POST, "post", 2*time.Second, "simulated firmware self-test time (each node takes 1 to 2 times this)")
	fs.DurationVar(&cfg.CheckinEvery, "checkin-every", 5*time.Second, "how often a booted node checks in")
	fs.DurationVar(&cfg.PowerPoll, "power-poll", 10*time.Second, "how often the daemon reads every BMC's power status")
	fs.BoolVar(&cfg.Agents, "agents", true, "run the node agent on the compute nodes: a reboot to clean state can kexec them (no firmware POST); the other groups power cycle")
	fs.IntVar(&cfg.Unknown, "unknown", 3, "how many simulated machines missing from the inventory are switched on one by one (0.."+fmt.Sprint(demo.MaxUnknown)+"): adopt them in the console's :unknown")
	fs.DurationVar(&cfg.UnknownEvery, "unknown-every", 5*time.Second, "the least time between switching on two of the --unknown machines")
	statusEvery := fs.Duration("status-every", 10*time.Second, "with --no-tui, how often a status line is printed")
	return func(ctx context.Context, _ []string) error {
		// The unknown machines are simulated ones: a lab of QEMU nodes
		// or external nodes has none unless --unknown is given (and
		// then refused by demo.Start).
		if (cfg.Lab > 0 || cfg.ExternalNodes) && !fs.Changed("unknown") {
			cfg.Unknown = 0
		}
		return runDemo(ctx, cfg, demoOptions{noTUI: *noTUI, socket: *socket, data: *data, statusEvery: *statusEvery})
	}
}

// demoOptions are demo's flags that are not demo.Config.
type demoOptions struct {
	noTUI        bool
	socket, data string
	statusEvery  time.Duration
}

func runDemo(ctx context.Context, cfg demo.Config, o demoOptions) error {
	if o.data == "" {
		dir, err := os.MkdirTemp("", "netbootui-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.data = dir
	}
	// A --data folder that does not exist yet is made, as serve's is.
	if err := os.MkdirAll(o.data, 0o755); err != nil {
		return fmt.Errorf("demo: --data %s: cannot make the folder: %w", o.data, err)
	}
	if o.socket == "" {
		o.socket = filepath.Join(o.data, "api.sock")
	}
	cfg.DataDir = o.data
	cfg.APISocket = o.socket
	cfg.Out = os.Stdout
	// The daemon logs warnings to stderr when headless, to DATA/demo.log
	// under the console (which owns the terminal).
	var logOut io.Writer = os.Stderr
	if !o.noTUI {
		f, err := os.OpenFile(filepath.Join(o.data, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		logOut = f
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if cfg.Lab > 0 {
		fmt.Printf("netbootui demo: starting %d QEMU nodes with their ipmi_sim BMCs in %s\n", cfg.Lab, o.data)
	} else {
		fmt.Printf("netbootui demo: starting %d simulated nodes in %s\n", cfg.Nodes, o.data)
	}
	d, err := demo.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := d.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "netbootui demo: cleanup: %v\n", err)
		}
	}()
	printDemoBanner(os.Stdout, d, o.socket)
	if _, err := d.PowerOnAll(ctx); err != nil {
		return err
	}
	fmt.Printf("powered on %d nodes through their BMCs (IPMI and Redfish on loopback); they boot over TFTP and HTTP now\n", len(d.Names))
	if len(d.UnknownNodes) > 0 {
		go d.PowerOnUnknown(ctx)
	}
	if o.noTUI {
		fmt.Println("running headless; SIGINT or SIGTERM stops the demo and cleans up")
		t := time.NewTicker(o.statusEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				fmt.Println("netbootui demo: stopping")
				return nil
			case <-t.C:
				fmt.Println(demoStatus(d))
			}
		}
	}
	if d.FellBack != "" && !waitForEnter(ctx, d.FellBack) {
		fmt.Println("netbootui demo: stopping")
		return nil
	}
	opts, err := terminalOptions(o.socket)
	if err != nil {
		return err
	}
	m := ui.New(apiclient.New(o.socket), opts)
	defer m.Close()
	_, err = tea.NewProgram(m, tea.WithContext(ctx)).Run()
	if err != nil && ctx.Err() != nil {
		err = nil
	}
	fmt.Println("netbootui demo: stopping")
	return err
}

// waitForEnter says, before the console covers the terminal, that the
// nodes boot the tiny generation because the default recipe could not be
// built, and waits for Enter on a terminal. It returns false when ctx ends
// first (ctrl+c).
func waitForEnter(ctx context.Context, why string) bool {
	fmt.Printf("\nNOTE: the default recipe was not built (%s),\n"+
		"so the nodes boot the tiny generation made in Go, which no real machine could boot.\n"+
		"Fix that (scripts/fetch-kernel.sh, NETBOOTUI_CACHE, --kernel-dir) or pass --image tiny to skip this note.\n", why)
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return true
	}
	fmt.Print("Press Enter to open the console (ctrl+c stops the demo). ")
	line := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		close(line)
	}()
	select {
	case <-line:
		return true
	case <-ctx.Done():
		fmt.Println()
		return false
	}
}

func printDemoBanner(w io.Writer, d *demo.Demo, socket string) {
	if len(d.LabNodes) > 0 {
		printLabBanner(w, d, socket)
		return
	}
	var groups []string
	for _, g := range []struct{ name, how string }{{"compute", "iPXE, BIOS"}, {"gpu", "iPXE, UEFI"}, {"io", "pxelinux, BIOS"}} {
		if n := len(d.Groups[g.name]); n > 0 {
			groups = append(groups, fmt.Sprintf("%s %d (%s)", g.name, n, g.how))
		}
	}
	first, last := d.Nodes[d.Names[0]], d.Nodes[d.Names[len(d.Names)-1]]
	fmt.Fprintf(w, "netbootui demo: %d simulated nodes: %s\n", len(d.Names), strings.Join(groups, ", "))
	fmt.Fprintf(w, "  image:     %s\n", d.ImageSource)
	fmt.Fprintf(w, "  http:      http://%s   tftp: %s\n", d.Daemon.HTTPAddr(), d.Daemon.TFTPAddr())
	fmt.Fprintf(w, "  BMCs:      IPMI (RMCP+) on %s .. %s, one UDP port each (ports in the inventory)\n", first.Addr(), last.Addr())
	if len(d.RedfishBMCs) > 0 {
		var rf []string
		for _, name := range d.Names {
			if b := d.RedfishBMCs[name]; b != nil {
				rf = append(rf, name+" "+b.Addr())
			}
		}
		fmt.Fprintf(w, "  Redfish:   %s (simulated BMCs, HTTPS; their CA is %s)\n", strings.Join(rf, ", "), filepath.Join(filepath.Dir(d.InventoryPath), demo.RedfishCAFile))
	}
	fmt.Fprintf(w, "  inventory: %s (secrets: %s, mode 0600)\n", d.InventoryPath, d.SecretsPath)
	if n := len(d.UnknownNodes); n > 0 {
		fmt.Fprintf(w, "  new:       %d machines in no inventory are switched on one by one (%s first); adopt them in :unknown\n", n, demo.UnknownMAC(0))
	}
	if d.StallNode != "" {
		fmt.Fprintf(w, "  trouble:   %s stalls during its boot; one compute node in eight writes to its overlay until it is dirty\n", d.StallNode)
	}
	printAttach(w, socket)
}

// printLabBanner is the banner of `demo --lab`.
func printLabBanner(w io.Writer, d *demo.Demo, socket string) {
	first, last := d.LabNodes[d.Names[0]], d.LabNodes[d.Names[len(d.Names)-1]]
	fmt.Fprintf(w, "netbootui demo --lab: %d QEMU nodes (TCG, iPXE ROM, BIOS): %s..%s\n", len(d.Names), d.Names[0], d.Names[len(d.Names)-1])
	fmt.Fprintf(w, "  image:     %s\n", d.ImageSource)
	fmt.Fprintf(w, "  http:      http://%s (the VMs see it as %s)   tftp: %s\n", d.Daemon.HTTPAddr(), d.Daemon.BootURL(), d.Daemon.TFTPAddr())
	fmt.Fprintf(w, "  BMCs:      ipmi_sim, IPMI (RMCP+, cipher suite 3) on %s .. %s; serial over LAN from each VM's ttyS0\n", first.Addr(), last.Addr())
	fmt.Fprintf(w, "  lab dir:   %s (pid files, chassis and QEMU logs; removed on exit)\n", d.LabDir)
	fmt.Fprintf(w, "  inventory: %s (secrets: %s, mode 0600)\n", d.InventoryPath, d.SecretsPath)
	printAttach(w, socket)
	fmt.Fprintf(w, "  NETBOOTUI_SOCKET=%s netbootui console %s   (its serial console)\n", socket, d.Names[0])
}

func printAttach(w io.Writer, socket string) {
	fmt.Fprintf(w, "  api:       %s\n", socket)
	fmt.Fprintf(w, "attach from another terminal:\n")
	fmt.Fprintf(w, "  NETBOOTUI_SOCKET=%s netbootui node list\n", socket)
	fmt.Fprintf(w, "  NETBOOTUI_SOCKET=%s netbootui reboot-clean NODE\n", socket)
	fmt.Fprintf(w, "  NETBOOTUI_SOCKET=%s netbootui            (the console)\n", socket)
}

// demoStatus is one line: node counts by stage and how many are dirty.
func demoStatus(d *demo.Demo) string {
	stages, dirty := d.Counts()
	keys := make([]string, 0, len(stages))
	for s := range stages {
		keys = append(keys, string(s))
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		name := k
		if name == "" {
			name = "unknown"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, stages[apitype.Stage(k)]))
	}
	parts = append(parts, fmt.Sprintf("dirty %d", dirty))
	return time.Now().Format("15:04:05") + " nodes: " + strings.Join(parts, ", ")
}
