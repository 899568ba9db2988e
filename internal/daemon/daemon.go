// Package daemon is the netbootui daemon core: it holds the inventory in force
// (reloading it when the file changes and keeping the last good one when a new
// one is invalid), the boot-state tracker, the image store and the TFTP and HTTP
// boot servers, and offers the operations the API and the console call.
// It has no terminal and no API transport of its own: internal/api serves it.
//
// BMCs are reached only through the power seam (internal/power): the daemon
// holds a power.Service over the registry of Config.Backends (default: every
// built-in backend, internal/power/backends), builds each node's
// power.Target from the inventory, and uses it for power verbs, the poller,
// reboot-clean (and so rollouts), the BMC facts and the serial consoles,
// whose per-node sharing is a consolehub.Hubs the daemon owns.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/netbootui/netbootui/internal/apitype"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/consolehub"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/netlimit"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/rollout"
	"github.com/netbootui/netbootui/internal/tftp"
)

// Config is how the daemon is set up. Empty listen addresses disable that
// server.
type Config struct {
	InventoryPath string
	DataDir       string // state database, image store, token key
	TFTPListen    string // e.g. ":69" or "127.0.0.1:6969"
	HTTPListen    string // e.g. ":80" or "127.0.0.1:8080"
	// AdvertiseURL is the base URL nodes reach the HTTP server at; when empty
	// HTTP answers use the request's Host and TFTP answers DefaultURL below.
	AdvertiseURL string
	// BootRoot is a folder of extra boot files served over TFTP and HTTP
	// (/loaders/); the Debian package bootloaders are served in any case.
	BootRoot string
	// TemplatesDir holds boot-entry templates that replace the embedded ones.
	TemplatesDir   string
	StallTimeout   time.Duration // default 2 minutes
	ReloadInterval time.Duration // inventory poll interval, default 2 s
	// SessionTTL is how long an admin's image session waits for its
	// decision before it is discarded (default SessionTTL).
	SessionTTL time.Duration
	// KernelDir is ${kernel_dir} in image recipes (scripts/fetch-kernel.sh's
	// folder: vmlinuz and modules/).
	KernelDir string
	// PowerPoll is how often every BMC's power status is read (0: never).
	PowerPoll time.Duration
	// Power tunes the power seam (call timeout, breaker, rate limit).
	Power power.Config
	// Backends are the power backends the inventory may name in
	// bmc.protocol (nil: backends.Registry(), every backend netbootui is
	// built with).
	Backends *power.Registry
	// HTTPLimits are the HTTP boot server's timeouts and connection cap
	// (zero fields: netlimit's defaults, the cap from the fd limit).
	HTTPLimits netlimit.Limits
	Logger     *slog.Logger
}

// Daemon is a running netbootui core.
type Daemon struct {
	cfg    Config
	log    *slog.Logger
	inv    atomic.Pointer[inventory.Inventory]
	tokens *pxe.Tokens

	// Tracker follows every node's boot.
	Tracker *bootstate.Tracker
	// Images is the generation store.
	Images *image.Store
	// Boot answers boot requests (shared by the TFTP and HTTP servers).
	Boot *pxe.Boot
	// Registry holds the daemon's Prometheus metrics.
	Registry *prometheus.Registry

	state     *bootstate.Store
	power     *power.Service
	consoles  *consolehub.Hubs
	builds    *image.Queue
	audit     *audit.Log
	resultMu  sync.Mutex
	tftp      *tftp.Server
	httpSrv   *http.Server
	httpLn    net.Listener
	editMu    sync.Mutex
	unknown   *unknownTable
	reloadMu  sync.Mutex
	reloadErr string
	reloadAt  time.Time
	rollouts  *rollout.Manager
	sessions  sessionTable // admins' sessions on images (sessions.go)
}

// New loads the inventory (which must be valid), opens the data directory and
// binds the boot servers' listeners. Call Run to serve.
func New(cfg Config) (_ *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 2 * time.Minute
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = 2 * time.Second
	}
	if cfg.InventoryPath == "" || cfg.DataDir == "" {
		return nil, errors.New("daemon: inventory path and data dir are required")
	}
	if cfg.Backends == nil {
		cfg.Backends = backends.Registry()
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, Registry: prometheus.NewRegistry(), unknown: newUnknownTable(MaxUnknown)}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	inv, err := d.loadInventory()
	if err != nil {
		return nil, err
	}
	d.inv.Store(inv)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	if d.audit, err = audit.Open(filepath.Join(cfg.DataDir, "audit.log"), 1000); err != nil {
		return nil, err
	}
	if cfg.Power.Logger == nil {
		cfg.Power.Logger = cfg.Logger
	}
	d.power = power.New(cfg.Power, cfg.Backends)
	d.consoles = consolehub.New(cfg.Logger)
	if d.tokens, err = pxe.LoadTokens(filepath.Join(cfg.DataDir, "token.key")); err != nil {
		return nil, err
	}
	if d.Images, err = image.OpenStore(filepath.Join(cfg.DataDir, "images")); err != nil {
		return nil, err
	}
	builder, err := image.NewBuilder(d.Images)
	if err != nil {
		return nil, err
	}
	d.builds = image.NewQueue(builder, 1)
	if d.state, err = bootstate.OpenStore(filepath.Join(cfg.DataDir, "state.db")); err != nil {
		return nil, err
	}
	if d.Tracker, err = bootstate.New(bootstate.Options{Store: d.state, StallTimeout: cfg.StallTimeout, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	d.preparePersist(inv)
	renderer, err := pxe.NewRenderer(cfg.TemplatesDir)
	if err != nil {
		return nil, err
	}
	loaders := &pxe.FileRoot{Dir: cfg.BootRoot, Aliases: pxe.DefaultLoaders()}
	if loaders.Dir == "" {
		loaders.Dir = filepath.Join(cfg.DataDir, "bootroot")
		if err := os.MkdirAll(loaders.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	d.Boot = &pxe.Boot{
		Inventory:    d.Inventory,
		Renderer:     renderer,
		Images:       d.Images,
		Tokens:       d.tokens,
		Loaders:      loaders,
		Events:       d.apply,
		AdvertiseURL: cfg.AdvertiseURL,
		Logger:       cfg.Logger,
	}
	if err := d.openRollouts(); err != nil {
		return nil, err
	}
	if cfg.HTTPListen != "" {
		ln, err := net.Listen("tcp", cfg.HTTPListen)
		if err != nil {
			return nil, fmt.Errorf("http listen %s: %w", cfg.HTTPListen, err)
		}
		limits := cfg.HTTPLimits.WithDefaults()
		capped := limits.Listener(ln)
		d.httpLn = capped
		d.Boot.DefaultURL = defaultURL(d.httpLn.Addr())
		hs := &pxe.HTTPServer{Boot: d.Boot, Registry: d.Registry}
		d.Registry.MustRegister(newStageCollector(d), prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "netbootui_http_connections_shed_total", Help: "HTTP connections closed unanswered because the connection cap was reached.",
		}, func() float64 { return float64(capped.Shed()) }))
		d.httpSrv = capped.Server(hs.Handler(), slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug))
		cfg.Logger.Debug("http limits", "max_conns", limits.MaxConns, "header_timeout", limits.ReadHeaderTimeout,
			"read_timeout", limits.ReadTimeout, "idle_timeout", limits.IdleTimeout, "write_timeout", limits.WriteTimeout)
	}
	if cfg.TFTPListen != "" {
		d.tftp = pxe.NewTFTPServer(d.Boot, func(client netip.AddrPort, name string, reason error) {
			d.Boot.Denied(bootstate.Event{Proto: "tftp", Remote: client.String(),
				Path: fmt.Sprintf("%q", name), Error: reason.Error()}, "tftp: request refused")
		})
		d.tftp.Logger = cfg.Logger
		if err := d.tftp.Listen(cfg.TFTPListen); err != nil {
			return nil, fmt.Errorf("tftp listen %s: %w", cfg.TFTPListen, err)
		}
	}
	return d, nil
}

// defaultURL turns the HTTP listener's address into a URL nodes can use. A
// wildcard address becomes the first non-loopback address of the host.
func defaultURL(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String()
	}
	ip := ta.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, ad := range addrs {
				if in, ok := ad.(*net.IPNet); ok && !in.IP.IsLoopback() && in.IP.To4() != nil {
					ip = in.IP
					break
				}
			}
		}
	}
	return "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port))
}

// apply records a boot event. It is the Boot's event sink.
func (d *Daemon) apply(ev bootstate.Event) {
	d.unknown.see(ev)
	d.Tracker.Apply(ev)
}

// Apply records an event from outside the boot servers (power actions, admin
// marks).
func (d *Daemon) Apply(ev bootstate.Event) bootstate.NodeState { return d.Tracker.Apply(ev) }

// Inventory returns the inventory in force.
func (d *Daemon) Inventory() *inventory.Inventory { return d.inv.Load() }

// HTTPAddr is the bound address of the HTTP boot server (nil when disabled).
func (d *Daemon) HTTPAddr() net.Addr {
	if d.httpLn == nil {
		return nil
	}
	return d.httpLn.Addr()
}

// TFTPAddr is the bound address of the TFTP server (nil when disabled).
func (d *Daemon) TFTPAddr() net.Addr {
	if d.tftp == nil {
		return nil
	}
	return d.tftp.LocalAddr()
}

// Run serves until ctx ends, then shuts every server down and flushes state.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if d.httpSrv != nil {
		run("http", func() error { return d.httpSrv.Serve(d.httpLn) })
		d.log.Info("http boot server listening", "addr", d.httpLn.Addr().String(), "url", d.Boot.DefaultURL)
	}
	if d.tftp != nil {
		run("tftp", d.tftp.Serve)
		d.log.Info("tftp server listening", "addr", d.tftp.LocalAddr().String())
	}
	run("tracker", func() error { d.Tracker.Run(ctx); return nil })
	run("nfs trees", func() error { d.publishNFSTrees(); return nil })
	if d.cfg.PowerPoll > 0 {
		polled := d.power.Poll(ctx, d.pollTargets, d.cfg.PowerPoll, 64, d.onPoll)
		run("power poller", func() error { <-polled; return nil })
	}
	run("inventory watch", func() error {
		inventory.Watch(ctx, d.cfg.InventoryPath, d.cfg.ReloadInterval, d.onInventory, d.parseOptions()...)
		return nil
	})
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		d.log.Error("server failed", "err", err)
	}
	cancel()
	d.shutdown()
	wg.Wait()
	d.close()
	return err
}

func (d *Daemon) shutdown() {
	if d.httpSrv != nil {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		d.httpSrv.Shutdown(sctx)
		c()
	}
	if d.tftp != nil {
		d.tftp.Close()
	}
}

// close releases what New opened; safe on a half-built Daemon.
func (d *Daemon) close() {
	d.closeSessions()
	if d.httpLn != nil && d.httpSrv == nil {
		d.httpLn.Close()
	}
	if d.tftp != nil {
		d.tftp.Close()
	}
	d.closeRollouts()
	if d.Tracker != nil {
		if err := d.Tracker.Close(); err != nil {
			d.log.Error("flushing boot state", "err", err)
		}
	}
	if d.state != nil {
		d.state.Close()
	}
	if d.consoles != nil {
		d.consoles.Close()
	}
	if d.power != nil {
		d.power.Close()
	}
	if d.audit != nil {
		d.audit.Close()
	}
}

// loadInventory loads and validates the inventory, refusing also what the
// boot servers would refuse to render (as `netbootui validate` does).
func (d *Daemon) loadInventory() (*inventory.Inventory, error) {
	inv, err := inventory.Load(d.cfg.InventoryPath, d.parseOptions()...)
	if err == nil {
		err = pxe.CheckInventory(inv)
	}
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// onInventory is called by the watcher with each new version of the file.
func (d *Daemon) onInventory(inv *inventory.Inventory, err error) {
	if err == nil {
		if err = pxe.CheckInventory(inv); err != nil {
			inv = nil
		}
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.reloadAt = time.Now()
	if err != nil {
		msg := err.Error()
		if msg != d.reloadErr {
			d.log.Error("inventory invalid, keeping the last good one", "path", d.cfg.InventoryPath,
				"revision", short(d.Inventory().Revision), "err", msg)
			d.Tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "inventory",
				Error: "inventory reload failed, still serving revision " + short(d.Inventory().Revision) + ": " + msg})
		}
		d.reloadErr = msg
		return
	}
	// The watcher and Reload read the file separately: apply only what is
	// still on disk, so an older read never replaces a newer one (the next
	// poll brings whatever is newer).
	if b, rerr := os.ReadFile(d.cfg.InventoryPath); rerr == nil && inventory.Revision(b) != inv.Revision {
		return
	}
	d.reloadErr = ""
	old := d.inv.Swap(inv)
	if old == nil || old.Revision != inv.Revision {
		d.preparePersist(inv)
		d.log.Info("inventory loaded", "path", inv.Path, "revision", short(inv.Revision), "nodes", len(inv.Nodes))
		d.Tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "inventory",
			Message: fmt.Sprintf("inventory revision %s loaded: %d nodes", short(inv.Revision), len(inv.Nodes))})
	}
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// InventoryStatus is which inventory is in force (the API type).
type InventoryStatus = apitype.InventoryStatus

// InventoryStatus reports the inventory in force and the last reload error.
func (d *Daemon) InventoryStatus() InventoryStatus {
	inv := d.Inventory()
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	return InventoryStatus{Path: inv.Path, Revision: inv.Revision, Nodes: len(inv.Nodes), Groups: len(inv.Groups),
		ReloadErr: d.reloadErr, LastReload: d.reloadAt}
}

// Reload reads the inventory file now (as the watcher would).
func (d *Daemon) Reload() error {
	inv, err := d.loadInventory()
	d.onInventory(inv, err)
	return err
}

// parseOptions are how the daemon reads its inventory: checked against its
// power backends.
func (d *Daemon) parseOptions() []inventory.Option {
	return []inventory.Option{inventory.WithProtocols(d.cfg.Backends)}
}
