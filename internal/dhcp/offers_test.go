package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/lab"
)

// probe is one DISCOVER the test client sends, as a kind of firmware.
type probe struct {
	kind   string
	mac    string
	client Client
	nonPXE bool
}

func (p probe) modifiers() []dhcpv4.Modifier {
	// Option 60 is not asked for: the configs must send it unasked.
	mods := []dhcpv4.Modifier{
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionHostName,
			dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName),
	}
	switch {
	case p.nonPXE:
		return append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("udhcp 1.35.0")))
	case p.client.Arch.HTTPBoot():
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("HTTPClient:Arch:%05d:UNDI:003001", p.client.Arch))))
	default:
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("PXEClient:Arch:%05d:UNDI:002001", p.client.Arch))))
	}
	mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.Arch(p.client.Arch))))
	if p.client.IPXE {
		// What iPXE sends: user class "iPXE" (not RFC 3004 encoded) and its
		// encapsulated options (175), here the "bus id" one.
		mods = append(mods, dhcpv4.WithUserClass("iPXE", false),
			dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{0xb1, 0x05, 0x01, 0x1a, 0xf4, 0x10, 0x00}))
	}
	return mods
}

// unknownMAC is a MAC no test inventory has.
func unknownMAC(i int) string { return fmt.Sprintf("52:54:00:6e:09:%02x", i) }

// probes are the firmware kinds against the test inventory: BIOS PXE,
// UEFI x64 (7 and 9), UEFI HTTP boot, iPXE and a non-PXE client (an OS's
// DHCP client), from known nodes on each loader and from unknown MACs.
func probes() []probe {
	pxe := func(a Arch) Client { return Client{Arch: a, ArchKnown: true} }
	ipxe := Client{Arch: ArchBIOS, ArchKnown: true, IPXE: true}
	return []probe{
		{"bios n01", "52:54:00:6e:01:01", pxe(ArchBIOS), false},
		{"bios pxelinux pxe1", "52:54:00:6e:01:10", pxe(ArchBIOS), false},
		{"bios unknown", unknownMAC(1), pxe(ArchBIOS), false},
		{"efi-bc efi1", "52:54:00:6e:01:21", pxe(ArchEFIBC), false},
		{"efi-bc pxelinux efipxe1", "52:54:00:6e:01:30", pxe(ArchEFIBC), false},
		{"efi-x64 efi1", "52:54:00:6e:01:21", pxe(ArchEFIx64), false},
		{"efi-x64 pxelinux efipxe1", "52:54:00:6e:01:30", pxe(ArchEFIx64), false},
		{"efi-x64 unknown", unknownMAC(2), pxe(ArchEFIx64), false},
		{"uefi http efi1", "52:54:00:6e:01:21", pxe(ArchEFIx64HTTP), false},
		{"uefi http unknown", unknownMAC(3), pxe(ArchEFIx64HTTP), false},
		{"ipxe n02", "52:54:00:6e:01:02", ipxe, false},
		{"ipxe pxelinux pxe1", "52:54:00:6e:01:10", ipxe, false},
		{"ipxe unknown", unknownMAC(4), ipxe, false},
		{"non-pxe n01", "52:54:00:6e:01:01", Client{}, true},
		{"non-pxe unknown", unknownMAC(5), Client{}, true},
	}
}

// discover sends one DISCOVER from the namespace's client port and returns
// the offer.
func discover(n *lab.Netns, iface string, p probe, timeout time.Duration) (*dhcpv4.DHCPv4, error) {
	mac, err := net.ParseMAC(p.mac)
	if err != nil {
		return nil, err
	}
	var offer *dhcpv4.DHCPv4
	err = n.Do(func() error {
		c, err := nclient4.New(iface, nclient4.WithHWAddr(mac), nclient4.WithTimeout(timeout), nclient4.WithRetry(2))
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*timeout)
		defer cancel()
		offer, err = c.DiscoverOffer(ctx, p.modifiers()...)
		return err
	})
	return offer, err
}

// addClientPort gives the namespace a veth pair: vb0 on the bridge, vc0
// for the test's DHCP client. A packet socket on br0 itself would send its
// frames out of the bridge's ports, never to the server listening on br0.
func addClientPort(t *testing.T, n *lab.Netns) string {
	n.IP(t, "link", "add", "vc0", "type", "veth", "peer", "name", "vb0")
	n.IP(t, "link", "set", "vb0", "master", lab.NetnsBridge)
	n.IP(t, "link", "set", "vb0", "up")
	n.IP(t, "link", "set", "vc0", "up")
	return "vc0"
}

// waitOffers waits until the server answers a plain DISCOVER.
func waitOffers(t *testing.T, n *lab.Netns, iface string, rs *lab.Process) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := discover(n, iface, probe{kind: "ready", mac: unknownMAC(99), nonPXE: true}, 500*time.Millisecond)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never offered: %v\n%s", err, lab.Tail(rs.Out.String(), 30))
		}
		select {
		case <-rs.Exited:
			t.Fatalf("the server exited: %s", lab.Tail(rs.Out.String(), 30))
		default:
		}
	}
}

// TestServersOffer runs each real server on the generated config in a
// namespace and checks every firmware kind's OFFER against Choose: boot
// file, next server, fixed address, hostname and option 60; then the same
// with --known-only, where unknown clients get an address and no boot file.
func TestServersOffer(t *testing.T) {
	nodes := loadTestNodes(t)
	byMAC := map[string]*inventory.Node{}
	for _, n := range nodes {
		byMAC[n.BootMAC().String()] = n
	}
	for _, s := range dhcpServers {
		t.Run(string(s.format), func(t *testing.T) {
			t.Parallel()
			lab.RequireTools(t, s.tool)
			n := lab.NewNetns(t)
			iface := addClientPort(t, n)
			for _, v := range goldenVariants() {
				start := time.Now()
				rs := startServer(t, n, s, generate(t, t.TempDir(), s.format, nodes, v.Cfg))
				waitOffers(t, n, iface, rs)
				ready := time.Since(start)
				for _, p := range probes() {
					offer, err := discover(n, iface, p, 2*time.Second)
					if err != nil {
						t.Errorf("%s: %s: no offer: %v", v.Name, p.kind, err)
						continue
					}
					if err := checkOffer(offer, p, byMAC[p.mac], v.Cfg); err != nil {
						t.Errorf("%s: %s: %v\noffer: %s", v.Name, p.kind, err, offer.Summary())
					}
				}
				t.Logf("%s: %s answered from %v after start; %d probes in %v", v.Name, s.tool, ready.Round(time.Millisecond),
					len(probes()), (time.Since(start) - ready).Round(time.Millisecond))
				rs.Stop()
			}
		})
	}
}

// checkOffer compares an offer with what Choose says the client gets.
func checkOffer(o *dhcpv4.DHCPv4, p probe, node *inventory.Node, cfg Config) error {
	var loader inventory.Loader
	var arch inventory.Arch
	if node != nil {
		loader, arch = node.Loader, node.Arch
	}
	want, err := Choose(p.client, loader, arch, "${mac}", cfg.Options)
	boots := err == nil && !p.nonPXE && (node != nil || !cfg.KnownOnly)
	if !boots {
		want = Boot{}
	}
	// A client takes option 67 when the server sent it (dnsmasq does when
	// it is asked for), else the file field.
	file := o.BootFileNameOption()
	if file == "" {
		file = o.BootFileName
	} else if o.BootFileName != "" && o.BootFileName != file {
		return fmt.Errorf("file field %q and option 67 %q differ", o.BootFileName, file)
	}
	if file != want.File {
		return fmt.Errorf("boot file %q, want %q", file, want.File)
	}
	if boots && !want.HTTP && !o.ServerIPAddr.Equal(cfg.NextServer.AsSlice()) {
		return fmt.Errorf("next server %v, want %v", o.ServerIPAddr, cfg.NextServer)
	}
	if got := o.ClassIdentifier(); (got == "HTTPClient") != want.HTTPClient || (!want.HTTPClient && got != "") {
		return fmt.Errorf("option 60 %q, HTTPClient wanted: %v", got, want.HTTPClient)
	}
	yi, _ := netip.AddrFromSlice(o.YourIPAddr.To4())
	switch {
	case node != nil && node.IP.IsValid():
		if yi != node.IP {
			return fmt.Errorf("address %v, want the fixed %v", yi, node.IP)
		}
	default:
		if yi.Less(netip.MustParseAddr(poolFirst)) || netip.MustParseAddr(poolLast).Less(yi) {
			return fmt.Errorf("address %v is outside the pool", yi)
		}
	}
	if node != nil && o.HostName() != node.Name {
		return fmt.Errorf("hostname %q, want %q", o.HostName(), node.Name)
	}
	return nil
}
