package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Conn is the responder's two UDP sockets (ports 67 and 4011), both bound
// to one interface.
type Conn struct {
	// Interface is the interface's name; IP its first IPv4 address (the
	// answers' server address).
	Interface string
	IP        netip.Addr

	dhcp, pxe *net.UDPConn
	closeOnce sync.Once
}

// InterfaceIPv4 returns the first IPv4 address of the named interface, with
// an error naming the interface when it does not exist or has none.
func InterfaceIPv4(name string) (netip.Addr, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("proxydhcp: interface %q: no such network interface", name)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("proxydhcp: interface %s: reading its addresses: %w", name, err)
	}
	for _, a := range addrs {
		if in, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(in.IP.To4()); ok {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("proxydhcp: interface %s has no IPv4 address (the proxyDHCP gives it as the boot server): add one or pick another interface", name)
}

// Listen binds UDP ports 67 and 4011 on the interface (SO_BINDTODEVICE, so
// only that segment is answered; SO_REUSEADDR, so a DHCP server on the same
// host that also sets it keeps working). It fails with an error naming the
// interface, the port and what is missing: the interface, its IPv4
// address, or the permission to bind a port below 1024 (root or
// CAP_NET_BIND_SERVICE).
func Listen(iface string) (*Conn, error) {
	ip, err := InterfaceIPv4(iface)
	if err != nil {
		return nil, err
	}
	c := &Conn{Interface: iface, IP: ip}
	if c.dhcp, err = bind(iface, PortDHCP); err != nil {
		return nil, err
	}
	if c.pxe, err = bind(iface, PortPXE); err != nil {
		c.dhcp.Close()
		return nil, err
	}
	return c, nil
}

func bind(iface string, port int) (*net.UDPConn, error) {
	var sockErr error
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		err := rc.Control(func(fd uintptr) {
			if sockErr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface); sockErr != nil {
				sockErr = fmt.Errorf("SO_BINDTODEVICE: %w", sockErr)
				return
			}
			if sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); sockErr != nil {
				return
			}
			sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
		})
		if err != nil {
			return err
		}
		return sockErr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, bindError(iface, port, err)
	}
	return pc.(*net.UDPConn), nil
}

// bindError says what is missing in words an admin can act on.
func bindError(iface string, port int, err error) error {
	where := fmt.Sprintf("proxydhcp: cannot bind UDP port %d on interface %s", port, iface)
	switch {
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("%s: permission denied: binding a port below 1024 needs root or the CAP_NET_BIND_SERVICE capability", where)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s: operation not permitted: binding to an interface needs the CAP_NET_RAW capability on this kernel", where)
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("%s: address already in use: another DHCP server on this host holds the port without SO_REUSEADDR (run it on another host, or use its own proxy mode)", where)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// Close closes both sockets; Serve then returns.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.dhcp.Close()
		c.pxe.Close()
	})
	return nil
}

// Serve answers what arrives on both sockets until ctx ends or c is closed
// (then it closes c and returns nil). A failed send is logged and the
// packet dropped: the client retransmits.
func (r *Responder) Serve(ctx context.Context, c *Conn) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	errc := make(chan error, 2)
	for _, s := range []struct {
		conn *net.UDPConn
		port int
	}{{c.dhcp, PortDHCP}, {c.pxe, PortPXE}} {
		go func() { errc <- r.serveOne(s.conn, s.port) }()
	}
	err := <-errc
	c.Close()
	if err2 := <-errc; err == nil {
		err = err2
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (r *Responder) serveOne(conn *net.UDPConn, port int) error {
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		reply := r.Handle(buf[:n], from, port)
		if reply == nil {
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(reply.Msg.ToBytes(), reply.To); err != nil {
			r.cfg.Logger.Warn("proxydhcp: sending the answer failed", "to", reply.To.String(), "err", err)
			continue
		}
		r.cfg.Logger.Debug("proxydhcp: answered", "mac", reply.Msg.ClientHWAddr.String(), "type", reply.Msg.MessageType().String(),
			"file", reply.Msg.BootFileName, "to", reply.To.String())
	}
}
