// Package daemon is the netbootui daemon core: it holds the inventory in force
// (reloading it when the file changes and keeping the last good one when a new
// one is invalid), the durable state behind internal/state's interfaces (the
// boot-state tracker's store, learned addresses, rollouts, audit, console
// captures), the image store and the boot servers (HTTP, TFTP, proxyDHCP),
// and offers the operations the API and the console call.
//
// One lifecycle (internal/lifecycle) runs every server: New sets them up
// unbound, Add takes the caller's own (the API socket and the SSH console:
// internal/api imports this package, so cmd hands them over), Listen binds
// them all or none, Run serves them until its context ends or one fails,
// then closes them all and the state. The package keeps no package-level
// mutable state: everything belongs to a Daemon.
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
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/backup"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/consolehub"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/lifecycle"
	"github.com/netbootui/netbootui/internal/netlimit"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/rollout"
	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/local"
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
	// AgentBinary is the static node agent (cmd/netbootui-agent) that image
	// builds put into the initramfs, for reboot-clean by kexec; "" builds
	// images without it (their nodes are cleaned by power only).
	AgentBinary string
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
	// ProxyDHCP answers PXE clients on an interface (Interface "": none).
	ProxyDHCP ProxyDHCPOptions
	// State is the durable state; nil opens the single-head store in
	// DataDir (internal/state/local). The daemon closes it.
	State state.Store
	// Peer is how the heads of a cluster fetch generations from each
	// other (PeerOptions; zero: from the boot HTTP server).
	Peer   PeerOptions
	Logger *slog.Logger
}

// Daemon is a running netbootui core: the inventory in force, the state
// (internal/state), the boot servers and the workflows, run by one
// lifecycle (internal/lifecycle) with the servers its caller adds.
type Daemon struct {
	cfg    Config
	log    *slog.Logger
	inv    atomic.Pointer[inventory.Inventory]
	tokens *pxe.Tokens

	store    state.Store
	tracker  *bootstate.Tracker // every node's boot
	images   *image.Store       // the generation store
	boot     *pxe.Boot          // boot answers, shared by TFTP and HTTP
	peer     *peerService       // the generation server for the other heads (cluster TLS; clusterpeer.go)
	registry *prometheus.Registry
	audit    state.Audit
	power    *power.Service
	builds   *image.Queue
	rollouts *rollout.Manager
	cluster  *cluster // several heads: the shared inventory (nil on one)

	consoles  *consolehub.Hubs
	servers   lifecycle.Group
	http      *httpService // nil when disabled
	tftp      *tftp.Server
	closeOnce sync.Once

	resultMu  sync.Mutex
	editMu    sync.Mutex
	unknown   *unknownTable
	reloadMu  sync.Mutex
	reloadErr string
	reloadAt  time.Time
	sessions  sessionTable  // admins' sessions on images (sessions.go)
	wipes     *persistWipes // the wipes requested of nodes' persist disks
}

// New loads the inventory (which must be valid), opens the state and the
// image store and sets up the boot servers without binding them. Add the
// caller's servers, then Listen (to learn the bound addresses) and Run;
// a Daemon that will not Run must be closed with Close.
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
		if cfg.State != nil {
			cfg.State.Close()
		}
		return nil, errors.New("daemon: inventory path and data dir are required")
	}
	if cfg.Backends == nil {
		cfg.Backends = backends.Registry()
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, registry: prometheus.NewRegistry(), store: cfg.State, unknown: newUnknownTable(MaxUnknown)}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	pdhcp, err := newProxyDHCP(cfg.ProxyDHCP, cfg)
	if err != nil {
		return nil, err
	}
	if c, ok := cfg.State.(state.Cluster); ok {
		if err := d.startCluster(c); err != nil {
			return nil, err
		}
	}
	inv, err := d.loadInventory()
	if err != nil {
		return nil, err
	}
	d.inv.Store(inv)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	if d.store == nil {
		if d.store, err = local.Open(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	d.audit = d.store.Audit()
	if cfg.Power.Logger == nil {
		cfg.Power.Logger = cfg.Logger
	}
	d.power = power.New(cfg.Power, cfg.Backends)
	d.consoles = consolehub.New(cfg.Logger, d.store.Consoles())
	key, err := d.store.TokenKey()
	if err != nil {
		return nil, err
	}
	if d.tokens, err = pxe.NewTokens(key); err != nil {
		return nil, err
	}
	if d.images, err = image.OpenStore(filepath.Join(cfg.DataDir, "images")); err != nil {
		return nil, err
	}
	builder, err := image.NewBuilder(d.images)
	if err != nil {
		return nil, err
	}
	d.builds = image.NewQueue(builder, 1)
	if d.tracker, err = bootstate.New(bootstate.Options{Store: d.store.BootStates(), StallTimeout: cfg.StallTimeout, Logger: cfg.Logger}); err != nil {
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
	d.boot = &pxe.Boot{
		Inventory:    d.Inventory,
		Renderer:     renderer,
		Images:       d.images,
		Tokens:       d.tokens,
		Loaders:      loaders,
		Events:       d.apply,
		AdvertiseURL: cfg.AdvertiseURL,
		Addresses:    d.store.Addresses(),
		Checkins:     d.store.Checkins(),
		Logger:       cfg.Logger,
	}
	d.wipes = &persistWipes{docs: d.store.Documents(), now: time.Now}
	d.boot.PersistWipe = d.renderWipe
	if d.cluster != nil {
		d.boot.Fallbacks = d.cluster.fallbacks
	}
	if err := d.openRollouts(); err != nil {
		return nil, err
	}
	if cfg.HTTPListen != "" {
		limits := cfg.HTTPLimits.WithDefaults()
		hs := &pxe.HTTPServer{Boot: d.boot, Registry: d.registry}
		d.http = &httpService{addr: cfg.HTTPListen, boot: d.boot, log: cfg.Logger, limits: limits, handler: hs.Handler(),
			errorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
		d.registry.MustRegister(newStageCollector(d), prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "netbootui_http_connections_shed_total", Help: "HTTP connections closed unanswered because the connection cap was reached.",
		}, func() float64 { return float64(d.http.shed()) }))
		cfg.Logger.Debug("http limits", "max_conns", limits.MaxConns, "header_timeout", limits.ReadHeaderTimeout,
			"read_timeout", limits.ReadTimeout, "idle_timeout", limits.IdleTimeout, "write_timeout", limits.WriteTimeout)
		d.servers.Add("http", d.http)
	}
	if d.cluster != nil && cfg.Peer.TLS != nil {
		if cfg.Peer.Listen == "" {
			return nil, errors.New("daemon: the cluster's TLS needs an address to serve generations to the other heads at (--cluster-images-listen)")
		}
		d.peer = &peerService{d: d, opts: cfg.Peer}
		d.servers.Add("cluster generations", d.peer)
	}
	if cfg.TFTPListen != "" {
		d.tftp = pxe.NewTFTPServer(d.boot, func(client netip.AddrPort, name string, reason error) {
			d.boot.Denied(bootstate.Event{Proto: "tftp", Remote: client.String(),
				Path: fmt.Sprintf("%q", name), Error: reason.Error()}, "tftp: request refused")
		})
		d.tftp.Logger = cfg.Logger
		d.servers.Add("tftp", &tftpService{s: d.tftp, addr: cfg.TFTPListen, log: cfg.Logger})
	}
	if pdhcp != nil {
		pdhcp.d = d
		d.servers.Add("proxydhcp", pdhcp)
	}
	d.servers.Go("tracker", func(ctx context.Context) error { d.tracker.Run(ctx); return nil })
	d.servers.Go("nfs trees", func(context.Context) error { d.publishNFSTrees(); return nil })
	if cfg.PowerPoll > 0 {
		d.servers.Go("power poller", func(ctx context.Context) error {
			<-d.power.Poll(ctx, d.pollTargets, cfg.PowerPoll, 64, d.onPoll)
			return nil
		})
	}
	if d.cluster != nil {
		d.servers.Go("inventory mirror", func(ctx context.Context) error { d.cluster.run(ctx); return nil })
	}
	d.servers.Go("inventory watch", func(ctx context.Context) error {
		inventory.Watch(ctx, cfg.InventoryPath, cfg.ReloadInterval, d.onInventory, d.parseOptions()...)
		return nil
	})
	return d, nil
}

// Add hands the daemon a server of its caller (the API socket, the SSH
// console) to listen, serve and close with its own. Call it before Listen.
func (d *Daemon) Add(name string, s lifecycle.Service) { d.servers.Add(name, s) }

// Listen binds every server (the boot servers first, then those added), in
// order; when one fails, those already bound are closed again and the
// error names the server. Run calls it when the caller did not.
func (d *Daemon) Listen() error { return d.servers.Listen() }

// Run serves until ctx ends or a server fails, then closes every server,
// waits for the workflows, flushes and closes the state. It returns the
// first failure (nil when ctx ended it).
func (d *Daemon) Run(ctx context.Context) error {
	err := d.servers.Serve(ctx)
	if err != nil {
		d.log.Error("server failed", "err", err)
	}
	d.close()
	return err
}

// Close releases a Daemon that will not Run (Run closes its own). Safe to
// call more than once.
func (d *Daemon) Close() error {
	d.close()
	return nil
}

// httpService is the HTTP boot server in the daemon's lifecycle, behind
// netlimit's connection cap and timeouts.
type httpService struct {
	addr     string
	boot     *pxe.Boot
	log      *slog.Logger
	limits   netlimit.Limits
	handler  http.Handler
	errorLog *log.Logger

	mu  sync.Mutex
	ln  *netlimit.Listener // nil before Listen
	srv *http.Server
}

func (h *httpService) Listen() error {
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", h.addr, err)
	}
	capped := h.limits.Listener(ln)
	h.mu.Lock()
	h.ln, h.srv = capped, capped.Server(h.handler, h.errorLog)
	// Agents' long polls would hold a shutdown up for their whole wait.
	h.srv.RegisterOnShutdown(h.boot.ReleaseAgentPolls)
	h.mu.Unlock()
	h.boot.DefaultURL = defaultURL(ln.Addr())
	return nil
}

func (h *httpService) listener() (*netlimit.Listener, *http.Server) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ln, h.srv
}

func (h *httpService) addrOf() net.Addr {
	if ln, _ := h.listener(); ln != nil {
		return ln.Addr()
	}
	return nil
}

// shed counts the connections closed unanswered at the cap.
func (h *httpService) shed() uint64 {
	if ln, _ := h.listener(); ln != nil {
		return ln.Shed()
	}
	return 0
}

func (h *httpService) Serve() error {
	ln, srv := h.listener()
	h.log.Info("http boot server listening", "addr", ln.Addr().String(), "url", h.boot.DefaultURL)
	return srv.Serve(ln)
}

// Close lets requests under way finish (for up to 5 s) and closes the
// listener even when Serve never ran.
func (h *httpService) Close() error {
	ln, srv := h.listener()
	if ln == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	ln.Close()
	return err
}

// tftpService is the TFTP server in the daemon's lifecycle.
type tftpService struct {
	s    *tftp.Server
	addr string
	log  *slog.Logger
}

func (t *tftpService) Listen() error {
	if err := t.s.Listen(t.addr); err != nil {
		return fmt.Errorf("listen %s: %w", t.addr, err)
	}
	return nil
}

func (t *tftpService) Serve() error {
	t.log.Info("tftp server listening", "addr", t.s.LocalAddr().String())
	return t.s.Serve()
}

func (t *tftpService) Close() error { return t.s.Close() }

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

// apply records a boot event. It is the Boot's event sink. A check-in
// that turns its node dirty (an overlay past the threshold, a generation
// other than the assigned one) is followed by an event that says so and
// why, once per change from clean to dirty.
func (d *Daemon) apply(ev bootstate.Event) {
	d.unknown.see(ev)
	if ev.Kind != bootstate.KindCheckin || ev.Node == "" {
		d.tracker.Apply(ev)
		return
	}
	inv := d.Inventory()
	n := inv.Node(ev.Node)
	if n == nil {
		d.tracker.Apply(ev)
		return
	}
	assigned := ""
	if _, gen, err := d.boot.Assignment(n); err == nil {
		assigned = gen
	}
	before, _ := d.tracker.Get(ev.Node)
	was, _ := before.Dirty(assigned, inv.Settings.OverlayDirtyBytes)
	after := d.tracker.Apply(ev)
	if now, why := after.Dirty(assigned, inv.Settings.OverlayDirtyBytes); now && !was {
		d.tracker.Apply(bootstate.Event{Node: ev.Node, Kind: bootstate.KindInfo, Proto: "checkin",
			Message: "turned dirty: " + strings.Join(why, "; ")})
	}
}

// Apply records an event from outside the boot servers (power actions, admin
// marks).
func (d *Daemon) Apply(ev bootstate.Event) bootstate.NodeState { return d.tracker.Apply(ev) }

// Subscribe streams every boot event from now on (see
// bootstate.Tracker.Subscribe); Close the subscription when done.
func (d *Daemon) Subscribe(buffer int) *bootstate.Subscription { return d.tracker.Subscribe(buffer) }

// NodeState returns a node's boot state (false when the tracker has none).
func (d *Daemon) NodeState(node string) (bootstate.NodeState, bool) { return d.tracker.Get(node) }

// Inventory returns the inventory in force.
func (d *Daemon) Inventory() *inventory.Inventory { return d.inv.Load() }

// Images is the generation store (for builders and checks outside the
// daemon: the demo's and the tests' image builds).
func (d *Daemon) Images() *image.Store { return d.images }

// BootURL is the base URL nodes reach the HTTP boot server at: the
// advertised one, else the one derived from the bound listener ("" before
// Listen or when HTTP is disabled).
func (d *Daemon) BootURL() string {
	if d.boot.AdvertiseURL != "" {
		return d.boot.AdvertiseURL
	}
	return d.boot.DefaultURL
}

// SetAdvertiseURL changes the base URL rendered into boot entries (as
// Config.AdvertiseURL), e.g. once Listen has chosen a port that guests
// reach through a NAT. Call it before Run.
func (d *Daemon) SetAdvertiseURL(u string) { d.boot.AdvertiseURL = u }

// HTTPAddr is the bound address of the HTTP boot server (nil when disabled
// or before Listen).
func (d *Daemon) HTTPAddr() net.Addr {
	if d.http == nil {
		return nil
	}
	return d.http.addrOf()
}

// TFTPAddr is the bound address of the TFTP server (nil when disabled or
// before Listen).
func (d *Daemon) TFTPAddr() net.Addr {
	if d.tftp == nil {
		return nil
	}
	return d.tftp.LocalAddr()
}

// close releases what New opened, after the servers: safe on a half-built
// Daemon and more than once.
func (d *Daemon) close() {
	d.closeOnce.Do(func() {
		d.servers.Close()
		d.closeSessions()
		d.closeRollouts()
		if d.tracker != nil {
			if err := d.tracker.Close(); err != nil {
				d.log.Error("flushing boot state", "err", err)
			}
		}
		if d.consoles != nil {
			d.consoles.Close()
		}
		if d.power != nil {
			d.power.Close()
		}
		if d.store != nil {
			if err := d.store.Close(); err != nil {
				d.log.Error("closing state", "err", err)
			}
		}
	})
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
	if err == nil {
		if err = d.checkHandEdit(inv); err != nil {
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
			d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "inventory",
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
		d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "inventory",
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

// Backup writes a backup of the daemon's durable state to w
// (internal/backup): boot states, image store, token key, audit log,
// rollouts and the inventory, each read whole at one moment (see
// backup.Write), the boot states after every event applied so far is
// written. It takes no lock: the daemon keeps serving and editing while a
// large image store streams to a slow client.
func (d *Daemon) Backup(w io.Writer) error {
	if err := d.tracker.Flush(); err != nil {
		return fmt.Errorf("backup: boot states: %w", err)
	}
	return backup.Write(w, backup.Source{State: d.store, Images: d.images, Inventory: d.cfg.InventoryPath, Documents: []string{rollout.DocumentName, PersistWipesDocument}})
}
