// Package demo runs a live simulated cluster in one process: a netbootui
// daemon on loopback high ports, a sample inventory, a generation to boot,
// and one simulated node per inventory node (internal/workflow/simnode: a
// go-ipmi BMC really spoken to over IPMI on loopback and a firmware that
// boots over the daemon's real TFTP and HTTP servers). `netbootui demo` and
// the boot-storm bench are built on it.
//
// Every node speaks from a loopback address of its own (127.1.x.y), which the
// inventory lists as its static IP, so the daemon attributes TFTP and HTTP
// requests to nodes exactly as on a real network. Nothing leaves loopback.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/netbootui/netbootui/internal/apitype"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/api"
	"github.com/netbootui/netbootui/internal/atomicfile"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/demo/qemubmc"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/kernelcache"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// MaxNodes bounds the simulated cluster (every node holds a BMC socket and a
// few goroutines; the storm bench runs up to 5,000).
const MaxNodes = 10000

// Image sources for Config.Image.
const (
	ImageAuto   = "auto"   // the default recipe when its tools are there, else tiny
	ImageRecipe = "recipe" // the default recipe; an error when it cannot be built
	ImageTiny   = "tiny"   // a small generation made in Go (not bootable by a real machine)
)

// Config sets up a demo. The zero value of every field but DataDir has a
// default fit for a person watching.
type Config struct {
	Nodes   int    // default 64, at most MaxNodes
	DataDir string // required: inventory, secrets, daemon data
	// HTTPListen and TFTPListen are the daemon's boot servers; default
	// "127.0.0.1:0". They must be loopback addresses.
	HTTPListen, TFTPListen string
	Image                  string // ImageAuto (default), ImageRecipe or ImageTiny
	// KernelDir and RecipeDir locate the default recipe's inputs; default
	// NETBOOTUI_KERNEL_DIR, NETBOOTUI_CACHE/kernel or .cache/kernel, and assets/recipes/default,
	// looked up from the working folder upwards.
	KernelDir, RecipeDir string
	// TinySizes are the sizes of the tiny generation's kernel, initrd and
	// rootfs; default 512 KiB, 1 MiB, 4 MiB.
	TinySizes [3]int64
	// StallNode hangs after StallAt ("kernel" by default) on every boot;
	// default "cn013" (the last compute node of a smaller cluster), "-"
	// for none.
	StallNode, StallAt string
	StallTimeout       time.Duration // the daemon's stall timeout; default 20 s
	// POST is the firmware's power-on self test; nodes take POST to 2*POST
	// (spread by index). Default 2 s.
	POST time.Duration
	// CheckinEvery is how often a booted node reports (default 5 s; <0:
	// only once). One compute node in eight writes DirtyGrowth bytes to
	// its overlay per report and turns dirty when it passes the inventory's
	// 64 MiB threshold; the others write a little.
	CheckinEvery time.Duration
	DirtyGrowth  int64 // default 8 MiB
	// BootRetries is how often a node's firmware starts a failed boot over
	// (simnode.Options.Retries); default 3, <0 never.
	BootRetries int
	PowerPoll   time.Duration // the daemon's power poller; default 10 s, <0 off
	Logger      *slog.Logger  // the daemon's log; default discard
	// NodeBaseURL and NodeTFTPAddr, when set, send the simulated nodes'
	// boot traffic to other servers than the daemon's (the storm bench's
	// tftpd-hpa + nginx comparison); the daemon still runs their BMCs'
	// power. They must be loopback addresses.
	NodeBaseURL, NodeTFTPAddr string
	// ExternalNodes: the simulated nodes run elsewhere (the storm bench's
	// node processes, from Layout): none is started here and the
	// inventory gives them no BMC. PowerOnAll does not apply.
	ExternalNodes bool
	// Out receives one line per thing the demo does (nil: discard).
	Out io.Writer
	// APISocket, when set, is the unix socket the daemon serves the API on
	// (started and stopped with its other servers).
	APISocket string
	// Agents runs the real node agent (internal/nodeagent, kexec
	// simulated) on every compute node, so that a reboot to clean state
	// takes the kexec path there and the power path on the other groups.
	Agents bool
	// Unknown is how many simulated machines that are not in the
	// inventory the demo has besides its nodes (at most MaxUnknown):
	// PowerOnUnknown switches them on one by one, as an admin bringing new
	// machines in does, and each asks the boot servers, is listed as an
	// unknown PXE client, and retries until it is adopted; then it boots
	// its group's image. UnknownEvery is the least time between two
	// power-ons (default 5 s).
	Unknown      int
	UnknownEvery time.Duration
	// Lab, when above 0, replaces the simulated nodes by Lab QEMU VMs
	// (TCG), lab01..labNN, each behind an ipmi_sim BMC of its own
	// (qemubmc), booting the default recipe through QEMU's iPXE ROM; see
	// lab.go. Nodes, the stall and the dirty writers do not apply.
	Lab int
}

// Dirty threshold the sample inventory sets (settings.overlay_dirty_bytes).
const DirtyThreshold = 64 << 20

// Demo is a running simulated cluster.
type Demo struct {
	Daemon *daemon.Daemon
	// Nodes are the simulated nodes by name; Names in inventory order.
	Nodes map[string]*simnode.Node
	Names []string
	// Groups maps each group of the sample inventory to its node names.
	Groups        map[string][]string
	InventoryPath string
	SecretsPath   string
	Generation    string // the published generation of image "default"
	// ImageSource says where the generation came from and, for the tiny
	// one, why the recipe was not used.
	ImageSource string
	// FellBack, when not "", says why the default recipe could not be
	// built and the tiny generation (which no real machine boots) is
	// used instead of it, although it was not asked for.
	FellBack  string
	StallNode string // "" when none
	// BootRoot is the folder of boot files the daemon serves besides the
	// Debian packages' bootloaders (the demo's stand-ins when those are
	// missing).
	BootRoot string

	// RedfishBMCs are the simulated Redfish BMCs by node name (every other
	// GPU node, see MaxRedfish); the other nodes' BMCs speak IPMI.
	RedfishBMCs map[string]*redfishsim.Sim

	// UnknownNodes are the simulated machines missing from the inventory
	// (Config.Unknown), in the order PowerOnUnknown switches them on.
	UnknownNodes []*simnode.Node

	// LabNodes are the QEMU nodes and their BMCs by name (Config.Lab);
	// LabDir holds their files and is removed by Close.
	LabNodes map[string]*qemubmc.Node
	LabDir   string

	cfg    Config
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
	// bg ends the demo's own background work (PowerOnUnknown) at Close.
	bg     context.Context
	bgStop context.CancelFunc
	bgWG   sync.WaitGroup
}

// MaxUnknown bounds Config.Unknown.
const MaxUnknown = 16

type simSpec struct {
	name, group, mac string
	ip               netip.Addr
	opts             simnode.Options
	redfish          redfishsim.Vendor // "": the node's BMC speaks IPMI
}

// MaxRedfish bounds the Redfish nodes of a demo: every other GPU node
// (gpu01, gpu03, ...) up to this many is behind a simulated Redfish BMC
// (the vendor shapes in turn), the rest behind IPMI.
const MaxRedfish = 16

func (c *Config) defaults() error {
	if c.Lab < 0 || c.Lab > MaxLab {
		return fmt.Errorf("demo: --lab %d: want 1..%d QEMU nodes", c.Lab, MaxLab)
	}
	if c.Lab > 0 {
		c.Nodes = c.Lab
		switch c.Image {
		case "", ImageAuto, ImageRecipe:
			c.Image = ImageRecipe
		default:
			return fmt.Errorf("demo: --lab boots real VMs: --image %s cannot boot, use the default recipe", c.Image)
		}
	}
	if c.Nodes == 0 {
		c.Nodes = 64
	}
	if c.Unknown < 0 || c.Unknown > MaxUnknown || (c.Unknown > 0 && (c.Lab > 0 || c.ExternalNodes)) {
		return fmt.Errorf("demo: --unknown %d: want 0..%d simulated machines (not with --lab)", c.Unknown, MaxUnknown)
	}
	if c.UnknownEvery <= 0 {
		c.UnknownEvery = 5 * time.Second
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		return fmt.Errorf("demo: --nodes %d: want 1..%d", c.Nodes, MaxNodes)
	}
	if c.DataDir == "" {
		return errors.New("demo: a data folder is required")
	}
	for _, l := range []*string{&c.HTTPListen, &c.TFTPListen} {
		if *l == "" {
			*l = "127.0.0.1:0"
		}
		ap, err := netip.ParseAddrPort(*l)
		if err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("demo: listen address %q: want a loopback IP:PORT (the demo never listens off loopback)", *l)
		}
	}
	if c.NodeBaseURL != "" {
		u, err := url.Parse(c.NodeBaseURL)
		if err != nil || u.Scheme != "http" {
			return fmt.Errorf("demo: node base URL %q: want http://LOOPBACK:PORT", c.NodeBaseURL)
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err != nil || !ip.IsLoopback() {
			return fmt.Errorf("demo: node base URL %q: want a loopback address", c.NodeBaseURL)
		}
	}
	if c.NodeTFTPAddr != "" {
		if ap, err := netip.ParseAddrPort(c.NodeTFTPAddr); err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("demo: node TFTP address %q: want a loopback IP:PORT", c.NodeTFTPAddr)
		}
	}
	switch c.Image {
	case "":
		c.Image = ImageAuto
	case ImageAuto, ImageRecipe, ImageTiny:
	default:
		return fmt.Errorf("demo: image source %q: want auto, recipe or tiny", c.Image)
	}
	if c.TinySizes == ([3]int64{}) {
		c.TinySizes = [3]int64{512 << 10, 1 << 20, 4 << 20}
	}
	if c.StallAt == "" {
		c.StallAt = "kernel"
	}
	switch c.StallAt {
	case "nbp", "script", "kernel", "initrd", "rootfs":
	default:
		return fmt.Errorf("demo: stall stage %q: want nbp, script, kernel, initrd or rootfs", c.StallAt)
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 20 * time.Second
	}
	if c.POST <= 0 {
		c.POST = 2 * time.Second
	}
	if c.CheckinEvery == 0 {
		c.CheckinEvery = 5 * time.Second
	}
	if c.BootRetries == 0 {
		c.BootRetries = 3
	}
	if c.DirtyGrowth <= 0 {
		c.DirtyGrowth = 8 << 20
	}
	if c.PowerPoll == 0 {
		c.PowerPoll = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return nil
}

// layout names the nodes: one in four is a UEFI GPU node on iPXE, one in
// eight a BIOS I/O node on pxelinux, the rest BIOS compute nodes on iPXE.
func layout(n int) []simSpec {
	gpu, io := n/4, n/8
	cn := n - gpu - io
	var out []simSpec
	add := func(group, prefix string, count int, opts simnode.Options) {
		width := max(2, len(fmt.Sprint(count)))
		if prefix == "cn" {
			width = max(3, width)
		}
		for i := 1; i <= count; i++ {
			k := len(out)
			s := simSpec{name: fmt.Sprintf("%s%0*d", prefix, width, i), group: group,
				mac: fmt.Sprintf("52:54:00:de:%02x:%02x", k>>8, k&0xff),
				ip:  netip.AddrFrom4([4]byte{127, 1, byte(k / 250), byte(k%250 + 2)}), opts: opts}
			out = append(out, s)
		}
	}
	add("compute", "cn", cn, simnode.Options{Loader: "ipxe"})
	first := len(out)
	add("gpu", "gpu", gpu, simnode.Options{Loader: "ipxe", UEFI: true})
	for i, k := 0, first; k < len(out) && i < MaxRedfish; i, k = i+1, k+2 {
		out[k].redfish = redfishsim.Vendors[i%len(redfishsim.Vendors)]
	}
	add("io", "io", io, simnode.Options{Loader: "pxelinux"})
	return out
}

// NodeSpec is one node of the demo cluster as Layout names it.
type NodeSpec struct {
	Name, Group, MAC string
	IP               netip.Addr // its NIC's and BMC's loopback address
	Loader           string     // ipxe or pxelinux
	UEFI             bool
}

// Layout returns the nodes of an n-node demo cluster, in inventory order:
// what Start with ExternalNodes expects to run elsewhere.
func Layout(n int) []NodeSpec {
	var out []NodeSpec
	for _, s := range layout(n) {
		out = append(out, NodeSpec{Name: s.name, Group: s.group, MAC: s.mac, IP: s.ip, Loader: s.opts.Loader, UEFI: s.opts.UEFI})
	}
	return out
}

// writeInventory writes the sample inventory; ports maps node names to their
// BMC ports (absent before the BMCs run).
func writeInventory(path, recipe string, specs []simSpec, ports map[string]int) error {
	var b strings.Builder
	b.WriteString(`# netbootui demo: a simulated cluster. Every node and its BMC are
# simulated in the demo process on a loopback address of their own.
settings:
  secrets: secrets.yaml
  overlay_dirty_bytes: ` + fmt.Sprint(DirtyThreshold) + `
images:
  default: {description: "demo image"` + recipeKey(recipe) + `}
groups:
  compute:
    image: default
    arch: bios
    loader: ipxe
    kernel_args: console=ttyS0
    bmc: {user: admin, password: demo}
  gpu:
    image: default
    arch: uefi
    loader: ipxe
    kernel_args: console=ttyS0 nomodeset
    bmc: {user: admin, password: demo}
  io:
    image: default
    arch: bios
    loader: pxelinux
    kernel_args: console=ttyS0
    bmc: {user: admin, password: demo}
nodes:
`)
	for _, s := range specs {
		fmt.Fprintf(&b, "  - name: %s\n    group: %s\n    ip: %s\n    nics: [{mac: \"%s\", boot: true}]\n", s.name, s.group, s.ip, s.mac)
		switch p := ports[s.name]; {
		case p != 0 && s.redfish != "":
			fmt.Fprintf(&b, "    bmc: {protocol: redfish, host: %s, port: %d, redfish: {ca: %s}}\n", s.ip, p, RedfishCAFile)
		case p != 0:
			fmt.Fprintf(&b, "    bmc: {host: %s, port: %d}\n", s.ip, p)
		}
	}
	return atomicfile.Write(path, []byte(b.String()), 0o644)
}

// RedfishCAFile is the CA of the simulated Redfish BMCs' certificates, in
// DataDir (the inventory's bmc.redfish.ca).
const RedfishCAFile = "bmc-ca.pem"

// Start builds the demo: inventory, daemon, simulated nodes, generation.
// The daemon serves from then on; PowerOnAll starts the boots. Close
// undoes everything Start did (it does not remove DataDir).
func Start(ctx context.Context, cfg Config) (_ *Demo, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	cfg.locateRecipe()
	if cfg.Lab > 0 {
		return startLab(ctx, cfg)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	specs := layout(cfg.Nodes)
	d := &Demo{cfg: cfg, Nodes: map[string]*simnode.Node{}, Groups: map[string][]string{}, RedfishBMCs: map[string]*redfishsim.Sim{},
		InventoryPath: filepath.Join(cfg.DataDir, "nodes.yaml"), SecretsPath: filepath.Join(cfg.DataDir, "secrets.yaml")}
	d.bg, d.bgStop = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := writeInventory(d.InventoryPath, cfg.RecipeDir, specs, nil); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	pw := make([]byte, 8)
	rand.Read(pw)
	password := hex.EncodeToString(pw)
	if err := atomicfile.Write(d.SecretsPath, []byte("bmc_passwords:\n  demo: \""+password+"\"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	bootRoot := filepath.Join(cfg.DataDir, "bootroot")
	d.BootRoot = bootRoot
	if err := writeMissingLoaders(bootRoot, cfg.Out); err != nil {
		return nil, err
	}
	dd, err := d.newDaemon(daemon.Config{InventoryPath: d.InventoryPath, DataDir: filepath.Join(cfg.DataDir, "daemon"),
		HTTPListen: cfg.HTTPListen, TFTPListen: cfg.TFTPListen, BootRoot: bootRoot, StallTimeout: cfg.StallTimeout,
		ReloadInterval: time.Second, KernelDir: cfg.KernelDir, PowerPoll: max(cfg.PowerPoll, 0),
		Power: power.Config{CallTimeout: 5 * time.Second}, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	baseURL := "http://" + dd.HTTPAddr().String()
	tftpAddr := dd.TFTPAddr().String()
	if cfg.NodeBaseURL != "" {
		baseURL = cfg.NodeBaseURL
	}
	if cfg.NodeTFTPAddr != "" {
		tftpAddr = cfg.NodeTFTPAddr
	}
	if cfg.StallNode == "" {
		// cn013, or the last compute node of a smaller cluster.
		for _, s := range specs {
			if s.group == "compute" && (d.StallNode == "" || d.StallNode < "cn013") {
				d.StallNode = s.name
			}
		}
	} else if cfg.StallNode != "" && cfg.StallNode != "-" {
		if _, ok := names(specs)[cfg.StallNode]; !ok {
			return nil, fmt.Errorf("demo: stall node %q is not in the %d-node demo cluster", cfg.StallNode, cfg.Nodes)
		}
		d.StallNode = cfg.StallNode
	}
	ports := map[string]int{}
	var ca *redfishsim.CA
	computeIndex := 0
	for i, s := range specs {
		if cfg.ExternalNodes {
			d.Names = append(d.Names, s.name)
			d.Groups[s.group] = append(d.Groups[s.group], s.name)
			continue
		}
		o := s.opts
		o.MAC, o.Password, o.BaseURL, o.TFTPAddr, o.SourceIP, o.PXEFirst = s.mac, password, baseURL, tftpAddr, s.ip, true
		o.POST = cfg.POST + time.Duration(i%10)*cfg.POST/10
		o.Retries = max(cfg.BootRetries, 0)
		if cfg.CheckinEvery > 0 {
			o.CheckinEvery = cfg.CheckinEvery
		}
		o.OverlayBytes = int64(i%5) << 20
		o.OverlayGrowth = 64 << 10
		if s.group == "compute" {
			o.Agent = cfg.Agents
			computeIndex++
			if computeIndex%8 == 3 { // cn003, cn011, cn019, ...
				o.OverlayGrowth = cfg.DirtyGrowth
			}
		}
		if s.name == d.StallNode {
			o.StopAfter = cfg.StallAt
		}
		n, err := simnode.Start(o)
		if err != nil {
			return nil, err
		}
		d.Nodes[s.name] = n
		d.Names = append(d.Names, s.name)
		d.Groups[s.group] = append(d.Groups[s.group], s.name)
		ports[s.name] = n.Port()
		if s.redfish != "" {
			if ca == nil {
				if ca, err = redfishsim.NewCA(); err != nil {
					return nil, fmt.Errorf("demo: %w", err)
				}
				if err := atomicfile.Write(filepath.Join(cfg.DataDir, RedfishCAFile), ca.PEM(), 0o644); err != nil {
					return nil, fmt.Errorf("demo: %w", err)
				}
			}
			// The node's Redfish BMC powers the same simulated machine.
			rf, err := redfishsim.Start(redfishsim.Options{Addr: netip.AddrPortFrom(s.ip, 0).String(), Vendor: s.redfish,
				User: "admin", Password: password, CA: ca, Machines: []redfishsim.Machine{n}, MACs: []string{s.mac}})
			if err != nil {
				return nil, fmt.Errorf("demo: %s's Redfish BMC: %w", s.name, err)
			}
			d.RedfishBMCs[s.name] = rf
			ports[s.name] = rf.Port()
		}
	}
	if err := writeInventory(d.InventoryPath, cfg.RecipeDir, specs, ports); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	for i := range cfg.Unknown {
		// BIOS iPXE machines, as the compute group's; MACs counting down
		// so that the order they asked in is not the MACs' order.
		n, err := simnode.Start(simnode.Options{Loader: "ipxe", MAC: UnknownMAC(i), Password: password, BaseURL: baseURL,
			TFTPAddr: tftpAddr, SourceIP: netip.AddrFrom4([4]byte{127, 2, 0, byte(i + 2)}), PXEFirst: true,
			POST: cfg.POST, Retries: math.MaxInt32, RetryAfter: time.Second, CheckinEvery: max(cfg.CheckinEvery, 0),
			OverlayGrowth: 64 << 10})
		if err != nil {
			return nil, err
		}
		d.UnknownNodes = append(d.UnknownNodes, n)
	}
	if err := d.serve(ctx, dd); err != nil {
		return nil, err
	}
	return d, nil
}

// newDaemon makes the demo's daemon (d.Daemon) with the API on
// Config.APISocket, and binds its servers.
func (d *Demo) newDaemon(dc daemon.Config) (*daemon.Daemon, error) {
	dd, err := daemon.New(dc)
	if err != nil {
		return nil, fmt.Errorf("demo: daemon: %w", err)
	}
	d.Daemon = dd
	if d.cfg.APISocket != "" {
		dd.Add("api", (&api.Server{D: dd, Logger: dc.Logger}).Service(d.cfg.APISocket, ""))
	}
	if err := dd.Listen(); err != nil {
		return nil, fmt.Errorf("demo: daemon: %w", err)
	}
	return dd, nil
}

// serve loads the inventory just written (with the BMC ports), runs the
// daemon and gives the cluster its generation.
func (d *Demo) serve(ctx context.Context, dd *daemon.Daemon) error {
	if err := dd.Reload(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.done = make(chan error, 1)
	go func() { d.done <- dd.Run(rctx) }()
	return d.makeGeneration(ctx)
}

func names(specs []simSpec) map[string]bool {
	m := map[string]bool{}
	for _, s := range specs {
		m[s.name] = true
	}
	return m
}

// writeMissingLoaders puts a small stand-in for every bootloader the
// simulated firmware asks for that no Debian package provides on this
// machine, so that the demo runs on a machine without ipxe or pxelinux.
func writeMissingLoaders(dir string, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	have := pxe.DefaultLoaders()
	var missing []string
	for _, name := range []string{"undionly.kpxe", "ipxe.efi", "pxelinux.0", "syslinux.efi"} {
		if _, ok := have[name]; ok {
			continue
		}
		missing = append(missing, name)
		data := bytes.Repeat([]byte("netbootui demo stand-in bootloader "+name+"\n"), 2048)
		if err := atomicfile.Write(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(out, "bootloaders: stand-ins for %s (install the ipxe, pxelinux and syslinux-efi packages for the real ones)\n", strings.Join(missing, ", "))
	}
	return nil
}

// makeGeneration builds the default recipe or makes the tiny generation, and
// publishes it.
func (d *Demo) makeGeneration(ctx context.Context) error {
	cfg := d.cfg
	why := "asked for with --image tiny"
	if cfg.Image != ImageTiny {
		recipe, kernel, reason := findRecipe(cfg.RecipeDir, cfg.KernelDir)
		if reason == "" {
			fmt.Fprintf(d.cfg.Out, "image: building the default recipe %s with the kernel in %s...\n", recipe, kernel)
			start := time.Now()
			m, err := d.buildRecipe(ctx, recipe, kernel)
			if err == nil {
				d.Generation = m.ID
				d.ImageSource = fmt.Sprintf("default recipe %s (built in %s)", recipe, time.Since(start).Round(100*time.Millisecond))
				fmt.Fprintf(d.cfg.Out, "image: generation %s from %s\n", m.ID, d.ImageSource)
				return nil
			}
			reason = "the recipe build failed: " + err.Error()
		}
		if cfg.Image == ImageRecipe {
			return fmt.Errorf("demo: default recipe: %s", reason)
		}
		why = reason
	}
	m, err := d.tinyGeneration()
	if err != nil {
		return err
	}
	d.Generation = m.ID
	d.ImageSource = "tiny generation made in Go (" + why + ")"
	if cfg.Image != ImageTiny {
		d.FellBack = why
	}
	fmt.Fprintf(d.cfg.Out, "image: generation %s is a %s\n", m.ID, d.ImageSource)
	return nil
}

// locateRecipe makes RecipeDir and KernelDir the default recipe's absolute
// folders when the generation is to be built from it and it can be: the
// inventory then names the recipe (so that the console's rebuild and
// `image build default` work) and the daemon knows the kernel. Otherwise
// RecipeDir stays "" and makeGeneration says why.
func (c *Config) locateRecipe() {
	if c.Image == ImageTiny {
		c.RecipeDir = ""
		return
	}
	if recipe, kernel, reason := findRecipe(c.RecipeDir, c.KernelDir); reason == "" {
		c.RecipeDir, c.KernelDir = recipe, kernel
	} else {
		c.RecipeDir = ""
	}
}

// recipeKey is the inventory's `recipe:` entry for a flow mapping ("" for
// none).
func recipeKey(recipe string) string {
	if recipe == "" {
		return ""
	}
	return ", recipe: " + strconv.Quote(recipe)
}

// findRecipe looks for the default recipe and its kernel; reason says what
// is missing.
func findRecipe(recipe, kernel string) (string, string, string) {
	if recipe == "" {
		recipe = findUp(filepath.Join("assets", "recipes", "default", "image.yaml"))
		if recipe == "" {
			return "", "", "assets/recipes/default not found from the working folder (run the demo from the source tree)"
		}
		recipe = filepath.Dir(recipe)
	}
	if kernel == "" {
		// Where scripts/fetch-kernel.sh put it: $NETBOOTUI_KERNEL_DIR,
		// $NETBOOTUI_CACHE/kernel, or .cache/kernel of the source tree.
		repo := ""
		if k := findUp(filepath.Join(".cache", "kernel", "vmlinuz")); k != "" {
			repo = filepath.Dir(filepath.Dir(filepath.Dir(k)))
		}
		kernel = kernelcache.Dir(repo)
	}
	if kernel == "" {
		return "", "", "no kernel: set NETBOOTUI_KERNEL_DIR or NETBOOTUI_CACHE, or run scripts/fetch-kernel.sh (.cache/kernel)"
	}
	if _, err := os.Stat(filepath.Join(kernel, "vmlinuz")); err != nil {
		return "", "", "no kernel: " + err.Error()
	}
	for _, tool := range []string{"mksquashfs", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			if tool == "busybox" {
				if _, err := os.Stat("/bin/busybox"); err == nil {
					continue
				}
			}
			return "", "", tool + " is not installed (apt-get install squashfs-tools busybox-static)"
		}
	}
	abs, err := filepath.Abs(recipe)
	if err != nil {
		return "", "", err.Error()
	}
	kabs, err := filepath.Abs(kernel)
	if err != nil {
		return "", "", err.Error()
	}
	return abs, kabs, ""
}

// findUp looks for rel in the working folder and its parents.
func findUp(rel string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func (d *Demo) buildRecipe(ctx context.Context, recipe, kernel string) (*image.Manifest, error) {
	// The daemon was started without a kernel folder when none was named:
	// build through the image builder with the one found.
	b, err := image.NewBuilder(d.Daemon.Images())
	if err != nil {
		return nil, err
	}
	var last string
	m, err := b.Build(ctx, recipe, image.BuildOptions{KernelDir: kernel, Publish: true, Progress: func(p image.Progress) {
		if p.Step != last {
			last = p.Step
			fmt.Fprintf(d.cfg.Out, "image:   %s\n", p.Step)
		}
	}})
	if err != nil {
		return nil, err
	}
	d.Daemon.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "image",
		Message: fmt.Sprintf("demo: image default generation %s built from %s", m.ID, recipe)})
	return m, nil
}

// tinyGeneration imports three files made here as image "default".
func (d *Demo) tinyGeneration() (*image.Manifest, error) {
	dir, err := os.MkdirTemp(d.cfg.DataDir, "tiny-")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)
	files := map[string]string{}
	for i, name := range []string{image.FileKernel, image.FileInitrd, image.FileRootfs} {
		p := filepath.Join(dir, name)
		chunk := []byte(fmt.Sprintf("netbootui demo %s ", name))
		data := bytes.Repeat(chunk, int(d.cfg.TinySizes[i])/len(chunk)+1)[:d.cfg.TinySizes[i]]
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		files[name] = p
	}
	return d.Daemon.ImportImage(daemon.ImportRequest{Image: "default", Kernel: files[image.FileKernel],
		Initrd: files[image.FileInitrd], Rootfs: files[image.FileRootfs], Publish: true, Source: "demo tiny"})
}

// Selection is a hostlist naming every node of the demo, by group.
func (d *Demo) Selection() string {
	var parts []string
	for _, g := range []string{"compute", "gpu", "io", "lab"} {
		if len(d.Groups[g]) > 0 {
			parts = append(parts, "@"+g)
		}
	}
	return strings.Join(parts, ",")
}

// PowerOnAll powers every node on through its BMC (real IPMI or Redfish on
// loopback).
func (d *Demo) PowerOnAll(ctx context.Context) ([]daemon.PowerResult, error) {
	res, err := d.Daemon.Power(ctx, daemon.PowerRequest{Selection: d.Selection(), Op: "on", Who: "demo"}, nil)
	if err != nil {
		return res, err
	}
	var failed []string
	for _, r := range res {
		if r.Error != "" {
			failed = append(failed, r.Node+": "+r.Error)
		}
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("demo: power on failed for %d nodes: %s", len(failed), strings.Join(failed[:min(3, len(failed))], "; "))
	}
	return res, nil
}

// UnknownMAC is the MAC of the i-th machine of Config.Unknown (from 0).
func UnknownMAC(i int) string { return fmt.Sprintf("52:54:00:ad:00:%02x", MaxUnknown-i) }

// PowerOnUnknown switches the machines of Config.Unknown on one by one
// from their front panels (they are in no inventory, so no BMC call
// reaches them): each after the previous one has asked the boot servers
// and at least UnknownEvery after it was switched on. It returns when all
// are on, or when ctx ends or the demo closes.
func (d *Demo) PowerOnUnknown(ctx context.Context) error {
	d.bgWG.Add(1)
	defer d.bgWG.Done()
	for i, n := range d.UnknownNodes {
		if err := n.PowerOn(); err != nil {
			return fmt.Errorf("demo: power on %s: %w", UnknownMAC(i), err)
		}
		// Said in the event history, not on Out: the console may own the
		// terminal.
		d.Daemon.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "demo", MAC: UnknownMAC(i),
			Message: "demo: switched on a machine that is in no inventory"})
		t := time.NewTimer(d.cfg.UnknownEvery)
		for asked := false; !asked; {
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-d.bg.Done():
				t.Stop()
				return nil
			case <-t.C:
				asked = n.Stats().Failures > 0 || n.Stats().Checkins > 0
				t.Reset(100 * time.Millisecond)
			}
		}
		t.Stop()
	}
	return nil
}

// Counts tallies the nodes by boot stage and how many are dirty.
func (d *Demo) Counts() (stages map[apitype.Stage]int, dirty int) {
	stages = map[apitype.Stage]int{}
	for _, v := range d.Daemon.Nodes() {
		stages[v.State.Stage]++
		if v.Dirty {
			dirty++
		}
	}
	return stages, dirty
}

// Wait returns when the daemon stops (its error) or ctx ends.
func (d *Demo) Wait(ctx context.Context) error {
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the daemon, then every simulated node, or with Config.Lab
// every BMC and QEMU process (qemubmc.Node.Stop) and removes LabDir. It is
// safe to call more than once.
func (d *Demo) Close() error {
	d.once.Do(func() {
		if d.bgStop != nil {
			d.bgStop()
			d.bgWG.Wait()
		}
		// The daemon first: it closes its IPMI sessions while the BMCs
		// still answer (a BMC gone first would make each close wait for
		// its timeout).
		if d.cancel != nil {
			d.cancel()
			d.err = <-d.done
		} else if d.Daemon != nil {
			// New succeeded but Run never started: release its
			// listeners and state.
			d.err = d.Daemon.Close()
		}
		var wg sync.WaitGroup
		for _, b := range d.RedfishBMCs {
			_ = b.Close()
		}
		for _, n := range d.Nodes {
			wg.Add(1)
			go func() { defer wg.Done(); n.Close() }()
		}
		for _, n := range d.UnknownNodes {
			wg.Add(1)
			go func() { defer wg.Done(); n.Close() }()
		}
		var mu sync.Mutex
		for _, n := range d.LabNodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := n.Stop(); err != nil {
					mu.Lock()
					d.err = errors.Join(d.err, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if d.LabDir != "" {
			if err := os.RemoveAll(d.LabDir); err != nil {
				d.err = errors.Join(d.err, fmt.Errorf("demo: %w", err))
			}
		}
	})
	return d.err
}
