package proxy

import (
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzHandle feeds arbitrary bytes to the packet handler on both ports: it
// must never panic, and whatever it answers is a BOOTREPLY without an
// address that serialises.
func FuzzHandle(f *testing.F) {
	f.Add(packet(f, dhcpv4.MessageTypeDiscover, macBIOS, pxeClass(0), arch(0), uuid97), uint8(0))
	f.Add(packet(f, dhcpv4.MessageTypeRequest, macUEFI, pxeClass(7), arch(7), bootItem), uint8(1))
	f.Add(packet(f, dhcpv4.MessageTypeDiscover, macNew, pxeClass(9), arch(9), ipxeUserClass, ipxeEncap), uint8(0))
	f.Add(packet(f, dhcpv4.MessageTypeDiscover, macUEFI, arch(16), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient"))), uint8(0))
	f.Add([]byte{}, uint8(0))
	f.Add(make([]byte, 240), uint8(1))
	r, rec := newTestResponder(f, nil)
	f.Fuzz(func(t *testing.T, pkt []byte, which uint8) {
		port := PortDHCP
		if which&1 == 1 {
			port = PortPXE
		}
		reply := r.Handle(pkt, netip.MustParseAddrPort("10.99.0.57:68"), port)
		rec.take()
		if reply == nil {
			return
		}
		if reply.Msg.OpCode != dhcpv4.OpcodeBootReply || (reply.Msg.YourIPAddr != nil && !reply.Msg.YourIPAddr.IsUnspecified()) {
			t.Fatalf("bad answer %s", reply.Msg.Summary())
		}
		if _, err := dhcpv4.FromBytes(reply.Msg.ToBytes()); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
	})
}
