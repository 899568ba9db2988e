// Package simnode is a simulated network-boot node for tests, the demo and
// the boot-storm bench: an in-process BMC (go-ipmi's pkg/server on a
// loopback UDP port) whose chassis power-on and power-cycle start a firmware
// goroutine that really boots from a netbootui daemon. The firmware honours
// the BMC's boot flags like a BIOS: with "PXE, next boot only" set (or with
// PXEFirst, a boot order that starts with the NIC) it fetches its bootloader
// over TFTP when a TFTP server is given (undionly.kpxe, ipxe.efi, pxelinux.0
// or syslinux.efi), then either the iPXE script /boot/<mac>.ipxe over HTTP or
// the pxelinux config pxelinux.cfg/01-<mac> over TFTP, then the kernel and
// initrd (HTTP for iPXE, TFTP for pxelinux) and the root filesystem over
// HTTP, and posts a check-in with the token and generation from the kernel
// command line; later check-ins report an overlay that grows over time.
// Without PXE it "boots from disk" and fetches nothing. Powering off stops
// whatever the node was doing.
//
// Each node may speak from its own loopback address (SourceIP, e.g.
// 127.1.0.7), so that the daemon can tell nodes apart by client address as
// it does on a real network.
package simnode

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/hal/mock"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/transport/udp"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/netbootui/netbootui/internal/agentproto"
	"github.com/netbootui/netbootui/internal/nodeagent"
	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/builtin"
)

// Options describe one simulated node.
type Options struct {
	MAC      string // the NIC that PXE boots, e.g. "52:54:00:aa:00:01"
	User     string // BMC user (default "admin")
	Password string // BMC password; required
	// BaseURL is the daemon's boot HTTP server, "http://127.0.0.1:PORT".
	BaseURL string
	// TFTPAddr is the daemon's TFTP server ("127.0.0.1:PORT"). When set the
	// firmware first fetches its bootloader (NBP) over TFTP, and pxelinux
	// nodes fetch their config, kernel and initrd over TFTP too.
	TFTPAddr string
	// Loader is "ipxe" (default) or "pxelinux"; UEFI selects the UEFI
	// bootloader (ipxe.efi or syslinux.efi instead of undionly.kpxe or
	// pxelinux.0).
	Loader string
	UEFI   bool
	// SourceIP is the loopback address the node speaks from (BMC, TFTP and
	// HTTP); the zero value means 127.0.0.1.
	SourceIP netip.Addr
	// PXEFirst boots from the network on every power-on, as a node whose
	// boot order starts with its NIC; otherwise only when the BMC's boot
	// flags ask for PXE.
	PXEFirst bool
	// StopAfter makes the firmware hang after that step: "nbp", "script"
	// (the iPXE script or pxelinux config), "kernel", "initrd" or "rootfs"
	// ("" boots all the way and checks in). The hang lasts until the next
	// power event.
	StopAfter string
	// OverlayBytes is what the first check-in reports as written to the
	// overlay; every later check-in adds OverlayGrowth.
	OverlayBytes  int64
	OverlayGrowth int64
	// CheckinEvery, when positive, makes the running OS check in again at
	// that interval until the node is powered off or rebooted.
	CheckinEvery time.Duration
	// POST is how long the firmware takes from power-on to its first
	// request (default 100 ms; real machines take seconds).
	POST time.Duration
	// Retries is how many times a failed network boot (a TFTP timeout, an
	// HTTP error) starts over after RetryAfter (default 2 s), as PXE
	// firmware that loops over its boot devices does. Default 0: a failed
	// boot stays failed until the next power event.
	Retries    int
	RetryAfter time.Duration
	// Agent makes the running OS run the real node agent
	// (internal/nodeagent) with a simulated kexec: an instruction the agent
	// accepts boots the kernel it loaded with the command line it was given
	// (rootfs, check-in) without firmware: no POST, no bootloader, no
	// script. SetAgent stops and starts it.
	Agent bool
}

// Node is a running simulated node.
type Node struct {
	opts    Options
	port    int
	chassis *mock.Chassis
	front   *chassis // the chassis with its power changes waking the firmware
	trigger chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	srvDone chan struct{}
	srv     *server.Server
	pc      net.PacketConn
	client  *http.Client

	mu        sync.Mutex
	boots     int   // network boots started
	diskBoots int   // power-ons without PXE flags
	checkins  int   // boots that ended with a successful check-in (network or kexec)
	reports   int   // successful check-ins, first and periodic
	lastErr   error // last firmware error
	failures  int   // failed boot attempts
	fetched   []string
	steps     []StepTime // timings of the current (or last) boot
	stopAfter string     // SetStopAfter's step, when stopSet
	stopSet   bool
	kexecs    int  // boots by kexec
	agentOff  bool // SetAgent(false)

	console  *serialConsole // the serial port its BMC's SOL redirects
	kexecReq chan string    // a command line the agent kexecs into
}

// StepTime is how long one step of a boot took.
type StepTime struct {
	Step string        // nbp, script, kernel, initrd, rootfs, checkin
	Took time.Duration // from the request to the last byte
	Size int64         // bytes received
}

// chassis is go-ipmi's in-memory chassis with every power change waking the
// firmware.
type chassis struct {
	*mock.Chassis
	n *Node
}

func (c *chassis) SetPower(ctx context.Context, on bool) error {
	if err := c.Chassis.SetPower(ctx, on); err != nil {
		return err
	}
	c.n.wake()
	return nil
}

func (c *chassis) PowerCycle(ctx context.Context) error {
	if err := c.Chassis.PowerCycle(ctx); err != nil {
		return err
	}
	// A cycle or reset leaves the machine running, whatever it was.
	if err := c.Chassis.SetPower(ctx, true); err != nil {
		return err
	}
	c.n.wake()
	return nil
}

func (c *chassis) ColdReset(ctx context.Context) error {
	if err := c.Chassis.ColdReset(ctx); err != nil {
		return err
	}
	// A cycle or reset leaves the machine running, whatever it was.
	if err := c.Chassis.SetPower(ctx, true); err != nil {
		return err
	}
	c.n.wake()
	return nil
}

func (c *chassis) WarmReset(ctx context.Context) error {
	if err := c.Chassis.WarmReset(ctx); err != nil {
		return err
	}
	c.n.wake()
	return nil
}

type halWithChassis struct {
	*mock.HAL
	ch *chassis
}

func (h *halWithChassis) Chassis() hal.ChassisHAL { return h.ch }

// maxSessions is how many IPMI sessions a node's BMC holds at once.
const maxSessions = 16

// Start runs the node's BMC on its source address and its firmware
// goroutine. The chassis starts powered off. Close stops both.
func Start(opts Options) (*Node, error) {
	if opts.Password == "" || opts.MAC == "" || opts.BaseURL == "" {
		return nil, errors.New("simnode: MAC, Password and BaseURL are required")
	}
	if opts.User == "" {
		opts.User = "admin"
	}
	if opts.POST <= 0 {
		opts.POST = 100 * time.Millisecond
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 2 * time.Second
	}
	switch opts.Loader {
	case "":
		opts.Loader = "ipxe"
	case "ipxe", "pxelinux":
	default:
		return nil, fmt.Errorf("simnode %s: loader %q: want ipxe or pxelinux", opts.MAC, opts.Loader)
	}
	if opts.Loader == "pxelinux" && opts.TFTPAddr == "" {
		return nil, fmt.Errorf("simnode %s: a pxelinux node needs TFTPAddr", opts.MAC)
	}
	if !opts.SourceIP.IsValid() {
		opts.SourceIP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if !opts.SourceIP.IsLoopback() {
		return nil, fmt.Errorf("simnode %s: source address %s is not a loopback address", opts.MAC, opts.SourceIP)
	}
	h := mock.New()
	mc := h.Chassis().(*mock.Chassis)
	n := &Node{opts: opts, chassis: mc, trigger: make(chan struct{}, 1), done: make(chan struct{}), srvDone: make(chan struct{}),
		kexecReq: make(chan string, 1)}
	info := bmc.DeviceInfo{DeviceID: 32, DeviceRevision: 1, FirmwareMajor: 1, FirmwareMinor: 0,
		IPMIVersion: 0x02, ManufacturerID: 343, ProductID: 9, AdditionalDeviceSupport: 0x39}
	n.front = &chassis{Chassis: mc, n: n}
	n.console = &serialConsole{n: n}
	h.SetConsole(n.console)
	b := bmc.New(info, [16]byte{0x51, 0x4d}, &halWithChassis{HAL: h, ch: n.front})
	// Room for the sessions a daemon opens at once (the power pool's, a
	// serial console captured during a reboot, one attached by an admin, and
	// those a restarted SOL leaves until they time out): IPMI's minimum of
	// four runs out.
	b.Sessions = bmc.NewSessionStoreWithOptions(b.Clock(), bmc.WithMaxSessions(maxSessions))
	b.Sessions.SetOnRemove(b.SOL.DeactivateBySession)
	u, err := b.Users.Add(2, opts.User)
	if err != nil {
		return nil, fmt.Errorf("simnode: %w", err)
	}
	u.SetPassword([]byte(opts.Password))
	u.Enabled = true
	u.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: opts.SourceIP.AsSlice()})
	if err != nil {
		return nil, fmt.Errorf("simnode %s: BMC on %s: %w", opts.MAC, opts.SourceIP, err)
	}
	n.pc = pc
	n.port = pc.LocalAddr().(*net.UDPAddr).Port
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: opts.SourceIP.AsSlice()}, Timeout: 10 * time.Second}
	n.client = &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 2,
		IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: 30 * time.Second}}
	n.srv = server.NewServer(b, udp.Wrap(pc))
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { defer close(n.srvDone); _ = n.srv.Serve(ctx) }()
	go n.firmware(ctx)
	return n, nil
}

// PowerOn switches the node on as its power button would (no IPMI): the
// firmware starts its boot at once.
func (n *Node) PowerOn() error {
	return (&chassis{Chassis: n.chassis, n: n}).SetPower(context.Background(), true)
}

// Port is the BMC's UDP port on the node's source address.
func (n *Node) Port() int { return n.port }

// The node's front panel: the same chassis actions its BMC's chassis
// commands take, for a power backend that reaches the node by other means
// than IPMI (internal/power/powertest). The firmware follows them as it
// follows the BMC.

// PowerState reports whether the chassis is on.
func (n *Node) PowerState() bool {
	on, _ := n.front.PowerState(context.Background())
	return on
}

// SetPower powers the chassis on or off.
func (n *Node) SetPower(on bool) error { return n.front.SetPower(context.Background(), on) }

// PowerCycle cycles the chassis (it ends up on).
func (n *Node) PowerCycle() error { return n.front.PowerCycle(context.Background()) }

// Reset hard-resets the chassis (it ends up on).
func (n *Node) Reset() error { return n.front.ColdReset(context.Background()) }

// SetNextBootPXE makes the next boot, once, a PXE boot (EFI or legacy), as
// the BMC's boot flags would.
func (n *Node) SetNextBootPXE(efi bool) error {
	bt := types.BIOSBootTypeLegacy
	if efi {
		bt = types.BIOSBootTypeEFI
	}
	return n.front.SetBootFlags(context.Background(), &types.BootOptionParam_BootFlags{
		BootFlagsValid: true, BIOSBootType: bt, BootDeviceSelector: types.BootDeviceSelectorForcePXE})
}

// NextBootPXE reports whether a PXE boot is pending and whether it is EFI.
func (n *Node) NextBootPXE() (pending, efi bool) {
	f, _ := n.front.GetBootFlags(context.Background())
	return pxeFlags(f), f != nil && f.BIOSBootType == types.BIOSBootTypeEFI
}

// Addr is the node's source address (its BMC's and its NIC's).
func (n *Node) Addr() netip.Addr { return n.opts.SourceIP }

// Close stops the BMC and the firmware.
func (n *Node) Close() {
	n.cancel()
	_ = n.srv.Close()
	_ = n.pc.Close()
	<-n.srvDone
	<-n.done
	n.client.CloseIdleConnections()
}

// CloseIdle closes the node's idle HTTP connections (kept alive between the
// fetches of a boot), as a node that finished booting would.
func (n *Node) CloseIdle() { n.client.CloseIdleConnections() }

// Stats says what the firmware did.
type Stats struct {
	NetBoots, DiskBoots, Checkins int
	// Reports counts every successful check-in, periodic ones included.
	Reports int
	// Failures counts failed boot attempts (LastError is the last one's
	// error), retried ones included.
	Failures     int
	Fetched      []string // URL paths and TFTP names fetched, in order
	LastError    error
	Power        bool
	BootFlagsPXE bool       // PXE flags still pending (not consumed by a boot)
	Steps        []StepTime // the steps of the current or last boot, in order
	Kexecs       int        // boots by kexec (Options.Agent), without firmware
}

// Stats returns what the node did so far.
func (n *Node) Stats() Stats {
	on, _ := n.chassis.PowerState(context.Background())
	f, _ := n.chassis.GetBootFlags(context.Background())
	n.mu.Lock()
	defer n.mu.Unlock()
	return Stats{NetBoots: n.boots, DiskBoots: n.diskBoots, Checkins: n.checkins, Reports: n.reports, LastError: n.lastErr, Failures: n.failures,
		Fetched: append([]string(nil), n.fetched...), Power: on, BootFlagsPXE: pxeFlags(f),
		Steps: append([]StepTime(nil), n.steps...), Kexecs: n.kexecs}
}

func pxeFlags(f *types.BootOptionParam_BootFlags) bool {
	return f != nil && f.BootFlagsValid && f.BootDeviceSelector == types.BootDeviceSelectorForcePXE
}

func (n *Node) wake() {
	select {
	case n.trigger <- struct{}{}:
	default:
	}
}

// firmware follows the chassis: every power change abandons what the node
// was doing; a chassis that is on then boots (from the network or "disk").
func (n *Node) firmware(ctx context.Context) {
	defer close(n.done)
	var cancelBoot context.CancelFunc = func() {}
	var wg sync.WaitGroup
	defer func() { cancelBoot(); wg.Wait() }()
	for {
		kexecInto := ""
		select {
		case <-ctx.Done():
			return
		case <-n.trigger:
		case kexecInto = <-n.kexecReq:
		}
		cancelBoot()
		wg.Wait()
		if on, _ := n.chassis.PowerState(ctx); !on {
			continue
		}
		bctx, c := context.WithCancel(ctx)
		cancelBoot = c
		if kexecInto != "" {
			// The running kernel hands over to the loaded one: no firmware.
			n.mu.Lock()
			n.kexecs++
			n.steps = nil
			n.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := n.runOS(bctx, parseCmdline(kexecInto)); err != nil && bctx.Err() == nil {
					n.mu.Lock()
					n.lastErr = err
					n.failures++
					n.mu.Unlock()
				}
			}()
			continue
		}
		f, _ := n.chassis.GetBootFlags(ctx)
		if pxeFlags(f) && !f.Persist { // next boot only: the BIOS clears the flags
			cl := *f
			cl.BootFlagsValid = false
			_ = n.chassis.SetBootFlags(ctx, &cl)
		} else if !pxeFlags(f) && !n.opts.PXEFirst {
			n.mu.Lock()
			n.diskBoots++
			n.mu.Unlock()
			continue
		}
		n.mu.Lock()
		n.boots++
		n.steps = nil
		n.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; ; attempt++ {
				err := n.netboot(bctx)
				switch {
				case err == nil:
					return
				case errors.Is(err, errStopped):
					<-bctx.Done() // hang until the next power event
					return
				case bctx.Err() != nil:
					return
				}
				n.mu.Lock()
				n.lastErr = err
				n.failures++
				n.mu.Unlock()
				if attempt >= n.opts.Retries {
					return
				}
				select {
				case <-time.After(n.opts.RetryAfter):
				case <-bctx.Done():
					return
				}
				n.mu.Lock()
				n.steps = nil
				n.mu.Unlock()
			}
		}()
	}
}

var errStopped = errors.New("simnode: stopped as told")

// nbpName is the bootloader the node's DHCP answer would name.
func (n *Node) nbpName() string {
	switch {
	case n.opts.Loader == "pxelinux" && n.opts.UEFI:
		return "syslinux.efi"
	case n.opts.Loader == "pxelinux":
		return "pxelinux.0"
	case n.opts.UEFI:
		return "ipxe.efi"
	}
	return "undionly.kpxe"
}

// step runs one fetch, records its timing and stops the boot when the node
// is told to hang after it.
func (n *Node) step(name string, fetch func() (int64, error)) error {
	start := time.Now()
	size, err := fetch()
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.steps = append(n.steps, StepTime{Step: name, Took: time.Since(start), Size: size})
	stop := n.opts.StopAfter
	if n.stopSet {
		stop = n.stopAfter
	}
	n.mu.Unlock()
	if stop == name {
		return errStopped
	}
	return nil
}

// SetStopAfter changes Options.StopAfter from the next boot step on ("":
// boot all the way): a hung node is "fixed" by this and a power event.
func (n *Node) SetStopAfter(step string) {
	n.mu.Lock()
	n.stopAfter, n.stopSet = step, true
	n.mu.Unlock()
}

// netboot is one PXE boot: bootloader, script or config, kernel, initrd,
// rootfs, check-in, then periodic check-ins.
func (n *Node) netboot(ctx context.Context) error {
	select {
	case <-time.After(n.opts.POST):
	case <-ctx.Done():
		return ctx.Err()
	}
	if n.opts.TFTPAddr != "" {
		if err := n.step("nbp", func() (int64, error) { return n.tftp(ctx, n.nbpName(), nil) }); err != nil {
			return err
		}
	}
	var b Boot
	if n.opts.Loader == "pxelinux" {
		var cfg strings.Builder
		name := "pxelinux.cfg/01-" + strings.ReplaceAll(strings.ToLower(n.opts.MAC), ":", "-")
		if err := n.step("script", func() (int64, error) { return n.tftp(ctx, name, &cfg) }); err != nil {
			return err
		}
		var err error
		if b, err = ParsePxelinux(cfg.String()); err != nil {
			return fmt.Errorf("simnode %s: %s: %w", n.opts.MAC, name, err)
		}
		for _, f := range []struct{ name, path string }{{"kernel", b.Kernel}, {"initrd", b.Initrd}} {
			if f.path == "" {
				return fmt.Errorf("simnode %s: the pxelinux config names no %s", n.opts.MAC, f.name)
			}
			if err := n.step(f.name, func() (int64, error) { return n.tftp(ctx, f.path, nil) }); err != nil {
				return err
			}
		}
	} else {
		var script strings.Builder
		if err := n.step("script", func() (int64, error) {
			return n.get(ctx, n.opts.BaseURL+"/boot/"+n.opts.MAC+".ipxe", &script)
		}); err != nil {
			return err
		}
		var err error
		if b, err = ParseIPXE(script.String()); err != nil {
			return fmt.Errorf("simnode %s: %w", n.opts.MAC, err)
		}
		for _, f := range []struct{ name, url string }{{"kernel", b.Kernel}, {"initrd", b.Initrd}} {
			if f.url == "" {
				return fmt.Errorf("simnode %s: the script names no %s", n.opts.MAC, f.name)
			}
			if err := n.step(f.name, func() (int64, error) { return n.get(ctx, f.url, nil) }); err != nil {
				return err
			}
		}
	}
	return n.runOS(ctx, b.Args)
}

// parseCmdline reads a kernel command line as ParseIPXE reads the kernel
// line's words.
func parseCmdline(s string) map[string]string {
	args := map[string]string{}
	for _, w := range strings.Fields(s) {
		k, v, _ := strings.Cut(w, "=")
		args[k] = v
	}
	return args
}

// runOS is what the booted kernel does with its command line args: the
// initramfs gets the root, the OS checks in, then checks in again every
// CheckinEvery and runs the node agent (Options.Agent) until the boot ends.
func (n *Node) runOS(ctx context.Context, args map[string]string) error {
	// The root transport named by root= decides what the initramfs fetches.
	cl, err := builtin.Registry().Parse(args)
	if err != nil {
		return fmt.Errorf("simnode %s: %w", n.opts.MAC, err)
	}
	if err := n.step("rootfs", func() (int64, error) {
		var total int64
		for _, u := range cl.Root.Fetch {
			size, err := n.get(ctx, u, nil)
			total += size
			if err != nil {
				return total, err
			}
		}
		return total, nil
	}); err != nil {
		return err
	}
	if cl.Checkin == "" {
		return fmt.Errorf("simnode: the kernel command line names no %s", roottransport.KeyCheckin)
	}
	a := &agent{cmdline: cl, booted: time.Now(), bootID: newBootID()}
	overlay := n.opts.OverlayBytes
	if err := n.step("checkin", func() (int64, error) { return 0, n.checkin(ctx, a, overlay) }); err != nil {
		return err
	}
	n.mu.Lock()
	n.checkins++
	agentOn := n.opts.Agent && !n.agentOff
	n.mu.Unlock()
	if agentOn {
		done := n.startAgent(ctx, cl, args[roottransport.KeyAgentKey], a.bootID)
		defer func() { <-done }()
	}
	if n.opts.CheckinEvery <= 0 {
		if agentOn {
			<-ctx.Done()
		}
		return nil
	}
	t := time.NewTicker(n.opts.CheckinEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		overlay += n.opts.OverlayGrowth
		// A missed periodic check-in is what a busy node does; the next
		// one tries again.
		_ = n.checkin(ctx, a, overlay)
	}
}

// agent is the running OS's check-in agent: what it read from the command
// line, its boot id and its check-in counter.
type agent struct {
	cmdline roottransport.Cmdline
	booted  time.Time
	bootID  string // random per boot, like the kernel's boot_id
	seq     uint64 // check-ins tried in this boot, the next one's number
}

func newBootID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkin posts one report of the running OS: every attempt carries the
// next sequence number, as the real agent's do, so the daemon can refuse a
// replay.
func (n *Node) checkin(ctx context.Context, a *agent, overlay int64) error {
	a.seq++
	checkin := a.cmdline.Checkin
	uptime := 3 + time.Since(a.booted).Seconds()
	form := url.Values{
		"node":          {a.cmdline.Node},
		"token":         {a.cmdline.Token},
		"generation":    {a.cmdline.Gen},
		"uptime":        {strconv.FormatFloat(uptime, 'f', 2, 64)},
		"overlay_bytes": {strconv.FormatInt(overlay, 10)},
		"boot_id":       {a.bootID},
		"seq":           {strconv.FormatUint(a.seq, 10)},
	}
	req, err := http.NewRequestWithContext(ctx, "POST", checkin, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("simnode %s: check-in: %s", n.opts.MAC, resp.Status)
	}
	n.mu.Lock()
	n.reports++
	n.mu.Unlock()
	return nil
}

// get fetches u, keeping the body in keep when it is not nil (up to 1 MiB)
// and discarding it otherwise; it returns the bytes received.
func (n *Node) get(ctx context.Context, u string, keep *strings.Builder) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var w io.Writer = io.Discard
	if keep != nil {
		w = keep
	}
	size, err := io.Copy(w, io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return size, fmt.Errorf("simnode %s: GET %s: %w", n.opts.MAC, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return size, fmt.Errorf("simnode %s: GET %s: %s", n.opts.MAC, u, resp.Status)
	}
	if resp.ContentLength >= 0 && size != resp.ContentLength {
		return size, fmt.Errorf("simnode %s: GET %s: %d of %d bytes", n.opts.MAC, u, size, resp.ContentLength)
	}
	if pu, err := url.Parse(u); err == nil {
		n.record(pu.Path)
	}
	return size, nil
}

func (n *Node) record(what string) {
	n.mu.Lock()
	n.fetched = append(n.fetched, what)
	n.mu.Unlock()
	n.console.print("netboot: fetched " + what)
}

// tftp fetches name from the daemon's TFTP server.
func (n *Node) tftp(ctx context.Context, name string, keep *strings.Builder) (int64, error) {
	var w io.Writer = io.Discard
	if keep != nil {
		w = &limitedWriter{w: keep, left: 1 << 20}
	}
	size, err := TFTPGet(ctx, n.opts.SourceIP, n.opts.TFTPAddr, name, w)
	if err != nil {
		return size, fmt.Errorf("simnode %s: %w", n.opts.MAC, err)
	}
	n.record("tftp:" + name)
	return size, nil
}

type limitedWriter struct {
	w    io.Writer
	left int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, errors.New("file too large to keep")
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// Boot is what an iPXE script or a pxelinux config asks for.
type Boot struct {
	Kernel string            // URL (iPXE) or TFTP path (pxelinux) of the kernel
	Initrd string            // URL or TFTP path of the initrd
	Args   map[string]string // kernel command line key=value words (words without = map to "")
}

// ParseIPXE reads the kernel and initrd lines of an iPXE script as netbootui
// renders them ("kernel [--name N] URL ARGS... [|| goto x]", "initrd
// [--name N] URL"). The error names the line.
func ParseIPXE(script string) (Boot, error) {
	b := Boot{Args: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(script))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		words := strings.Fields(sc.Text())
		if i := indexOf(words, "||"); i >= 0 {
			words = words[:i]
		}
		if len(words) == 0 || (words[0] != "kernel" && words[0] != "initrd") {
			continue
		}
		rest := words[1:]
		for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
			if rest[0] == "--name" || rest[0] == "-n" {
				rest = rest[min(2, len(rest)):]
			} else {
				rest = rest[1:]
			}
		}
		if len(rest) == 0 {
			return b, fmt.Errorf("ipxe script line %d: %s without a URL", line, words[0])
		}
		if words[0] == "initrd" {
			b.Initrd = rest[0]
			continue
		}
		b.Kernel = rest[0]
		for _, w := range rest[1:] {
			k, v, _ := strings.Cut(w, "=")
			b.Args[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return b, fmt.Errorf("ipxe script line %d: %w", line+1, err)
	}
	if b.Kernel == "" {
		return b, errors.New("ipxe script: no kernel line")
	}
	return b, nil
}

// ParsePxelinux reads the entry a pxelinux config boots: the DEFAULT label's
// KERNEL, INITRD (the first of a comma list) and APPEND lines (keywords in
// any case; an initrd= word in APPEND counts as INITRD). A config without a
// kernel (netbootui's "no generation, retry" config) is an error naming it.
func ParsePxelinux(cfg string) (Boot, error) {
	type label struct{ kernel, initrd, appendLine string }
	labels := map[string]*label{}
	var cur *label
	def := ""
	first := ""
	sc := bufio.NewScanner(strings.NewReader(cfg))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		kw, rest, _ := strings.Cut(text, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(kw) {
		case "DEFAULT":
			def = rest
		case "LABEL":
			if rest == "" {
				return Boot{}, fmt.Errorf("pxelinux config line %d: LABEL without a name", line)
			}
			cur = &label{}
			labels[rest] = cur
			if first == "" {
				first = rest
			}
		case "KERNEL", "LINUX":
			if cur == nil {
				return Boot{}, fmt.Errorf("pxelinux config line %d: %s outside a LABEL", line, kw)
			}
			cur.kernel = rest
		case "INITRD":
			if cur == nil {
				return Boot{}, fmt.Errorf("pxelinux config line %d: %s outside a LABEL", line, kw)
			}
			cur.initrd = rest
		case "APPEND":
			if cur == nil {
				return Boot{}, fmt.Errorf("pxelinux config line %d: %s outside a LABEL", line, kw)
			}
			cur.appendLine = rest
		}
	}
	if err := sc.Err(); err != nil {
		return Boot{}, fmt.Errorf("pxelinux config line %d: %w", line+1, err)
	}
	if def == "" {
		def = first
	}
	l := labels[def]
	if l == nil || l.kernel == "" {
		return Boot{}, fmt.Errorf("pxelinux config: label %q boots no kernel", def)
	}
	b := Boot{Kernel: l.kernel, Args: map[string]string{}}
	for _, w := range strings.Fields(l.appendLine) {
		k, v, _ := strings.Cut(w, "=")
		b.Args[k] = v
	}
	initrd := l.initrd
	if initrd == "" {
		initrd = b.Args["initrd"]
	}
	b.Initrd, _, _ = strings.Cut(initrd, ",")
	return b, nil
}

func indexOf(ws []string, w string) int {
	for i, x := range ws {
		if x == w {
			return i
		}
	}
	return -1
}

// WaitFor polls cond every 10 ms until it holds or d passes; it reports
// whether it held. For tests that wait on the simulated node's own state.
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SetAgent stops (false) or allows (true) the node agent of the boots that
// follow; the running boot keeps what it has.
func (n *Node) SetAgent(on bool) {
	n.mu.Lock()
	n.agentOff = !on
	n.mu.Unlock()
}

// startAgent runs the real node agent for this boot until ctx ends, with a
// kexec that boots the loaded command line through the firmware goroutine.
func (n *Node) startAgent(ctx context.Context, cl roottransport.Cmdline, key, bootID string) <-chan struct{} {
	done := make(chan struct{})
	pub, err := agentproto.DecodePublicKey(key)
	if err != nil {
		close(done)
		return done
	}
	dir, err := os.MkdirTemp("", "simnode-agent-")
	if err != nil {
		close(done)
		return done
	}
	a, err := nodeagent.New(nodeagent.Config{URL: cl.URL, Node: cl.Node, Token: cl.Token, Generation: cl.Gen, BootID: bootID,
		Key: pub, Client: n.client, Loader: &simKexec{n: n, ctx: ctx}, Dir: dir,
		Logf: func(string, ...any) {}, BeforeExec: func() {}})
	if err != nil {
		os.RemoveAll(dir)
		close(done)
		return done
	}
	go func() {
		defer close(done)
		defer os.RemoveAll(dir)
		a.Run(ctx)
	}()
	return done
}

// simKexec is the node agent's kexec on a simulated node: Load keeps the
// command line, Exec hands it to the firmware goroutine, which ends this
// boot and runs the loaded kernel's.
type simKexec struct {
	n       *Node
	ctx     context.Context // the boot's
	cmdline string
}

func (k *simKexec) Load(kernel, initrd *os.File, cmdline string) error {
	k.cmdline = cmdline
	return nil
}

func (k *simKexec) Exec() error {
	select {
	case k.n.kexecReq <- k.cmdline:
	default:
		return errors.New("simnode: a kexec is already under way")
	}
	<-k.ctx.Done() // as a real kexec, it never returns to this boot
	return nil
}
