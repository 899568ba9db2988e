package pxe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/ratelimit"
	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/builtin"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/local"
	"github.com/netbootui/netbootui/internal/tftp"
)

// Images is what the boot servers need of the image store.
type Images interface {
	// Current returns the published generation of an image.
	Current(image string) (string, error)
	// Open opens one file (image.FileKernel, ...) of a generation.
	Open(image, id, file string) (*os.File, error)
	// Generation reads a generation's manifest: an error when the image
	// has no such generation.
	Generation(image, id string) (*image.Manifest, error)
}

// Boot answers boot requests: it knows which node asks (by MAC in the path, by
// the ?node= parameter of image URLs, or by the client IP seen earlier in the
// same boot), which entry and files that node gets, and it reports every
// request as a bootstate.Event. The TFTP server uses it as its TFTPSource; the
// HTTP server (HTTPHandler) serves through it.
type Boot struct {
	// Inventory returns the inventory in force; it is called per request, so a
	// reloaded inventory takes effect at once.
	Inventory func() *inventory.Inventory
	Renderer  *Renderer
	Images    Images
	Tokens    *Tokens
	// Loaders serves bootloaders and other static files (the boot root).
	Loaders *FileRoot
	// Events receives every boot event. It must not block.
	Events func(bootstate.Event)
	// AdvertiseURL is the base URL nodes use to reach the HTTP server, e.g.
	// "http://10.1.0.1:8080". When empty, HTTP responses use the request's Host
	// and TFTP responses use DefaultURL.
	AdvertiseURL string
	// DefaultURL is the base URL for entries served over TFTP when
	// AdvertiseURL is empty.
	DefaultURL string
	// LearnTTL is how long a client IP stays tied to the node that last asked
	// for its own entry from it (default 15 minutes).
	LearnTTL time.Duration
	// Addresses keeps the learned client IPs (default: in memory, this Boot
	// only).
	Addresses state.Addresses
	// Checkins keeps the check-in replay guard's records (default: in
	// memory, this Boot only; the daemon hands it its state store's, so
	// that a check-in replayed after a restart is refused too).
	Checkins state.Checkins
	Logger   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Staged, when set, is consulted first by Assignment: a node in a staged
	// rollout boots the generation it returns (ok true) instead of the
	// inventory's.
	Staged func(node string) (image, gen string, ok bool)
	// Fallbacks returns the other live heads' base URLs (several heads;
	// nil on one): an iPXE retry tries the node's script on them after
	// this head's. It must not block (a cache).
	Fallbacks func() []string
	// PersistWipe returns the id of the newest wipe requested of a node's
	// persist disk ("" when none), rendered as netbootui.persist_wipe= for
	// a node whose group has persist_disk (nil: none ever). It is called
	// per render of such a node.
	PersistWipe func(node string) string
	// Transports are the root transports an image's `root:` may name (nil:
	// the built-in ones, package roottransport/builtin).
	Transports *roottransport.Registry
	// Noisy limits the events of refused requests and unknown clients
	// (KindDenied, KindUnknown) and the log lines of refusals, per kind and
	// client address, so that a flood of bogus requests neither floods the
	// log nor pushes real events out of the history (nil: DefaultNoisy).
	Noisy *ratelimit.Limiter

	noisyOnce sync.Once

	mu sync.Mutex
	// anonNBP holds bootloader fetches from addresses not yet tied to a
	// node: the next request that names its node by MAC from the same
	// address (pxelinux.cfg/01-<mac>, /boot/<mac>.ipxe) claims it.
	anonNBP map[netip.Addr]bootstate.Event

	unproven *ratelimit.Limiter // events about requests that do not prove their node (set by initLimiters)
	claims   *ratelimit.Limiter // claim events, per node and stage (set by initLimiters)
	agents   agents             // the node agents' long polls

	// persistSeen is, per node, where its newest check-in said it keeps
	// its persisted paths (guarded by mu).
	persistSeen map[string]PersistReport
}

// PersistReport is where a node said, in its newest check-in, it keeps its
// persisted paths this boot (Checkin.Persist).
type PersistReport struct {
	State  string
	BootID string
	At     time.Time
}

// notePersist keeps what check-in c says of node's persisted paths.
func (b *Boot) notePersist(node string, c Checkin) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.Persist == "" {
		delete(b.persistSeen, node)
		return
	}
	if b.persistSeen == nil {
		b.persistSeen = map[string]PersistReport{}
	}
	b.persistSeen[node] = PersistReport{State: c.Persist, BootID: c.BootID, At: b.now()}
}

// Persisted returns where node said, in its newest check-in to this head,
// it keeps its persisted paths; ok is false when it said nothing of them
// (or has not checked in since the daemon started).
func (b *Boot) Persisted(node string) (r PersistReport, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok = b.persistSeen[node]
	return r, ok
}

// anonNBPWindow is how long an unattributed bootloader fetch waits for its
// node to name itself.
const anonNBPWindow = time.Minute

// nbpNames are the first files firmware fetches: a request for one of them
// starts a new boot.
var nbpNames = map[string]bool{
	"undionly.kpxe": true, "undionly.kkpxe": true, "ipxe.pxe": true, "ipxe.efi": true,
	"snponly.efi": true, "pxelinux.0": true, "lpxelinux.0": true, "syslinux.efi": true,
	"bootx64.efi": true,
}

// IsNBP reports whether a served name is a network bootstrap program, whose
// fetch marks the start of a boot.
func IsNBP(name string) bool {
	i := strings.LastIndexByte(name, '/')
	return nbpNames[strings.ToLower(name[i+1:])]
}

func (b *Boot) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Boot) logger() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.Default()
}

// emit reports ev; refusals and unknown clients only as often as Noisy
// lets them through.
func (b *Boot) emit(ev bootstate.Event) {
	if ev.Kind == bootstate.KindDenied || ev.Kind == bootstate.KindUnknown {
		if ok, _ := b.letThrough(&ev); !ok {
			return
		}
	}
	b.send(ev)
}

func (b *Boot) send(ev bootstate.Event) {
	if b.Events == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = b.now()
	}
	b.Events(ev)
}

// DefaultNoisy is the limiter Boot.Noisy defaults to: per kind and client
// address 5 at once and one per 10 s; over all clients 50 at once and one a
// second.
func DefaultNoisy() *ratelimit.Limiter {
	return &ratelimit.Limiter{Burst: 5, Every: 10 * time.Second, TotalBurst: 50, TotalEvery: time.Second}
}

// initLimiters sets Noisy's default and the limiter of events about
// unproven requests, both on the Boot's clock.
func (b *Boot) initLimiters() {
	b.noisyOnce.Do(func() {
		if b.Noisy == nil {
			b.Noisy = DefaultNoisy()
			b.Noisy.Now = b.now
		}
		b.unproven = &ratelimit.Limiter{Burst: 1, Every: unprovenEvery, MaxKeys: maxLimited, Now: b.now}
		b.claims = &ratelimit.Limiter{Burst: claimBurst, Every: claimEvery, MaxKeys: maxLimited, Now: b.now}
	})
}

// clientKey is the client address of a request's remote "addr:port" (per
// address, not per source port); other text is its own key.
func clientKey(remote string) string {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().String()
	}
	return remote
}

// letThrough asks Noisy whether ev may be reported; when it may and others
// like it were held back, ev's message says how many.
func (b *Boot) letThrough(ev *bootstate.Event) (ok bool, skipped uint64) {
	b.initLimiters()
	client := clientKey(ev.Remote)
	ok, skipped = b.Noisy.Allow(string(ev.Kind) + " " + ev.Proto + " " + client)
	if ok && skipped > 0 {
		note := fmt.Sprintf("%d more like it from %s not recorded", skipped, client)
		if ev.Message != "" {
			note = ev.Message + " (" + note + ")"
		}
		ev.Message = note
	}
	return ok, skipped
}

// Denied reports a refused request (ev's Kind becomes KindDenied): a WARN
// line msg and the event, both only as often as Noisy lets them through,
// the next one through counting those held back. The TFTP server's refusals
// and refused check-ins come here.
func (b *Boot) Denied(ev bootstate.Event, msg string) {
	ev.Kind = bootstate.KindDenied
	ok, skipped := b.letThrough(&ev)
	if !ok {
		return
	}
	attrs := []any{"proto", ev.Proto, "remote", ev.Remote, "path", ev.Path}
	if ev.Node != "" {
		attrs = append(attrs, "node", ev.Node)
	}
	attrs = append(attrs, "err", ev.Error)
	if skipped > 0 {
		attrs = append(attrs, "not_logged", skipped)
	}
	b.logger().Warn(msg, attrs...)
	b.send(ev)
}

// learn ties a client IP to a node for the rest of its boot, and reports a
// bootloader fetch from that IP that was waiting for its node: a claim
// (nothing proved who fetched it).
func (b *Boot) learn(ip netip.Addr, node string) {
	if !ip.IsValid() {
		return
	}
	ip = ip.Unmap()
	now := b.now()
	b.addresses().Learn(ip, node, now.Add(b.ttl()))
	b.mu.Lock()
	ev, held := b.anonNBP[ip]
	delete(b.anonNBP, ip)
	b.mu.Unlock()
	if held && now.Sub(ev.Time) <= anonNBPWindow {
		ev.Node, ev.Kind, ev.Stage, ev.Message = node, bootstate.KindFetch, bootstate.StageNBP, ""
		b.report(ev, proofClaim)
	}
}

// addresses is b.Addresses, an in-memory one when unset.
func (b *Boot) addresses() state.Addresses {
	return orDefault(&b.mu, &b.Addresses, func() state.Addresses { return local.NewAddresses() })
}

// orDefault returns *field, first setting it to made() when it is the zero
// value (a Boot's store left unset), under mu.
func orDefault[T comparable](mu *sync.Mutex, field *T, made func() T) T {
	mu.Lock()
	defer mu.Unlock()
	var zero T
	if *field == zero {
		*field = made()
	}
	return *field
}

func (b *Boot) ttl() time.Duration {
	if b.LearnTTL > 0 {
		return b.LearnTTL
	}
	return 15 * time.Minute
}

// holdNBP keeps an unattributed bootloader fetch for learn to claim.
func (b *Boot) holdNBP(ip netip.Addr, ev bootstate.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.anonNBP == nil {
		b.anonNBP = map[netip.Addr]bootstate.Event{}
	}
	if len(b.anonNBP) >= 65536 { // bounded: drop the stale ones
		for k, v := range b.anonNBP {
			if b.now().Sub(v.Time) > anonNBPWindow {
				delete(b.anonNBP, k)
			}
		}
	}
	b.anonNBP[ip.Unmap()] = ev
}

// NodeByIP finds the node behind a client address: a static IP from the
// inventory first, then an address learned earlier in the same boot.
func (b *Boot) NodeByIP(inv *inventory.Inventory, ip netip.Addr) *inventory.Node {
	ip = ip.Unmap()
	if n := inv.NodeByIP(ip); n != nil {
		return n
	}
	if node, ok := b.addresses().Lookup(ip, b.now()); ok {
		return inv.Node(node)
	}
	return nil
}

// Assignment returns the image and generation a node boots: a staged one
// (Staged), else its pinned generation, else its image's current one.
func (b *Boot) Assignment(n *inventory.Node) (img, gen string, err error) {
	if b.Staged != nil {
		if img, gen, ok := b.Staged(n.Name); ok {
			return img, gen, nil
		}
	}
	if n.Image == "" {
		return "", "", fmt.Errorf("node %s has no image assigned", n.Name)
	}
	if n.Generation != "" {
		return n.Image, n.Generation, nil
	}
	gen, err = b.Images.Current(n.Image)
	if err != nil {
		return n.Image, "", fmt.Errorf("node %s: %w", n.Name, err)
	}
	return n.Image, gen, nil
}

// Params assembles what the templates need for node n, with base the URL the
// node reaches the HTTP server at. A node whose image has no generation yet
// gets Params with an empty Generation (its entry says so and retries); any
// other error is returned.
func (b *Boot) Params(inv *inventory.Inventory, n *inventory.Node, base string) (BootParams, error) {
	base = strings.TrimRight(base, "/")
	p := BootParams{
		Node:       n,
		BaseURL:    base,
		CheckinURL: base + "/checkin",
		Token:      b.Tokens.Token(n.Name),
		AgentKey:   b.Tokens.AgentKey(),
	}
	if b.Fallbacks != nil {
		p.FallbackBaseURLs = b.Fallbacks()
	}
	img, gen, err := b.Assignment(n)
	p.Image = img
	if err != nil && !errors.Is(err, image.ErrNotFound) {
		return p, err
	}
	p.Generation = gen
	args := n.KernelArgs
	root := ""
	if im := inv.Images[img]; im != nil {
		if im.KernelArgs != "" {
			args = strings.TrimSpace(im.KernelArgs + " " + args)
		}
		root = im.Root
	}
	p.KernelArgs = args
	p.NFS = NFSSite(inv.Settings.NFS)
	p.NBD = roottransport.NBDSite{Server: inv.Settings.NBD.Server, Port: inv.Settings.NBD.Port}
	if n.PersistDisk != nil && b.PersistWipe != nil {
		p.PersistWipe = b.PersistWipe(n.Name)
	}
	reg := b.Transports
	if reg == nil {
		reg = builtin.Registry()
	}
	if p.Transport, err = reg.Lookup(root); err != nil {
		return p, fmt.Errorf("node %s: image %s: %w", n.Name, img, err)
	}
	if gen != "" {
		// The node's name and the key that proves it (see proof.go).
		q := "?node=" + url.QueryEscape(n.Name) + "&auth=" + b.Tokens.FetchKey(n.Name)
		rel := "images/" + img + "/" + gen + "/"
		p.KernelURL = base + "/" + rel + image.FileKernel + q
		p.InitrdURL = base + "/" + rel + image.FileInitrd + q
		p.RootfsURL = base + "/" + rel + image.FileRootfs + q
		p.KernelPath = rel + image.FileKernel
		p.InitrdPath = rel + image.FileInitrd
	}
	return p, nil
}

// NFSSite is the inventory's settings.nfs as the root transports take it.
func NFSSite(s inventory.NFS) roottransport.NFSSite {
	return roottransport.NFSSite{Server: s.Server, Port: s.Port, Export: s.Export, Dir: s.Dir}
}

// NFSExports returns the nfs-ganesha export entries the site's NFS server
// needs for inv (empty when the inventory names no NFS server): the trees,
// and one export per node that persists paths, restricted to the node's
// address (nodes without a fixed ip in the inventory get none).
func NFSExports(inv *inventory.Inventory) string {
	site := NFSSite(inv.Settings.NFS)
	if !site.Configured() {
		return ""
	}
	var dirs []nfs.NodeDir
	for _, n := range inv.Nodes {
		if len(n.Persist) > 0 && n.PersistDisk == nil && n.IP.IsValid() {
			dirs = append(dirs, nfs.NodeDir{Node: n.Name, Client: n.IP.String()})
		}
	}
	return nfs.GaneshaExports(site, dirs)
}

// Entry renders node n's boot entry in format ("ipxe" or "pxelinux").
func (b *Boot) Entry(inv *inventory.Inventory, n *inventory.Node, format, base string) (string, error) {
	text, _, err := b.entry(inv, n, format, base)
	return text, err
}

func (b *Boot) entry(inv *inventory.Inventory, n *inventory.Node, format, base string) (string, BootParams, error) {
	p, err := b.Params(inv, n, base)
	if err != nil {
		return "", p, err
	}
	text, err := b.Renderer.Render(format, p)
	return text, p, err
}

// served reports a rendered entry that was sent to node: a config fetch (a
// claim, when the request does not prove the node: a MAC-named entry from
// an address that is not the node's fixed one), or a failure when the entry
// can only print why the node has nothing to boot. A failure the request
// does not prove is reported as the claim it is plus an info event saying
// why the node will not boot: the node stalls instead of failing.
func (b *Boot) served(ev bootstate.Event, p BootParams, size int, pr proof) {
	ev.Stage, ev.Total = bootstate.StageConfig, int64(size)
	ev.Generation = p.Generation
	ev.Kind = bootstate.KindFetch
	if p.Generation == "" && p.Node.Override.Empty() {
		if pr < proofNode {
			b.report(ev, pr)
		}
		ev.Kind, ev.Error = bootstate.KindFail, "image "+p.Image+" has no published generation"
		if p.Image == "" {
			ev.Error = "no image assigned"
		}
	}
	b.report(ev, pr)
}

// tftpBase is the base URL written into entries served over TFTP.
func (b *Boot) tftpBase() string {
	if b.AdvertiseURL != "" {
		return b.AdvertiseURL
	}
	return b.DefaultURL
}

// OpenTFTP implements TFTPSource: rendered pxelinux configs, the iPXE chain
// script, image files and the boot root's bootloaders.
func (b *Boot) OpenTFTP(ctx context.Context, name string, client netip.AddrPort) (tftp.File, error) {
	inv := b.Inventory()
	ip := client.Addr().Unmap()
	ev := bootstate.Event{Proto: "tftp", Path: name, Remote: client.String()}
	switch {
	case strings.HasPrefix(name, "pxelinux.cfg/"):
		return b.tftpPxelinuxConfig(inv, strings.TrimPrefix(name, "pxelinux.cfg/"), ip, ev)
	case name == "boot.ipxe" || name == "autoexec.ipxe":
		if n := b.NodeByIP(inv, ip); n != nil {
			ev.Node = n.Name
			ev.Kind, ev.Message = bootstate.KindInfo, "iPXE chain script over TFTP"
			b.emit(ev)
		}
		return stringFile(ChainIPXE(b.tftpBase())), nil
	case strings.HasPrefix(name, "images/"):
		return b.tftpImageFile(inv, name, ip, ev)
	}
	f, size, err := b.Loaders.Open(name)
	if err != nil {
		return tftp.File{}, err
	}
	if n, pr := b.nodeByAddr(inv, ip); n != nil {
		ev.Node = n.Name
		if IsNBP(name) {
			ev.Kind, ev.Stage, ev.Total = bootstate.KindFetch, bootstate.StageNBP, size
		} else {
			ev.Kind, ev.Message = bootstate.KindInfo, "fetched "+name
		}
		b.report(ev, pr)
	} else if IsNBP(name) {
		ev.Time, ev.Total = b.now(), size
		b.holdNBP(ip, ev)
		ev.Kind, ev.Message = bootstate.KindInfo, "bootloader "+name+" fetched by "+ip.String()+", node not known yet"
		b.emit(ev)
	}
	return tftp.File{R: f, Size: size, Close: f.Close}, nil
}

func (b *Boot) tftpPxelinuxConfig(inv *inventory.Inventory, rest string, ip netip.Addr, ev bootstate.Event) (tftp.File, error) {
	var n *inventory.Node
	switch {
	case strings.HasPrefix(rest, "01-"):
		mac, err := net.ParseMAC(strings.ReplaceAll(rest[3:], "-", ":"))
		if err != nil {
			return tftp.File{}, ErrNotFound
		}
		n = inv.NodeByMAC(mac)
		if n == nil {
			ev.Kind, ev.MAC, ev.Message = bootstate.KindUnknown, mac.String(), "pxelinux config asked for by an unknown MAC"
			b.emit(ev)
			return tftp.File{}, ErrNotFound // pxelinux goes on to pxelinux.cfg/default
		}
		b.learn(ip, n.Name)
	case rest == "default":
		n = b.NodeByIP(inv, ip)
		if n == nil {
			ev.Kind, ev.Message = bootstate.KindUnknown, "pxelinux default config served to an unknown client"
			b.emit(ev)
			return stringFile(DefaultPxelinux("")), nil
		}
	default:
		// UUID and hex-IP probes: pxelinux tries them before 01-<mac>.
		return tftp.File{}, ErrNotFound
	}
	ev.Node = n.Name
	pr := macProof(n, ip)
	if rest == "default" {
		_, pr = b.nodeByAddr(inv, ip)
	}
	text, p, err := b.entry(inv, n, "pxelinux", b.tftpBase())
	if err != nil {
		ev.Kind, ev.Stage, ev.Error = bootstate.KindFail, bootstate.StageConfig, err.Error()
		b.report(ev, pr)
		return tftp.File{}, err
	}
	b.served(ev, p, len(text), pr)
	return stringFile(text), nil
}

// imagePath splits "images/<image>/<gen>/<file>" and maps the file to a boot
// stage.
func imagePath(rel string) (img, gen, file string, stage bootstate.Stage, ok bool) {
	parts := strings.Split(rel, "/")
	if len(parts) != 4 || parts[0] != "images" {
		return "", "", "", "", false
	}
	img, gen, file = parts[1], parts[2], parts[3]
	if !image.ValidImageName(img) || !image.ValidGenerationID(gen) {
		return "", "", "", "", false
	}
	switch file {
	case image.FileKernel:
		stage = bootstate.StageKernel
	case image.FileInitrd:
		stage = bootstate.StageInitrd
	case image.FileRootfs:
		stage = bootstate.StageRootfs
	default:
		return "", "", "", "", false
	}
	return img, gen, file, stage, true
}

func (b *Boot) tftpImageFile(inv *inventory.Inventory, name string, ip netip.Addr, ev bootstate.Event) (tftp.File, error) {
	img, gen, file, stage, ok := imagePath(name)
	if !ok {
		return tftp.File{}, ErrNotFound
	}
	n, pr := b.nodeByAddr(inv, ip)
	if n != nil {
		ev.Node = n.Name
	}
	f, err := b.Images.Open(img, gen, file)
	if err != nil {
		if ev.Node != "" {
			ev.Kind, ev.Stage, ev.Error = bootstate.KindFail, stage, "tftp "+name+": not found"
			b.report(ev, pr)
		}
		return tftp.File{}, ErrNotFound
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return tftp.File{}, err
	}
	if ev.Node != "" {
		ev.Kind, ev.Stage, ev.Total, ev.Generation = bootstate.KindFetch, stage, st.Size(), gen
		b.report(ev, pr)
	}
	return tftp.File{R: f, Size: st.Size(), Close: f.Close}, nil
}

func stringFile(s string) tftp.File {
	return tftp.File{R: strings.NewReader(s), Size: int64(len(s)), Close: func() error { return nil }}
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// safeHost reports whether a Host header may be written into a boot entry.
func safeHost(h string) bool { return len(h) <= 255 && hostRE.MatchString(h) }
