// Package simnode is a simulated network-boot node for tests: an in-process
// BMC (go-ipmi's pkg/server on a loopback UDP port) whose chassis power-on
// and power-cycle start a firmware goroutine that really boots from a
// netbootui daemon over HTTP. The firmware honours the BMC's boot flags like
// a BIOS: with "PXE, next boot only" set it clears the flags and fetches
// /boot/<mac>.ipxe, then the kernel, initrd and rootfs URLs the script names,
// and posts a check-in with the token and generation from the script's kernel
// command line; without them it "boots from disk" and fetches nothing.
package simnode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
)

// Options describe one simulated node.
type Options struct {
	MAC      string // the NIC that PXE boots, e.g. "52:54:00:aa:00:01"
	User     string // BMC user (default "admin")
	Password string // BMC password; required
	// BaseURL is the daemon's boot HTTP server, "http://127.0.0.1:PORT".
	BaseURL string
	// StopAfter makes the firmware hang after fetching that file: "script",
	// "kernel", "initrd" or "rootfs" ("" boots all the way and checks in).
	StopAfter string
	// OverlayBytes is what the check-in reports as written to the overlay.
	OverlayBytes int64
	// POST is how long the firmware takes from power-on to its first
	// request (default 100 ms; real machines take seconds).
	POST time.Duration
}

// Node is a running simulated node.
type Node struct {
	opts    Options
	port    int
	chassis *mock.Chassis
	trigger chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	srvDone chan struct{}
	srv     *server.Server
	pc      net.PacketConn

	mu        sync.Mutex
	boots     int   // network boots started
	diskBoots int   // power-ons without PXE flags
	checkins  int   // successful check-ins
	lastErr   error // last firmware error
	fetched   []string
}

// chassis is go-ipmi's in-memory chassis with power-on and power-cycle
// starting the firmware.
type chassis struct {
	*mock.Chassis
	n *Node
}

func (c *chassis) SetPower(ctx context.Context, on bool) error {
	if err := c.Chassis.SetPower(ctx, on); err != nil {
		return err
	}
	if on {
		c.n.powerOn()
	}
	return nil
}

func (c *chassis) PowerCycle(ctx context.Context) error {
	if err := c.Chassis.PowerCycle(ctx); err != nil {
		return err
	}
	c.n.powerOn()
	return nil
}

func (c *chassis) ColdReset(ctx context.Context) error {
	if err := c.Chassis.ColdReset(ctx); err != nil {
		return err
	}
	c.n.powerOn()
	return nil
}

type halWithChassis struct {
	*mock.HAL
	ch *chassis
}

func (h *halWithChassis) Chassis() hal.ChassisHAL { return h.ch }

// Start runs the node's BMC on 127.0.0.1 and its firmware goroutine. The
// chassis starts powered off. Close stops both.
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
	h := mock.New()
	mc := h.Chassis().(*mock.Chassis)
	n := &Node{opts: opts, chassis: mc, trigger: make(chan struct{}, 1), done: make(chan struct{}), srvDone: make(chan struct{})}
	info := bmc.DeviceInfo{DeviceID: 32, DeviceRevision: 1, FirmwareMajor: 1, FirmwareMinor: 0,
		IPMIVersion: 0x02, ManufacturerID: 343, ProductID: 9, AdditionalDeviceSupport: 0x39}
	b := bmc.New(info, [16]byte{0x51, 0x4d}, &halWithChassis{HAL: h, ch: &chassis{Chassis: mc, n: n}})
	u, err := b.Users.Add(2, opts.User)
	if err != nil {
		return nil, fmt.Errorf("simnode: %w", err)
	}
	u.SetPassword([]byte(opts.Password))
	u.Enabled = true
	u.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("simnode: %w", err)
	}
	n.pc = pc
	n.port = pc.LocalAddr().(*net.UDPAddr).Port
	n.srv = server.NewServer(b, udp.Wrap(pc))
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { defer close(n.srvDone); _ = n.srv.Serve(ctx) }()
	go n.firmware(ctx)
	return n, nil
}

// Port is the BMC's UDP port on 127.0.0.1.
func (n *Node) Port() int { return n.port }

// Close stops the BMC and the firmware.
func (n *Node) Close() {
	n.cancel()
	_ = n.srv.Close()
	_ = n.pc.Close()
	<-n.srvDone
	<-n.done
}

// Stats says what the firmware did.
type Stats struct {
	NetBoots, DiskBoots, Checkins int
	Fetched                       []string // URL paths fetched, in order
	LastError                     error
	Power                         bool
	BootFlagsPXE                  bool // PXE flags still pending (not consumed by a boot)
}

// Stats returns what the node did so far.
func (n *Node) Stats() Stats {
	on, _ := n.chassis.PowerState(context.Background())
	f, _ := n.chassis.GetBootFlags(context.Background())
	n.mu.Lock()
	defer n.mu.Unlock()
	return Stats{NetBoots: n.boots, DiskBoots: n.diskBoots, Checkins: n.checkins, LastError: n.lastErr,
		Fetched: append([]string(nil), n.fetched...), Power: on, BootFlagsPXE: pxeFlags(f)}
}

func pxeFlags(f *types.BootOptionParam_BootFlags) bool {
	return f != nil && f.BootFlagsValid && f.BootDeviceSelector == types.BootDeviceSelectorForcePXE
}

func (n *Node) powerOn() {
	select {
	case n.trigger <- struct{}{}:
	default:
	}
}

// firmware boots the node each time the chassis is powered on or cycled; a
// new power event abandons the boot under way.
func (n *Node) firmware(ctx context.Context) {
	defer close(n.done)
	var cancelBoot context.CancelFunc = func() {}
	var wg sync.WaitGroup
	defer func() { cancelBoot(); wg.Wait() }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.trigger:
		}
		cancelBoot()
		wg.Wait()
		bctx, c := context.WithCancel(ctx)
		cancelBoot = c
		f, _ := n.chassis.GetBootFlags(ctx)
		if !pxeFlags(f) {
			n.mu.Lock()
			n.diskBoots++
			n.mu.Unlock()
			continue
		}
		if !f.Persist { // next boot only: the BIOS clears the flags
			cl := *f
			cl.BootFlagsValid = false
			_ = n.chassis.SetBootFlags(ctx, &cl)
		}
		n.mu.Lock()
		n.boots++
		n.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := n.netboot(bctx)
			n.mu.Lock()
			defer n.mu.Unlock()
			switch {
			case err == nil:
				n.checkins++
			case errors.Is(err, errStopped), bctx.Err() != nil:
			default:
				n.lastErr = err
			}
		}()
	}
}

var errStopped = errors.New("simnode: stopped as told")

// netboot is one PXE boot: script, kernel, initrd, rootfs, check-in.
func (n *Node) netboot(ctx context.Context) error {
	select {
	case <-time.After(n.opts.POST):
	case <-ctx.Done():
		return ctx.Err()
	}
	script, err := n.get(ctx, n.opts.BaseURL+"/boot/"+n.opts.MAC+".ipxe")
	if err != nil {
		return err
	}
	if n.opts.StopAfter == "script" {
		return errStopped
	}
	b, err := ParseIPXE(script)
	if err != nil {
		return err
	}
	for _, f := range []struct{ name, url string }{{"kernel", b.Kernel}, {"initrd", b.Initrd}, {"rootfs", b.Args["root"]}} {
		u := strings.TrimPrefix(f.url, "live:")
		if u == "" {
			return fmt.Errorf("simnode: the script names no %s", f.name)
		}
		if _, err := n.get(ctx, u); err != nil {
			return err
		}
		if n.opts.StopAfter == f.name {
			return errStopped
		}
	}
	form := url.Values{
		"node":          {b.Args["netbootui.node"]},
		"token":         {b.Args["netbootui.token"]},
		"generation":    {b.Args["netbootui.gen"]},
		"uptime":        {"3"},
		"overlay_bytes": {strconv.FormatInt(n.opts.OverlayBytes, 10)},
	}
	checkin := b.Args["netbootui.checkin"]
	if checkin == "" {
		return errors.New("simnode: the kernel command line names no netbootui.checkin")
	}
	req, err := http.NewRequestWithContext(ctx, "POST", checkin, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("simnode: check-in: %s", resp.Status)
	}
	return nil
}

func (n *Node) get(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("simnode: GET %s: %s", u, resp.Status)
	}
	if pu, err := url.Parse(u); err == nil {
		n.mu.Lock()
		n.fetched = append(n.fetched, pu.Path)
		n.mu.Unlock()
	}
	return string(body), nil
}

// Boot is what an iPXE script asks for.
type Boot struct {
	Kernel string            // URL of the kernel
	Initrd string            // URL of the initrd
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
	if b.Kernel == "" {
		return b, errors.New("ipxe script: no kernel line")
	}
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
