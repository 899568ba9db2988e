package proxy

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/dhcp"
	"github.com/netbootui/netbootui/internal/inventory"
)

const (
	testBase = "http://10.99.0.1:8080"
	macBIOS  = "52:54:00:00:00:01"
	macUEFI  = "52:54:00:00:00:02"
	macPXEL  = "52:54:00:00:00:03"
	macNew   = "52:54:00:00:00:99"
)

var testServer = netip.MustParseAddr("10.99.0.1")

// testNodes is a small inventory: two iPXE nodes (BIOS, UEFI) and a
// pxelinux one.
var testNodes = map[string]Node{
	macBIOS: {Name: "n-bios", Loader: inventory.LoaderIPXE, Arch: inventory.ArchBIOS},
	macUEFI: {Name: "n-uefi", Loader: inventory.LoaderIPXE, Arch: inventory.ArchUEFI},
	macPXEL: {Name: "n-pxel", Loader: inventory.LoaderPxelinux, Arch: inventory.ArchBIOS},
}

// recorder collects events; stages are what Config.Stage answers.
type recorder struct {
	mu     sync.Mutex
	events []bootstate.Event
	stages map[string]bootstate.Stage
}

func (rec *recorder) add(ev bootstate.Event) {
	rec.mu.Lock()
	rec.events = append(rec.events, ev)
	rec.mu.Unlock()
}

func (rec *recorder) take() []bootstate.Event {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := rec.events
	rec.events = nil
	return out
}

func newTestResponder(t testing.TB, now func() time.Time) (*Responder, *recorder) {
	t.Helper()
	rec := &recorder{stages: map[string]bootstate.Stage{}}
	r, err := New(Config{
		ServerIP: testServer,
		Boot:     dhcp.Options{HTTPBase: testBase},
		Lookup: func(mac net.HardwareAddr) (Node, bool) {
			n, ok := testNodes[mac.String()]
			return n, ok
		},
		Stage:  func(node string) bootstate.Stage { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.stages[node] },
		Events: rec.add,
		Now:    now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, rec
}

// packet builds a client message of type mt from mac with options set by
// the modifiers.
func packet(t testing.TB, mt dhcpv4.MessageType, mac string, mods ...dhcpv4.Modifier) []byte {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(mt)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m.ToBytes()
}

func pxeClass(arch uint16) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("PXEClient:Arch:%05d:UNDI:002001", arch)))
}

func arch(a uint16) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(a >> 8), byte(a)}))
}

var (
	ipxeUserClass = dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")))
	ipxeEncap     = dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(175), []byte{0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e}))
	uuid97        = dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, bytes.Repeat([]byte{0xab}, 16)...)))
	// EDK2's 4011 request carries a boot item (type 0, layer 0).
	bootItem = dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{71, 4, 0, 0, 0, 0, 255}))
)

var (
	fromNone   = netip.AddrPortFrom(netip.IPv4Unspecified(), 68)
	fromClient = netip.MustParseAddrPort("10.99.0.57:68")
	bcast68    = netip.MustParseAddrPort("255.255.255.255:68")
)

// TestHandle is the decision table: packet in, reply (what it must carry)
// or nothing, and the event it reports.
func TestHandle(t *testing.T) {
	tests := []struct {
		name      string
		pkt       func(t *testing.T) []byte
		from      netip.AddrPort
		port      int
		stage     bootstate.Stage // of the node before the packet
		wantFile  string          // "" = no answer
		wantType  dhcpv4.MessageType
		wantTo    netip.AddrPort
		wantClass string
		want43    []byte
		wantKind  bootstate.Kind // "" = no event
		wantMsg   string         // substring of the event's message
		knownOnly bool
	}{
		{name: "BIOS PXE discover", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxeClass(0), arch(0), uuid97)
			},
			wantFile: "undionly.kpxe", wantType: dhcpv4.MessageTypeOffer, wantTo: bcast68, wantClass: "PXEClient",
			wantKind: bootstate.KindDHCP, wantMsg: "bios (0): offered undionly.kpxe"},
		{name: "UEFI arch 7 discover", port: PortDHCP, from: fromNone,
			pkt:      func(t *testing.T) []byte { return packet(t, dhcpv4.MessageTypeDiscover, macUEFI, pxeClass(7), arch(7)) },
			wantFile: "ipxe.efi", wantType: dhcpv4.MessageTypeOffer, wantTo: bcast68, wantClass: "PXEClient",
			wantKind: bootstate.KindDHCP, wantMsg: "efi-bc (7)"},
		{name: "UEFI arch 9 discover", port: PortDHCP, from: fromNone,
			pkt:      func(t *testing.T) []byte { return packet(t, dhcpv4.MessageTypeDiscover, macUEFI, pxeClass(9), arch(9)) },
			wantFile: "ipxe.efi", wantType: dhcpv4.MessageTypeOffer, wantTo: bcast68, wantClass: "PXEClient",
			wantKind: bootstate.KindDHCP, wantMsg: "efi-x64 (9)"},
		{name: "UEFI 4011 request with boot item", port: PortPXE, from: fromClient,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeRequest, macUEFI, pxeClass(7), arch(7), bootItem,
					dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 57)))
			},
			wantFile: "ipxe.efi", wantType: dhcpv4.MessageTypeAck, wantTo: fromClient, wantClass: "PXEClient",
			want43: []byte{6, 1, 8, 71, 4, 0, 0, 0, 0, 255}, wantKind: bootstate.KindDHCP, wantMsg: "acknowledged ipxe.efi on port 4011"},
		{name: "HTTP boot arch 16", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macUEFI, arch(16),
					dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003001")))
			},
			wantFile: testBase + "/loaders/ipxe.efi", wantType: dhcpv4.MessageTypeOffer, wantTo: bcast68, wantClass: "HTTPClient",
			wantKind: bootstate.KindDHCP, wantMsg: "efi-x64-http (16)"},
		{name: "pxelinux node", port: PortDHCP, from: fromNone,
			pkt:      func(t *testing.T) []byte { return packet(t, dhcpv4.MessageTypeDiscover, macPXEL, pxeClass(0), arch(0)) },
			wantFile: "pxelinux.0", wantType: dhcpv4.MessageTypeOffer, wantTo: bcast68, wantClass: "PXEClient",
			wantKind: bootstate.KindDHCP},
		{name: "option 93 alone is PXE", port: PortDHCP, from: fromNone,
			pkt:      func(t *testing.T) []byte { return packet(t, dhcpv4.MessageTypeDiscover, macBIOS, arch(0)) },
			wantFile: "undionly.kpxe", wantType: dhcpv4.MessageTypeOffer, wantTo: bcast68, wantClass: "PXEClient",
			wantKind: bootstate.KindDHCP},
		{name: "iPXE ROM as firmware", port: PortDHCP, from: fromNone, stage: bootstate.StageOff,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxeClass(0), arch(0), ipxeUserClass, ipxeEncap)
			},
			wantFile: testBase + "/boot/" + macBIOS + ".ipxe", wantType: dhcpv4.MessageTypeOffer, wantTo: bcast68, wantClass: "PXEClient",
			wantKind: bootstate.KindDHCP, wantMsg: "bios (0), iPXE"},
		{name: "iPXE after its loader", port: PortDHCP, from: fromNone, stage: bootstate.StageNBP,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macUEFI, pxeClass(7), arch(7), ipxeUserClass)
			},
			wantFile: testBase + "/boot/" + macUEFI + ".ipxe", wantType: dhcpv4.MessageTypeOffer, wantTo: bcast68, wantClass: "PXEClient",
			wantKind: bootstate.KindInfo, wantMsg: "iPXE asked DHCP"},
		{name: "unknown MAC", port: PortDHCP, from: fromNone,
			pkt:      func(t *testing.T) []byte { return packet(t, dhcpv4.MessageTypeDiscover, macNew, pxeClass(9), arch(9)) },
			wantFile: "ipxe.efi", wantType: dhcpv4.MessageTypeOffer, wantTo: bcast68, wantClass: "PXEClient",
			wantKind: bootstate.KindUnknown, wantMsg: "unknown MAC " + macNew + " (efi-x64 (9))"},
		{name: "unknown MAC, known nodes only", port: PortDHCP, from: fromNone, knownOnly: true,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macNew, pxeClass(9), arch(9))
			},
			wantKind: bootstate.KindUnknown, wantMsg: "unknown MAC " + macNew + " (efi-x64 (9))"},
		{name: "known node, known nodes only", port: PortDHCP, from: fromNone, knownOnly: true,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macUEFI, pxeClass(9), arch(9))
			},
			wantFile: "ipxe.efi", wantType: dhcpv4.MessageTypeOffer, wantTo: bcast68, wantClass: "PXEClient",
			wantKind: bootstate.KindDHCP},
		{name: "relayed discover goes to the relay", port: PortDHCP, from: netip.MustParseAddrPort("10.1.0.1:67"),
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxeClass(0), arch(0), dhcpv4.WithGatewayIP(net.IPv4(10, 1, 0, 1)))
			},
			wantFile: "undionly.kpxe", wantType: dhcpv4.MessageTypeOffer, wantTo: netip.MustParseAddrPort("10.1.0.1:67"), wantClass: "PXEClient",
			wantKind: bootstate.KindDHCP},
		{name: "arch without a loader", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macUEFI, pxeClass(11), arch(11))
			},
			wantKind: bootstate.KindFail, wantMsg: ""},
		{name: "non-PXE client", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macBIOS, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("udhcp 1.35.0")))
			}},
		{name: "non-PXE unknown client", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte { return packet(t, dhcpv4.MessageTypeDiscover, macNew) }},
		{name: "request on 67 is the DHCP server's", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte { return packet(t, dhcpv4.MessageTypeRequest, macBIOS, pxeClass(0), arch(0)) }},
		{name: "discover on 4011", port: PortPXE, from: fromClient,
			pkt: func(t *testing.T) []byte { return packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxeClass(0), arch(0)) }},
		{name: "4011 request for another server", port: PortPXE, from: fromClient,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeRequest, macBIOS, pxeClass(0), arch(0),
					dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 2))))
			}},
		{name: "BOOTREPLY", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeOffer, macBIOS, pxeClass(0), arch(0), func(d *dhcpv4.DHCPv4) { d.OpCode = dhcpv4.OpcodeBootReply })
			}},
		{name: "no message type", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxeClass(0), func(d *dhcpv4.DHCPv4) { d.Options.Del(dhcpv4.OptionDHCPMessageType) })
			}},
		{name: "truncated", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte {
				return packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxeClass(0), arch(0))[:100]
			}},
		{name: "bad magic cookie", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte {
				b := packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxeClass(0), arch(0))
				b[236] = 0
				return b
			}},
		{name: "option length past the end", port: PortDHCP, from: fromNone,
			pkt: func(t *testing.T) []byte {
				b := packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxeClass(0), arch(0))
				return append(b[:240], 60, 200, 'P', 'X', 'E')
			}},
		{name: "empty", port: PortDHCP, from: fromNone, pkt: func(t *testing.T) []byte { return nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, rec := newTestResponder(t, nil)
			r.cfg.KnownOnly = tc.knownOnly
			for _, n := range testNodes {
				rec.stages[n.Name] = tc.stage
			}
			reply := r.Handle(tc.pkt(t), tc.from, tc.port)
			if tc.wantFile == "" {
				if reply != nil {
					t.Fatalf("answered: %s", reply.Msg.Summary())
				}
			} else {
				if reply == nil {
					t.Fatal("no answer")
				}
				checkReply(t, reply, tc.wantType, tc.wantFile, tc.wantClass, tc.want43)
				if reply.To != tc.wantTo {
					t.Errorf("sent to %v, want %v", reply.To, tc.wantTo)
				}
			}
			evs := rec.take()
			if tc.wantKind == "" {
				if len(evs) != 0 {
					t.Fatalf("events %+v, want none", evs)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("events %+v, want one %s", evs, tc.wantKind)
			}
			ev := evs[0]
			if ev.Kind != tc.wantKind || !strings.Contains(ev.Message, tc.wantMsg) || ev.MAC == "" || ev.Proto != "dhcp" {
				t.Errorf("event %+v, want kind %s, message with %q", ev, tc.wantKind, tc.wantMsg)
			}
			switch ev.Kind {
			case bootstate.KindDHCP:
				if ev.Stage != bootstate.StageDHCP || ev.Node == "" || ev.Path != tc.wantFile {
					t.Errorf("dhcp event %+v: want stage dhcp, the node, path %s", ev, tc.wantFile)
				}
			case bootstate.KindUnknown:
				if ev.Node != "" || ev.Stage != "" {
					t.Errorf("unknown event %+v has a node or stage", ev)
				}
				if answered := strings.Contains(ev.Message, "offered"); answered == tc.knownOnly || (ev.Error != "") != tc.knownOnly {
					t.Errorf("unknown event %+v: answered %v with known-only %v", ev, answered, tc.knownOnly)
				}
			case bootstate.KindInfo:
				if ev.Stage != "" {
					t.Errorf("info event %+v moves the stage", ev)
				}
			case bootstate.KindFail:
				if !strings.Contains(ev.Error, "efi-arm64 (11)") {
					t.Errorf("fail event %+v does not name the arch", ev)
				}
			}
		})
	}
}

// checkReply checks an answer: the boot file, never an address nor lease
// options, this server as option 54 and siaddr.
func checkReply(t *testing.T, reply *Reply, mt dhcpv4.MessageType, file, class string, opt43 []byte) {
	t.Helper()
	// What goes on the wire is what a client parses.
	m, err := dhcpv4.FromBytes(reply.Msg.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	if m.OpCode != dhcpv4.OpcodeBootReply || m.MessageType() != mt {
		t.Errorf("op %v type %v, want BOOTREPLY %v", m.OpCode, m.MessageType(), mt)
	}
	if !m.YourIPAddr.IsUnspecified() {
		t.Errorf("yiaddr %v: a proxy never gives an address", m.YourIPAddr)
	}
	for _, o := range []dhcpv4.OptionCode{dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
		dhcpv4.OptionDomainNameServer, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue} {
		if m.Options.Has(o) {
			t.Errorf("answer carries lease option %v", o)
		}
	}
	got := m.BootFileName
	if got == "" {
		got = m.BootFileNameOption()
	}
	if got != file {
		t.Errorf("boot file %q, want %q", got, file)
	}
	if !m.ServerIPAddr.Equal(net.IP(testServer.AsSlice())) || !m.ServerIdentifier().Equal(net.IP(testServer.AsSlice())) {
		t.Errorf("siaddr %v, option 54 %v: want %v", m.ServerIPAddr, m.ServerIdentifier(), testServer)
	}
	if m.ClassIdentifier() != class {
		t.Errorf("option 60 %q, want %q", m.ClassIdentifier(), class)
	}
	if got := m.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, opt43) {
		t.Errorf("option 43 % x, want % x", got, opt43)
	}
}

// TestUUIDEchoed: a PXE client's option 97 comes back in the proxy offer.
func TestUUIDEchoed(t *testing.T) {
	r, _ := newTestResponder(t, nil)
	reply := r.Handle(packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxeClass(0), arch(0), uuid97), fromNone, PortDHCP)
	if reply == nil {
		t.Fatal("no answer")
	}
	want := append([]byte{0}, bytes.Repeat([]byte{0xab}, 16)...)
	if got := reply.Msg.Options.Get(dhcpv4.OptionClientMachineIdentifier); !bytes.Equal(got, want) {
		t.Fatalf("option 97 % x, want % x", got, want)
	}
}

// TestLongURLInOption67: a boot URL too long for the file field goes in
// option 67.
func TestLongURLInOption67(t *testing.T) {
	long := "http://" + strings.Repeat("h", 130) + ".example:8080"
	r, err := New(Config{ServerIP: testServer, Boot: dhcp.Options{HTTPBase: long}})
	if err != nil {
		t.Fatal(err)
	}
	reply := r.Handle(packet(t, dhcpv4.MessageTypeDiscover, macNew, pxeClass(0), arch(0), ipxeUserClass), fromNone, PortDHCP)
	if reply == nil {
		t.Fatal("no answer")
	}
	m, _ := dhcpv4.FromBytes(reply.Msg.ToBytes())
	if want := long + "/boot/" + macNew + ".ipxe"; m.BootFileNameOption() != want || m.BootFileName != "" {
		t.Fatalf("option 67 %q, file %q; want the URL in option 67", m.BootFileNameOption(), m.BootFileName)
	}
}

// TestRateLimit: an unknown MAC is reported once a minute however often it
// asks; a known node's repeated DISCOVER once per KnownEvery; a different
// unknown MAC is reported at once.
func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, rec := newTestResponder(t, func() time.Time { return now })
	ask := func(mac string) {
		if r.Handle(packet(t, dhcpv4.MessageTypeDiscover, mac, pxeClass(0), arch(0)), fromNone, PortDHCP) == nil {
			t.Fatalf("%s: no answer", mac)
		}
	}
	count := func(want int, what string) {
		t.Helper()
		if evs := rec.take(); len(evs) != want {
			t.Fatalf("%s: %d events %+v, want %d", what, len(evs), evs, want)
		}
	}
	for i := 0; i < 50; i++ {
		ask(macNew)
	}
	count(1, "50 requests of one unknown MAC")
	ask("52:54:00:00:00:98")
	count(1, "another unknown MAC")
	now = now.Add(59 * time.Second)
	ask(macNew)
	count(0, "59 s later")
	now = now.Add(time.Second)
	ask(macNew)
	count(1, "a minute later")
	ask(macBIOS)
	ask(macBIOS)
	count(1, "a known node's repeated discover")
	now = now.Add(9 * time.Second)
	ask(macBIOS)
	count(0, "9 s later")
	now = now.Add(time.Second)
	ask(macBIOS)
	count(1, "10 s later")
}

// TestNewErrors: bad configuration is refused with a clear error.
func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Boot: dhcp.Options{HTTPBase: testBase}}, "want an IPv4 address"},
		{Config{ServerIP: netip.MustParseAddr("fd99::1"), Boot: dhcp.Options{HTTPBase: testBase}}, "fd99::1: want an IPv4"},
		{Config{ServerIP: testServer, Boot: dhcp.Options{HTTPBase: "10.99.0.1:8080"}}, `"10.99.0.1:8080": must start with http://`},
		{Config{ServerIP: testServer, Boot: dhcp.Options{HTTPBase: testBase, EFILoader: "grub.efi"}}, `"grub.efi"`},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestListenErrors: a missing interface or one without IPv4 is named.
func TestListenErrors(t *testing.T) {
	if _, err := Listen("nbt-no-such0"); err == nil || !strings.Contains(err.Error(), `interface "nbt-no-such0": no such network interface`) {
		t.Fatalf("missing interface: %v", err)
	}
}

// TestChainedIPXE: the iPXE a node's PXE firmware fetched asks DHCP again;
// that is info (the boot goes on), even before the loader's fetch is
// attributed to the node. After the chain window, or for an iPXE that is
// the firmware itself, it starts the dhcp stage.
func TestChainedIPXE(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, rec := newTestResponder(t, func() time.Time { return now })
	kind := func(mods ...dhcpv4.Modifier) bootstate.Kind {
		t.Helper()
		if r.Handle(packet(t, dhcpv4.MessageTypeDiscover, macUEFI, mods...), fromNone, PortDHCP) == nil {
			t.Fatal("no answer")
		}
		evs := rec.take()
		if len(evs) != 1 {
			t.Fatalf("events %+v, want one", evs)
		}
		return evs[0].Kind
	}
	if k := kind(pxeClass(7), arch(7), ipxeUserClass); k != bootstate.KindDHCP {
		t.Fatalf("iPXE as firmware: %s, want dhcp", k)
	}
	now = now.Add(time.Minute)
	if k := kind(pxeClass(7), arch(7)); k != bootstate.KindDHCP {
		t.Fatalf("EDK2 PXE: %s, want dhcp", k)
	}
	now = now.Add(20 * time.Second)
	if k := kind(pxeClass(7), arch(7), ipxeUserClass); k != bootstate.KindInfo {
		t.Fatalf("the iPXE it fetched: %s, want info", k)
	}
	now = now.Add(5 * time.Minute)
	if k := kind(pxeClass(7), arch(7), ipxeUserClass, ipxeEncap); k != bootstate.KindDHCP {
		t.Fatalf("iPXE 5 minutes later: %s, want dhcp", k)
	}
}
