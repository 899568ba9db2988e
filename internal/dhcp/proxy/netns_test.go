package proxy

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/dhcp"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/lab"
)

// segment is two namespaces on one L2 segment: the server's (bridge br0,
// 10.99.0.1) and a client's, whose cl0 is a veth plugged into br0. The
// client is in its own namespace so that its packets really cross the
// bridge (inside one namespace 10.99.0.1 would be reached over loopback).
func segment(t *testing.T) (server, client *lab.Netns, clientMAC net.HardwareAddr) {
	t.Helper()
	server, client = lab.NewNetns(t), lab.NewNetns(t)
	// The client's namespace has its own br0 with the server's address:
	// remove it, or 10.99.0.1 would be local there.
	client.IP(t, "link", "del", lab.NetnsBridge)
	server.IP(t, "link", "add", "vc0", "type", "veth", "peer", "name", "cl0", "netns", client.Name())
	server.IP(t, "link", "set", "vc0", "master", lab.NetnsBridge)
	server.IP(t, "link", "set", "vc0", "up")
	client.IP(t, "link", "set", "cl0", "up")
	if err := client.Do(func() error {
		ifc, err := net.InterfaceByName("cl0")
		if err == nil {
			clientMAC = ifc.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return server, client, clientMAC
}

// TestWire runs the responder on br0 and a real DHCP client (the
// insomniacslk client, raw sockets on the other end of the segment): a PXE
// DISCOVER gets a proxy offer on the wire, the PXE REQUEST to port 4011 an
// ACK, a non-PXE DISCOVER nothing.
func TestWire(t *testing.T) {
	t.Parallel()
	server, client, mac := segment(t)
	rec := &recorder{}
	r, err := New(Config{
		ServerIP: netip.MustParseAddr(lab.NetnsBridgeIPv4),
		Boot:     dhcp.Options{HTTPBase: "http://10.99.0.1:8080"},
		Lookup: func(m net.HardwareAddr) (Node, bool) {
			return Node{Name: "wire", Loader: inventory.LoaderIPXE, Arch: inventory.ArchUEFI}, m.String() == mac.String()
		},
		Events: rec.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	var conn *Conn
	if err := server.Do(func() (err error) { conn, err = Listen(lab.NetnsBridge); return err }); err != nil {
		t.Fatal(err)
	}
	if conn.IP.String() != lab.NetnsBridgeIPv4 {
		t.Fatalf("interface address %v, want %s", conn.IP, lab.NetnsBridgeIPv4)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, conn) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	// A second responder on the same interface binds too (SO_REUSEADDR: a
	// site DHCP server on this host that sets it keeps its port).
	if err := server.Do(func() error {
		c2, err := Listen(lab.NetnsBridge)
		if err == nil {
			c2.Close()
		}
		return err
	}); err != nil {
		t.Errorf("second bind on br0: %v", err)
	}

	var raw *nclient4.Client
	if err := client.Do(func() (err error) {
		raw, err = nclient4.New("cl0", nclient4.WithTimeout(time.Second), nclient4.WithRetry(3))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	start := time.Now()
	offer, err := raw.DiscoverOffer(context.Background(),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(7)))
	if err != nil {
		t.Fatalf("PXE discover: %v", err)
	}
	t.Logf("proxy offer after %v", time.Since(start).Round(time.Millisecond))
	if !offer.YourIPAddr.IsUnspecified() || offer.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || offer.Options.Has(dhcpv4.OptionSubnetMask) {
		t.Errorf("offer gives an address or lease: %s", offer.Summary())
	}
	if offer.BootFileName != "ipxe.efi" || !offer.ServerIPAddr.Equal(net.IPv4(10, 99, 0, 1)) || offer.ClassIdentifier() != "PXEClient" {
		t.Errorf("offer: file %q siaddr %v option 60 %q", offer.BootFileName, offer.ServerIPAddr, offer.ClassIdentifier())
	}

	// The client got its address from the site's DHCP server; it asks the
	// proxy on port 4011 from it.
	client.IP(t, "addr", "add", "10.99.0.57/24", "dev", "cl0")
	var udp *nclient4.Client
	if err := client.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 99, 0, 57), Port: 68})
		if err != nil {
			return err
		}
		udp, err = nclient4.NewWithConn(c, mac, nclient4.WithTimeout(time.Second), nclient4.WithRetry(3))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 57)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(7)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{71, 4, 0, 0, 0, 0, 255})))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := udp.SendAndRead(context.Background(), &net.UDPAddr{IP: net.IPv4(10, 99, 0, 1), Port: PortPXE}, req,
		nclient4.IsMessageType(dhcpv4.MessageTypeAck))
	if err != nil {
		t.Fatalf("request to port 4011: %v", err)
	}
	if ack.BootFileName != "ipxe.efi" || !ack.YourIPAddr.IsUnspecified() || !ack.ClientIPAddr.Equal(net.IPv4(10, 99, 0, 57)) {
		t.Errorf("4011 ACK: %s", ack.Summary())
	}

	// A plain DHCP client (what udhcpc sends) gets nothing.
	// (The client sends it 3 times in 3 s.)
	nctx, ncancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer ncancel()
	if o, err := raw.DiscoverOffer(nctx, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("udhcp 1.35.0"))); err == nil {
		t.Fatalf("non-PXE discover answered: %s", o.Summary())
	}

	var kinds []string
	for _, ev := range rec.take() {
		kinds = append(kinds, string(ev.Kind)+":"+ev.Message)
		if ev.Kind != bootstate.KindDHCP || ev.Node != "wire" || ev.MAC != mac.String() {
			t.Errorf("event %+v", ev)
		}
	}
	if len(kinds) != 2 {
		t.Errorf("events %q, want the offer's and the ACK's", kinds)
	}
}
