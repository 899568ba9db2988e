// Package proxy is netbootui's proxyDHCP responder: it tells PXE clients on
// one network segment which boot server and boot file to use, and never
// hands out an address, so that it runs beside the site's own DHCP server.
//
// It answers a PXE client's DHCPDISCOVER on port 67 with a proxy offer
// (yiaddr 0, no lease options; option 60 "PXEClient", option 54 and siaddr
// set to this host, the boot file, no option 43), and the client's
// DHCPREQUEST to port 4011 (what PXE firmware such as EDK2 sends, once the
// site's server gave it an address, to a proxy offer without option 43)
// with an ACK that carries the boot file and option 43 "use this file, no
// boot-server discovery". iPXE takes the offer's file at once. The boot file comes from dhcp.Choose, so a node
// boots the same way whether the site's DHCP server or this responder told it
// where to go. Each answer reports an event: the node's firmware reached the
// dhcp stage, an iPXE already past its loader asked again (info), or an
// unknown MAC asked (rate limited per MAC).
//
// Handle is the whole decision (packet in, reply or nothing) and does no
// I/O; Listen binds the two ports on one interface and Serve runs Handle on
// what arrives.
package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/dhcp"
	"github.com/netbootui/netbootui/internal/inventory"
)

// Ports the responder answers on, and the client port it broadcasts to.
const (
	PortDHCP   = 67   // DHCPDISCOVER (broadcast by the client)
	PortPXE    = 4011 // the PXE client's DHCPREQUEST to the proxy, once it has an address
	PortClient = 68
)

// Node is what the responder needs to know about a node of the inventory.
type Node struct {
	Name   string
	Loader inventory.Loader
	Arch   inventory.Arch
}

// Config sets up a Responder.
type Config struct {
	// ServerIP is this host's IPv4 address on the segment: option 54 and
	// siaddr (the TFTP server) of every answer.
	ServerIP netip.Addr
	// Boot is the HTTP base and UEFI loader given to dhcp.Choose.
	Boot dhcp.Options
	// Lookup finds the inventory node with a NIC of that MAC. It is called
	// for every packet, so it sees the inventory in force (reloads
	// included). Nil: every client is unknown.
	Lookup func(mac net.HardwareAddr) (Node, bool)
	// Stage gives a node's current boot stage (nil: always unknown). An
	// iPXE request from a node in the nbp stage or later fetch stage, or
	// within ChainWindow (default 5 minutes) of an answer to the same MAC's
	// PXE firmware (not iPXE), is the loader the firmware fetched asking
	// again: it is reported as info, not as a new dhcp stage, so the boot's
	// timeline goes on. (A loader fetched over TFTP by a node whose address
	// the inventory does not fix is only attributed to it later, so the
	// stage alone cannot tell.) An iPXE that is the firmware itself (a NIC
	// ROM) has no such earlier answer: it starts the dhcp stage.
	Stage       func(node string) bootstate.Stage
	ChainWindow time.Duration
	// KnownOnly answers only MACs Lookup knows; an unknown PXE client is
	// still reported (unknown event), but gets no answer, so the proxy
	// leaves other PXE systems on a shared segment alone.
	KnownOnly bool
	// Events receives what the responder saw (nil: none are reported).
	Events func(bootstate.Event)
	// UnknownEvery is the least time between two unknown-node events of
	// one MAC (default one minute); a known node's identical events are
	// kept at least KnownEvery (default 10 s) apart, since firmware
	// repeats its DISCOVER.
	UnknownEvery, KnownEvery time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger gets one debug line per packet that is not answered (nil:
	// slog.Default).
	Logger *slog.Logger
}

// Responder decides the answer to each DHCP packet. It is safe for
// concurrent use.
type Responder struct {
	cfg Config

	mu       sync.Mutex
	last     map[string]time.Time // rate limiter: key -> last event time
	firmware map[string]time.Time // MAC -> last answer to its PXE firmware
}

// New checks the configuration.
func New(cfg Config) (*Responder, error) {
	if !cfg.ServerIP.Is4() {
		return nil, fmt.Errorf("proxydhcp: server address %v: want an IPv4 address", cfg.ServerIP)
	}
	if err := cfg.Boot.Validate(); err != nil {
		return nil, fmt.Errorf("proxydhcp: %w", err)
	}
	if cfg.UnknownEvery <= 0 {
		cfg.UnknownEvery = time.Minute
	}
	if cfg.KnownEvery <= 0 {
		cfg.KnownEvery = 10 * time.Second
	}
	if cfg.ChainWindow <= 0 {
		cfg.ChainWindow = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Responder{cfg: cfg, last: map[string]time.Time{}, firmware: map[string]time.Time{}}, nil
}

// Reply is an answer to send.
type Reply struct {
	// Msg is the DHCP message (an OFFER to a DISCOVER, an ACK to a
	// REQUEST on port 4011).
	Msg *dhcpv4.DHCPv4
	// To is where it goes: the broadcast address on the client port for an
	// offer (or the relay's address on port 67), the request's source for an
	// ACK.
	To netip.AddrPort
}

// Handle decides the answer to one packet that arrived on port (PortDHCP or
// PortPXE) from the address from. It returns nil when the packet gets no
// answer: not a BOOTREQUEST, not from a PXE client, not a message type the
// proxy answers, malformed, or a REQUEST on 4011 addressed to another
// server. It never panics on any input.
func (r *Responder) Handle(pkt []byte, from netip.AddrPort, port int) *Reply {
	reply, why := r.handle(pkt, from, port)
	if reply == nil {
		r.cfg.Logger.Debug("proxydhcp: no answer", "from", from.String(), "port", port, "reason", why)
	}
	return reply
}

// request is what a request says about the client, parsed once.
type request struct {
	msg    *dhcpv4.DHCPv4
	class  string // option 60
	client dhcp.Client
	mac    net.HardwareAddr
}

func (r *Responder) handle(pkt []byte, from netip.AddrPort, port int) (*Reply, string) {
	msg, err := dhcpv4.FromBytes(pkt)
	if err != nil {
		return nil, "malformed: " + err.Error()
	}
	if msg.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, "not a BOOTREQUEST"
	}
	if len(msg.ClientHWAddr) != 6 || msg.HWType != 1 {
		return nil, "not an Ethernet client"
	}
	req, ok := parseRequest(msg)
	if !ok {
		return nil, "not a PXE client"
	}
	mt := msg.MessageType()
	switch {
	case port == PortDHCP && mt == dhcpv4.MessageTypeDiscover:
	case port == PortPXE && (mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform):
		if sid := msg.ServerIdentifier(); sid != nil && !sid.Equal(net.IP(r.cfg.ServerIP.AsSlice())) {
			return nil, "request for server " + sid.String()
		}
	default:
		return nil, fmt.Sprintf("%s on port %d", mt, port)
	}

	node, known := Node{}, false
	if r.cfg.Lookup != nil {
		node, known = r.cfg.Lookup(req.mac)
	}
	if !known && r.cfg.KnownOnly {
		r.report(req, from, node, known, dhcp.Boot{}, errKnownOnly)
		return nil, "unknown MAC (known nodes only)"
	}
	macExpr := req.mac.String()
	boot, err := dhcp.Choose(req.client, node.Loader, node.Arch, macExpr, r.cfg.Boot)
	if err != nil {
		r.report(req, from, node, known, dhcp.Boot{}, err)
		return nil, err.Error()
	}
	out, err := r.build(req, mt, boot)
	if err != nil {
		return nil, "building the answer: " + err.Error()
	}
	r.report(req, from, node, known, boot, nil)
	return &Reply{Msg: out, To: destination(msg, from, port)}, ""
}

// errKnownOnly is the unknown event's error when KnownOnly kept the answer.
var errKnownOnly = errors.New("not answered: the proxyDHCP answers known nodes only")

// parseRequest reads the PXE facts of a request; ok is false for a client
// that is not PXE (no option 60 PXEClient/HTTPClient, no option 93).
func parseRequest(msg *dhcpv4.DHCPv4) (request, bool) {
	req := request{msg: msg, class: msg.ClassIdentifier(), mac: msg.ClientHWAddr}
	raw93 := msg.Options.Get(dhcpv4.OptionClientSystemArchitectureType)
	if !strings.HasPrefix(req.class, "PXEClient") && !strings.HasPrefix(req.class, "HTTPClient") && raw93 == nil {
		return req, false
	}
	if len(raw93) >= 2 {
		req.client.Arch = dhcp.Arch(uint16(raw93[0])<<8 | uint16(raw93[1]))
		req.client.ArchKnown = true
	}
	req.client.IPXE = isIPXE(msg)
	return req, true
}

// isIPXE reports iPXE's user class (option 77 "iPXE", raw as iPXE sends it
// or RFC 3004 encoded) or its encapsulated options (175).
func isIPXE(msg *dhcpv4.DHCPv4) bool {
	if msg.Options.Has(dhcpv4.GenericOptionCode(175)) {
		return true
	}
	uc := msg.Options.Get(dhcpv4.OptionUserClassInformation)
	if bytes.Equal(uc, []byte("iPXE")) {
		return true
	}
	for len(uc) > 0 {
		n := int(uc[0])
		if n == 0 || 1+n > len(uc) {
			return false
		}
		if string(uc[1:1+n]) == "iPXE" {
			return true
		}
		uc = uc[1+n:]
	}
	return false
}

// PXE vendor sub-options (option 43) the responder reads or writes.
const (
	pxeDiscoveryControl = 6  // bit 3: take the boot file from the offer, no boot-server discovery
	pxeBootItem         = 71 // boot server type and layer, echoed in the 4011 ACK
	pxeEnd              = 255
)

// build makes the answer: never an address (yiaddr stays 0) nor lease
// options.
func (r *Responder) build(req request, mt dhcpv4.MessageType, boot dhcp.Boot) (*dhcpv4.DHCPv4, error) {
	server := net.IP(r.cfg.ServerIP.AsSlice())
	answer := dhcpv4.MessageTypeOffer
	if mt != dhcpv4.MessageTypeDiscover {
		answer = dhcpv4.MessageTypeAck
	}
	class := "PXEClient"
	if boot.HTTPClient {
		class = "HTTPClient"
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(answer),
		dhcpv4.WithServerIP(server),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(class)),
	}
	if len(boot.File) < 128 {
		mods = append(mods, func(d *dhcpv4.DHCPv4) { d.BootFileName = boot.File })
	} else {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptBootFileName(boot.File)))
	}
	if class == "PXEClient" && answer == dhcpv4.MessageTypeAck {
		// The offer has no option 43: PXE firmware (EDK2, BIOS PXE ROMs)
		// then asks port 4011 for its boot file, as with any proxyDHCP
		// server on another host; iPXE takes the offer's file. The ACK
		// tells it to use that file, no further discovery.
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, vendorOptions(req.msg))))
	}
	if uuid := req.msg.Options.Get(dhcpv4.OptionClientMachineIdentifier); uuid != nil {
		// PXE firmware matches its UUID (option 97) in proxy answers.
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, uuid)))
	}
	if answer == dhcpv4.MessageTypeAck && req.msg.ClientIPAddr != nil {
		ciaddr := req.msg.ClientIPAddr
		mods = append(mods, func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = ciaddr })
	}
	return dhcpv4.NewReplyFromRequest(req.msg, mods...)
}

// vendorOptions is option 43 of a 4011 ACK: discovery control "use the
// boot file of this answer", and the request's boot item echoed (a PXE
// client that asks port 4011 for a boot item checks it in the ACK).
func vendorOptions(msg *dhcpv4.DHCPv4) []byte {
	out := []byte{pxeDiscoveryControl, 1, 0x08}
	in := msg.Options.Get(dhcpv4.OptionVendorSpecificInformation)
	for len(in) >= 2 {
		code, n := in[0], int(in[1])
		if code == 0 {
			in = in[1:]
			continue
		}
		if code == pxeEnd || 2+n > len(in) {
			break
		}
		if code == pxeBootItem && n == 4 {
			out = append(out, in[:2+n]...)
		}
		in = in[2+n:]
	}
	return append(out, pxeEnd)
}

// destination: an offer is broadcast to the client port (the client has no
// address yet), or sent to the relay that forwarded the DISCOVER; a 4011 ACK
// goes back where the request came from.
func destination(msg *dhcpv4.DHCPv4, from netip.AddrPort, port int) netip.AddrPort {
	if gi, ok := netip.AddrFromSlice(msg.GatewayIPAddr.To4()); ok && !gi.IsUnspecified() {
		return netip.AddrPortFrom(gi, PortDHCP)
	}
	if port == PortPXE && from.Addr().Is4() && !from.Addr().IsUnspecified() {
		return from
	}
	return netip.AddrPortFrom(broadcast, PortClient)
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// report turns an answered (or unanswerable) request into an event.
func (r *Responder) report(req request, from netip.AddrPort, node Node, known bool, boot dhcp.Boot, chooseErr error) {
	if r.cfg.Events == nil {
		return
	}
	mt := req.msg.MessageType()
	arch := "no arch option"
	if req.client.ArchKnown {
		arch = req.client.Arch.String()
	}
	if req.client.IPXE {
		arch += ", iPXE"
	}
	ev := bootstate.Event{Time: r.cfg.Now(), Proto: "dhcp", MAC: req.mac.String(), Path: boot.File}
	if from.Addr().IsValid() && !from.Addr().IsUnspecified() {
		ev.Remote = from.String()
	}
	answered := "offered " + boot.File
	if mt != dhcpv4.MessageTypeDiscover {
		answered = "acknowledged " + boot.File + " on port 4011"
	}
	switch {
	case !known:
		ev.Kind = bootstate.KindUnknown
		ev.Message = fmt.Sprintf("unknown MAC %s (%s) asked for a boot server; add a node with this MAC to the inventory to boot it", req.mac, arch)
		if chooseErr != nil {
			ev.Error = chooseErr.Error()
		} else {
			ev.Message += "; " + answered
		}
		if !r.allow("u"+ev.MAC, r.cfg.UnknownEvery) {
			return
		}
	case chooseErr != nil:
		ev.Node, ev.Kind = node.Name, bootstate.KindFail
		ev.Error = fmt.Sprintf("dhcp: %s (%s): %v", req.mac, arch, chooseErr)
		if !r.allow("f"+ev.MAC, r.cfg.UnknownEvery) {
			return
		}
	case req.client.IPXE && (r.pastLoader(node.Name) || r.chained(ev.MAC)):
		ev.Node, ev.Kind = node.Name, bootstate.KindInfo
		ev.Message = fmt.Sprintf("iPXE asked DHCP (%s): %s", arch, answered)
		if !r.allow("i"+ev.MAC+answered, r.cfg.KnownEvery) {
			return
		}
	default:
		if !req.client.IPXE {
			r.noteFirmware(ev.MAC)
		}
		ev.Node, ev.Kind, ev.Stage = node.Name, bootstate.KindDHCP, bootstate.StageDHCP
		ev.Message = fmt.Sprintf("%s: %s", arch, answered)
		if !r.allow("k"+ev.MAC+answered, r.cfg.KnownEvery) {
			return
		}
	}
	r.cfg.Events(ev)
}

// pastLoader reports whether the node's boot already fetched its loader
// (nbp) or went further in the same boot.
func (r *Responder) pastLoader(node string) bool {
	if r.cfg.Stage == nil {
		return false
	}
	switch r.cfg.Stage(node) {
	case bootstate.StageNBP, bootstate.StageConfig, bootstate.StageKernel, bootstate.StageInitrd, bootstate.StageRootfs:
		return true
	}
	return false
}

// noteFirmware records an answer to a MAC's PXE firmware.
func (r *Responder) noteFirmware(mac string) {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	bound(r.firmware, now, r.cfg.ChainWindow)
	r.firmware[mac] = now
}

// chained reports whether the MAC's PXE firmware was answered within the
// chain window.
func (r *Responder) chained(mac string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.firmware[mac]
	return ok && r.cfg.Now().Sub(t) < r.cfg.ChainWindow
}

// maxLimited bounds the memory of the rate limiter and of the firmware
// answers.
const maxLimited = 4096

// allow reports whether an event of key may be recorded now, and notes it.
func (r *Responder) allow(key string, every time.Duration) bool {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[key]; ok && now.Sub(t) < every {
		return false
	}
	bound(r.last, now, max(r.cfg.UnknownEvery, r.cfg.KnownEvery))
	r.last[key] = now
	return true
}

// bound keeps a map of times under maxLimited entries: when full, entries
// older than horizon go, and if that is not enough, all of them.
func bound(m map[string]time.Time, now time.Time, horizon time.Duration) {
	if len(m) < maxLimited {
		return
	}
	for k, t := range m {
		if now.Sub(t) >= horizon {
			delete(m, k)
		}
	}
	if len(m) >= maxLimited {
		clear(m)
	}
}
