package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/dhcp"
	"github.com/netbootui/netbootui/internal/dhcp/proxy"
)

// ProxyDHCP is a proxyDHCP responder bound to its interface (ports 67 and
// 4011) and waiting for ServeProxyDHCP. A nil *ProxyDHCP is valid: no
// responder.
type ProxyDHCP struct {
	conn *proxy.Conn
	// base is the boot URL (http://HOST:PORT) nodes are chained to; ""
	// means the HTTP server's bound port on the interface's address, or on
	// the listener's own address when listenerHost is set.
	base         string
	listenerHost bool
	opts         ProxyDHCPOptions
}

// ProxyDHCPOptions choose the proxyDHCP responder's interface and answers.
type ProxyDHCPOptions struct {
	// Interface is where PXE clients are answered ("": no responder).
	Interface string
	// KnownOnly answers only the inventory's MACs (unknown ones are still
	// reported).
	KnownOnly bool
	// EFILoader is what UEFI x86-64 PXE clients get: ipxe.efi (default) or
	// snponly.efi.
	EFILoader string
}

// ListenProxyDHCP binds the proxyDHCP ports on o.Interface ("" returns nil:
// no responder). Call it before New, so that a missing permission, interface
// or address is reported (naming the interface and the port) before the
// data directory is opened. The boot URL nodes are chained to is
// cfg.AdvertiseURL when set, else the HTTP listener's address when it names
// one, else the interface's IPv4 address with the HTTP port.
func ListenProxyDHCP(o ProxyDHCPOptions, cfg Config) (*ProxyDHCP, error) {
	iface := o.Interface
	if iface == "" {
		return nil, nil
	}
	if err := (dhcp.Options{HTTPBase: "http://x", EFILoader: o.EFILoader}).Validate(); err != nil {
		return nil, fmt.Errorf("--proxydhcp %s: %w", iface, err)
	}
	p := &ProxyDHCP{opts: o}
	switch {
	case cfg.AdvertiseURL != "":
		p.base = strings.TrimSuffix(cfg.AdvertiseURL, "/")
		if err := (dhcp.Options{HTTPBase: p.base, EFILoader: o.EFILoader}).Validate(); err != nil {
			return nil, fmt.Errorf("--proxydhcp %s: %w", iface, err)
		}
	case cfg.HTTPListen == "":
		return nil, fmt.Errorf("--proxydhcp %s: the HTTP boot server is disabled: set --http-listen or --advertise-url", iface)
	default:
		host, _, err := net.SplitHostPort(cfg.HTTPListen)
		if err != nil {
			return nil, fmt.Errorf("--proxydhcp %s: HTTP listen address %q: %w", iface, cfg.HTTPListen, err)
		}
		if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() && !ip.IsUnspecified() {
			p.listenerHost = true
		}
	}
	conn, err := proxy.Listen(iface)
	if err != nil {
		return nil, err
	}
	p.conn = conn
	return p, nil
}

// Close releases the sockets of a responder that was never served.
func (p *ProxyDHCP) Close() error {
	if p == nil {
		return nil
	}
	return p.conn.Close()
}

// ServeProxyDHCP answers PXE clients on p's interface until ctx ends, with
// the inventory in force (reloads included) and the tracker's view of each
// node, and records what it sees as events: dhcp for a known node's
// firmware, info for an iPXE asking again after its loader, unknown (rate
// limited per MAC) for a MAC the inventory does not know. A nil p does
// nothing.
func (d *Daemon) ServeProxyDHCP(ctx context.Context, p *ProxyDHCP) {
	if p == nil {
		return
	}
	base := p.base
	if base == "" {
		host, port := p.conn.IP.String(), "80"
		if a, ok := d.HTTPAddr().(*net.TCPAddr); ok {
			port = fmt.Sprint(a.Port)
			if p.listenerHost {
				host = a.IP.String()
			}
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	r, err := proxy.New(proxy.Config{
		ServerIP:  p.conn.IP,
		Boot:      dhcp.Options{HTTPBase: base, EFILoader: p.opts.EFILoader},
		KnownOnly: p.opts.KnownOnly,
		Lookup: func(mac net.HardwareAddr) (proxy.Node, bool) {
			n := d.Inventory().NodeByMAC(mac)
			if n == nil {
				return proxy.Node{}, false
			}
			return proxy.Node{Name: n.Name, Loader: n.Loader, Arch: n.Arch}, true
		},
		Stage: func(node string) bootstate.Stage {
			st, _ := d.Tracker.Get(node)
			return st.Stage
		},
		Events: d.apply,
		Logger: d.log,
	})
	if err != nil {
		// The base was validated by ListenProxyDHCP or built from addresses.
		d.log.Error("proxydhcp not started", "interface", p.conn.Interface, "err", err)
		p.conn.Close()
		return
	}
	d.log.Info("proxydhcp listening", "interface", p.conn.Interface, "server", p.conn.IP.String(),
		"ports", fmt.Sprintf("%d,%d", proxy.PortDHCP, proxy.PortPXE), "boot_url", base)
	go func() {
		if err := r.Serve(ctx, p.conn); err != nil {
			d.log.Error("proxydhcp stopped", "interface", p.conn.Interface, "err", err)
		}
	}()
}
